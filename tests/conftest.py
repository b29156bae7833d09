"""Test configuration: one torch thread per xdist worker (two workers on two cores would
otherwise oversubscribe the cores many times over and run far slower)."""
import importlib.util
import os

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


@pytest.fixture
def load_benchmark():
    """``load_benchmark(name)``: the module of the script ``benchmarks/<name>.py`` (the
    benchmarks are scripts, not a package)."""
    def load(name: str):
        spec = importlib.util.spec_from_file_location(f"bench_{name}", os.path.join(ROOT, "benchmarks", f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
