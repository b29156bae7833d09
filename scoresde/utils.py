"""Small helpers: broadcasting per-example scalars and validating public inputs."""
from __future__ import annotations

from typing import Iterable

import torch

from .types import Tensor


def append_dims(v: Tensor, ndim: int) -> Tensor:
    """Append trailing singleton dims to a ``(B,)`` tensor so it broadcasts against ``(B, *D)``.

    Args:
        v: per-example values, shape ``(B,)``.
        ndim: rank of the tensor ``v`` must broadcast against (``x.ndim``).
    Returns:
        a view of shape ``(B, 1, ..., 1)`` with ``ndim`` dims.
    """
    return v.reshape(v.shape + (1,) * (ndim - v.ndim))


def batch_sum(x: Tensor) -> Tensor:
    """Sum over all non-batch dims: ``(B, *D) -> (B,)``."""
    return x.reshape(x.shape[0], -1).sum(dim=1)


def batch_mean(x: Tensor) -> Tensor:
    """Mean over all non-batch dims: ``(B, *D) -> (B,)``."""
    return x.reshape(x.shape[0], -1).mean(dim=1)


def check_choice(name: str, value: object, valid: Iterable[object]) -> None:
    """Raise ``ValueError`` naming ``name`` and listing the valid values if ``value`` is not one."""
    valid = list(valid)
    if value not in valid:
        raise ValueError(
            f"unknown {name}={value!r}; valid values are: " + ", ".join(repr(v) for v in valid)
        )


def check_data(name: str, x: object, min_ndim: int = 1) -> Tensor:
    """Check that ``x`` is a floating-point tensor with a batch dimension."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (B, *D); got {type(x).__name__}")
    if x.ndim < min_ndim:
        raise ValueError(
            f"{name} must have a batch dimension, shape (B, *D); got shape {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise ValueError(
            f"{name} must be a floating-point tensor; got dtype {x.dtype} "
            f"(convert with {name}.float() or {name}.double())"
        )
    return x


def check_time(t: object, batch: int, T: float, name: str = "t", lower: float = 0.0) -> Tensor:
    """Validate a time tensor of shape ``(batch,)`` with values in ``[lower, T]``.

    This synchronizes with the device (it reads the min and max), so it belongs at public entry
    points, never inside per-step sampling code.
    """
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a tensor of shape ({batch},); got {type(t).__name__}")
    if t.shape != (batch,):
        raise ValueError(
            f"{name} must have shape (B,) = ({batch},) to match the batch; got {tuple(t.shape)}"
        )
    if not t.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor; got dtype {t.dtype}")
    if batch > 0:
        lo, hi = float(t.min()), float(t.max())
        if not (lower <= lo and hi <= T):
            raise ValueError(
                f"{name} must lie in [{lower}, {T}] (the SDE's time interval); "
                f"got values in [{lo:.6g}, {hi:.6g}]"
            )
    return t
