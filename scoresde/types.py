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

Constraint = Callable[[Tensor, Tensor], Tensor]
"""``constraint(x, t) -> Tensor``: maps a state ``x`` ``(B, *D)`` at times ``t`` ``(B,)`` to one that
satisfies a constraint at ``t`` (e.g. inpainting's replacement of the known pixels)."""

Shape = Union[Tuple[int, ...], torch.Size]
Device = Union[str, torch.device, None]
