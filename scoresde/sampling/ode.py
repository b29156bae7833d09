"""Probability-flow ODE samplers (Song et al. 2021, Sec. 4.3 and App. D).

The ODE ``dx/dt = f(x, t) - 1/2 g(t)^2 score(x, t)`` (Eq. 13) shares its marginals with the
SDE. It is integrated from ``T`` to ``eps``, then (``denoise=True``) one noise-free step takes
``x_eps`` to ``t = 0``: the posterior mean of the exact step ``eps -> 0``,
``(x + v score) / m`` (:meth:`SDE.ancestral_step`), which is Tweedie's formula
``(x + sigma(eps)^2 score) / alpha(eps)`` for VP and sub-VP. That step is one more score
evaluation, counted in the NFE (the official code leaves it out).

Solvers:

* ``rk45``: adaptive Dormand-Prince 5(4) on the data's device (:mod:`scoresde.integrate`),
  with scipy's step control and the error norm of the worst sample (RMS over each sample's
  dimensions, maximum over the batch), so that every sample meets the tolerance whatever else
  is in the batch (score_sde's RMS over the whole batch lets a few hard samples go).
* ``scipy_rk45``: the reference, ``scipy.integrate.solve_ivp(method="RK45")`` on the host
  in float64, as in the official code.
* ``euler`` (1 NFE / step) and ``heun`` (2 NFE / step; Karras et al. 2022, Alg. 1 without churn)
  on ``linspace(T, eps, steps + 1)`` or a given grid ``timesteps``.
* ``ddim``: DDIM (Song, Meng & Ermon 2021, Eq. 12), the discrete counterpart of the ODE, on the
  SDE's ``N``-step chain by default, with ``eta`` for stochastic variants (``eta = 1`` is the
  ancestral sampler with the posterior variance).
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Tuple

import torch

from ..integrate import dopri5, solve_ivp_host
from ..sde import SDE
from ..types import Constraint, ScoreFn, Shape, Tensor
from ._common import (
    CountingScore,
    StepCallback,
    StepReport,
    denoise_step,
    finish,
    full_time,
    noise_like,
    start,
)
from .grids import Schedule, time_from_log_snr, uniform_grid

__all__ = [
    "ODE_METHODS",
    "probability_flow_drift",
    "denoise_step",
    "encode",
    "decode",
    "rk45_sampler",
    "scipy_rk45_sampler",
    "euler_sampler",
    "heun_sampler",
    "ddim_sampler",
]


def probability_flow_drift(score_fn: ScoreFn, sde: SDE) -> Callable[[Tensor, Tensor], Tensor]:
    """``drift(x, t) = f(x, t) - 1/2 g(t)^2 score(x, t)`` of the probability-flow ODE."""
    reverse = sde.reverse(score_fn, probability_flow=True)
    return lambda x, t: reverse.sde(x, t)[0]


@torch.no_grad()
def encode(
    score_fn: ScoreFn,
    sde: SDE,
    x: Tensor,
    *,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    eps: float = 1e-3,
) -> Tuple[Tensor, int]:
    """Map data ``x`` ``(B, *D)`` at ``t = eps`` to its latent ``z = x_T`` with the
    probability-flow ODE (Dormand-Prince). Decode with
    ``rk45_sampler(..., x_T=z, denoise=False)``. Returns ``z`` and the NFE."""
    counted = CountingScore(score_fn)
    drift = probability_flow_drift(counted, sde)
    z, _ = dopri5(lambda t, y: drift(y, full_time(t, y)), x, eps, sde.T, rtol=rtol, atol=atol,
                  per_sample=True)
    return z, counted.nfe


@torch.no_grad()
def decode(
    score_fn: ScoreFn,
    sde: SDE,
    z: Tensor,
    *,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    eps: float = 1e-3,
) -> Tuple[Tensor, int]:
    """Inverse of :func:`encode`: the probability-flow ODE from ``T`` down to ``eps`` started at
    the latent ``z`` (no final denoising step). Returns the data and the NFE."""
    return rk45_sampler(score_fn, sde, z.shape, x_T=z, rtol=rtol, atol=atol, eps=eps, denoise=False)


@torch.no_grad()
def rk45_sampler(
    score_fn: ScoreFn,
    sde: SDE,
    shape: Shape,
    *,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    eps: float = 1e-3,
    denoise: bool = True,
    x_T: Optional[Tensor] = None,
    generator: Optional[torch.Generator] = None,
    device=None,
    dtype: Optional[torch.dtype] = None,
    progress: bool = False,
    callback: Optional[StepCallback] = None,
) -> Tuple[Tensor, int]:
    """Adaptive Dormand-Prince 5(4) on the samples' device (:func:`scoresde.integrate.dopri5`,
    scipy's RK45 controls). The error norm is each sample's RMS, the largest over the batch,
    so each sample's accuracy does not depend on the rest of the batch. ``callback(i, t, x,
    x0_hat)`` is called after each accepted step. Returns samples and NFE."""
    counted, x, _, eps, _ = start(score_fn, sde, shape, 1, eps, x_T, generator, device, dtype)
    drift = probability_flow_drift(counted, sde)
    report = StepReport(counted, sde, None, progress, "ODE (rk45)", callback)
    accepted = [0]

    def on_step(t: float, nfe: int) -> None:
        # The last evaluation (Dormand-Prince's FSAL stage) is at the accepted state.
        assert counted.last is not None
        report(accepted[0], t, counted.last[0])
        accepted[0] += 1

    x, _ = dopri5(lambda t, y: drift(y, full_time(t, y)), x, sde.T, eps, rtol=rtol, atol=atol,
                  callback=on_step, per_sample=True)
    report.close()
    return finish(counted, sde, x, eps, denoise)


@torch.no_grad()
def scipy_rk45_sampler(
    score_fn: ScoreFn,
    sde: SDE,
    shape: Shape,
    *,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    eps: float = 1e-3,
    denoise: bool = True,
    x_T: Optional[Tensor] = None,
    generator: Optional[torch.Generator] = None,
    device=None,
    dtype: Optional[torch.dtype] = None,
    progress: bool = False,
    solver: str = "RK45",
    callback: Optional[StepCallback] = None,
) -> Tuple[Tensor, int]:
    """Reference solver: ``scipy.integrate.solve_ivp`` on the flattened batch in float64 on
    the host (the state is copied to the host at every evaluation). ``callback(i, t, x,
    x0_hat)`` is called at each evaluation (scipy's steps are internal; ``t`` is not monotone
    across rejected steps). Returns samples and NFE."""
    counted, x, _, eps, _ = start(score_fn, sde, shape, 1, eps, x_T, generator, device, dtype)
    drift = probability_flow_drift(counted, sde)
    report = StepReport(counted, sde, None, progress, "ODE (scipy)", callback)

    def func(t: float, y: Tensor) -> Tensor:
        d = drift(y, full_time(t, y))
        report(counted.nfe - 1, t, y)
        return d

    x = solve_ivp_host(func, x, sde.T, eps, rtol=rtol, atol=atol, method=solver)
    report.close()
    return finish(counted, sde, x, eps, denoise)


def _fixed_step_ode(
    step: Callable, name: str, score_fn: ScoreFn, sde: SDE, shape: Shape, steps: Optional[int],
    eps: float, denoise: bool, x_T, generator, device, dtype, progress: bool,
    constraint: Optional[Constraint], timesteps, callback: Optional[StepCallback],
) -> Tuple[Tensor, int]:
    counted, x, steps, eps, grid = start(score_fn, sde, shape, steps, eps, x_T, generator, device, dtype,
                                         timesteps=timesteps)
    drift = probability_flow_drift(counted, sde)
    grid = grid or uniform_grid(sde.T, eps, steps + 1)
    if constraint is not None:
        x = constraint(x, full_time(grid[0], x))
    report = StepReport(counted, sde, steps, progress, f"ODE ({name})", callback)
    for i, (t_cur, t_next) in enumerate(zip(grid[:-1], grid[1:])):
        x = step(drift, x, t_cur, t_next)
        if constraint is not None:
            x = constraint(x, full_time(t_next, x))
        report(i, t_next, x)
    report.close()
    x, nfe = finish(counted, sde, x, eps, denoise)
    if constraint is not None and denoise:
        x = constraint(x, full_time(0.0, x))
    return x, nfe


def _euler_step(drift, x: Tensor, t_cur: float, t_next: float) -> Tensor:
    return x + drift(x, full_time(t_cur, x)) * (t_next - t_cur)


def _heun_step(drift, x: Tensor, t_cur: float, t_next: float) -> Tensor:
    h = t_next - t_cur
    # Euler step.
    d_cur = drift(x, full_time(t_cur, x))
    x_euler = x + d_cur * h
    # Apply the second-order (trapezoidal) correction.
    d_next = drift(x_euler, full_time(t_next, x))
    return x + 0.5 * (d_cur + d_next) * h


@torch.no_grad()
def euler_sampler(
    score_fn: ScoreFn, sde: SDE, shape: Shape, *, steps: Optional[int] = None, eps: float = 1e-3,
    denoise: bool = True, x_T: Optional[Tensor] = None, generator: Optional[torch.Generator] = None,
    device=None, dtype: Optional[torch.dtype] = None, progress: bool = False,
    constraint: Optional[Constraint] = None, timesteps=None, callback: Optional[StepCallback] = None,
) -> Tuple[Tensor, int]:
    """Euler's method on the probability-flow ODE, ``steps`` steps (NFE = steps + denoise).

    ``constraint(x, t) -> x``, if given, is applied to the initial state, after every step and
    to the denoised output (see :func:`scoresde.sampling.pc_sampler`). ``timesteps``: the grid
    itself (``steps + 1`` decreasing times) instead of ``steps`` and ``eps``; ``callback(i, t,
    x, x0_hat)`` after each step."""
    return _fixed_step_ode(_euler_step, "euler", score_fn, sde, shape, steps, eps, denoise,
                           x_T, generator, device, dtype, progress, constraint, timesteps, callback)


@torch.no_grad()
def heun_sampler(
    score_fn: ScoreFn, sde: SDE, shape: Shape, *, steps: Optional[int] = None, eps: float = 1e-3,
    denoise: bool = True, x_T: Optional[Tensor] = None, generator: Optional[torch.Generator] = None,
    device=None, dtype: Optional[torch.dtype] = None, progress: bool = False,
    constraint: Optional[Constraint] = None, timesteps=None, callback: Optional[StepCallback] = None,
) -> Tuple[Tensor, int]:
    """Heun's method (explicit trapezoidal rule), ``steps`` steps (NFE = 2 steps + denoise).

    ``constraint(x, t) -> x``, if given, is applied to the initial state, after every step (not
    to the intermediate Euler point) and to the denoised output. ``timesteps``, ``callback``: as
    in :func:`euler_sampler`."""
    return _fixed_step_ode(_heun_step, "heun", score_fn, sde, shape, steps, eps, denoise,
                           x_T, generator, device, dtype, progress, constraint, timesteps, callback)


@torch.no_grad()
def ddim_sampler(
    score_fn: ScoreFn,
    sde: SDE,
    shape: Shape,
    *,
    steps: Optional[int] = None,
    eta: float = 0.0,
    discrete: bool = True,
    eps: float = 1e-3,
    denoise: bool = True,
    x_T: Optional[Tensor] = None,
    generator: Optional[torch.Generator] = None,
    device=None,
    dtype: Optional[torch.dtype] = None,
    progress: bool = False,
    constraint: Optional[Constraint] = None,
    timesteps=None,
    callback: Optional[StepCallback] = None,
) -> Tuple[Tensor, int]:
    """DDIM (Song, Meng & Ermon 2021, Eq. 12) in the ``(alpha, sigma)`` form of any SDE.

    At each time of ``linspace(T, eps, steps)`` (the last step going to ``alpha = 1,
    sigma = 0``): ``x0 = (x + sigma_t^2 s) / alpha_t``, ``eps_hat = -sigma_t s``,
    ``x_s = alpha_s x0 + sqrt(sigma_s^2 - c^2) eps_hat + c z`` with
    ``c^2 = eta^2 v sigma_s^2 / sigma_t^2`` and ``v = sigma_t^2 - (alpha_t / alpha_s)^2 sigma_s^2``.

    Args:
        discrete: take ``(alpha, sigma)`` from the SDE's ``N``-step chain at index
            ``floor(t (N - 1))`` (DDPM's ``bar alpha`` table for VP, the DDIM setting) and
            evaluate the score at the time of the continuous kernel with the same log-SNR
            ``log(alpha / sigma)``, so that coefficients and score describe the same marginal;
            or use the continuous kernel at ``t`` (``False``).
        eta: 0 for the deterministic sampler, 1 for the ancestral sampler's posterior variance.
        denoise: unused: the last DDIM step already lands noise-free on ``x0``.
        constraint: ``constraint(x, t) -> x`` applied to the initial state and after every
            step, at the time reached (``t = 0`` after the last one).
        timesteps: the ``steps`` decreasing times of the score evaluations, instead of
            ``steps`` and ``eps``.
        callback: ``callback(i, t, x, x0_hat)`` after each step.
    Returns:
        samples and NFE (= ``steps``).
    """
    if not eta >= 0:
        raise ValueError(f"eta must be >= 0; got {eta}")
    counted, x, steps, eps, grid = start(score_fn, sde, shape, steps, eps, x_T, generator, device, dtype,
                                         timesteps=timesteps, grid_points=0)
    grid = grid or uniform_grid(sde.T, eps, steps)
    sch = _ddim_schedule(sde, grid, discrete)
    if constraint is not None:
        x = constraint(x, full_time(grid[0], x))
    report = StepReport(counted, sde, steps, progress, "DDIM", callback)
    for k in range(steps):
        a_t, s_t = sch.alpha[k], sch.sigma[k]
        score = counted(x, full_time(sch.t[k], x))
        x0 = (x + s_t**2 * score) / a_t
        if k == steps - 1:
            x, t_next = x0, 0.0
        else:
            a_s, s_s, t_next = sch.alpha[k + 1], sch.sigma[k + 1], grid[k + 1]
            v = max(s_t**2 - (a_t / a_s) ** 2 * s_s**2, 0.0)
            c2 = eta**2 * v * s_s**2 / s_t**2
            x = a_s * x0 - (max(s_s**2 - c2, 0.0) ** 0.5 * s_t) * score
            if eta > 0:
                x = x + c2**0.5 * noise_like(x, generator)
        if constraint is not None:
            x = constraint(x, full_time(t_next, x))
        report(k, t_next, x)
    report.close()
    return x, counted.nfe


def _ddim_schedule(sde: SDE, grid: List[float], discrete: bool) -> Schedule:
    """DDIM's ``alpha`` and ``sigma`` on the grid and the times ``t`` of its score evaluations:
    the grid itself, or (``discrete``) the continuous times with the chain's log-SNR."""
    if not discrete:
        return Schedule(sde, grid)
    alpha, sigma = sde.discrete_marginal_coeffs(torch.as_tensor(grid, dtype=torch.float64))
    sch = Schedule(sde, time_from_log_snr(sde, (alpha.log() - sigma.log()).tolist()))
    sch.alpha, sch.sigma = alpha.tolist(), sigma.tolist()
    return sch


ODE_METHODS: Dict[str, Callable[..., Tuple[Tensor, int]]] = {
    "rk45": rk45_sampler,
    "scipy_rk45": scipy_rk45_sampler,
    "euler": euler_sampler,
    "heun": heun_sampler,
    "ddim": ddim_sampler,
}
