"""Score networks, the network-to-score adapter, EMA and score_sde checkpoints.

Networks (all return the raw output; :func:`get_score_fn` turns it into a score):

* :class:`NCSNpp` — NCSN++ / DDPM++ of Song et al. (2021), with the CIFAR-10 presets
  :func:`ddpmpp_cifar`, :func:`ddpmpp_deep_cifar`, :func:`ncsnpp_cifar`,
  :func:`ncsnpp_deep_cifar`;
* :class:`DDPM` — the U-Net of Ho et al. (2020), preset :func:`ddpm_cifar`;
* :class:`MLP`, :class:`ResidualMLP` — time-conditioned networks for vector data ``(B, D)``;
* :class:`NoiseConditionalClassifier` — a time-conditioned image classifier ``p_t(y | x)``
  for classifier guidance (:func:`get_log_prob_fn` gives its log-probabilities).

Networks trained elsewhere: :func:`from_diffusers` (a diffusers UNet and scheduler) and
:func:`from_denoiser` (an EDM / k-diffusion denoiser) return a ``(score_fn, sde)`` pair.

Pick one by name from :data:`MODELS` with :func:`get_model`.
"""
from __future__ import annotations

from typing import Callable, Dict

from torch import nn

from .adapter import PARAMETERIZATIONS, TIME_LABELS, get_cond_score_fn, get_log_prob_fn, get_score_fn
from .checkpoints import (
    SCORE_SDE_CONFIGS,
    convert_score_sde_state_dict,
    load_score_sde_checkpoint,
    score_sde_key_map,
)
from .classifier import NoiseConditionalClassifier
from .ddpm import DDPM, ddpm_cifar
from .ema import ExponentialMovingAverage
from .external import DIFFUSERS_PREDICTION_TYPES, from_denoiser, from_diffusers
from .mlp import MLP, ResidualMLP
from .ncsnpp import NCSNpp, ddpmpp_cifar, ddpmpp_deep_cifar, ncsnpp_cifar, ncsnpp_deep_cifar

__all__ = [
    "MODELS",
    "get_model",
    "NCSNpp",
    "DDPM",
    "MLP",
    "ResidualMLP",
    "NoiseConditionalClassifier",
    "ddpmpp_cifar",
    "ddpmpp_deep_cifar",
    "ncsnpp_cifar",
    "ncsnpp_deep_cifar",
    "ddpm_cifar",
    "get_score_fn",
    "get_cond_score_fn",
    "get_log_prob_fn",
    "PARAMETERIZATIONS",
    "TIME_LABELS",
    "from_diffusers",
    "from_denoiser",
    "DIFFUSERS_PREDICTION_TYPES",
    "ExponentialMovingAverage",
    "load_score_sde_checkpoint",
    "convert_score_sde_state_dict",
    "score_sde_key_map",
    "SCORE_SDE_CONFIGS",
]

#: Network constructors and presets by name.
MODELS: Dict[str, Callable[..., nn.Module]] = {
    "ncsnpp": NCSNpp,
    "ddpm": DDPM,
    "mlp": MLP,
    "resmlp": ResidualMLP,
    "classifier": NoiseConditionalClassifier,
    "ddpmpp_cifar": ddpmpp_cifar,
    "ddpmpp_deep_cifar": ddpmpp_deep_cifar,
    "ncsnpp_cifar": ncsnpp_cifar,
    "ncsnpp_deep_cifar": ncsnpp_deep_cifar,
    "ddpm_cifar": ddpm_cifar,
}


def get_model(name: str, **kwargs: object) -> nn.Module:
    """Build the network ``name`` of :data:`MODELS` with keyword arguments ``kwargs``.

    Raises:
        ValueError: for an unknown name, listing the valid ones.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid names are: " + ", ".join(repr(k) for k in MODELS))
    return MODELS[name](**kwargs)
