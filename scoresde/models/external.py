"""Networks trained with other libraries as a scoresde ``(score_fn, sde)`` pair.

* :func:`from_diffusers`: a diffusers UNet and its noise scheduler. The scheduler's discrete
  ``alphas_cumprod`` table becomes the exact VP SDE through it
  (:meth:`~scoresde.VPSDE.from_alphas_cumprod`), table entry ``k`` sitting at
  ``t_k = (k + 1) / K``, and the UNet is called with the timestep label ``k = K t - 1``;
  its ``prediction_type`` picks the output parameterization of
  :data:`~scoresde.models.PARAMETERIZATIONS`.
* :func:`from_denoiser`: an EDM / k-diffusion denoiser ``D(x, sigma)`` (Karras et al. 2022,
  Eq. 3), whose score is Tweedie's ``(D(x, sigma) - x) / sigma^2``, on a :class:`~scoresde.VESDE`
  (``x_t = x_0 + sigma(t) z`` is EDM's noising).

Every sampler, the likelihood and guidance then take these like any scoresde model. diffusers
is an optional dependency (``pip install scoresde[diffusers]``): it is imported only to build a
scheduler from a bare config.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Tuple

import torch

from ..sde import VESDE, VPSDE
from ..types import ScoreFn, Tensor
from ..utils import check_choice
from .adapter import PARAMETERIZATIONS, _mode

__all__ = ["DIFFUSERS_PREDICTION_TYPES", "from_diffusers", "from_denoiser"]

#: diffusers' ``prediction_type`` -> the key of :data:`~scoresde.models.PARAMETERIZATIONS`.
DIFFUSERS_PREDICTION_TYPES = {"epsilon": "eps", "v_prediction": "v", "sample": "x0"}


def _alphas_cumprod(scheduler: Any) -> Tuple[Tensor, Mapping[str, Any]]:
    """The ``alphas_cumprod`` table and config of a diffusers scheduler or scheduler config."""
    config = getattr(scheduler, "config", scheduler)
    if not isinstance(config, Mapping):
        raise ValueError(
            "scheduler must be a diffusers scheduler or its config (a dict); "
            f"got {type(scheduler).__name__}"
        )
    table = getattr(scheduler, "alphas_cumprod", None)
    if table is None:
        try:
            from diffusers import DDPMScheduler
        except ImportError as e:
            raise ImportError(
                "a scheduler config needs diffusers to build its table: "
                "pip install scoresde[diffusers]"
            ) from e
        table = DDPMScheduler.from_config(dict(config)).alphas_cumprod
    return torch.as_tensor(table), config


def from_diffusers(unet: Callable[..., Any], scheduler: Any) -> Tuple[ScoreFn, VPSDE]:
    """The score and SDE of a diffusers UNet and its noise scheduler.

    The SDE is ``VPSDE.from_alphas_cumprod(scheduler.alphas_cumprod)``: its ``alpha(t)^2``
    equals the table at ``t_k = (k + 1) / K`` and is interpolated in between (piecewise
    linear in ``log alpha^2``, ``alpha(0) = 1``). The UNet is called as ``unet(x, K t - 1)``,
    so the grid times get their integer timesteps ``k`` and other times the continuous label
    in between (diffusers' UNets embed float timesteps; ``t < 1/K`` gives labels in
    ``(-1, 0)``). DDIM with ``K`` steps on this SDE is diffusers' ``DDIMScheduler`` loop with
    ``set_alpha_to_one=True``. Sample clipping and thresholding of diffusers' schedulers are
    not applied.

    Args:
        unet: ``unet(x, timesteps)`` with ``x`` ``(B, C, H, W)`` and ``timesteps`` ``(B,)``,
            returning a tensor or an object with ``.sample`` (a diffusers ``UNet2DOutput``).
            An ``nn.Module`` is evaluated in eval mode (restored after each call).
        scheduler: a diffusers scheduler with ``alphas_cumprod`` (DDPM, DDIM, Euler, ...) or
            its config (a dict, turned into a table by diffusers' ``DDPMScheduler``).
            ``prediction_type`` (default ``"epsilon"``) is a key of
            :data:`DIFFUSERS_PREDICTION_TYPES`: ``"epsilon"``, ``"v_prediction"``, ``"sample"``.
    Returns:
        ``(score_fn, sde)``: ``score_fn(x, t)`` for ``x`` ``(B, C, H, W)``, ``t`` ``(B,)``.
    Raises:
        ValueError: for an unknown ``prediction_type`` or a table with zero terminal SNR.
    """
    table, config = _alphas_cumprod(scheduler)
    prediction_type = config.get("prediction_type", "epsilon")
    check_choice("prediction_type", prediction_type, DIFFUSERS_PREDICTION_TYPES)
    to_score = PARAMETERIZATIONS[DIFFUSERS_PREDICTION_TYPES[prediction_type]]
    sde = VPSDE.from_alphas_cumprod(table)
    K = sde.N

    def score_fn(x: Tensor, t: Tensor) -> Tensor:
        alpha, sigma = sde.marginal_coeffs(t)
        with _mode(unet, False):
            out = unet(x, t * K - 1)
        return to_score(getattr(out, "sample", out), x, alpha, sigma, sde, t)

    return score_fn, sde


def from_denoiser(
    denoiser: Callable[[Tensor, Tensor], Tensor],
    sigma_min: float,
    sigma_max: float,
    N: int = 1000,
) -> Tuple[ScoreFn, VESDE]:
    """The score and SDE of an EDM / k-diffusion denoiser ``D(x, sigma)``.

    ``D`` estimates ``E[x_0 | x_0 + sigma z = x]``, so the score of the noised data is
    ``(D(x, sigma) - x) / sigma^2`` (Tweedie; the ``"x0"`` row of
    :data:`~scoresde.models.PARAMETERIZATIONS` with ``alpha = 1``). The SDE is
    ``VESDE(sigma_min, sigma_max, N)``, ``sigma(t) = sigma_min (sigma_max / sigma_min)^t``.

    Args:
        denoiser: ``D(x, sigma)`` with ``x`` ``(B, *D)`` and ``sigma`` ``(B,)``, returning the
            shape of ``x`` (EDM's preconditioned networks, k-diffusion's ``Denoiser`` wrappers).
            An ``nn.Module`` is evaluated in eval mode (restored after each call).
        sigma_min: smallest noise level (EDM: 0.002).
        sigma_max: largest noise level, the prior's standard deviation (EDM: 80).
        N: steps of the VE SDE's discrete chain.
    Returns:
        ``(score_fn, sde)``.
    """
    sde = VESDE(sigma_min, sigma_max, N)
    to_score = PARAMETERIZATIONS["x0"]

    def score_fn(x: Tensor, t: Tensor) -> Tensor:
        alpha, sigma = sde.marginal_coeffs(t)
        with _mode(denoiser, False):
            out = denoiser(x, sigma)
        return to_score(out, x, alpha, sigma, sde, t)

    return score_fn, sde
