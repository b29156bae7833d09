"""The research notebooks run headless at small sizes, are committed without outputs, and use the
library instead of redefining it.

Each notebook is executed with nbclient in a fresh kernel of this interpreter
(``scripts/notebooks.py``) with ``SCORESDE_NOTEBOOK_FAST=1`` and ``OMP_NUM_THREADS=1``; any
exception in a cell fails the test. Skipped where nbclient / ipykernel / matplotlib (the ``docs``
extra) are missing.
"""
import ast
import importlib.util
import json
from pathlib import Path

import pytest

import scoresde
import scoresde.sampling

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _runner():
    spec = importlib.util.spec_from_file_location("notebook_runner", ROOT / "scripts" / "notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _code_cells(path):
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def test_there_are_notebooks():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path):
    dirty = [i for i, c in enumerate(_code_cells(path)) if c["outputs"] or c["execution_count"] is not None]
    assert not dirty, f"cells {dirty} have outputs: run python scripts/notebooks.py strip"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_does_not_redefine_library_code(path):
    library = set(scoresde.__all__) | set(scoresde.sampling.__all__) | {"get_score_fn", "main"}
    for cell in _code_cells(path):
        source = "".join(cell["source"])
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                assert node.name not in library, f"{path.name} redefines {node.name}"
    sources = "".join("".join(c["source"]) for c in _code_cells(path))
    assert "import scoresde" in sources or "from scoresde" in sources


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_runs_in_fast_mode(path):
    for module in ("nbclient", "nbformat", "ipykernel", "matplotlib"):
        pytest.importorskip(module, reason="the docs extra is not installed: pip install -e '.[docs]'")
    nb = _runner().execute(path, fast=True, timeout=300)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert images, "the notebook draws no figure"
