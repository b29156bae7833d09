"""scoresde: score-based generative modeling in continuous time (Song et al., ICLR 2021)."""
from .sde import SDE, ReverseSDE, SubVPSDE, VESDE, VPSDE

__version__ = "0.1.0"

__all__ = ["SDE", "ReverseSDE", "VPSDE", "SubVPSDE", "VESDE"]
