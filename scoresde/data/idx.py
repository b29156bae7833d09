"""IDX files (LeCun et al.'s MNIST format): MNIST and Fashion-MNIST (Xiao et al. 2017)."""
from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import List, Optional

import numpy as np
import torch

from ..types import Tensor
from ..utils import check_choice
from ._base import SPLITS, DataError, ImageData, PathLike
from ._files import FASHION_MNIST_DEBIAN_ROOT, _read_maybe_gzip, _resolve_root

# IDX type codes (third byte of the magic number) -> big-endian numpy dtype.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: PathLike) -> Tensor:
    """Read an IDX file (the MNIST format), gzip-compressed or raw.

    Layout: a 4-byte magic number ``0x00 0x00 <type> <ndim>``, then ``ndim`` big-endian uint32
    dimension sizes, then the values in row-major order, big-endian. Type codes: 0x08 uint8,
    0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64. Gzip files are recognized by
    their content, whatever their name.

    Returns:
        a tensor of the file's shape and (native byte order) dtype.
    Raises:
        DataError: the file is missing, not IDX, or its size does not match its header.
    """
    path = Path(path)
    raw = _read_maybe_gzip(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(
            f"{path} is not an IDX file: its magic number {raw[:4].hex()} does not start with "
            "two zero bytes"
        )
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise DataError(f"{path}: unknown IDX type code 0x{code:02x} in the magic number")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is truncated: {len(raw)} bytes, shorter than its header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = header + math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(
            f"{path}: its header announces {dtype.name} values of shape {shape} ({expected} bytes) "
            f"but the file has {len(raw)} bytes; it is truncated or corrupt"
        )
    values = np.frombuffer(raw, dtype, offset=header).reshape(shape)
    return torch.from_numpy(values.astype(dtype.newbyteorder("=")))


MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)


def _idx_candidates(stem: str) -> List[str]:
    # The standard names, gzipped or not; some unpackers write "train-images.idx3-ubyte".
    dotted = stem.replace("-idx", ".idx")
    return [stem + ".gz", stem, dotted + ".gz", dotted]


def _load_idx_dataset(
    name: str, title: str, root: Optional[PathLike], split: str, how_to_get: str
) -> ImageData:
    check_choice("split", split, SPLITS)
    root = _resolve_root(name, root)
    paths = []
    for stem in MNIST_FILES[split]:
        found = [root / c for c in _idx_candidates(stem) if (root / c).is_file()]
        if not found:
            raise DataError(
                f"{title} {split} file {stem}.gz not found in {root} (also looked for "
                f"{', '.join(_idx_candidates(stem)[1:])}). {how_to_get}"
            )
        paths.append(found[0])
    images, labels = (read_idx(p) for p in paths)
    if images.dtype != torch.uint8 or images.ndim != 3:
        raise DataError(
            f"{paths[0]}: expected uint8 images of shape (N, H, W), got {images.dtype} of "
            f"shape {tuple(images.shape)}"
        )
    if labels.ndim != 1 or labels.shape[0] != images.shape[0] or labels.is_floating_point():
        raise DataError(
            f"{paths[1]}: expected {images.shape[0]} integer labels to match {paths[0]}, got "
            f"{labels.dtype} of shape {tuple(labels.shape)}"
        )
    labels = labels.long()
    if labels.numel() and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{paths[1]}: labels must lie in 0..9")
    return ImageData(
        images=images.unsqueeze(1),
        labels=labels,
        name=name,
        split=split,
        num_classes=10,
        class_names=FASHION_MNIST_CLASSES if name == "fashion_mnist" else tuple(map(str, range(10))),
    )


def load_mnist(
    root: Optional[PathLike] = None, split: str = "train", download: bool = False
) -> ImageData:
    """MNIST, 28x28 grayscale digits, 60000 train / 10000 test, from its four IDX files.

    Looks in ``root`` (default ``default_root("mnist")``) for ``train-images-idx3-ubyte``,
    ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each
    gzipped (``.gz``) or not. ``download`` is accepted for a uniform signature, but MNIST is
    not downloaded: put the files in place.

    Returns:
        ``ImageData`` with images ``(N, 1, 28, 28)`` uint8.
    """
    how = (
        "Put the four MNIST IDX files (gzipped or not) there or pass root=<the directory holding "
        "them>" + ("; scoresde does not download MNIST" if download else "")
    )
    return _load_idx_dataset("mnist", "MNIST", root, split, how)


def load_fashion_mnist(
    root: Optional[PathLike] = None, split: str = "train", download: bool = False
) -> ImageData:
    """Fashion-MNIST (Xiao et al. 2017), 28x28 grayscale, 60000 train / 10000 test.

    Same file names and format as MNIST. ``root`` defaults to
    ``/usr/share/datasets/fashion-mnist``, where ``apt-get install dataset-fashion-mnist``
    installs the four ``.gz`` files. ``download`` is accepted for a uniform signature; the
    data comes from the Debian package or from ``root``.

    Returns:
        ``ImageData`` with images ``(N, 1, 28, 28)`` uint8.
    """
    how = (
        f"Install the Debian package (apt-get install dataset-fashion-mnist, which puts the "
        f"files in {FASHION_MNIST_DEBIAN_ROOT}) or pass root=<the directory holding the four "
        f"Fashion-MNIST IDX files>" + ("; scoresde does not download Fashion-MNIST" if download else "")
    )
    return _load_idx_dataset("fashion_mnist", "Fashion-MNIST", root, split, how)
