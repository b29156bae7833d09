"""The documentation site builds offline in strict mode, lists every page, works from disk in a real
browser, and its figures stay small.

Skipped where the ``docs`` extra (mkdocs-material, mkdocstrings) is not installed, or where the
site's scripts are not in node_modules/ (``npm ci``), except on CI (``CI`` set), where .ci/run
installs both. The browser checks use Debian's ``chromium`` (``apt-get install chromium``)
and skip without it. ``SCORESDE_DOCS_SCREENSHOTS=DIR`` keeps their screenshots in DIR.
"""
import html
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
#: Pages checked in the browser: their formulas, and the API reference's cross-references.
BROWSER_PAGES = ["index.html", "mathematics.html", "sampler_guide.html", "api/sampling.html"]


def _nav_pages(nav):
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        if isinstance(value, list):
            yield from _nav_pages(value)
        else:
            yield value


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site built with ``mkdocs build --strict`` into a temporary folder."""
    pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install -e '.[docs]'")
    pytest.importorskip("material", reason="mkdocs-material is not installed")
    pytest.importorskip("mkdocstrings_handlers.python", reason="mkdocstrings[python] is not installed")
    if not (ROOT / "node_modules" / "mathjax").is_dir() and not os.environ.get("CI"):
        pytest.skip("the site's MathJax is not installed: run `npm ci` in the checkout")
    site = tmp_path_factory.mktemp("docs") / "site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(site)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return site


def test_site_builds_strictly(site):
    # The API reference is generated from the docstrings; the maths is left to MathJax.
    api = (site / "api" / "losses.html").read_text()
    assert "dsm_loss" in api and "importance_sample_time" in api
    maths = (site / "mathematics.html").read_text()
    assert 'class="arithmatex"' in maths


def test_site_requests_nothing_from_the_network(site):
    for page in site.rglob("*.html"):
        text = page.read_text()
        remote = re.findall(r"<(?:script|link)\b[^>]*?(?:src|href)=\"(?:https?:)?//[^\"]*", text)
        assert remote == [], f"{page.relative_to(site)} loads {remote}"
    assert (site / "javascripts" / "mathjax" / "tex-svg-full.js").stat().st_size > 1_000_000
    # Directory URLs would break under file://: every page is a .html file that links to files.
    assert not (site / "mathematics" / "index.html").exists()
    assert 'href="sampler_guide.html"' in (site / "index.html").read_text()


def _table_rows(page: str, anchor: str) -> dict:
    """The rows of the parameters table of the object with id ``anchor``: name -> cells."""
    section = page[page.index(f'id="{anchor}"'):]
    table = section[section.index("<table"):section.index("</table>")]
    rows = {}
    for row in re.findall(r"<tr.*?</tr>", table, flags=re.S)[1:]:
        cells = [" ".join(html.unescape(re.sub(r"<[^>]+>", " ", c)).split())
                 for c in re.findall(r"<td.*?</td>", row, flags=re.S)]
        rows[cells[0]] = cells
    return rows


def test_api_reference_renders_docstrings_as_written(site):
    pages = {p.name: p.read_text() for p in (site / "api").glob("*.html")}
    for name, text in pages.items():
        roles = re.findall(r":(?:func|class|mod|meth|attr|data|exc):`", text)
        assert roles == [], f"api/{name} shows {len(roles)} raw Sphinx roles"
    sampling = pages["sampling.html"]
    # Sphinx roles became links to the documented objects.
    assert 'href="models.html#scoresde.models.adapter.get_score_fn"' in sampling
    assert 'href="sde.html#scoresde.sde.VPSDE"' in sampling
    # "rtol, atol: ..." documents two parameters, each with its own default.
    rows = _table_rows(sampling, "scoresde.sampling.sample")
    for name, default in [("rtol", "None"), ("atol", "None"), ("device", "None"), ("snr", "0.16")]:
        assert rows[name][-1] == default, (name, rows[name])
    assert "rtol, atol" not in rows


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _browser(*args, url):
    command = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--virtual-time-budget=20000", *args, url]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.parametrize("page", BROWSER_PAGES)
def test_pages_render_from_disk_in_a_browser(site, page, tmp_path):
    """Opened with file:// in headless Chromium, each page typesets its formulas (MathJax from the
    site: no network) and looks like a page (a screenshot with text and drawing in it)."""
    if _chromium() is None:
        pytest.skip("no headless browser: apt-get install chromium (Debian)")
    Image = pytest.importorskip("PIL.Image")
    url = (site / page).as_uri()
    dom = _browser("--dump-dom", url=url)
    formulas = (site / page).read_text().count('class="arithmatex"')
    typeset = len(re.findall(r'class="arithmatex"><mjx-container', dom))
    assert typeset == formulas, f"{page}: {formulas - typeset} of {formulas} formulas left as TeX"
    if page in ("mathematics.html", "sampler_guide.html"):
        assert formulas > 0
    if page.startswith("api/"):
        assert 'class="autorefs autorefs-internal"' in dom
    shot = tmp_path / (page.replace("/", "_")[:-5] + ".png")
    _browser("--window-size=1280,900", f"--screenshot={shot}", url=url)
    img = Image.open(shot).convert("L")
    assert img.size == (1280, 900)
    dark = sum(img.histogram()[:128]) / (1280 * 900)
    assert 0.01 < dark < 0.5, f"{page}: the screenshot is {dark:.1%} dark (blank or broken?)"
    keep = os.environ.get("SCORESDE_DOCS_SCREENSHOTS")
    if keep:
        os.makedirs(keep, exist_ok=True)
        shutil.copy(shot, keep)


def test_search_works_from_disk(site):
    if _chromium() is None:
        pytest.skip("no headless browser: apt-get install chromium (Debian)")
    dom = _browser("--dump-dom", url=(site / "index.html").as_uri() + "?q=langevin")
    found = re.search(r'md-search-result__meta">(\d+) matching document', dom)
    assert found and int(found.group(1)) > 0, "search gave no results from file://"


def test_every_page_is_in_the_nav():
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    listed = set(_nav_pages(config["nav"]))
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert pages - listed == set(), "add these pages to the nav of mkdocs.yml"
    assert listed - pages == set(), "the nav lists pages that do not exist"


def test_figures_are_small_and_used():
    pngs = sorted((DOCS / "figures").glob("*.png"))
    assert pngs, "docs/figures/make_figures.py writes the figures"
    text = "\n".join(p.read_text() for p in DOCS.rglob("*.md"))
    for png in pngs:
        assert png.stat().st_size < 200 * 1024, f"{png.name} is over 200 KB"
        assert re.search(rf"figures/{re.escape(png.name)}\)", text), f"{png.name} is used by no page"


def test_readme_links_work_off_the_repository():
    """README.md is the package index page too, where a relative link leads nowhere: it links only
    to absolute URLs and names the files of the source tree as text."""
    readme = (ROOT / "README.md").read_text()
    relative = [t for t in re.findall(r"\]\(([^)\s]+)", readme) + re.findall(r'src="([^"]+)"', readme)
                if not t.startswith(("https://", "http://", "#"))]
    assert relative == [], f"README.md links relatively to {relative}"


def test_shared_parameter_entries_are_split():
    pytest.importorskip("griffe")
    import importlib.util

    spec = importlib.util.spec_from_file_location("griffe_docstrings", DOCS / "hooks" / "griffe_docstrings.py")
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    text = ("Solve it.\n\nArgs:\n    x: the state.\n    rtol, atol: tolerances\n        of the solver.\n"
            "    n: steps.\nReturns:\n    a, b: not parameters.")
    assert hook._split_shared_entries(text) == (
        "Solve it.\n\nArgs:\n    x: the state.\n    rtol: tolerances\n        of the solver.\n"
        "    atol: tolerances\n        of the solver.\n    n: steps.\nReturns:\n    a, b: not parameters.")
