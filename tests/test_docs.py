"""The documentation site builds offline in strict mode, lists every page, and its figures stay small.

Skipped where the ``docs`` extra (mkdocs-material, mkdocstrings) is not installed; CI installs it
from .ci/requirements.txt.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _nav_pages(nav):
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        if isinstance(value, list):
            yield from _nav_pages(value)
        else:
            yield value


def test_site_builds_strictly(tmp_path):
    pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install -e '.[docs]'")
    pytest.importorskip("material", reason="mkdocs-material is not installed")
    pytest.importorskip("mkdocstrings_handlers.python", reason="mkdocstrings[python] is not installed")
    site = tmp_path / "site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(site)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # The API reference is generated from the docstrings; the maths is left to MathJax.
    api = (site / "api" / "losses" / "index.html").read_text()
    assert "dsm_loss" in api and "importance_sample_time" in api
    maths = (site / "mathematics" / "index.html").read_text()
    assert 'class="arithmatex"' in maths


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
