"""EDM's Heun sampler for any SDE of :mod:`scoresde.sde`.

**EDM Heun** (Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based Generative
Models", Alg. 1 and 2). In the scaled state ``x_hat = x / alpha_t`` and the noise level
``sigma_edm = sigma_t / alpha_t`` the probability-flow ODE reads
``dx_hat / dsigma_edm = (x_hat - D(x_hat; sigma_edm)) / sigma_edm = -sigma_t score(x, t)``
(Eq. 3 with ``s = 1``), with the denoiser ``D`` from Tweedie's formula
``D = (x + sigma_t^2 score(x, t)) / alpha_t``. Heun's method runs on the rho-schedule of
noise levels (Eq. 5), optionally with "churn" (Alg. 2: a little noise is added, raising the
noise level by ``gamma_i``, before each step).

With ``denoise=True`` the sampler ends with its own last Euler step from ``sigma_edm(eps)`` to
``sigma_edm = 0``, which lands on Tweedie's estimate ``D`` of the clean data (one NFE). That
agrees with :func:`~scoresde.sampling.denoise_step` for VP and sub-VP; for VE, whose kernel at
``t = 0`` still has noise ``sigma_min``, ``denoise_step`` returns a sample of ``p_0`` and EDM
the clean-data estimate.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch

from ..sde import SDE
from ..types import ScoreFn, Shape, Tensor
from ._common import StepCallback, StepReport, full_time, noise_like, start
from .grids import Schedule, edm_rho_grid, time_from_log_snr

__all__ = ["edm_heun_sampler", "DEFAULT_EDM_STEPS"]

DEFAULT_EDM_STEPS = 17  # EDM's 18 noise levels on CIFAR-10: 35 NFE with the final step


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
    timesteps=None,
    callback: Optional[StepCallback] = None,
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
        timesteps: the ``steps + 1`` times of the noise levels, decreasing (instead of
            ``rho``, ``steps`` and ``eps``).
        callback: ``callback(i, t, x, x0_hat)`` after each step (the last one at ``t = 0``
            when ``denoise``).
        eps, denoise, x_T, generator, device, dtype, progress: as in the other samplers.
    Returns:
        samples ``(B, *D)`` and the NFE (``2 steps + denoise``).
    """
    if not rho > 0 or not S_churn >= 0 or not S_noise >= 0:
        raise ValueError(f"need rho > 0, S_churn >= 0 and S_noise >= 0; got rho={rho}, "
                         f"S_churn={S_churn}, S_noise={S_noise}")
    counted, x, steps, eps, grid = start(score_fn, sde, shape, steps, eps, x_T, generator, device, dtype,
                                         timesteps=timesteps, default_steps=DEFAULT_EDM_STEPS)
    levels = Schedule(sde, grid or edm_rho_grid(sde, eps, steps + 1, rho))
    sig = [math.exp(-lam) for lam in levels.lam]  # sigma_edm of each level
    # Churn (Alg. 2, lines 4-6): the raised levels and their times, found in one inversion.
    gamma_max = min(S_churn / (steps + 1), math.sqrt(2) - 1)
    n_levels = steps + 1 if denoise else steps
    gammas = [min(gamma_max, sig[0] / sig[i] - 1) if S_min <= sig[i] <= S_max else 0.0
              for i in range(n_levels)]
    churned = [i for i in range(n_levels) if gammas[i] > 0]
    raised = Schedule(sde, time_from_log_snr(sde, [-math.log(sig[i] * (1 + gammas[i])) for i in churned]))
    hat = {i: (levels.t[i], levels.alpha[i], levels.sigma[i]) for i in range(n_levels)}
    for j, i in enumerate(churned):
        hat[i] = (raised.t[j], raised.alpha[j], raised.sigma[j])

    def direction(x_hat: Tensor, t: float, alpha: float, sigma: float) -> Tensor:
        # d = (x_hat - D(x_hat; sigma_edm)) / sigma_edm = -sigma_t score(alpha_t x_hat, t).
        return -sigma * counted(alpha * x_hat, full_time(t, x_hat))

    report = StepReport(counted, sde, n_levels, progress, "EDM Heun", callback)
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
        if i + 1 <= steps:
            report(i, levels.t[i + 1], levels.alpha[i + 1] * x_hat)
        else:
            report(i, 0.0, x_hat)
    report.close()
    x = x_hat if denoise else levels.alpha[-1] * x_hat
    return x, counted.nfe

