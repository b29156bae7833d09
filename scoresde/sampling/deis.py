"""DEIS and iPNDM (Zhang & Chen 2023, "Fast Sampling of Diffusion Models with Exponential
Integrator"), for any SDE of :mod:`scoresde.sde`.

In the scaled state ``x_hat = x / alpha_t`` and the noise level ``s = sigma_t / alpha_t =
e^(-lambda)`` (Karras et al.'s ``sigma_edm``) the probability-flow ODE of every SDE is
``dx_hat / ds = eps(x, t)`` with the noise prediction ``eps = -sigma_t score(x, t)`` (Zhang &
Chen 2023, Eq. 11 after their change of variables), so one step is exactly

    x_hat_(i+1) = x_hat_i + int_(s_i)^(s_(i+1)) eps(x(s), t(s)) ds.

Both solvers replace ``eps`` in the integral by a polynomial through the values at the last
``r + 1`` grid points (one NFE per step; the first steps use the values there are):

* **DEIS tAB-r** (Sec. 4, "tAB-DEIS"): the polynomial in ``t`` (Lagrange basis ``L_j``), each
  ``int L_j(t(s)) ds`` computed once on the host in float64 by Gauss-Legendre quadrature in
  ``s``, with ``t(s)`` the inverse of the schedule's log-SNR. ``r = 0`` is DDIM.
* **iPNDM** (App. B, the improved pseudo numerical method): Adams-Bashforth in ``s`` with the
  fixed coefficients of equal steps (orders 1 to 4: ``1``; ``3/2, -1/2``;
  ``23/12, -16/12, 5/12``; ``55/24, -59/24, 37/24, -9/24``), ``x_hat_(i+1) = x_hat_i +
  (s_(i+1) - s_i) sum_j b_j eps_(i-j)``.

Sampling stops at ``eps``; ``denoise=True`` adds :func:`~scoresde.sampling.denoise_step` (one NFE).
"""
from __future__ import annotations

import math
from typing import List, Optional, Tuple

import numpy as np
import torch

from ..sde import SDE
from ..types import ScoreFn, Shape, Tensor
from ..utils import check_choice
from ._common import StepCallback, StepReport, finish, full_time, start
from .dpm_solver import DEFAULT_DPM_STEPS
from .grids import SKIP_TYPES, Schedule, time_from_log_snr

__all__ = ["deis_sampler", "ipndm_sampler", "IPNDM_COEFFICIENTS", "deis_coefficients"]

#: Adams-Bashforth coefficients of iPNDM by order, newest value first.
IPNDM_COEFFICIENTS = {
    1: (1.0,),
    2: (3 / 2, -1 / 2),
    3: (23 / 12, -16 / 12, 5 / 12),
    4: (55 / 24, -59 / 24, 37 / 24, -9 / 24),
}

_QUADRATURE_NODES = 16  # Gauss-Legendre points per step: exact for the smooth integrands here


def deis_coefficients(sde: SDE, grid: List[float], order: int) -> List[List[float]]:
    """``C[i][j] = int_(s_i)^(s_(i+1)) L_j(t(s)) ds``: the weight of ``eps`` at ``grid[i - j]``
    in step ``i`` of tAB-DEIS of order ``order`` (``L_j`` the Lagrange basis in ``t`` on
    ``grid[i], ..., grid[i - k + 1]``, ``k = min(order + 1, i + 1)``)."""
    sch = Schedule(sde, grid)
    s = [math.exp(-lam) for lam in sch.lam]
    u, w = np.polynomial.legendre.leggauss(_QUADRATURE_NODES)
    n = len(grid) - 1
    # Nodes in s of every step, and their times, found in one inversion of lambda.
    nodes = [0.5 * (s[i + 1] - s[i]) * u + 0.5 * (s[i + 1] + s[i]) for i in range(n)]
    times = time_from_log_snr(sde, [-math.log(v) for row in nodes for v in row])
    coeffs = []
    for i in range(n):
        t_nodes = np.asarray(times[i * _QUADRATURE_NODES:(i + 1) * _QUADRATURE_NODES])
        past = grid[max(0, i - order):i + 1][::-1]  # grid[i], grid[i-1], ...
        row = []
        for j, t_j in enumerate(past):
            basis = np.ones_like(t_nodes)
            for m, t_m in enumerate(past):
                if m != j:
                    basis *= (t_nodes - t_m) / (t_j - t_m)
            row.append(float(0.5 * (s[i + 1] - s[i]) * np.dot(w, basis)))
        coeffs.append(row)
    return coeffs


def _run(counted, sch: Schedule, x: Tensor, weights: List[List[float]], report: StepReport) -> Tensor:
    """``x_hat_(i+1) = x_hat_i + sum_j weights[i][j] eps_(i-j)`` on the grid of ``sch``."""
    x_hat = x / sch.alpha[0]
    history: List[Tensor] = []  # eps at the last grid points, newest first
    depth = max(len(row) for row in weights)
    for i, row in enumerate(weights):
        score = counted(sch.alpha[i] * x_hat, full_time(sch.t[i], x_hat))
        history = [score.mul(-sch.sigma[i])] + history[:depth - 1]
        for c, e in zip(row, history):
            x_hat.add_(e, alpha=c)  # one fused operation per term (small batches)
        report(i, sch.t[i + 1], sch.alpha[i + 1] * x_hat)
    report.close()
    return sch.alpha[-1] * x_hat


@torch.no_grad()
def deis_sampler(
    score_fn: ScoreFn,
    sde: SDE,
    shape: Shape,
    *,
    steps: Optional[int] = None,
    order: int = 3,
    skip_type: str = "logSNR",
    eps: float = 1e-3,
    denoise: bool = True,
    x_T: Optional[Tensor] = None,
    generator: Optional[torch.Generator] = None,
    device=None,
    dtype: Optional[torch.dtype] = None,
    progress: bool = False,
    timesteps=None,
    callback: Optional[StepCallback] = None,
) -> Tuple[Tensor, int]:
    """tAB-DEIS of order ``order`` (Zhang & Chen 2023, Sec. 4): the exponential integrator with
    ``eps`` extrapolated by a polynomial in ``t`` through the last ``order + 1`` values.

    Args:
        steps: steps from ``T`` to ``eps``, one NFE each (default 20).
        order: polynomial degree ``r`` (0 to 3; global order ``r + 1``; 0 is DDIM).
        skip_type: time grid, as in :func:`~scoresde.sampling.dpm_solver_sampler`.
        timesteps: the grid itself (``steps + 1`` decreasing times).
        callback: ``callback(i, t, x, x0_hat)`` after each step.
        eps, denoise, x_T, generator, device, dtype, progress: as in the other samplers.
    Returns:
        samples ``(B, *D)`` and the NFE (``steps + denoise``).
    """
    check_choice("order", order, (0, 1, 2, 3))
    check_choice("skip_type", skip_type, SKIP_TYPES)
    counted, x, steps, eps, grid = start(score_fn, sde, shape, steps, eps, x_T, generator, device, dtype,
                                         timesteps=timesteps, default_steps=DEFAULT_DPM_STEPS)
    grid = grid or SKIP_TYPES[skip_type](sde, eps, steps + 1)
    report = StepReport(counted, sde, steps, progress, f"DEIS tAB{order}", callback)
    x = _run(counted, Schedule(sde, grid), x, deis_coefficients(sde, grid, order), report)
    return finish(counted, sde, x, eps, denoise)


@torch.no_grad()
def ipndm_sampler(
    score_fn: ScoreFn,
    sde: SDE,
    shape: Shape,
    *,
    steps: Optional[int] = None,
    order: int = 4,
    skip_type: str = "edm_rho",
    eps: float = 1e-3,
    denoise: bool = True,
    x_T: Optional[Tensor] = None,
    generator: Optional[torch.Generator] = None,
    device=None,
    dtype: Optional[torch.dtype] = None,
    progress: bool = False,
    timesteps=None,
    callback: Optional[StepCallback] = None,
) -> Tuple[Tensor, int]:
    """iPNDM (Zhang & Chen 2023, App. B): Adams-Bashforth steps in the noise level
    ``s = sigma_t / alpha_t`` with the fixed coefficients :data:`IPNDM_COEFFICIENTS`, the
    first steps at lower orders.

    Args:
        steps: steps from ``T`` to ``eps``, one NFE each (default 20).
        order: highest Adams-Bashforth order (1 to 4; 1 is DDIM).
        skip_type: time grid (default ``"edm_rho"``, the rho = 7 noise levels of Karras et al.,
            on which the method was benchmarked by Zhou et al. 2024).
        timesteps, callback, eps, denoise, x_T, generator, device, dtype, progress: as in
            :func:`deis_sampler`.
    Returns:
        samples ``(B, *D)`` and the NFE (``steps + denoise``).
    """
    check_choice("order", order, (1, 2, 3, 4))
    check_choice("skip_type", skip_type, SKIP_TYPES)
    counted, x, steps, eps, grid = start(score_fn, sde, shape, steps, eps, x_T, generator, device, dtype,
                                         timesteps=timesteps, default_steps=DEFAULT_DPM_STEPS)
    grid = grid or SKIP_TYPES[skip_type](sde, eps, steps + 1)
    sch = Schedule(sde, grid)
    s = [math.exp(-lam) for lam in sch.lam]
    weights = [[(s[i + 1] - s[i]) * b for b in IPNDM_COEFFICIENTS[min(order, i + 1)]] for i in range(steps)]
    report = StepReport(counted, sde, steps, progress, f"iPNDM-{order}", callback)
    x = _run(counted, sch, x, weights, report)
    return finish(counted, sde, x, eps, denoise)
