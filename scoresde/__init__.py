"""scoresde: score-based generative modeling in continuous time (Song et al., ICLR 2021)."""
from .models.adapter import get_score_fn
from .sde import SDE, ReverseSDE, SubVPSDE, VESDE, VPSDE

__version__ = "0.1.0"

__all__ = ["SDE", "ReverseSDE", "VPSDE", "SubVPSDE", "VESDE", "get_score_fn"]
