"""Pictures without matplotlib: 2-D scatter plots and image grids written as PNG with PIL."""
from __future__ import annotations

import json
import math
import os
from typing import Optional, Sequence, Tuple

import torch

from .types import Tensor

__all__ = ["scatter_png", "outside_count", "image_grid", "save_image_grid"]

# Panel colours (the reference crosses are black, so red is one of them).
_COLORS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14)]
_FONT_SIZE = 13


def _font(size: int):
    """DejaVu Sans where installed (Debian: fonts-dejavu-core), else Pillow's built-in font."""
    from PIL import ImageFont

    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default(size)


def outside_count(points: Tensor, limits: Tuple[float, float]) -> int:
    """How many rows of ``points`` ``(n, 2)`` lie outside the square ``limits`` x ``limits``
    (non-finite points included): the points a scatter plot over that square cannot show."""
    lo, hi = limits
    p = points.detach().double()
    inside = torch.isfinite(p).all(dim=1) & ((p >= lo) & (p <= hi)).all(dim=1)
    return int((~inside).sum())


def scatter_png(
    panels: Sequence[Tuple[str, Tensor]],
    path: str,
    *,
    limits: Tuple[float, float] = (-3.0, 3.0),
    size: int = 360,
    reference: Optional[Tensor] = None,
) -> str:
    """Write side-by-side scatter plots of 2-D point sets ``(n, 2)`` to a PNG file.

    Each panel's heading gives its title (lines split at ``"\\n"``) and how many of its points
    lie outside the plotted square (see :func:`outside_count`) and the largest radius among
    them; the PNG's text chunk ``"outside"`` holds these counts as JSON ``{title: count}``.

    Args:
        panels: ``(title, points)`` pairs, one panel each.
        path: output file (its folder is created).
        limits: axis range used for both coordinates.
        size: panel width and height in pixels.
        reference: optional points ``(k, 2)`` (e.g. mode centres) drawn as black crosses.
    Returns:
        ``path``.
    """
    from PIL import Image, ImageDraw
    from PIL.PngImagePlugin import PngInfo

    lo, hi = limits
    font = _font(_FONT_SIZE)
    headings, counts = [], {}
    for title, pts in panels:
        n_out = outside_count(pts, limits)
        counts[title] = n_out
        if n_out:
            finite = pts.detach().double()[torch.isfinite(pts).all(dim=1)]
            radius = finite.norm(dim=1).max().item() if len(finite) else float("nan")
            note = f"{n_out} of {len(pts)} outside [{lo:g}, {hi:g}]², up to radius {radius:.3g}"
        else:
            note = f"all {len(pts)} points inside [{lo:g}, {hi:g}]²"
        headings.append(title.split("\n") + [note])
    line = _FONT_SIZE + 5
    pad = 6 + line * max(len(h) for h in headings)
    img = Image.new("RGB", (len(panels) * size, size + pad), "white")
    draw = ImageDraw.Draw(img)

    def to_px(p: Tensor, offset: int):
        u = (p[:, 0].double() - lo) / (hi - lo) * (size - 1) + offset
        v = (hi - p[:, 1].double()) / (hi - lo) * (size - 1) + pad
        return u.tolist(), v.tolist()

    for j, ((_, pts), heading) in enumerate(zip(panels, headings)):
        off = j * size
        draw.rectangle([off, pad, off + size - 1, pad + size - 1], outline=(160, 160, 160))
        for i, text in enumerate(heading):
            draw.text((off + 6, 4 + i * line), text, font=font,
                      fill=(0, 0, 0) if i < len(heading) - 1 else (90, 90, 90))
        pts = pts.detach().cpu()
        us, vs = to_px(pts[torch.isfinite(pts).all(dim=1)], off)
        color = _COLORS[j % len(_COLORS)]
        for u, v in zip(us, vs):
            if off <= u < off + size and pad <= v < pad + size:
                draw.rectangle([u, v, u + 1, v + 1], fill=color)  # 2x2 px: visible dots
        if reference is not None:
            for u, v in zip(*to_px(reference.detach().cpu(), off)):
                draw.line([u - 5, v, u + 5, v], fill=(0, 0, 0), width=2)
                draw.line([u, v - 5, u, v + 5], fill=(0, 0, 0), width=2)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    info = PngInfo()
    info.add_text("outside", json.dumps(counts))
    img.save(path, pnginfo=info)
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


def save_image_grid(images: Tensor, path: str, *, min_size: int = 256, **kwargs) -> str:
    """Write :func:`image_grid` of ``images`` (keywords ``nrow``, ``padding``, ``value_range``)
    to a PNG file, enlarged by an integer factor with nearest-neighbour pixels until its short
    side is at least ``min_size`` (64 digits of 8x8: 82 px become 328); returns ``path``."""
    from PIL import Image

    grid = image_grid(images, **kwargs).numpy()
    scale = max(1, math.ceil(min_size / min(grid.shape[:2])))
    grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
    mode = "L" if grid.shape[2] == 1 else "RGB"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    Image.fromarray(grid[:, :, 0] if mode == "L" else grid, mode=mode).save(path)
    return path
