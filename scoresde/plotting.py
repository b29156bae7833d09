"""Pictures without matplotlib: 2-D scatter plots and image grids written as PNG with PIL."""
from __future__ import annotations

import math
import os
from typing import Optional, Sequence, Tuple

import torch

from .types import Tensor

__all__ = ["scatter_png", "image_grid", "save_image_grid"]

_COLORS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14)]


def scatter_png(
    panels: Sequence[Tuple[str, Tensor]],
    path: str,
    *,
    limits: Tuple[float, float] = (-3.0, 3.0),
    size: int = 360,
    reference: Optional[Tensor] = None,
) -> str:
    """Write side-by-side scatter plots of 2-D point sets ``(n, 2)`` to a PNG file.

    Args:
        panels: ``(title, points)`` pairs, one panel each.
        path: output file (its folder is created).
        limits: axis range used for both coordinates.
        size: panel width and height in pixels.
        reference: optional points ``(k, 2)`` (e.g. mode centres) drawn as red crosses.
    Returns:
        ``path``.
    """
    from PIL import Image, ImageDraw

    lo, hi = limits
    pad = 24
    img = Image.new("RGB", (len(panels) * size, size + pad), "white")
    draw = ImageDraw.Draw(img)

    def to_px(p: Tensor, offset: int):
        u = (p[:, 0].double() - lo) / (hi - lo) * (size - 1) + offset
        v = (hi - p[:, 1].double()) / (hi - lo) * (size - 1) + pad
        return u.tolist(), v.tolist()

    for j, (title, pts) in enumerate(panels):
        off = j * size
        draw.rectangle([off, pad, off + size - 1, pad + size - 1], outline=(160, 160, 160))
        draw.text((off + 6, 6), title, fill=(0, 0, 0))
        pts = pts.detach().cpu()
        us, vs = to_px(pts[torch.isfinite(pts).all(dim=1)], off)
        color = _COLORS[j % len(_COLORS)]
        for u, v in zip(us, vs):
            if off <= u < off + size and pad <= v < pad + size:
                draw.point((u, v), fill=color)
        if reference is not None:
            for u, v in zip(*to_px(reference.detach().cpu(), off)):
                draw.line([u - 4, v, u + 4, v], fill=(200, 0, 0))
                draw.line([u, v - 4, u, v + 4], fill=(200, 0, 0))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    img.save(path)
    return path


def image_grid(images: Tensor, nrow: Optional[int] = None, padding: int = 2,
               value_range: Tuple[float, float] = (-1.0, 1.0)) -> Tensor:
    """Tile images ``(B, C, H, W)`` (C = 1 or 3) into one uint8 image ``(H', W', C)``."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape (B, 1 or 3, H, W); got {tuple(images.shape)}")
    B, C, H, W = images.shape
    nrow = nrow or math.ceil(math.sqrt(B))
    ncol = math.ceil(B / nrow)
    lo, hi = value_range
    x = ((images.detach().float().cpu() - lo) / (hi - lo)).clamp(0, 1)
    grid = torch.ones(C, ncol * (H + padding) + padding, nrow * (W + padding) + padding)
    for k in range(B):
        r, c = divmod(k, nrow)
        top, left = padding + r * (H + padding), padding + c * (W + padding)
        grid[:, top : top + H, left : left + W] = x[k]
    return (grid * 255).round().to(torch.uint8).permute(1, 2, 0)


def save_image_grid(images: Tensor, path: str, **kwargs) -> str:
    """Write :func:`image_grid` of ``images`` to a PNG file; returns ``path``."""
    from PIL import Image

    grid = image_grid(images, **kwargs).numpy()
    mode = "L" if grid.shape[2] == 1 else "RGB"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    Image.fromarray(grid[:, :, 0] if mode == "L" else grid, mode=mode).save(path)
    return path
