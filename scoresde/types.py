"""Type aliases shared across scoresde.

A *score function* maps a noisy batch ``x`` of shape ``(B, *D)`` and times ``t`` of shape
``(B,)`` to an estimate of ``grad_x log p_t(x)`` with the shape of ``x``.
"""
from __future__ import annotations

from typing import Callable, Tuple, Union

import torch

Tensor = torch.Tensor
ScoreFn = Callable[[Tensor, Tensor], Tensor]
"""``score_fn(x, t) -> Tensor``: ``x`` ``(B, *D)``, ``t`` ``(B,)``; returns ``(B, *D)``."""

Shape = Union[Tuple[int, ...], torch.Size]
Device = Union[str, torch.device, None]
