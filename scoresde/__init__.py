"""scoresde: score-based generative modeling in continuous time (Song et al., ICLR 2021)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Tuple

from . import metrics, toy
from .guidance import classifier_free_guidance, classifier_guidance, colorize, inpaint
from .likelihood import bits_per_dim, likelihood, log_likelihood
from .losses import ddpm_loss, discrete_dsm_loss, dsm_loss, smld_loss
from .models.adapter import get_cond_score_fn, get_log_prob_fn, get_score_fn
from .sampling import decode, encode, sample
from .sde import SDE, ReverseSDE, SubVPSDE, VESDE, VPSDE

if TYPE_CHECKING:
    import ml_collections
    import torch

__version__ = "0.1.0"


def load_run(
    workdir: str, *, checkpoint: Optional[str] = None, ema: bool = True, device: Optional[str] = None
) -> Tuple[ml_collections.ConfigDict, torch.nn.Module, SDE, int]:
    """The config, network (EMA weights by default, in eval mode), SDE and step of a training run.

    ``scoresde.train.load_run``, imported when first called (so that ``import scoresde`` does
    not import the training module, which ``python -m scoresde.train`` runs as a script).
    ``checkpoint`` defaults to the run's latest; runs written by earlier versions load too.
    """
    from .train import load_run as load

    return load(workdir, checkpoint=checkpoint, ema=ema, device=device)


__all__ = [
    "SDE",
    "ReverseSDE",
    "VPSDE",
    "SubVPSDE",
    "VESDE",
    "dsm_loss",
    "discrete_dsm_loss",
    "ddpm_loss",
    "smld_loss",
    "sample",
    "encode",
    "decode",
    "log_likelihood",
    "likelihood",
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
