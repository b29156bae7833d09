"""scoresde: score-based generative modeling in continuous time (Song et al., ICLR 2021)."""
from __future__ import annotations

from . import metrics, toy
from .guidance import classifier_free_guidance, classifier_guidance, colorize, inpaint
from .likelihood import bits_per_dim, log_likelihood
from .likelihood import likelihood as likelihood_result  # scoresde.likelihood stays the module
from .losses import ddpm_loss, discrete_dsm_loss, dsm_loss, smld_loss
from .models.adapter import get_cond_score_fn, get_log_prob_fn, get_score_fn
from .run import load_run
from .sampling import decode, encode, sample
from .sde import SDE, VESDE, VPSDE, RectifiedFlow, ReverseSDE, SubVPSDE

__version__ = "0.1.0"


__all__ = [
    "SDE",
    "ReverseSDE",
    "VPSDE",
    "SubVPSDE",
    "VESDE",
    "RectifiedFlow",
    "dsm_loss",
    "discrete_dsm_loss",
    "ddpm_loss",
    "smld_loss",
    "sample",
    "encode",
    "decode",
    "log_likelihood",
    "likelihood_result",
    "bits_per_dim",
    "get_score_fn",
    "get_cond_score_fn",
    "get_log_prob_fn",
    "classifier_guidance",
    "classifier_free_guidance",
    "inpaint",
    "colorize",
    "load_run",
    "toy",
    "metrics",
]
