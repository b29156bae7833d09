"""Predictor-corrector samplers (Song et al. 2021, Sec. 4.2, Alg. 1-5; App. E and G).

A *predictor* takes one step of a numerical solver of the reverse-time SDE (Eq. 6) from ``t``
to ``t - dt``; a *corrector* then runs score-based MCMC (Langevin dynamics) at the new time.
Each step function returns ``(x, x_mean)``: the new state and its noise-free part, so that the
final update can be made without noise (``denoise``).

The step argument ``dt_arg`` selects the discrete chain: ``None`` uses the SDE's own ``N``-step
chain (DDPM's table for VP, SMLD's for VE), a float the exact transition over the actual step.
:func:`pc_sampler` passes ``None`` exactly when it runs ``N`` steps, so DDPM's ancestral
sampler is recovered step for step, and any other step count stays a valid Gaussian step
(the official code rescales the ``N``-step table, so that VP at 10 steps has ``beta_9 = 2.0``
and returns NaN).

Recommended recipes (score_sde's tuned settings, Song et al. 2021, Table 1 and App. G):
VP and sub-VP: ``predictor="euler_maruyama", corrector=None`` (or reverse diffusion);
VE: ``predictor="reverse_diffusion", corrector="langevin", snr=0.16``. With ``N = 1000``
steps. The library default (Euler-Maruyama + Langevin, snr 0.16) is the paper's generic PC.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple

import torch

from ..sde import SDE
from ..types import Constraint, ScoreFn, Shape, Tensor
from ..utils import append_dims, check_choice
from ._common import StepCallback, StepReport, full_time, noise_like, start
from .grids import step_pairs, uniform_grid

__all__ = [
    "PREDICTORS",
    "CORRECTORS",
    "euler_maruyama_predictor",
    "reverse_diffusion_predictor",
    "ancestral_predictor",
    "langevin_corrector",
    "annealed_langevin_corrector",
    "pc_sampler",
]

StepOut = Tuple[Tensor, Tensor]


# ----------------------------------------------------------------------------------------------
# Predictors: one reverse-time step from t to t - dt.
def euler_maruyama_predictor(
    score_fn: ScoreFn, sde: SDE, x: Tensor, t: Tensor, dt: float, dt_arg: Optional[float],
    generator: Optional[torch.Generator], add_noise: bool = True,
) -> StepOut:
    """Euler-Maruyama on the reverse SDE: ``x - [f - g^2 s] dt + g sqrt(dt) z`` (App. E)."""
    drift, g = sde.reverse(score_fn).sde(x, t)
    x_mean = torch.add(x, drift, alpha=-dt)
    if not add_noise:
        return x_mean, x_mean
    return torch.addcmul(x_mean, append_dims(g * dt**0.5, x.ndim), noise_like(x, generator)), x_mean


def reverse_diffusion_predictor(
    score_fn: ScoreFn, sde: SDE, x: Tensor, t: Tensor, dt: float, dt_arg: Optional[float],
    generator: Optional[torch.Generator], add_noise: bool = True,
) -> StepOut:
    """Reverse diffusion (Eq. 46): ``x - f + G^2 s + G z`` with the forward step ``(f, G)``."""
    rev_f, rev_G = sde.reverse(score_fn).discretize(x, t, dt_arg)
    x_mean = x - rev_f
    if not add_noise:
        return x_mean, x_mean
    return torch.addcmul(x_mean, append_dims(rev_G, x.ndim), noise_like(x, generator)), x_mean


def ancestral_predictor(
    score_fn: ScoreFn, sde: SDE, x: Tensor, t: Tensor, dt: float, dt_arg: Optional[float],
    generator: Optional[torch.Generator], add_noise: bool = True,
) -> StepOut:
    """Ancestral sampling (Eq. 47 for VP = DDPM Alg. 2, Eq. 48 for VE = SMLD), via
    :meth:`SDE.ancestral_step`."""
    x_mean, std = sde.ancestral_step(x, t, score_fn(x, t), dt_arg)
    if not add_noise:
        return x_mean, x_mean
    return torch.addcmul(x_mean, append_dims(std, x.ndim), noise_like(x, generator)), x_mean


PREDICTORS: Dict[Optional[str], Optional[Callable[..., StepOut]]] = {
    "euler_maruyama": euler_maruyama_predictor,
    "reverse_diffusion": reverse_diffusion_predictor,
    "ancestral": ancestral_predictor,
    None: None,
}


# ----------------------------------------------------------------------------------------------
# Correctors: MCMC at fixed t.
def langevin_corrector(
    score_fn: ScoreFn, sde: SDE, x: Tensor, t: Tensor, dt_arg: Optional[float],
    snr: float, n_steps: int, generator: Optional[torch.Generator],
) -> StepOut:
    """Langevin corrector (Alg. 4 and 5): ``x + e s + sqrt(2 e) z`` with
    ``e = 2 alpha_i (snr ||z|| / ||s||)^2``.

    As in score_sde, ``||z||`` and ``||s||`` are averaged over the batch: per-example norms
    make the step explode for samples near a mode (``||s|| -> 0``), which in low dimension
    is common. The step therefore depends on the batch, not on each sample alone.

    Unadjusted Langevin with a step size proportional to the target's variance has a biased
    stationary law: for a Gaussian of variance ``V`` the chain ``x + e s + sqrt(2e) z`` settles
    at variance ``V / (1 - e / 2V)``, and ``e ~ 2 snr^2 V`` here, so a corrector run to
    stationarity inflates the variance by ``snr^2 / (1 - snr^2)`` (2.6% at snr 0.16), however
    small the predictor's steps.
    """
    x_mean = x
    alpha = append_dims(sde.langevin_alpha(t, dt_arg), x.ndim)
    for _ in range(n_steps):
        grad = score_fn(x, t)
        z = noise_like(x, generator)
        grad_norm = grad.reshape(x.shape[0], -1).norm(dim=1).mean()
        z_norm = z.reshape(x.shape[0], -1).norm(dim=1).mean()
        step = alpha * (2 * (snr * z_norm / grad_norm) ** 2)
        x_mean = torch.addcmul(x, step, grad)
        x = torch.addcmul(x_mean, (2 * step).sqrt(), z)
    return x, x_mean


def annealed_langevin_corrector(
    score_fn: ScoreFn, sde: SDE, x: Tensor, t: Tensor, dt_arg: Optional[float],
    snr: float, n_steps: int, generator: Optional[torch.Generator],
) -> StepOut:
    """Annealed Langevin dynamics of NCSN (Song & Ermon 2019, Alg. 1) with the step size
    ``e = 2 alpha_i (snr sigma(t))^2`` from the kernel's std instead of the score norm."""
    x_mean = x
    _, sigma = sde.marginal_coeffs(t)
    step = append_dims(2 * sde.langevin_alpha(t, dt_arg) * (snr * sigma) ** 2, x.ndim)
    noise_scale = (2 * step).sqrt()
    for _ in range(n_steps):
        grad = score_fn(x, t)
        x_mean = torch.addcmul(x, step, grad)
        x = torch.addcmul(x_mean, noise_scale, noise_like(x, generator))
    return x, x_mean


CORRECTORS: Dict[Optional[str], Optional[Callable[..., StepOut]]] = {
    "langevin": langevin_corrector,
    "annealed_langevin": annealed_langevin_corrector,
    None: None,
}


# ----------------------------------------------------------------------------------------------
@torch.no_grad()
def pc_sampler(
    score_fn: ScoreFn,
    sde: SDE,
    shape: Shape,
    *,
    steps: Optional[int] = None,
    predictor: Optional[str] = "euler_maruyama",
    corrector: Optional[str] = "langevin",
    snr: float = 0.16,
    n_corrector_steps: int = 1,
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
    """Predictor-corrector sampling (Alg. 1): at each time of ``linspace(T, eps, steps)``, run
    the corrector then the predictor, which moves to the next time (the last one to ``t = 0``).

    Args:
        score_fn: ``score_fn(x, t)``.
        sde: the forward SDE.
        shape: ``(B, *D)``.
        steps: number of predictor updates (default ``sde.N``). With ``steps == sde.N`` the
            discrete predictors use the SDE's ``N``-step chain (DDPM / SMLD).
        predictor: a key of :data:`PREDICTORS`.
        corrector: a key of :data:`CORRECTORS`.
        snr: the corrector's signal-to-noise ratio ``r``.
        n_corrector_steps: corrector iterations per time.
        eps: last time of the grid.
        denoise: make the last update without noise (return its mean).
        x_T: start from this prior sample instead of drawing one.
        generator: random number generator for the prior and all noise.
        device, dtype: of the samples (default: ``x_T``'s, else the generator's device, float32).
        progress: show a tqdm bar.
        constraint: ``constraint(x, t) -> x`` applied to the initial state (at ``T``), after
            every corrector and predictor step (at the time the state has reached; the last
            predictor step's result is the output) and to the returned samples (at ``t = 0``,
            or ``eps`` without a predictor): the hook of controllable generation, e.g. the
            replacement of known pixels in :func:`scoresde.inpaint` (Song et al. 2021,
            App. I). ``None`` leaves the sampler unchanged.
        timesteps: the ``steps`` decreasing times of the updates, instead of ``steps`` and
            ``eps`` (the discrete predictors then use exact steps, not the ``N``-step chain).
        callback: ``callback(i, t, x, x0_hat)`` after each time (``t`` the time reached).
    Returns:
        samples ``(B, *D)`` and the exact number of score evaluations (NFE).
    """
    check_choice("predictor", predictor, PREDICTORS)
    check_choice("corrector", corrector, CORRECTORS)
    if predictor is None and corrector is None:
        raise ValueError("predictor and corrector cannot both be None")
    if not snr > 0 or not isinstance(n_corrector_steps, int) or n_corrector_steps < 0:
        raise ValueError(
            f"need snr > 0 and an integer n_corrector_steps >= 0; got snr={snr}, "
            f"n_corrector_steps={n_corrector_steps}"
        )
    predictor_fn, corrector_fn = PREDICTORS[predictor], CORRECTORS[corrector]
    counted, x, steps, eps, grid = start(score_fn, sde, shape, steps, eps, x_T, generator, device, dtype,
                                         timesteps=timesteps, grid_points=0)
    use_table = grid is None and steps == sde.N
    pairs = step_pairs(grid or uniform_grid(sde.T, eps, steps))
    if constraint is not None:
        x = constraint(x, full_time(pairs[0][0], x))
    x_mean = x
    report = StepReport(counted, sde, steps, progress, "PC sampling", callback)
    for k, (t_cur, t_next) in enumerate(pairs):
        t = full_time(t_cur, x)
        dt = t_cur - t_next
        dt_arg = None if use_table else dt
        if corrector_fn is not None and n_corrector_steps > 0:
            x, x_mean = corrector_fn(counted, sde, x, t, dt_arg, snr, n_corrector_steps, generator)
            if constraint is not None:
                x = constraint(x, t)
        if predictor_fn is not None:
            last = k == len(pairs) - 1
            x, x_mean = predictor_fn(
                counted, sde, x, t, dt, dt_arg, generator, add_noise=not (last and denoise)
            )
            if constraint is not None and not last:
                x = constraint(x, full_time(t_next, x))
        report(k, t_next if predictor_fn is not None else t_cur, x)
    report.close()
    x = x_mean if denoise else x
    if constraint is not None:
        # The output is at t = 0 after a predictor step, at eps after a corrector-only run.
        x = constraint(x, full_time(0.0 if predictor_fn is not None else eps, x))
    return x, counted.nfe
