"""Exponential moving average of network weights (Song et al. 2021, App. H: EMA rate 0.9999
for VP / sub-VP models, 0.999 for VE models; the averaged weights are the ones sampled from).

Follows score_sde's ``models/ema.py``: the average tracks the parameters with
``requires_grad=True`` (never buffers), in ``parameters()`` order, with the warm-up rule

    decay_n = min(decay, (1 + n) / (10 + n))        after the n-th update,

and the same ``state_dict`` layout (``decay``, ``num_updates``, ``shadow_params``), so our
training checkpoints and score_sde's look alike.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Dict, Iterable, Iterator, List, Optional

import torch
from torch import nn

from ..types import Tensor

__all__ = ["ExponentialMovingAverage"]


class ExponentialMovingAverage:
    """Moving average ``shadow <- shadow - (1 - decay_n) (shadow - param)`` of parameters.

    Typical use: ``ema.update(model.parameters())`` after every optimiser step, and
    ``with ema.average_parameters(model.parameters()): ...`` (or ``store`` / ``copy_to`` /
    ``restore``) to evaluate or sample with the averaged weights.

    Args:
        parameters: the parameters to average, usually ``model.parameters()``; those with
            ``requires_grad=False`` are skipped.
        decay: the EMA rate, in ``[0, 1]``.
        use_num_updates: apply the warm-up ``min(decay, (1 + n) / (10 + n))``.
    """

    def __init__(
        self, parameters: Iterable[nn.Parameter], decay: float, use_num_updates: bool = True
    ) -> None:
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"decay must be in [0, 1]; got {decay}")
        self.decay = float(decay)
        self.num_updates: Optional[int] = 0 if use_num_updates else None
        self.shadow_params: List[Tensor] = [p.detach().clone() for p in _trainable(parameters)]
        self.collected_params: List[Tensor] = []

    def current_decay(self) -> float:
        """The decay the next :meth:`update` will use."""
        if self.num_updates is None:
            return self.decay
        n = self.num_updates + 1
        return min(self.decay, (1 + n) / (10 + n))

    @torch.no_grad()
    def update(self, parameters: Iterable[nn.Parameter]) -> None:
        """Move the average towards ``parameters`` (the same set as at construction)."""
        decay = self.current_decay()
        if self.num_updates is not None:
            self.num_updates += 1
        params = self._check(parameters)
        if self.shadow_params:
            torch._foreach_lerp_(self.shadow_params, [p.detach() for p in params], 1.0 - decay)

    @torch.no_grad()
    def copy_to(self, parameters: Iterable[nn.Parameter]) -> None:
        """Overwrite ``parameters`` with the averaged values."""
        for shadow, param in zip(self.shadow_params, self._check(parameters)):
            param.copy_(shadow)

    @torch.no_grad()
    def store(self, parameters: Iterable[nn.Parameter]) -> None:
        """Save copies of ``parameters`` (all of them) for :meth:`restore`."""
        self.collected_params = [p.detach().clone() for p in parameters]

    @torch.no_grad()
    def restore(self, parameters: Iterable[nn.Parameter]) -> None:
        """Put back the values saved by :meth:`store`."""
        for saved, param in zip(self.collected_params, parameters):
            param.copy_(saved)

    @contextmanager
    def average_parameters(self, parameters: Iterable[nn.Parameter]) -> Iterator[None]:
        """Within the block, ``parameters`` hold the averaged values; restored afterwards."""
        params = list(parameters)
        self.store(params)
        self.copy_to(params)
        try:
            yield
        finally:
            self.restore(params)

    def state_dict(self) -> Dict[str, Any]:
        """``{"decay", "num_updates", "shadow_params"}``, as in score_sde."""
        return {"decay": self.decay, "num_updates": self.num_updates, "shadow_params": self.shadow_params}

    @torch.no_grad()
    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Load a state dict of :meth:`state_dict` (or of score_sde's EMA), copying values in place."""
        shadow = state_dict["shadow_params"]
        if len(shadow) != len(self.shadow_params):
            raise ValueError(
                f"the state dict has {len(shadow)} shadow parameters; this EMA tracks "
                f"{len(self.shadow_params)}"
            )
        for mine, theirs in zip(self.shadow_params, shadow):
            if mine.shape != theirs.shape:
                raise ValueError(f"shadow parameter shape {tuple(theirs.shape)} != {tuple(mine.shape)}")
            mine.copy_(theirs)
        self.decay = float(state_dict["decay"])
        self.num_updates = state_dict["num_updates"]

    def _check(self, parameters: Iterable[nn.Parameter]) -> List[nn.Parameter]:
        params = _trainable(parameters)
        if len(params) != len(self.shadow_params):
            raise ValueError(
                f"got {len(params)} trainable parameters; this EMA tracks {len(self.shadow_params)}"
            )
        return params


def _trainable(parameters: Iterable[nn.Parameter]) -> List[nn.Parameter]:
    return [p for p in parameters if p.requires_grad]
