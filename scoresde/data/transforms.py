"""Transforms: plain functions of a batch, as score_sde's data pipeline applies them: scaling
to the model's range and back, random horizontal flips, resizing."""
from __future__ import annotations

from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F

from ..types import Tensor
from ..utils import append_dims, check_choice


def to_model_range(images: Tensor, centered: bool, dtype: torch.dtype = torch.float32) -> Tensor:
    """Map uint8 images to the model's data range, as score_sde's data scaler.

    ``x = images / 255`` in ``[0, 1]``; with ``centered=True`` then ``2 x - 1`` in ``[-1, 1]``.

    Args:
        images: uint8 tensor of any shape, values 0..255.
        centered: ``[-1, 1]`` if True (VP, sub-VP configs), ``[0, 1]`` if False (VE configs).
        dtype: floating-point dtype of the result.
    """
    if images.dtype != torch.uint8:
        raise ValueError(f"images must be a uint8 tensor with values 0..255; got dtype {images.dtype}")
    x = images.to(dtype) / 255
    return 2 * x - 1 if centered else x


def from_model_range(x: Tensor, centered: bool) -> Tensor:
    """Inverse of ``to_model_range``: model-range floats to uint8 images (e.g. to save samples).

    ``round(255 * x)`` (centered: ``round(255 * (x + 1) / 2)``), clamped to 0..255. NaN maps to
    the bottom of the range (0); ``from_model_range(to_model_range(u, c), c) == u`` exactly.
    """
    if not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor; got dtype {x.dtype}")
    if centered:
        x = (x + 1) / 2
    return (x * 255).nan_to_num(0.0).round().clamp(0, 255).to(torch.uint8)


def random_flip(x: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
    """Flip each example of a batch horizontally (last dim) with probability 1/2, independently.

    Args:
        x: batch ``(B, ..., W)`` of any dtype.
        generator: draws one uniform number per example (on the generator's device).
    Returns:
        a new tensor like ``x``.
    """
    if x.ndim < 2:
        raise ValueError(f"x must have shape (B, ..., W); got shape {tuple(x.shape)}")
    device = generator.device if generator is not None else x.device
    flip = torch.rand(x.shape[0], generator=generator, device=device) < 0.5
    return torch.where(append_dims(flip.to(x.device), x.ndim), x.flip(-1), x)


RESIZE_METHODS = ("pad", "bilinear")


def resize(
    images: Tensor,
    image_size: Union[int, Tuple[int, int]],
    *,
    method: str = "bilinear",
    fill: float = 0,
) -> Tensor:
    """Bring a batch ``(B, C, H, W)`` to ``image_size`` (an int for square images, or ``(h, w)``).

    - ``"pad"``: add a border of value ``fill`` (0 by default: black for uint8 images), split
      evenly, the odd pixel going bottom / right. Only enlarges: 28 -> 32 adds 2 on each side,
      keeping every pixel. Apply it to uint8 images, before ``to_model_range``.
    - ``"bilinear"``: ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False,
      antialias=True)``, like score_sde's ``tf.image.resize(..., antialias=True)``. uint8
      input is interpolated in float32 and rounded back to uint8.

    Returns the input itself if it already has the requested size.
    """
    check_choice("method", method, RESIZE_METHODS)
    if images.ndim != 4:
        raise ValueError(f"images must have shape (B, C, H, W); got {tuple(images.shape)}")
    h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    height, width = images.shape[-2:]
    if (height, width) == (h, w):
        return images
    if method == "pad":
        if h < height or w < width:
            raise ValueError(
                f"method='pad' can only enlarge images; cannot pad {height}x{width} to {h}x{w} "
                "(use method='bilinear')"
            )
        top, left = (h - height) // 2, (w - width) // 2
        return F.pad(images, (left, w - width - left, top, h - height - top), value=fill)
    x = images if images.is_floating_point() else images.float()
    x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    if images.dtype == torch.uint8:
        return x.round().clamp(0, 255).to(torch.uint8)
    return x.to(images.dtype)
