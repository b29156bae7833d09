"""Time grids chosen for one model and one budget: :func:`optimize_schedule`.

The error of a few-step solver depends mostly on where its steps fall, and the best places
depend on the model (Chen et al. 2024, "On the Trajectory Regularity of ODE-based Diffusion
Sampling", GITS). :func:`optimize_schedule` finds them from a small warm-up batch:

1. **Teacher.** A tight solution of the probability-flow ODE of the warm-up ``x_T``, kept at
   every time of a fine grid ``tau_0 = T > tau_1 > ... > tau_M = eps`` (UniPC-3 with
   ``substeps`` steps per fine interval), and its end ``x_0`` (the same final denoising step as
   the samplers).
2. **Dynamic program** (GITS, Sec. 4). The cost of a step from ``tau_i`` to ``tau_j`` is the
   RMS distance between one DDIM step from the teacher's ``x(tau_i)`` and the teacher's
   ``x(tau_j)`` (one NFE per fine time, reused for every ``j``). The ``steps``-step path
   ``T -> eps`` through the fine grid with the least total cost is found exactly in
   ``O(steps M^2)``.
3. **Refinement for the solver** (ours). The grid is then moved one fine time at a time, point
   by point, while the error of the solver that will use it (``method``) at the warm-up
   batch's end shrinks against the teacher's ``x_0``; the solver's own default grid competes
   too, so the result is never worse than it on the warm-up batch.

Use the grid as ``sampler(score_fn, sde, shape, timesteps=grid)`` or
``sample(..., pc=False, method=method, timesteps=grid)``.
"""
from __future__ import annotations

import inspect
import math
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

from ..sde import SDE
from ..types import Device, ScoreFn, Shape, Tensor
from ..utils import check_choice
from ._common import denoise_step, full_time, init_state
from .deis import deis_sampler, ipndm_sampler
from .dpm_solver import dpm_solver_pp_sampler
from .grids import SKIP_TYPES, Schedule
from .unipc import unipc_sampler

__all__ = ["optimize_schedule", "SCHEDULE_METHODS"]

#: The multistep solvers a grid can be optimized for: one NFE per grid time but the last
#: (``timesteps`` of ``nfe - 1`` steps, then the denoising NFE).
SCHEDULE_METHODS: Dict[str, Callable[..., Tuple[Tensor, int]]] = {
    "unipc": unipc_sampler,
    "dpm_solver++": dpm_solver_pp_sampler,
    "ipndm": ipndm_sampler,
    "deis": deis_sampler,
}


def _teacher(score_fn: ScoreFn, sde: SDE, x_T: Tensor, dense: List[float], substeps: int,
             eps: float) -> Tuple[List[Tensor], Tensor]:
    """The tight trajectory at every ``substeps``-th time of ``dense`` (the fine grid) and its
    denoised end."""
    path = [x_T]

    def record(i: int, t: float, x: Tensor, x0_hat: Tensor) -> None:
        if (i + 1) % substeps == 0:
            path.append(x)

    x_eps, _ = unipc_sampler(score_fn, sde, tuple(x_T.shape), timesteps=dense, x_T=x_T, denoise=False,
                             callback=record, lower_order_final=False)
    return path, denoise_step(score_fn, sde, x_eps, eps)


def _ddim_costs(score_fn: ScoreFn, sde: SDE, fine: List[float], path: List[Tensor]) -> torch.Tensor:
    """``cost[i, j]``: mean over the batch of the RMS distance of one DDIM step (data-prediction
    form) from ``(tau_i, x(tau_i))`` to ``tau_j`` from the teacher's ``x(tau_j)``."""
    sch = Schedule(sde, fine)
    M = len(fine) - 1
    cost = torch.full((M + 1, M + 1), math.inf, dtype=torch.float64)
    for i in range(M):
        x = path[i]
        t = full_time(fine[i], x)
        alpha, sigma = sch.alpha[i], sch.sigma[i]
        x0 = (x + sigma ** 2 * score_fn(x, t)) / alpha
        for j in range(i + 1, M + 1):
            h = sch.lam[j] - sch.lam[i]
            step = (sch.sigma[j] / sigma) * x - sch.alpha[j] * math.expm1(-h) * x0
            cost[i, j] = (step - path[j]).flatten(1).pow(2).mean(1).sqrt().mean().item()
    return cost


def _shortest_path(cost: torch.Tensor, steps: int) -> List[int]:
    """Indices ``0 = i_0 < ... < i_steps = M`` minimizing ``sum_k cost[i_k, i_(k+1)]``."""
    M = cost.shape[0] - 1
    best = torch.full((steps + 1, M + 1), math.inf, dtype=torch.float64)
    arg = torch.zeros((steps + 1, M + 1), dtype=torch.long)
    best[0, 0] = 0.0
    for k in range(1, steps + 1):
        total = best[k - 1].unsqueeze(1) + cost  # [i, j]: reach i in k - 1 steps, then i -> j
        best[k], arg[k] = total.min(0)
    path = [M]
    for k in range(steps, 0, -1):
        path.append(int(arg[k, path[-1]]))
    return path[::-1]


@torch.no_grad()
def optimize_schedule(
    score_fn: ScoreFn,
    sde: SDE,
    shape: Shape,
    nfe: int,
    method: str = "unipc",
    *,
    eps: float = 1e-3,
    fine_steps: Optional[int] = None,
    substeps: int = 4,
    refine: bool = True,
    x_T: Optional[Tensor] = None,
    generator: Optional[torch.Generator] = None,
    device: Device = None,
    dtype: Optional[torch.dtype] = None,
    **method_kwargs: Any,
) -> Tensor:
    """The time grid for ``method`` at ``nfe`` score evaluations, fitted to ``score_fn`` on a
    warm-up batch of ``shape`` (see the module docstring: teacher trajectory, GITS's dynamic
    program over DDIM step costs, refinement for ``method``).

    Args:
        score_fn: the model's ``score_fn(x, t)``.
        sde: its SDE.
        shape: ``(B, *D)`` of the warm-up batch (``B`` of 8 to 64 is typical).
        nfe: the budget, the final denoising evaluation included (``nfe - 1`` steps), >= 2.
        method: the solver the grid is for, a key of :data:`SCHEDULE_METHODS`.
        eps: the grid's last time.
        fine_steps: intervals of the fine grid (default ``max(100, 4 (nfe - 1))``), equally
            spaced in the half log-SNR.
        substeps: teacher steps per fine interval (its NFE is ``fine_steps * substeps + 1``).
        refine: move the grid for ``method`` after the dynamic program (about ``4 nfe^2`` NFE
            per sweep, at most 3 sweeps).
        x_T, generator, device, dtype: the warm-up batch's start (default: drawn from the prior).
        **method_kwargs: the solver's own arguments (``order``, ``prediction``, ...), used in
            the refinement; pass the same ones when sampling. A ``skip_type`` names the grid
            that competes with the optimized one (default: the solver's default).
    Returns:
        ``nfe`` times ``(nfe,)``, float64, from ``T`` down to ``eps``, for ``timesteps=``.
    """
    check_choice("method", method, SCHEDULE_METHODS)
    if not isinstance(nfe, int) or nfe < 2:
        raise ValueError(f"nfe must be an integer >= 2 (steps plus the denoising evaluation); got {nfe!r}")
    for key in ("steps", "timesteps", "x_T", "denoise", "eps", "generator", "device", "dtype"):
        if key in method_kwargs:
            raise ValueError(f"{key} is set by optimize_schedule; pass only the solver's own arguments")
    kwargs = dict(method_kwargs)
    skip_type = kwargs.pop("skip_type", None)
    steps = nfe - 1
    M = max(100, 4 * steps) if fine_steps is None else int(fine_steps)
    if M < steps:
        raise ValueError(f"fine_steps={M} is fewer than the {steps} steps to choose")
    x = init_state(sde, shape, x_T, generator, device, dtype)
    dense = SKIP_TYPES["logSNR"](sde, eps, M * substeps + 1)
    fine = dense[::substeps]
    path, target = _teacher(score_fn, sde, x, dense, substeps, eps)
    idx = _shortest_path(_ddim_costs(score_fn, sde, fine, path), steps)
    if not refine:
        return torch.tensor([fine[i] for i in idx], dtype=torch.float64)

    solver = SCHEDULE_METHODS[method]

    def error(times: Optional[List[float]]) -> float:
        """The solver's error at the warm-up batch's end on ``times`` (``None``: its own grid)."""
        own = dict(steps=steps, eps=eps, **({"skip_type": skip_type} if skip_type else {}))
        out, _ = solver(score_fn, sde, tuple(x.shape), x_T=x, **(own if times is None else dict(timesteps=times)),
                        **kwargs)
        err = (out - target).flatten(1).pow(2).mean(1).sqrt().mean().item()
        return err if math.isfinite(err) else math.inf

    best_err = error([fine[i] for i in idx])
    for _ in range(3):
        improved = False
        for p in range(1, steps):
            for move in (-1, 1):
                trial = list(idx)
                trial[p] += move
                if not trial[p - 1] < trial[p] < trial[p + 1]:
                    continue
                err = error([fine[i] for i in trial])
                if err < best_err:
                    idx, best_err, improved = trial, err, True
        if not improved:
            break
    if error(None) < best_err:  # the solver's own grid
        own = SKIP_TYPES[skip_type or inspect.signature(solver).parameters["skip_type"].default]
        return torch.tensor(own(sde, eps, nfe), dtype=torch.float64)
    return torch.tensor([fine[i] for i in idx], dtype=torch.float64)
