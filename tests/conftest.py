"""Test configuration: one torch thread per xdist worker (two workers on two cores would
otherwise oversubscribe the cores many times over and run far slower)."""
import os

import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)
