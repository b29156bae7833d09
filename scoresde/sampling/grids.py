"""Time grids for the samplers. Grids live on the host (lists of Python floats), so sampling
loops never read a device tensor to decide what to do next."""
from __future__ import annotations

from typing import List, Tuple


def uniform_grid(T: float, eps: float, steps: int) -> List[float]:
    """``linspace(T, eps, steps)`` as floats: the times at which a sampler evaluates the score."""
    if steps == 1:
        return [float(T)]
    h = (T - eps) / (steps - 1)
    return [float(T - i * h) if i < steps - 1 else float(eps) for i in range(steps)]


def step_pairs(grid: List[float], t_end: float = 0.0) -> List[Tuple[float, float]]:
    """``(t_i, t_{i+1})`` for each grid time, the last one ending at ``t_end``."""
    return list(zip(grid, grid[1:] + [float(t_end)]))
