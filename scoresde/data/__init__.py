"""Image data sets, batch transforms and a resumable batch iterator for training.

This is the data side of Song et al. (2021), "Score-Based Generative Modeling through Stochastic
Differential Equations", as configured in their score_sde code: 8-bit images are scaled to
``[0, 1]`` (``data.centered=False``, the VE models) or to ``[-1, 1]`` (``data.centered=True``,
the VP and sub-VP models), and training batches are flipped horizontally at random
(``data.random_flip``). No TensorFlow, torchvision or DataLoader workers: every data set here
fits in memory as one uint8 tensor, and the files are read with the standard library.

Data sets (``DATASETS``, ``load_dataset``):

- ``"cifar10"``: the python version of CIFAR-10, ``cifar-10-python.tar.gz`` (md5-checked) or its
  extracted folder ``cifar-10-batches-py/``. Its batches are pickles; they are read with a
  restricted unpickler that can build only dicts, lists, strings and numpy arrays.
- ``"mnist"``, ``"fashion_mnist"``: the four IDX files of each (``read_idx``). Fashion-MNIST's
  default directory is where the Debian package ``dataset-fashion-mnist`` installs it.
- ``"digits"``: scikit-learn's 8x8 handwritten digits, which ship inside scikit-learn.
- ``"folder:PATH"``: one's own PNG / JPEG images (``load_folder``), and ``"npz:PATH"``: one's
  own arrays ``x`` and labels ``y`` in an ``.npz`` file (``load_npz``, ``read_npz``).

``load_examples`` is what training reads: any of these, or float data ``(N, D)`` from an
``.npz``, brought to the configured image size and number of channels.

Transforms are plain functions of a batch: ``to_model_range``, ``from_model_range``,
``random_flip``, ``resize``. ``InfiniteBatches`` yields shuffled, rank-sharded batches forever
and can be saved and restored mid-epoch.

One module per concern: ``_files`` (where files live, downloads), ``_safe_pickle`` (the
restricted unpickler), ``cifar10``, ``idx`` (MNIST, Fashion-MNIST), ``digits``, ``folder``,
``npz``, ``transforms`` and ``batches``; this package re-exports their public names.
"""
from __future__ import annotations

import sys
import types
from typing import Any, Callable, Dict, NamedTuple, Optional, Tuple

from ..types import Tensor
from ..utils import check_choice
from . import _base, _files, _safe_pickle, batches, cifar10, digits, folder, idx, npz, transforms
from ._base import SPLITS, DataError, ImageData, PathLike
from ._files import FASHION_MNIST_DEBIAN_ROOT, default_root, download_url, file_md5
from ._safe_pickle import restricted_unpickle
from .batches import Batch, InfiniteBatches
from .cifar10 import (
    CIFAR10_ARCHIVE,
    CIFAR10_BATCHES,
    CIFAR10_CLASSES,
    CIFAR10_FOLDER,
    CIFAR10_MD5,
    CIFAR10_URL,
    load_cifar10,
)
from .digits import DIGITS_NUM_TEST, load_digits
from .folder import IMAGE_SUFFIXES, load_folder
from .idx import FASHION_MNIST_CLASSES, MNIST_FILES, load_fashion_mnist, load_mnist, read_idx
from .npz import load_npz, read_npz
from .transforms import RESIZE_METHODS, from_model_range, random_flip, resize, to_model_range

__all__ = [
    "DataError",
    "ImageData",
    "DATASETS",
    "SPLITS",
    "load_dataset",
    "load_cifar10",
    "load_mnist",
    "load_fashion_mnist",
    "load_digits",
    "load_folder",
    "load_npz",
    "read_npz",
    "load_examples",
    "example_shape",
    "Examples",
    "default_root",
    "read_idx",
    "restricted_unpickle",
    "download_url",
    "file_md5",
    "to_model_range",
    "from_model_range",
    "random_flip",
    "resize",
    "RESIZE_METHODS",
    "InfiniteBatches",
]

DATASETS: Dict[str, Callable[..., ImageData]] = {
    "cifar10": load_cifar10,
    "mnist": load_mnist,
    "fashion_mnist": load_fashion_mnist,
    "digits": load_digits,
}
"""Data set name -> loader ``(root=None, split="train", download=False, **options) -> ImageData``."""


FILE_FORMATS: Dict[str, Callable[..., ImageData]] = {"folder": load_folder, "npz": load_npz}
"""``"<format>:PATH"`` -> loader ``(path, split="train", **options) -> ImageData`` of one's own data."""


def load_dataset(
    name: str,
    *,
    root: Optional[PathLike] = None,
    split: str = "train",
    download: bool = False,
    **options: Any,
) -> ImageData:
    """Load a data set of ``DATASETS``, or one's own images, into memory.

    ``name`` is matched case-insensitively with ``-`` read as ``_``, so score_sde's
    ``"CIFAR10"`` and ``"fashion-mnist"`` work too. ``"folder:PATH"`` and ``"npz:PATH"`` read
    one's own images with ``load_folder`` (which needs ``image_size`` and ``num_channels``
    options) and ``load_npz``; ``root`` and ``download`` do not apply to them.

    Args:
        name: ``"cifar10"``, ``"mnist"``, ``"fashion_mnist"``, ``"digits"``, ``"folder:PATH"``
            or ``"npz:PATH"``.
        root: directory holding the data set's files (default: ``default_root(name)``).
        split: ``"train"`` or ``"test"``.
        download: download missing files where the loader can (CIFAR-10 only).
        options: passed to the loader, e.g. ``check_md5=False`` for ``load_cifar10``.
    Raises:
        ValueError: unknown name or split (the message lists the valid ones).
        DataError: the files are missing or corrupt (the message says what to do).
    """
    check_choice("split", split, SPLITS)
    kind, colon, path = name.partition(":") if isinstance(name, str) else ("", "", "")
    if colon and kind in FILE_FORMATS:
        return FILE_FORMATS[kind](path, split, **options)
    key = name.lower().replace("-", "_") if isinstance(name, str) else name
    if key not in DATASETS:
        raise ValueError(
            f"unknown dataset={name!r}; valid values are: {', '.join(map(repr, DATASETS))}, "
            "'folder:PATH' (a folder of PNG / JPEG images) or 'npz:PATH' (an .npz file)"
        )
    return DATASETS[key](root=root, split=split, download=download, **options)


class Examples(NamedTuple):
    """The training data of ``load_examples``."""

    x: Tensor
    """uint8 images ``(N, C, H, W)`` (``is_images``) or float32 data ``(N, D)``."""
    labels: Optional[Tensor]
    """int64 class labels ``(N,)``, or None for data without classes."""
    is_images: bool


def load_examples(
    spec: str,
    split: str = "train",
    *,
    root: Optional[PathLike] = None,
    image_size: int = 0,
    num_channels: int = 0,
    download: bool = False,
) -> Examples:
    """The whole split of ``data.dataset`` in memory, as training reads it.

    Images (a name of ``DATASETS``, ``"folder:PATH"``, or uint8 ``x`` in ``"npz:PATH"``) are
    resized to ``image_size`` (bilinear; 0 keeps their size) and must have ``num_channels``
    channels (0 accepts any); they are scaled and flipped later, batch by batch, like every
    image set. Float ``x`` ``(N, D)`` in an ``.npz`` is returned as it is.

    Raises:
        ValueError: unknown name or split.
        DataError: missing, unreadable or malformed data, or images with another number of
            channels than ``num_channels``.
    """
    if spec.startswith("npz:"):
        check_choice("split", split, SPLITS)
        x, labels = read_npz(spec[4:])
        if x.is_floating_point():
            return Examples(x, labels, False)
        images = x
    else:
        options = {"image_size": image_size, "num_channels": num_channels} if spec.startswith("folder:") else {}
        dataset = load_dataset(spec, root=root, split=split, download=download, **options)
        images, labels = dataset.images, (dataset.labels if dataset.num_classes else None)
    if num_channels and images.shape[1] != num_channels:
        raise DataError(
            f"{spec} has images with {images.shape[1]} channels but data.num_channels={num_channels}: "
            "set data.num_channels (and the model's in_channels) to match"
        )
    if image_size and tuple(images.shape[-2:]) != (image_size, image_size):
        images = resize(images, image_size)
    return Examples(images, labels, True)


def example_shape(spec: str, *, image_size: int, num_channels: int) -> Tuple[int, ...]:
    """Shape of one example of ``load_examples(spec, ...)``: ``(num_channels, image_size,
    image_size)`` for images, ``(D,)`` for float data ``(N, D)`` in an ``.npz``."""
    if spec.startswith("npz:"):
        x, _ = read_npz(spec[4:])
        if x.is_floating_point():
            return tuple(x.shape[1:])
    return (num_channels, image_size, image_size)


class _Package(types.ModuleType):
    """Setting a name on the package sets it in the sub-modules that define it too, so that
    ``scoresde.data.CIFAR10_URL = mirror`` (or a test's monkeypatch) reaches the reader."""

    def __setattr__(self, name: str, value: Any) -> None:
        for module in _SUBMODULES:
            if name in vars(module):
                setattr(module, name, value)
        super().__setattr__(name, value)


_SUBMODULES = (_base, _files, _safe_pickle, batches, cifar10, digits, folder, idx, npz, transforms)
sys.modules[__name__].__class__ = _Package
