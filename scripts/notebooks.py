"""Run the research notebooks headless, or strip their outputs before committing.

    python scripts/notebooks.py run [--fast] [--save DIR] [NOTEBOOK ...]    # execute (default: all)
    python scripts/notebooks.py strip [NOTEBOOK ...]                        # remove outputs in place
    python scripts/notebooks.py check [NOTEBOOK ...]                        # exit 1 if any has outputs

``run`` executes each notebook with nbclient in a fresh kernel of *this* interpreter (a
kernelspec written to a temporary folder, so no Jupyter installation or registered kernel is
needed) inside a temporary working directory, and never writes the notebook back. ``--fast``
sets ``SCORESDE_NOTEBOOK_FAST=1``, the small sizes that CI uses. The tests
(``tests/test_notebooks.py``) call :func:`execute` and :func:`has_outputs`.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
KERNEL_NAME = "scoresde-notebooks"


def notebooks(paths: Sequence[str] = ()) -> List[Path]:
    """The given notebooks, or every ``notebooks/*.ipynb`` in name order."""
    return [Path(p) for p in paths] if paths else sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def _kernel_manager(kernel_dir: Path, env: Dict[str, str]):
    """A kernel manager for ``sys.executable`` with ``env`` added to the kernel's environment."""
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpecManager

    spec_dir = kernel_dir / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python ({sys.executable})",
        "language": "python",
        "env": env,
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    ksm = KernelSpecManager(kernel_dirs=[str(kernel_dir)])
    # IPC sockets in the temporary folder: no TCP port is opened.
    return KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=ksm, transport="ipc",
                         ip=str(kernel_dir / "kernel-ipc"))


def execute(path: Path, *, fast: bool = True, timeout: int = 600, workdir: Optional[Path] = None):
    """Execute the notebook at ``path``; returns the executed notebook (the file is untouched).

    Raises ``nbclient.exceptions.CellExecutionError`` at the first cell that raises.
    """
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(str(path), as_version=4)
    env = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "MPLBACKEND": "module://matplotlib_inline.backend_inline",
           "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    if fast:
        env["SCORESDE_NOTEBOOK_FAST"] = "1"
    with tempfile.TemporaryDirectory(prefix="scoresde-nb-") as tmp:
        cwd = Path(workdir) if workdir is not None else Path(tmp) / "work"
        cwd.mkdir(parents=True, exist_ok=True)
        km = _kernel_manager(Path(tmp) / "kernels", env)
        client = NotebookClient(nb, km=km, timeout=timeout, allow_errors=False,
                                resources={"metadata": {"path": str(cwd)}})
        client.execute()
    return nb


def has_outputs(path: Path) -> bool:
    """Whether any code cell of the notebook has outputs or an execution count."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    return any(c.cell_type == "code" and (c.outputs or c.execution_count is not None) for c in nb.cells)


def strip(path: Path) -> bool:
    """Remove outputs and execution counts in place; returns whether the file changed."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    changed = False
    for cell in nb.cells:
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None):
            cell.outputs, cell.execution_count, changed = [], None, True
    if changed:
        nbformat.write(nb, str(path))
    return changed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/notebooks.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute notebooks headless")
    run.add_argument("--fast", action="store_true", help="small sizes (SCORESDE_NOTEBOOK_FAST=1)")
    run.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    run.add_argument("--save", metavar="DIR", help="write the executed notebooks (with outputs) here")
    for p in (run, sub.add_parser("strip", help="remove outputs in place"),
              sub.add_parser("check", help="fail if a notebook has outputs")):
        p.add_argument("notebooks", nargs="*")
    args = parser.parse_args(argv)
    paths = notebooks(args.notebooks)
    if args.command == "run":
        for path in paths:
            start = time.perf_counter()
            nb = execute(path, fast=args.fast, timeout=args.timeout)
            if args.save:
                import nbformat

                os.makedirs(args.save, exist_ok=True)
                nbformat.write(nb, os.path.join(args.save, path.name))
            print(f"{path.name}: ran in {time.perf_counter() - start:.1f} s", flush=True)
        return 0
    if args.command == "strip":
        for path in paths:
            print(f"{path.name}: {'stripped' if strip(path) else 'no outputs'}")
        return 0
    dirty = [p.name for p in paths if has_outputs(p)]
    if dirty:
        print("notebooks with outputs (run python scripts/notebooks.py strip): " + ", ".join(dirty))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
