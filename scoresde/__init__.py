"""scoresde: score-based generative modeling in continuous time (Song et al., ICLR 2021)."""
from . import toy
from .losses import ddpm_loss, discrete_dsm_loss, dsm_loss, smld_loss
from .likelihood import bits_per_dim, likelihood, log_likelihood
from .sampling import decode, encode, sample
from .sde import SDE, ReverseSDE, SubVPSDE, VESDE, VPSDE

__version__ = "0.1.0"

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
    "toy",
]
