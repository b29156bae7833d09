"""DPM-Solver and DPM-Solver++, singlestep and multistep, for any SDE of :mod:`scoresde.sde`.

Each solver sees the SDE only through its kernel coefficients ``(alpha_t, sigma_t)`` of
``p_0t(x_t | x_0) = N(alpha_t x_0, sigma_t^2 I)``; grids and step coefficients are computed on
the host in float64 (:mod:`scoresde.sampling.grids`), so the loops never read a device tensor.

**DPM-Solver** (Lu et al. 2022, "DPM-Solver: A Fast ODE Solver for Diffusion Probabilistic
Model Sampling in Around 10 Steps"). In the half log-SNR ``lambda = log(alpha / sigma)`` the
probability-flow ODE has the exact solution (Eq. 3.4)

    x_t = (alpha_t / alpha_s) x_s - alpha_t int_{lambda_s}^{lambda_t} e^{-lambda} eps(x_lambda) dlambda,

with the noise prediction ``eps(x, t) = -sigma_t score(x, t)``. Expanding ``eps`` in a Taylor
series in ``lambda`` about ``lambda_s`` and integrating each term exactly gives, with
``h = lambda_t - lambda_s``,

    x_t = (alpha_t / alpha_s) x_s - sigma_t [ (e^h - 1) eps + (e^h - 1 - h) eps'
                                            + (e^h - 1 - h - h^2/2) eps'' + ... ].   (*)

DPM-Solver-1 keeps the first term (DDIM); DPM-Solver-2 and -3 (Alg. 1 and 2) estimate the
derivatives from evaluations at intermediate log-SNRs ``lambda_s + r h``. With ``steps`` as
the NFE budget, the singlestep solver spends it as "DPM-Solver-fast" does (Sec. 3.4 and
App. C of the paper): as many order-``k`` steps as fit, the remainder in one or two
lower-order steps at the end.
**Multistep DPM-Solver / DPM-Solver++** (Lu et al. 2022b, "DPM-Solver++: Fast Solver for
Guided Sampling of Diffusion Probabilistic Models"). The derivatives in (*) come from the
model values of the previous steps instead (1 NFE per step). DPM-Solver++ applies the same
idea to the data prediction ``x0(x, t) = (x + sigma_t^2 score) / alpha_t``, whose exact
solution is ``x_t = (sigma_t / sigma_s) x_s + sigma_t int e^{lambda} x0 dlambda``, i.e.

    x_t = (sigma_t / sigma_s) x_s + alpha_t [ (1 - e^-h) x0 + (h - 1 + e^-h) x0'
                                            + (h^2/2 - h + 1 - e^-h) x0'' + ... ].   (**)

Order 2 is the paper's 2M update (Alg. 2); order 3 takes both derivatives of the quadratic
through the last three model values, with the exact coefficients of (*) or (**).

Sampling stops at ``eps``; ``denoise=True`` adds :func:`~scoresde.sampling.denoise_step` (one NFE).
"""
from __future__ import annotations

import math
from typing import List, Optional, Tuple

import torch

from ..sde import SDE
from ..types import ScoreFn, Shape, Tensor
from ..utils import check_choice
from ._common import CountingScore, StepCallback, StepReport, finish, full_time, start
from .grids import SKIP_TYPES, Schedule, log_snr_grid, time_from_log_snr

__all__ = ["dpm_solver_sampler", "dpm_solver_pp_sampler", "singlestep_orders", "model_value",
           "DEFAULT_DPM_STEPS"]

DEFAULT_DPM_STEPS = 20  # NFE budget of DPM-Solver (its paper's "20 NFE" setting)


# DPM-Solver, singlestep (Lu et al. 2022, Alg. 1 and 2).
def singlestep_orders(steps: int, order: int) -> List[int]:
    """Orders of the singlestep steps that spend an NFE budget of ``steps`` (DPM-Solver-fast).

    Order 3: ``K = steps // 3 + 1`` steps; ``3, ..., 3, 2, 1`` if ``steps % 3 == 0``,
    ``3, ..., 3, 1`` if it is 1 and ``3, ..., 3, 2`` if it is 2. Order 2: ``steps // 2``
    second-order steps, plus one first-order step if ``steps`` is odd. Order 1: ``steps`` steps.
    """
    if order == 3:
        k = steps // 3 + 1
        tail = {0: [2, 1], 1: [1], 2: [2]}[steps % 3]
        return [3] * (k - len(tail)) + tail
    if order == 2:
        return [2] * (steps // 2) + [1] * (steps % 2)
    return [1] * steps


def _singlestep_grid(sde: SDE, eps: float, steps: int, orders: List[int], skip_type: str) -> List[float]:
    """Outer times of the singlestep solver: one interval per entry of ``orders``.

    ``logSNR`` spaces them uniformly in ``lambda``; the time-based spacings take, as DPM-Solver
    does, the points of the ``steps``-interval grid where each step starts and ends.
    """
    if skip_type == "logSNR":
        return log_snr_grid(sde, eps, len(orders) + 1)
    fine = SKIP_TYPES[skip_type](sde, eps, steps + 1)
    ends = [0]
    for k in orders:
        ends.append(ends[-1] + k)
    return [fine[i] for i in ends]


#: Fractions ``r`` of the step in ``lambda`` at which DPM-Solver-k evaluates the model.
_INTERMEDIATE = {1: (), 2: (0.5,), 3: (1 / 3, 2 / 3)}


@torch.no_grad()
def dpm_solver_sampler(
    score_fn: ScoreFn,
    sde: SDE,
    shape: Shape,
    *,
    steps: Optional[int] = None,
    order: int = 3,
    multistep: bool = False,
    skip_type: str = "logSNR",
    lower_order_final: bool = True,
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
    """DPM-Solver (Lu et al. 2022) with the noise prediction ``eps = -sigma_t score``.

    Args:
        score_fn: ``score_fn(x, t)``.
        sde: the forward SDE.
        shape: ``(B, *D)``.
        steps: NFE budget from ``T`` to ``eps`` (default 20). Singlestep: spent by
            :func:`singlestep_orders`; multistep: one step per evaluation.
        order: 1 (DPM-Solver-1 = DDIM), 2 or 3.
        multistep: use the previous steps' model values (Lu et al. 2022b) instead of
            intermediate evaluations; the first ``order - 1`` steps warm up with lower orders.
        skip_type: ``"logSNR"`` (uniform in ``lambda``, the paper's choice for these SDEs),
            ``"time_uniform"``, ``"time_quadratic"`` (DDIM's spacing in this SDE's ``t``),
            ``"edm_rho"`` (Karras et al.'s rho = 7 noise levels) or ``"vp_quadratic"`` (the
            ``lambda`` values of the time-quadratic grid of the standard VP SDE, the same on
            every SDE: :func:`~scoresde.sampling.vp_quadratic_grid`).
        lower_order_final: multistep only: for ``steps < 10`` the last steps drop to lower
            orders (DPM-Solver's default, which steadies very short runs).
        eps: last time; ``denoise`` adds :func:`~scoresde.sampling.denoise_step` (one NFE).
        timesteps: the grid itself, ``steps + 1`` decreasing times from the first to the last
            (instead of ``skip_type``, ``steps`` and ``eps``); singlestep: one order-``order``
            step per interval (``order`` NFE each).
        callback: ``callback(i, t, x, x0_hat)`` after each step (see
            :data:`~scoresde.sampling.StepCallback`).
        denoise, x_T, generator, device, dtype, progress: as in the other samplers.
    Returns:
        samples ``(B, *D)`` and the NFE (``steps + denoise``).
    """
    check_choice("order", order, (1, 2, 3))
    check_choice("skip_type", skip_type, SKIP_TYPES)
    counted, x, steps, eps, grid = start(score_fn, sde, shape, None if timesteps is not None and not multistep
                                         else steps, eps, x_T, generator, device, dtype,
                                         timesteps=timesteps, default_steps=DEFAULT_DPM_STEPS)
    if multistep:
        grid = grid or SKIP_TYPES[skip_type](sde, eps, steps + 1)
        report = StepReport(counted, sde, steps, progress, f"DPM-Solver-{order}M", callback)
        x = _multistep(counted, sde, x, grid, order, "noise", lower_order_final, report)
    else:
        orders = [order] * steps if grid else singlestep_orders(steps, order)
        grid = grid or _singlestep_grid(sde, eps, steps, orders, skip_type)
        report = StepReport(counted, sde, len(orders), progress, f"DPM-Solver-{order}", callback)
        x = _singlestep(counted, sde, x, grid, orders, report)
    return finish(counted, sde, x, eps, denoise)


def _singlestep(counted: CountingScore, sde: SDE, x: Tensor, grid: List[float], orders: List[int],
                report: StepReport) -> Tensor:
    outer = Schedule(sde, grid)
    # The intermediate times t(lambda_s + r h) of all steps, found in one inversion.
    wanted = [outer.lam[i] + r * (outer.lam[i + 1] - outer.lam[i])
              for i, k in enumerate(orders) for r in _INTERMEDIATE[k]]
    inner = Schedule(sde, time_from_log_snr(sde, wanted)) if wanted else None
    j = 0
    for i, k in enumerate(orders):
        s, t = i, i + 1
        mids = []
        if k > 1:
            assert inner is not None  # a step of order > 1 put its intermediate times in `wanted`
            mids = [(inner.t[j + m], inner.alpha[j + m], inner.sigma[j + m], inner.lam[j + m])
                    for m in range(len(_INTERMEDIATE[k]))]
        j += len(mids)
        step = (_dpm_solver_1, _dpm_solver_2, _dpm_solver_3)[k - 1]
        x = step(counted, x, outer, s, t, mids)
        report(i, outer.t[t], x)
    report.close()
    return x


def _noise(counted: CountingScore, x: Tensor, t: float, sigma: float) -> Tensor:
    """Noise prediction ``eps(x, t) = -sigma_t score(x, t)``."""
    return -sigma * counted(x, full_time(t, x))


def model_value(counted: CountingScore, x: Tensor, sch: Schedule, i: int, prediction: str) -> Tensor:
    """The model value of the multistep solvers at grid point ``i``: the noise prediction
    ``eps = -sigma_i score`` (``prediction="noise"``, for (*)) or the data prediction
    ``x0 = (x + sigma_i^2 score) / alpha_i`` (``"data"``, Tweedie, for (**)); one NFE."""
    score = counted(x, full_time(sch.t[i], x))
    if prediction == "noise":
        return -sch.sigma[i] * score
    return torch.add(x, score, alpha=sch.sigma[i] ** 2).div_(sch.alpha[i])


def _dpm_solver_1(counted, x: Tensor, sch: Schedule, s: int, t: int, mids) -> Tensor:
    # DPM-Solver-1 (first term of (*)), which is DDIM.
    h = sch.lam[t] - sch.lam[s]
    e_s = _noise(counted, x, sch.t[s], sch.sigma[s])
    return (sch.alpha[t] / sch.alpha[s]) * x - (sch.sigma[t] * math.expm1(h)) * e_s


def _dpm_solver_2(counted, x: Tensor, sch: Schedule, s: int, t: int, mids) -> Tensor:
    # Alg. 1 (r1 = 1/2): a DPM-Solver-1 step to the log-SNR midpoint u ...
    (t_u, a_u, s_u, lam_u), = mids
    h = sch.lam[t] - sch.lam[s]
    r1 = (lam_u - sch.lam[s]) / h
    e_s = _noise(counted, x, sch.t[s], sch.sigma[s])
    u = (a_u / sch.alpha[s]) * x - (s_u * math.expm1(r1 * h)) * e_s
    # ... then the full step with the slope (e_u - e_s) / (r1 h) (for r1 = 1/2 this is
    # Alg. 1's x_t = (alpha_t / alpha_s) x - sigma_t (e^h - 1) e_u).
    e_u = _noise(counted, u, t_u, s_u)
    return ((sch.alpha[t] / sch.alpha[s]) * x - (sch.sigma[t] * math.expm1(h)) * e_s
            - (sch.sigma[t] * math.expm1(h) / (2 * r1)) * (e_u - e_s))


def _dpm_solver_3(counted, x: Tensor, sch: Schedule, s: int, t: int, mids) -> Tensor:
    # Alg. 2 (r1 = 1/3, r2 = 2/3).
    (t1, a1, s1, lam1), (t2, a2, s2, lam2) = mids
    h = sch.lam[t] - sch.lam[s]
    r1, r2 = (lam1 - sch.lam[s]) / h, (lam2 - sch.lam[s]) / h
    e_s = _noise(counted, x, sch.t[s], sch.sigma[s])
    # First intermediate point: DPM-Solver-1 to lambda_s + r1 h.
    u1 = (a1 / sch.alpha[s]) * x - (s1 * math.expm1(r1 * h)) * e_s
    d1 = _noise(counted, u1, t1, s1) - e_s
    # Second intermediate point, at lambda_s + r2 h, with the first-derivative term of (*).
    u2 = ((a2 / sch.alpha[s]) * x - (s2 * math.expm1(r2 * h)) * e_s
          - (s2 * r2 / r1 * (math.expm1(r2 * h) / (r2 * h) - 1)) * d1)
    d2 = _noise(counted, u2, t2, s2) - e_s
    # Full step; r2 = 2/3 makes the first-derivative estimate absorb the second-order term.
    return ((sch.alpha[t] / sch.alpha[s]) * x - (sch.sigma[t] * math.expm1(h)) * e_s
            - (sch.sigma[t] / r2 * (math.expm1(h) / h - 1)) * d2)


# ----------------------------------------------------------------------------------------------
# Multistep DPM-Solver and DPM-Solver++ (Lu et al. 2022b).
def _multistep(counted: CountingScore, sde: SDE, x: Tensor, grid: List[float], order: int,
               prediction: str, lower_order_final: bool, report: StepReport) -> Tensor:
    """Multistep solver on ``grid`` (``n`` steps, one model evaluation each).

    ``prediction="noise"`` integrates (*) with ``eps``; ``"data"`` integrates (**) with ``x0``.
    History ``(lambda_j, m_j)`` of the last model values, newest first.
    """
    sch = Schedule(sde, grid)
    n = len(grid) - 1
    lams: List[float] = []
    models: List[Tensor] = []
    for i in range(n):
        s, t = i, i + 1
        m = model_value(counted, x, sch, s, prediction)
        lams = [sch.lam[s]] + lams[:2]
        models = [m] + models[:2]
        k = min(order, i + 1)
        if lower_order_final and n < 10:
            k = min(k, n - i)
        x = _multistep_update(x, sch, s, t, lams[:k], models[:k], prediction)
        report(i, sch.t[t], x)
    report.close()
    return x


def _multistep_update(x: Tensor, sch: Schedule, s: int, t: int, lams: List[float],
                      models: List[Tensor], prediction: str) -> Tensor:
    h = sch.lam[t] - sch.lam[s]
    m0 = models[0]
    if len(models) <= 2:
        # Order 1: the first term of (*) or (**). Order 2 (DPM-Solver++ Alg. 2, and its
        # noise-prediction twin): D = (1 + 1/(2r)) m0 - 1/(2r) m1 with r = h_prev / h.
        d = m0
        if len(models) == 2:
            r = (lams[0] - lams[1]) / h
            d = m0 + (0.5 / r) * (m0 - models[1])
        if prediction == "noise":
            return (sch.alpha[t] / sch.alpha[s]) * x - (sch.sigma[t] * math.expm1(h)) * d
        return (sch.sigma[t] / sch.sigma[s]) * x - (sch.alpha[t] * math.expm1(-h)) * d
    # Order 3: the first and second derivatives at lambda_0 of the quadratic through the last
    # three model values (divided differences), with the exact coefficients of (*) or (**).
    m1, m2 = models[1], models[2]
    h0, h1 = lams[0] - lams[1], lams[1] - lams[2]
    dd01 = (m0 - m1) / h0
    dd12 = (m1 - m2) / h1
    dd012 = (dd01 - dd12) / (h0 + h1)
    deriv1 = dd01 + h0 * dd012
    deriv2 = 2 * dd012
    if prediction == "noise":
        c0, c1 = math.expm1(h), math.expm1(h) - h
        c2 = c1 - 0.5 * h * h
        return (sch.alpha[t] / sch.alpha[s]) * x - sch.sigma[t] * (c0 * m0 + c1 * deriv1 + c2 * deriv2)
    c0 = -math.expm1(-h)
    c1 = h + math.expm1(-h)
    c2 = 0.5 * h * h - c1
    return (sch.sigma[t] / sch.sigma[s]) * x + sch.alpha[t] * (c0 * m0 + c1 * deriv1 + c2 * deriv2)


@torch.no_grad()
def dpm_solver_pp_sampler(
    score_fn: ScoreFn,
    sde: SDE,
    shape: Shape,
    *,
    steps: Optional[int] = None,
    order: int = 2,
    skip_type: str = "logSNR",
    lower_order_final: bool = True,
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
    """DPM-Solver++ (Lu et al. 2022b): multistep solver of the data-prediction form (**).

    The default ``order=2`` is DPM-Solver++(2M) (Alg. 2); ``order=1`` is DDIM, ``order=3`` the
    third-order multistep update. Arguments as in :func:`dpm_solver_sampler` (``steps`` is the
    number of steps, one NFE each; default 20).

    Returns:
        samples ``(B, *D)`` and the NFE (``steps + denoise``).
    """
    check_choice("order", order, (1, 2, 3))
    check_choice("skip_type", skip_type, SKIP_TYPES)
    counted, x, steps, eps, grid = start(score_fn, sde, shape, steps, eps, x_T, generator, device, dtype,
                                         timesteps=timesteps, default_steps=DEFAULT_DPM_STEPS)
    grid = grid or SKIP_TYPES[skip_type](sde, eps, steps + 1)
    report = StepReport(counted, sde, steps, progress, f"DPM-Solver++({order}M)", callback)
    x = _multistep(counted, sde, x, grid, order, "data", lower_order_final, report)
    return finish(counted, sde, x, eps, denoise)
