"""Fast samplers: DPM-Solver, DPM-Solver++, UniPC, EDM's Heun sampler and an adaptive
reverse-SDE solver, for any SDE of :mod:`scoresde.sde`.

Each one sees the SDE only through its kernel coefficients ``(alpha_t, sigma_t)`` of
``p_0t(x_t | x_0) = N(alpha_t x_0, sigma_t^2 I)`` (``marginal_coeffs``) or its ``sde`` /
``reverse`` members, so VP, sub-VP and VE (``alpha = 1``) need no special cases. The time
grids and every step coefficient are computed on the host in float64 (see
:mod:`scoresde.sampling.grids`); the loops never read a device tensor, except the adaptive
solver's accept/stop decisions.

* **DPM-Solver** (Lu et al. 2022, "DPM-Solver: A Fast ODE Solver for Diffusion Probabilistic
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
* **Multistep DPM-Solver / DPM-Solver++** (Lu et al. 2022b, "DPM-Solver++: Fast Solver for
  Guided Sampling of Diffusion Probabilistic Models"). The derivatives in (*) come from the
  model values of the previous steps instead (1 NFE per step). DPM-Solver++ applies the same
  idea to the data prediction ``x0(x, t) = (x + sigma_t^2 score) / alpha_t``, whose exact
  solution is ``x_t = (sigma_t / sigma_s) x_s + sigma_t int e^{lambda} x0 dlambda``, i.e.

      x_t = (sigma_t / sigma_s) x_s + alpha_t [ (1 - e^-h) x0 + (h - 1 + e^-h) x0'
                                              + (h^2/2 - h + 1 - e^-h) x0'' + ... ].   (**)

  Order 2 is the paper's 2M update (Alg. 2); order 3 takes both derivatives of the quadratic
  through the last three model values, with the exact coefficients of (*) or (**).
* **UniPC** (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector Framework for Fast
  Sampling of Diffusion Models"). The multistep update (*) or (**) with the derivatives
  replaced by differences of model values, weighted to match as many Taylor terms as there
  are differences (UniP, Eq. 8); after the model is evaluated at the predicted point (the NFE
  the next step needs anyway) the same update with that new value as one more difference
  (UniC, Eq. 7) corrects the step, raising its order by one at no extra NFE.
* **EDM Heun** (Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based Generative
  Models", Alg. 1 and 2). In the scaled state ``x_hat = x / alpha_t`` and the noise level
  ``sigma_edm = sigma_t / alpha_t`` the probability-flow ODE reads
  ``dx_hat / dsigma_edm = (x_hat - D(x_hat; sigma_edm)) / sigma_edm = -sigma_t score(x, t)``
  (Eq. 3 with ``s = 1``), with the denoiser ``D`` from Tweedie's formula
  ``D = (x + sigma_t^2 score(x, t)) / alpha_t``. Heun's method runs on the rho-schedule of
  noise levels (Eq. 5), optionally with "churn" (Alg. 2: a little noise is added, raising the
  noise level by ``gamma_i``, before each step).
* **Adaptive reverse-SDE solver** (Jolicoeur-Martineau et al. 2021, "Gotta Go Fast When
  Generating Data with Score-Based Models", Alg. 1): an Euler-Maruyama step and an improved
  Euler (stochastic Heun) step share one noise draw; their difference is the error estimate
  that accepts or rejects the step and sets the next step size, for each sample separately;
  accepted steps keep the improved Euler result (extrapolation).

The end of sampling (``denoise=True``): DPM-Solver, DPM-Solver++, UniPC and the adaptive solver
stop at ``t = eps`` and then take :func:`scoresde.sampling.denoise_step` (the posterior mean of the
exact step ``eps -> 0``, as every other sampler here), one more NFE. EDM's sampler instead ends
with its own last Euler step from ``sigma_edm(eps)`` to ``sigma_edm = 0``, which lands on
Tweedie's estimate ``D`` of the clean data (also one NFE). The two agree for VP and sub-VP;
for VE, whose kernel at ``t = 0`` still has noise ``sigma_min``, ``denoise_step`` returns a
sample of ``p_0`` and EDM the clean-data estimate. With ``denoise=False`` all stop at ``eps``.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch

from ..sde import SDE
from ..types import ScoreFn, Shape, Tensor
from ..utils import append_dims, check_choice
from ._common import (
    CountingScore,
    check_sampler_args,
    full_time,
    init_state,
    noise_like,
    progress_bar,
)
from .grids import (
    edm_rho_grid,
    log_snr_grid,
    time_from_log_snr,
    time_quadratic_grid,
    uniform_grid,
    vp_quadratic_grid,
)
from .ode import denoise_step

__all__ = [
    "FAST_ODE_METHODS",
    "SKIP_TYPES",
    "dpm_solver_sampler",
    "dpm_solver_pp_sampler",
    "edm_heun_sampler",
    "unipc_sampler",
    "UNIPC_VARIANTS",
    "adaptive_sde_sampler",
    "singlestep_orders",
]

#: Time grids of DPM-Solver, ``grid(sde, eps, n) -> n times from T to eps``.
SKIP_TYPES: Dict[str, Callable[[SDE, float, int], List[float]]] = {
    "logSNR": log_snr_grid,
    "time_uniform": lambda sde, eps, n: uniform_grid(sde.T, eps, n),
    "time_quadratic": lambda sde, eps, n: time_quadratic_grid(sde.T, eps, n),
    "edm_rho": lambda sde, eps, n: edm_rho_grid(sde, eps, n),
    "vp_quadratic": vp_quadratic_grid,
}

DEFAULT_DPM_STEPS = 20  # NFE budget of DPM-Solver (its paper's "20 NFE" setting)
DEFAULT_EDM_STEPS = 17  # EDM's 18 noise levels on CIFAR-10: 35 NFE with the final step


class _Schedule:
    """``alpha``, ``sigma`` and ``lambda = log(alpha / sigma)`` at host times, in float64."""

    def __init__(self, sde: SDE, times: Sequence[float]) -> None:
        self.t = [float(t) for t in times]
        alpha, sigma = sde.marginal_coeffs(torch.as_tensor(self.t, dtype=torch.float64))
        self.alpha = alpha.tolist()
        self.sigma = sigma.tolist()
        self.lam = (alpha.log() - sigma.log()).tolist()


def _check_common(sde: SDE, shape: Shape, steps: Optional[int], default_steps: int, eps: float,
                  x_T: Optional[Tensor]) -> Tuple[Tuple[int, ...], int]:
    return check_sampler_args(sde, shape, default_steps if steps is None else steps, eps, x_T)


# ----------------------------------------------------------------------------------------------
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
        denoise, x_T, generator, device, dtype, progress: as in the other samplers.
    Returns:
        samples ``(B, *D)`` and the NFE (``steps + denoise``).
    """
    check_choice("order", order, (1, 2, 3))
    check_choice("skip_type", skip_type, SKIP_TYPES)
    shape, steps = _check_common(sde, shape, steps, DEFAULT_DPM_STEPS, eps, x_T)
    counted = CountingScore(score_fn)
    x = init_state(sde, shape, x_T, generator, device, dtype)
    if multistep:
        grid = SKIP_TYPES[skip_type](sde, eps, steps + 1)
        x = _multistep(counted, sde, x, grid, order, "noise", lower_order_final,
                       progress_bar(steps, progress, f"DPM-Solver-{order}M"))
    else:
        orders = singlestep_orders(steps, order)
        grid = _singlestep_grid(sde, eps, steps, orders, skip_type)
        x = _singlestep(counted, sde, x, grid, orders, progress_bar(len(orders), progress, f"DPM-Solver-{order}"))
    if denoise:
        x = denoise_step(counted, sde, x, eps)
    return x, counted.nfe


def _singlestep(counted: CountingScore, sde: SDE, x: Tensor, grid: List[float], orders: List[int], bar) -> Tensor:
    outer = _Schedule(sde, grid)
    # The intermediate times t(lambda_s + r h) of all steps, found in one inversion.
    wanted = [outer.lam[i] + r * (outer.lam[i + 1] - outer.lam[i])
              for i, k in enumerate(orders) for r in _INTERMEDIATE[k]]
    inner = _Schedule(sde, time_from_log_snr(sde, wanted)) if wanted else None
    j = 0
    for i, k in enumerate(orders):
        s, t = i, i + 1
        mids = [(inner.t[j + m], inner.alpha[j + m], inner.sigma[j + m], inner.lam[j + m])
                for m in range(len(_INTERMEDIATE[k]))] if k > 1 else []
        j += len(mids)
        step = (_dpm_solver_1, _dpm_solver_2, _dpm_solver_3)[k - 1]
        x = step(counted, x, outer, s, t, mids)
        bar.update()
        bar.set_postfix(t=f"{outer.t[t]:.4f}", nfe=counted.nfe)
    bar.close()
    return x


def _noise(counted: CountingScore, x: Tensor, t: float, sigma: float) -> Tensor:
    """Noise prediction ``eps(x, t) = -sigma_t score(x, t)``."""
    return -sigma * counted(x, full_time(t, x))


def _model_value(counted: CountingScore, x: Tensor, sch: _Schedule, i: int, prediction: str) -> Tensor:
    """The model value of the multistep solvers at grid point ``i``: the noise prediction
    ``eps = -sigma_i score`` (``prediction="noise"``, for (*)) or the data prediction
    ``x0 = (x + sigma_i^2 score) / alpha_i`` (``"data"``, Tweedie, for (**)); one NFE."""
    score = counted(x, full_time(sch.t[i], x))
    if prediction == "noise":
        return -sch.sigma[i] * score
    return (x + sch.sigma[i] ** 2 * score) / sch.alpha[i]


def _dpm_solver_1(counted, x: Tensor, sch: _Schedule, s: int, t: int, mids) -> Tensor:
    # DPM-Solver-1 (first term of (*)), which is DDIM.
    h = sch.lam[t] - sch.lam[s]
    e_s = _noise(counted, x, sch.t[s], sch.sigma[s])
    return (sch.alpha[t] / sch.alpha[s]) * x - (sch.sigma[t] * math.expm1(h)) * e_s


def _dpm_solver_2(counted, x: Tensor, sch: _Schedule, s: int, t: int, mids) -> Tensor:
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


def _dpm_solver_3(counted, x: Tensor, sch: _Schedule, s: int, t: int, mids) -> Tensor:
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
               prediction: str, lower_order_final: bool, bar) -> Tensor:
    """Multistep solver on ``grid`` (``n`` steps, one model evaluation each).

    ``prediction="noise"`` integrates (*) with ``eps``; ``"data"`` integrates (**) with ``x0``.
    History ``(lambda_j, m_j)`` of the last model values, newest first.
    """
    sch = _Schedule(sde, grid)
    n = len(grid) - 1
    lams: List[float] = []
    models: List[Tensor] = []
    for i in range(n):
        s, t = i, i + 1
        m = _model_value(counted, x, sch, s, prediction)
        lams = [sch.lam[s]] + lams[:2]
        models = [m] + models[:2]
        k = min(order, i + 1)
        if lower_order_final and n < 10:
            k = min(k, n - i)
        x = _multistep_update(x, sch, s, t, lams[:k], models[:k], prediction)
        bar.update()
        bar.set_postfix(t=f"{sch.t[t]:.4f}", nfe=counted.nfe)
    bar.close()
    return x


def _multistep_update(x: Tensor, sch: _Schedule, s: int, t: int, lams: List[float],
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
    shape, steps = _check_common(sde, shape, steps, DEFAULT_DPM_STEPS, eps, x_T)
    counted = CountingScore(score_fn)
    x = init_state(sde, shape, x_T, generator, device, dtype)
    grid = SKIP_TYPES[skip_type](sde, eps, steps + 1)
    x = _multistep(counted, sde, x, grid, order, "data", lower_order_final,
                   progress_bar(steps, progress, f"DPM-Solver++({order}M)"))
    if denoise:
        x = denoise_step(counted, sde, x, eps)
    return x, counted.nfe


# ----------------------------------------------------------------------------------------------
# UniPC (Zhao et al. 2023).
def _phi(k: int, z: float) -> float:
    """``phi_k(z) = int_0^1 e^((1 - u) z) u^(k-1) / (k-1)! du`` (``k >= 1``) in float64.

    ``phi_1(z) = (e^z - 1) / z`` and ``phi_(k+1)(z) = (phi_k(z) - 1/k!) / z``; for small ``|z|``
    the series ``sum_j z^j / (j + k)!`` avoids the cancellation of that recursion.
    """
    if abs(z) < 0.5:
        term, total = 1.0 / math.factorial(k), 0.0
        for j in range(1, 30):  # |z|^30 / 30! < 1e-40
            total += term
            term *= z / (j + k)
        return total
    value = math.expm1(z) / z
    for j in range(1, k):
        value = (value - 1.0 / math.factorial(j)) / z
    return value


#: UniPC's ``B(h)`` (Zhao et al. 2023, Sec. 3.2): ``"bh1"`` is ``h``, ``"bh2"`` is
#: ``h phi_1(z) = e^h - 1`` (noise prediction, ``z = h``) or ``1 - e^-h`` (data, ``z = -h``).
UNIPC_VARIANTS: Dict[str, Callable[[float, float], float]] = {
    "bh1": lambda h, z: h,
    "bh2": lambda h, z: h * _phi(1, z),
}


def _difference_weights(h: float, rs: List[float], prediction: str, variant: str) -> List[float]:
    """Weights ``c_m`` of the differences ``D_m = m(lambda_s + r_m h) - m(lambda_s)`` in the
    update (*) / (**) written as ``... + sum_m c_m D_m`` (see :func:`_exponential_update`).

    The exact solution integrates the ``k``-th derivative of the model value ``m`` with the
    weight ``h^(k+1) phi_(k+1)(z)`` (``z = h`` for the noise, ``-h`` for the data prediction;
    Zhao et al. 2023, Eq. 6 / App. C), and ``D_m = sum_k (r_m h)^k / k! m^(k)``. Matching the
    first ``K = len(rs)`` derivatives gives the Vandermonde system
    ``sum_m c_m r_m^k = k! h phi_(k+1)(z)``, ``k = 1..K`` (UniPC's ``R_K(h) a = phi_K(h) / B(h)``
    with ``c_m = B(h) a_m / r_m``, Eq. 9-11). For ``K = 1`` the paper instead fixes
    ``a_1 = 1/2``, i.e. ``c_1 = B(h) / (2 r_1)``, which matches the first derivative to
    leading order only; ``B(h)`` matters for that case alone.
    """
    if not rs:
        return []
    z = -h if prediction == "data" else h
    if len(rs) == 1:
        return [UNIPC_VARIANTS[variant](h, z) / (2 * rs[0])]
    K = len(rs)
    vander = torch.tensor([[r ** k for r in rs] for k in range(1, K + 1)], dtype=torch.float64)
    rhs = torch.tensor([math.factorial(k) * h * _phi(k + 1, z) for k in range(1, K + 1)],
                       dtype=torch.float64)
    return torch.linalg.solve(vander, rhs).tolist()


def _exponential_update(x: Tensor, sch: _Schedule, s: int, t: int, m_s: Tensor, rs: List[float],
                        diffs: List[Tensor], prediction: str, variant: str) -> Tensor:
    """One step of (*) (``prediction="noise"``) or (**) (``"data"``) from ``s`` to ``t``:
    ``(alpha_t/alpha_s) x - sigma_t [h phi_1(h) m_s + sum_m c_m D_m]`` or
    ``(sigma_t/sigma_s) x + alpha_t [h phi_1(-h) m_s + sum_m c_m D_m]``."""
    h = sch.lam[t] - sch.lam[s]
    noise = prediction == "noise"
    total = (math.expm1(h) if noise else -math.expm1(-h)) * m_s
    for c, d in zip(_difference_weights(h, rs, prediction, variant), diffs):
        total = total + c * d
    if noise:
        return (sch.alpha[t] / sch.alpha[s]) * x - sch.sigma[t] * total
    return (sch.sigma[t] / sch.sigma[s]) * x + sch.alpha[t] * total


@torch.no_grad()
def unipc_sampler(
    score_fn: ScoreFn,
    sde: SDE,
    shape: Shape,
    *,
    steps: Optional[int] = None,
    order: int = 3,
    variant: str = "bh1",
    prediction: str = "data",
    skip_type: str = "logSNR",
    lower_order_final: Union[bool, float] = True,
    eps: float = 1e-3,
    denoise: bool = True,
    x_T: Optional[Tensor] = None,
    generator: Optional[torch.Generator] = None,
    device=None,
    dtype: Optional[torch.dtype] = None,
    progress: bool = False,
) -> Tuple[Tensor, int]:
    """UniPC (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector Framework for Fast
    Sampling of Diffusion Models"): a multistep predictor (UniP) and a corrector (UniC) that
    reuses the model evaluation of the next step, so it raises the order by one at no NFE.

    Step ``s -> t`` with the history of model values ``m`` (data prediction ``x0`` or noise
    prediction ``eps``) at the last ``p`` grid points (``p`` = the step's order):

    * UniP-``p`` (Alg. 2 / Eq. 8): (*) or (**) with the differences ``D_m`` of the ``p - 1``
      previous model values (``r_m < 0``) gives ``x~_t`` (order ``p``);
    * the model is evaluated at ``x~_t`` (the NFE of the next step);
    * UniC-``p`` (Alg. 1 / Eq. 7): the same update from ``x_s`` with one more difference,
      ``D_p = m(x~_t, t) - m_s`` at ``r_p = 1``, gives ``x_t`` (order ``p + 1``). The next step
      starts from ``x_t`` with the model value at ``x~_t``.

    The last step has no next evaluation to reuse, so it is a plain UniP step (as in the
    paper). Weights: :func:`_difference_weights`.

    Args:
        steps: steps from ``T`` to ``eps``, one NFE each (default 20).
        order: predictor order ``p`` (1, 2 or 3): UniPC-``p``, of order ``p + 1`` with UniC.
            The first steps warm up with lower orders.
        variant: ``B(h)`` for the steps with a single difference: ``"bh1"`` (``B = h``) or
            ``"bh2"`` (``B = e^h - 1`` resp. ``1 - e^-h``). With ``order=2`` and ``"bh2"`` the
            predictor is DPM-Solver++(2M) / DPM-Solver-2M.
        prediction: ``"data"`` (``x0``, the paper's choice for unconditional sampling too) or
            ``"noise"`` (``eps = -sigma_t score``).
        skip_type: time grid, as in :func:`dpm_solver_sampler`.
        lower_order_final: in runs of fewer than this many steps the order drops to the
            number of steps left at the end: ``True`` is 10 (DPM-Solver's rule, default),
            ``float("inf")`` always (UniPC's reference code), ``False`` or 0 never.
        eps, denoise, x_T, generator, device, dtype, progress: as in the other samplers;
            ``denoise`` adds :func:`~scoresde.sampling.denoise_step` (one NFE).
    Returns:
        samples ``(B, *D)`` and the NFE (``steps + denoise``).
    """
    check_choice("order", order, (1, 2, 3))
    check_choice("variant", variant, UNIPC_VARIANTS)
    check_choice("prediction", prediction, ("data", "noise"))
    check_choice("skip_type", skip_type, SKIP_TYPES)
    if isinstance(lower_order_final, bool):
        lower_order_final = 10 if lower_order_final else 0
    if not lower_order_final >= 0:
        raise ValueError(f"lower_order_final must be a bool or a number of steps >= 0; got {lower_order_final!r}")
    shape, steps = _check_common(sde, shape, steps, DEFAULT_DPM_STEPS, eps, x_T)
    counted = CountingScore(score_fn)
    x = init_state(sde, shape, x_T, generator, device, dtype)
    sch = _Schedule(sde, SKIP_TYPES[skip_type](sde, eps, steps + 1))

    bar = progress_bar(steps, progress, f"UniPC-{order}")
    lams, models = [sch.lam[0]], [_model_value(counted, x, sch, 0, prediction)]  # history, newest first
    for i in range(steps):
        s, t = i, i + 1
        p = min(order, i + 1)
        if steps < lower_order_final:
            p = min(p, steps - i)
        h = sch.lam[t] - sch.lam[s]
        rs = [(lam - sch.lam[s]) / h for lam in lams[1:p]]
        diffs = [m - models[0] for m in models[1:p]]
        # Predictor UniP-p.
        x_pred = _exponential_update(x, sch, s, t, models[0], rs, diffs, prediction, variant)
        if t == steps:
            x = x_pred
        else:
            # Model at the predicted point (the next step's NFE), then corrector UniC-p.
            m_t = _model_value(counted, x_pred, sch, t, prediction)
            x = _exponential_update(x, sch, s, t, models[0], rs + [1.0], diffs + [m_t - models[0]],
                                    prediction, variant)
            lams = [sch.lam[t]] + lams[:order - 1]
            models = [m_t] + models[:order - 1]
        bar.update()
        bar.set_postfix(t=f"{sch.t[t]:.4f}", nfe=counted.nfe)
    bar.close()
    if denoise:
        x = denoise_step(counted, sde, x, eps)
    return x, counted.nfe


# ----------------------------------------------------------------------------------------------
# EDM (Karras et al. 2022, Alg. 1 and 2).
@torch.no_grad()
def edm_heun_sampler(
    score_fn: ScoreFn,
    sde: SDE,
    shape: Shape,
    *,
    steps: Optional[int] = None,
    rho: float = 7.0,
    S_churn: float = 0.0,
    S_min: float = 0.0,
    S_max: float = float("inf"),
    S_noise: float = 1.0,
    eps: float = 1e-3,
    denoise: bool = True,
    x_T: Optional[Tensor] = None,
    generator: Optional[torch.Generator] = None,
    device=None,
    dtype: Optional[torch.dtype] = None,
    progress: bool = False,
) -> Tuple[Tensor, int]:
    """Karras et al.'s Heun sampler on the rho-schedule, deterministic (Alg. 1, ``S_churn=0``)
    or stochastic (Alg. 2).

    The ``steps + 1`` noise levels ``sigma_edm`` run from ``sigma_edm(T)`` to
    ``sigma_edm(eps)`` (Eq. 5; ``sigma_edm = sigma_t / alpha_t``); each step is a Heun step
    (2 NFE). With ``denoise=True`` a final Euler step goes to ``sigma_edm = 0`` (1 NFE), which
    is Tweedie's estimate of the clean data at ``eps``.

    Args:
        steps: Heun steps from ``T`` to ``eps`` (default 17, i.e. EDM's 18 noise levels).
        rho: exponent of the schedule (Eq. 5; 7 in the paper).
        S_churn, S_min, S_max, S_noise: Alg. 2's stochasticity. At each level ``sigma_i`` in
            ``[S_min, S_max]`` (in ``sigma_edm`` units) the noise level is first raised to
            ``sigma_i (1 + gamma)`` with ``gamma = min(S_churn / (steps + 1), sqrt(2) - 1)``
            by adding noise of std ``S_noise sqrt(sigma_hat^2 - sigma_i^2)``. ``gamma`` is also
            capped so that the raised level stays at or below ``sigma_edm(T)`` (no score is
            asked for beyond ``T``). ``S_churn = 0`` (default) is the deterministic Alg. 1.
        eps, denoise, x_T, generator, device, dtype, progress: as in the other samplers.
    Returns:
        samples ``(B, *D)`` and the NFE (``2 steps + denoise``).
    """
    if not rho > 0 or not S_churn >= 0 or not S_noise >= 0:
        raise ValueError(f"need rho > 0, S_churn >= 0 and S_noise >= 0; got rho={rho}, "
                         f"S_churn={S_churn}, S_noise={S_noise}")
    shape, steps = _check_common(sde, shape, steps, DEFAULT_EDM_STEPS, eps, x_T)
    counted = CountingScore(score_fn)
    x = init_state(sde, shape, x_T, generator, device, dtype)
    levels = _Schedule(sde, edm_rho_grid(sde, eps, steps + 1, rho))
    sig = [math.exp(-lam) for lam in levels.lam]  # sigma_edm of each level
    # Churn (Alg. 2, lines 4-6): the raised levels and their times, found in one inversion.
    gamma_max = min(S_churn / (steps + 1), math.sqrt(2) - 1)
    n_levels = steps + 1 if denoise else steps
    gammas = [min(gamma_max, sig[0] / sig[i] - 1) if S_min <= sig[i] <= S_max else 0.0
              for i in range(n_levels)]
    churned = [i for i in range(n_levels) if gammas[i] > 0]
    raised = _Schedule(sde, time_from_log_snr(sde, [-math.log(sig[i] * (1 + gammas[i])) for i in churned]))
    hat = {i: (levels.t[i], levels.alpha[i], levels.sigma[i]) for i in range(n_levels)}
    for j, i in enumerate(churned):
        hat[i] = (raised.t[j], raised.alpha[j], raised.sigma[j])

    def direction(x_hat: Tensor, t: float, alpha: float, sigma: float) -> Tensor:
        # d = (x_hat - D(x_hat; sigma_edm)) / sigma_edm = -sigma_t score(alpha_t x_hat, t).
        return -sigma * counted(alpha * x_hat, full_time(t, x_hat))

    bar = progress_bar(n_levels, progress, "EDM Heun")
    x_hat = x / levels.alpha[0]
    for i in range(n_levels):
        t_hat, a_hat, s_hat = hat[i]
        sig_hat = s_hat / a_hat
        # Increase the noise level temporarily (Alg. 2, lines 5-6).
        if gammas[i] > 0:
            add = S_noise * math.sqrt(max(sig_hat**2 - sig[i] ** 2, 0.0))
            x_hat = x_hat + add * noise_like(x_hat, generator)
        # Euler step (lines 7-8).
        d = direction(x_hat, t_hat, a_hat, s_hat)
        sig_next = sig[i + 1] if i + 1 <= steps else 0.0
        x_next = x_hat + (sig_next - sig_hat) * d
        # Apply the second-order correction unless the step ends at sigma = 0 (lines 9-11).
        if sig_next > 0:
            d_next = direction(x_next, levels.t[i + 1], levels.alpha[i + 1], levels.sigma[i + 1])
            x_next = x_hat + (sig_next - sig_hat) * (0.5 * (d + d_next))
        x_hat = x_next
        bar.update()
        bar.set_postfix(sigma=f"{sig_next:.4g}", nfe=counted.nfe)
    bar.close()
    x = x_hat if denoise else levels.alpha[-1] * x_hat
    return x, counted.nfe


# ----------------------------------------------------------------------------------------------
# Adaptive reverse-SDE solver (Jolicoeur-Martineau et al. 2021, Alg. 1).
class _BrownianMemory:
    """Each sample's Brownian path at the points drawn so far, ahead of its current time.

    A rejected step must not throw its Brownian increment away: drawing a new one instead
    keeps only the increments that pass the error test, which biases the samples (Rackauckas &
    Nie 2017; on the 2-D ring it shifts mass between modes, at every tolerance).
    Here a drawn point ``(tau, W(tau))`` stays known until the sample moves past it; a new
    point between two known ones comes from the Brownian bridge, one beyond all of them from a
    fresh Gaussian increment ("rejection sampling with memory"). ``tau`` is the elapsed reverse
    time ``T - t``. At most ``capacity`` future points are kept per sample (when full, the
    farthest is forgotten). Per step this reads and writes single slots only.

    Shapes: ``tau`` ``(B, K)`` (``-inf``: free slot), ``w`` ``(B, K, *D)``; the current point
    ``s`` ``(B,)``, ``w_now`` ``(B, *D)``.
    """

    def __init__(self, x: Tensor, capacity: int) -> None:
        B, K = x.shape[0], capacity
        self.tau = torch.full((B, K), -math.inf, device=x.device, dtype=torch.float64)
        self.w = torch.zeros((B, K) + tuple(x.shape[1:]), device=x.device, dtype=x.dtype)
        self.s = torch.zeros(B, device=x.device, dtype=torch.float64)
        self.w_now = torch.zeros_like(x)

    def _slot(self, index: Tensor) -> Tensor:
        """``w[b, index[b]]``, shape ``(B, *D)``."""
        flat = self.w.reshape(self.w.shape[0], self.w.shape[1], -1)
        out = torch.gather(flat, 1, index[:, None, None].expand(-1, 1, flat.shape[2]))
        return out.reshape(self.w_now.shape)

    def increment(self, h: Tensor, z: Tensor) -> Tuple[Tensor, Tensor]:
        """``W(s + h) - W(s)`` for each sample (``h`` ``(B,)``), using ``z ~ N(0, I)`` where the
        path is still free. Returns the increment and ``W(s + h)``."""
        target = self.s + h
        ahead = self.tau > self.s[:, None]
        before = ahead & (self.tau < target[:, None])
        after = ahead & (self.tau >= target[:, None])
        # Nearest known points on either side (the current point if none lies before).
        i_l = torch.where(before, self.tau, -math.inf).argmax(dim=1)
        i_r = torch.where(after, self.tau, math.inf).argmin(dim=1)
        has_l, has_r = before.any(dim=1), after.any(dim=1)
        tau_l = torch.where(has_l, self.tau.gather(1, i_l[:, None])[:, 0], self.s)
        tau_r = torch.where(has_r, self.tau.gather(1, i_r[:, None])[:, 0], target + 1)
        w_l = torch.where(append_dims(has_l, z.ndim), self._slot(i_l), self.w_now)
        w_r = self._slot(i_r)
        # Brownian bridge between them, or a free increment beyond the last known point.
        span = tau_r - tau_l
        frac = torch.where(has_r, (target - tau_l) / span, torch.zeros_like(h))
        var = torch.where(has_r, (target - tau_l) * (tau_r - target) / span, target - tau_l)
        w_target = (w_l + append_dims(frac.to(z.dtype), z.ndim) * (w_r - w_l)
                    + append_dims(var.clamp(min=0).sqrt().to(z.dtype), z.ndim) * z)
        return w_target - self.w_now, w_target

    def update(self, h: Tensor, w_target: Tensor, accept: Tensor) -> None:
        """Accepted samples move to ``s + h``; rejected ones remember ``(s + h, W(s + h))``."""
        target = self.s + h
        # Slot to write: a free or passed one if any, else the farthest point.
        ahead = self.tau > self.s[:, None]
        i = torch.where(ahead, self.tau, math.inf).argmax(dim=1)
        keep = append_dims(accept, w_target.ndim)
        tau_i = torch.where(accept, self.tau.gather(1, i[:, None])[:, 0], target)
        w_i = torch.where(keep, self._slot(i), w_target)
        self.tau.scatter_(1, i[:, None], tau_i[:, None])
        flat = self.w.reshape(self.w.shape[0], self.w.shape[1], -1)
        flat.scatter_(1, i[:, None, None].expand(-1, 1, flat.shape[2]), w_i.reshape(flat.shape[0], 1, -1))
        self.s = torch.where(accept, target, self.s)
        self.w_now = torch.where(keep, w_target, self.w_now)


@torch.no_grad()
def adaptive_sde_sampler(
    score_fn: ScoreFn,
    sde: SDE,
    shape: Shape,
    *,
    rtol: float = 0.05,
    atol: float = 0.0078,
    h_init: float = 0.01,
    safety: float = 0.9,
    exponent: float = 0.9,
    extrapolate: bool = True,
    brownian: str = "memory",
    capacity: int = 8,
    max_iters: int = 100_000,
    eps: float = 1e-3,
    denoise: bool = True,
    x_T: Optional[Tensor] = None,
    generator: Optional[torch.Generator] = None,
    device=None,
    dtype: Optional[torch.dtype] = None,
    progress: bool = False,
) -> Tuple[Tensor, int]:
    """Adaptive-step solver of the reverse SDE (Jolicoeur-Martineau et al. 2021, Alg. 1).

    Each iteration, for every sample with its own time ``t`` and step ``h``, draws ``z`` and
    takes an Euler-Maruyama step ``x' = x - h F(x, t) + sqrt(h) g(t) z`` (with the reverse drift
    ``F = f - g^2 score``) and the improved Euler step ``x'' = (x' + x~) / 2`` with
    ``x~ = x - h F(x', t - h) + sqrt(h) g(t - h) z``. The scaled error
    ``E = ||(x' - x'') / delta||_2 / sqrt(n)``, ``delta = max(atol, rtol max(|x'|, |x'_prev|))``
    (``x'_prev``: the previous accepted ``x'``; ``n`` the sample's dimension) accepts the step
    when ``E <= 1`` and sets ``h <- min(t - eps, safety h E^(-exponent))`` either way.

    Args:
        rtol, atol: relative and absolute tolerances; the paper's ``eps_rel = 0.05`` and
            ``eps_abs = 0.0078`` (about one 8-bit level) are for data in ``[-1, 1]``: scale
            ``atol`` with the data's range.
        h_init: first step size (the paper's 0.01).
        safety, exponent: step-size controller ``theta`` and ``r`` (0.9 each in the paper).
        extrapolate: keep ``x''`` (``True``, the paper's choice) or ``x'`` on acceptance.
        brownian: what a rejected step does with its noise. ``"memory"`` (default) keeps it:
            the retried shorter step draws its increment from the Brownian bridge to it
            (rejection sampling with memory, Rackauckas & Nie 2017), so each sample follows
            one Brownian path and the rejections do not bias the result. ``"fresh"`` draws
            new noise, as Alg. 1 of the paper does; it biases low-dimensional samples (on the
            2-D ring the modes on the axes lose up to 4 points of their 12.5% share), less so
            images, whose error norm averages over thousands of dimensions.
        capacity: points of the Brownian path kept per sample for ``"memory"``.
        max_iters: give up (``RuntimeError``) after this many iterations.
        eps, denoise, x_T, generator, device, dtype, progress: as in the other samplers;
            ``denoise`` adds :func:`~scoresde.sampling.denoise_step` at ``eps``.
    Returns:
        samples ``(B, *D)`` and the NFE: two batched score evaluations per iteration
        (accepted or not; samples that have reached ``eps`` ride along with ``h = 0``), plus
        the denoising one. Each iteration reads one flag back from the device (are all samples
        done?), which an adaptive solver cannot avoid.
    """
    if not (rtol >= 0 and atol > 0 and 0 < h_init and 0 < safety <= 1 and exponent > 0):
        raise ValueError(f"need rtol >= 0, atol > 0, h_init > 0, 0 < safety <= 1 and exponent > 0; "
                         f"got rtol={rtol}, atol={atol}, h_init={h_init}, safety={safety}, "
                         f"exponent={exponent}")
    check_choice("brownian", brownian, ("memory", "fresh"))
    shape, _ = check_sampler_args(sde, shape, 1, eps, x_T)
    counted = CountingScore(score_fn)
    reverse = sde.reverse(counted)
    x = init_state(sde, shape, x_T, generator, device, dtype)
    B, n = shape[0], x[0].numel()
    # Times and step sizes per sample, in float64 so that many small steps add up exactly.
    t = torch.full((B,), float(sde.T), device=x.device, dtype=torch.float64)
    h = torch.full_like(t, min(float(h_init), sde.T - eps))
    x_prev = x
    path = _BrownianMemory(x, capacity) if brownian == "memory" else None
    bar = progress_bar(None, progress, "adaptive SDE")
    for _ in range(max_iters):
        if not bool((t > eps).any()):
            break
        # The Brownian increment over the step (sqrt(h) z in Alg. 1).
        z = noise_like(x, generator)
        if path is None:
            dw = append_dims(h.sqrt().to(x.dtype), x.ndim) * z
        else:
            dw, w_target = path.increment(h, z)
        h_x = append_dims(h.to(x.dtype), x.ndim)
        # Euler-Maruyama step.
        drift, g = reverse.sde(x, t.to(x.dtype))
        k1 = -h_x * drift + append_dims(g, x.ndim) * dw
        x_em = x + k1
        # Improved Euler step with the same noise.
        drift, g = reverse.sde(x_em, (t - h).to(x.dtype))
        k2 = -h_x * drift + append_dims(g, x.ndim) * dw
        x_ie = x + 0.5 * (k1 + k2)
        # Scaled error of the Euler-Maruyama step, one norm per sample.
        delta = torch.clamp(rtol * torch.maximum(x_em.abs(), x_prev.abs()), min=atol)
        err = ((x_em - x_ie) / delta).reshape(B, -1).norm(dim=1).double() / math.sqrt(n)
        accept = err <= 1
        if path is not None:
            path.update(h, w_target, accept)
        keep = append_dims(accept, x.ndim)
        x = torch.where(keep, x_ie if extrapolate else x_em, x)
        x_prev = torch.where(keep, x_em, x_prev)
        t_new = torch.where(accept, t - h, t)
        t = torch.where(t_new <= eps + 1e-12, torch.full_like(t, eps), t_new)
        # New step size (also after a rejection), never beyond eps; samples at eps keep h = 0.
        proposed = torch.where(err > 0, safety * h * err.clamp(min=1e-300) ** (-exponent),
                               torch.full_like(h, math.inf))
        h = torch.minimum(t - eps, proposed)
        bar.update()
        bar.set_postfix(nfe=counted.nfe)
    else:
        raise RuntimeError(f"adaptive_sde_sampler: not all samples reached eps within {max_iters} iterations")
    bar.close()
    if denoise:
        x = denoise_step(counted, sde, x, eps)
    return x, counted.nfe


#: The fast deterministic solvers, added to :data:`scoresde.sampling.ODE_METHODS`.
FAST_ODE_METHODS: Dict[str, Callable[..., Tuple[Tensor, int]]] = {
    "dpm_solver": dpm_solver_sampler,
    "dpm_solver++": dpm_solver_pp_sampler,
    "edm_heun": edm_heun_sampler,
    "unipc": unipc_sampler,
}
