"""A folder of one's own images (PNG or JPEG), read with Pillow into one uint8 tensor."""
from __future__ import annotations

from pathlib import Path
from typing import List

import numpy as np
import torch

from ..utils import check_choice
from ._base import SPLITS, DataError, ImageData, PathLike
from .transforms import resize

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
"""File name endings read as images (any case); other files are skipped."""

_MODES = {1: "L", 3: "RGB"}  # channels -> Pillow mode


def _image_files(folder: Path) -> List[Path]:
    """Image files under ``folder`` and its sub-folders, sorted by path (a fixed order)."""
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise DataError(f"data folder {folder} {what}: pass folder:PATH with a folder of PNG or JPEG images")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DataError(
            f"no PNG or JPEG images found in {folder} or its sub-folders: add images "
            f"({', '.join(IMAGE_SUFFIXES)}) or point folder:PATH elsewhere"
        )
    return files


def _read_image(path: Path, num_channels: int, image_size: int) -> torch.Tensor:
    """One image ``(C, S, S)`` uint8: converted to gray or RGB, center-cropped to a square,
    then resized to ``S = image_size`` (bilinear, antialiased, as ``resize``)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert(_MODES[num_channels]))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:  # Pillow's decoding errors
        raise DataError(f"cannot read image {path} ({e}): replace or remove the file") from e
    x = torch.from_numpy(pixels.copy()).reshape(pixels.shape[0], pixels.shape[1], num_channels)
    x = x.permute(2, 0, 1)
    # Center crop to the shorter side, the odd pixel going bottom / right.
    h, w = x.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    x = x[:, top : top + side, left : left + side]
    return resize(x.unsqueeze(0), image_size)[0]


def load_folder(
    path: PathLike,
    split: str = "train",
    *,
    image_size: int,
    num_channels: int,
) -> ImageData:
    """The PNG / JPEG images in ``path`` and all its sub-folders, in path order.

    Each image is converted to gray (``num_channels=1``) or RGB (``num_channels=3``), whatever
    its own mode (an alpha channel is dropped), center-cropped to a square and resized to
    ``image_size`` (bilinear, antialiased). Labels come from sub-folder names when every image
    lies in a sub-folder of ``path`` (``path/cat/1.png`` has the class ``"cat"``; classes are
    numbered in sorted order); otherwise the data has no classes (``num_classes=0``, labels 0).
    Both splits are the whole folder: keep a held-out set in a folder of its own.

    Raises:
        DataError: ``path`` is missing, holds no image, or an image cannot be decoded.
    """
    check_choice("split", split, SPLITS)
    check_choice("num_channels", num_channels, tuple(_MODES))
    if image_size < 1:
        raise ValueError(f"image_size must be a positive number of pixels; got {image_size}")
    folder = Path(path).expanduser()
    files = _image_files(folder)
    images = torch.stack([_read_image(f, num_channels, image_size) for f in files])
    parts = [f.relative_to(folder).parts for f in files]
    class_names: tuple = ()
    labels = torch.zeros(len(files), dtype=torch.int64)
    if all(len(p) > 1 for p in parts):
        class_names = tuple(sorted({p[0] for p in parts}))
        index = {name: i for i, name in enumerate(class_names)}
        labels = torch.tensor([index[p[0]] for p in parts], dtype=torch.int64)
    return ImageData(
        images=images,
        labels=labels,
        name=f"folder:{folder}",
        split=split,
        num_classes=len(class_names),
        class_names=class_names,
    )
