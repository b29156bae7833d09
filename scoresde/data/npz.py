"""Arrays of one's own in a NumPy ``.npz`` file: ``x`` (images or feature vectors) and
optional integer labels ``y``. Read with ``allow_pickle=False``: no code in the file can run."""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import torch

from ..types import Tensor
from ..utils import check_choice
from ._base import SPLITS, DataError, ImageData, PathLike


def read_npz(path: PathLike) -> Tuple[Tensor, Optional[Tensor]]:
    """``x`` and ``y`` (None if absent) of an ``.npz`` file, checked.

    ``x`` is either uint8 images ``(N, C, H, W)`` with values 0..255 (scaled later like the
    built-in image sets) or floating-point data ``(N, D)``, taken as it is (as float32). ``y``,
    if present, holds ``N`` non-negative integer labels.

    Returns:
        ``x`` as a uint8 or float32 tensor, ``y`` as an int64 tensor ``(N,)`` or None.
    Raises:
        DataError: the file is missing or not an ``.npz``, ``x`` is missing or has another
            dtype or shape, or ``y`` does not match it.
    """
    path = Path(path).expanduser()
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                arrays = {key: loaded[key] for key in loaded.files if key in ("x", "y")}
                keys = loaded.files
    except FileNotFoundError:
        raise DataError(f"data file {path} does not exist: pass npz:PATH with an existing .npz file") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"cannot read {path} as an .npz file ({e}): save it with np.savez") from e
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise DataError(f"{path} is a .npy file, not an .npz: save it with np.savez(path, x=data)")
    if "x" not in arrays:
        raise DataError(
            f"{path} has no array 'x' (it has: {', '.join(keys) or 'nothing'}): save the data "
            "with np.savez(path, x=data, y=labels)"
        )
    x, y = arrays["x"], arrays.get("y")
    if x.dtype == np.uint8 and x.ndim == 4:
        x_t = torch.from_numpy(x)
    elif np.issubdtype(x.dtype, np.floating) and x.ndim == 2:
        x_t = torch.from_numpy(x.astype(np.float32))
    else:
        raise DataError(
            f"{path}: 'x' is a {x.dtype} array of shape {x.shape}; expected uint8 images "
            "(N, C, H, W) or floating-point data (N, D)"
        )
    if len(x_t) == 0:
        raise DataError(f"{path}: 'x' holds no examples (shape {x.shape})")
    if y is None:
        return x_t, None
    if not np.issubdtype(y.dtype, np.integer) or y.shape != (len(x_t),) or (y < 0).any():
        raise DataError(
            f"{path}: 'y' is a {y.dtype} array of shape {y.shape}; expected {len(x_t)} "
            "non-negative integer labels, one per example of 'x'"
        )
    return x_t, torch.from_numpy(y.astype(np.int64))


def load_npz(path: PathLike, split: str = "train") -> ImageData:
    """The uint8 images ``x`` ``(N, C, H, W)`` and labels ``y`` of an ``.npz`` file.

    Without ``y`` the data has no classes (``num_classes=0``, labels 0); with it,
    ``num_classes = max(y) + 1``. Both splits are the whole file: keep a held-out set in a
    file of its own.

    Raises:
        DataError: as ``read_npz``, or ``x`` holds float data rather than images.
    """
    check_choice("split", split, SPLITS)
    x, y = read_npz(path)
    if x.dtype != torch.uint8:
        raise DataError(f"{path}: 'x' holds float data {tuple(x.shape)}, not uint8 images (N, C, H, W)")
    return ImageData(
        images=x,
        labels=y if y is not None else torch.zeros(len(x), dtype=torch.int64),
        name=f"npz:{path}",
        split=split,
        num_classes=int(y.max()) + 1 if y is not None else 0,
    )
