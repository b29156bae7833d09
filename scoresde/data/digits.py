"""scikit-learn's 8x8 handwritten digits (UCI optical recognition of handwritten digits)."""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from ..utils import check_choice
from ._base import SPLITS, DataError, ImageData, PathLike

DIGITS_NUM_TEST = 297
"""The digits split is fixed: the first 1500 of scikit-learn's 1797 images train, the last 297 test."""


def load_digits(
    root: Optional[PathLike] = None, split: str = "train", download: bool = False
) -> ImageData:
    """scikit-learn's 8x8 handwritten digits (1797 images, 10 classes), no files needed.

    Pixel values 0..16 become ``round(v * 255 / 16)`` in 0..255, computed exactly in integers
    as ``(255 v + 8) // 16`` (so 8 -> 128, 16 -> 255). The split uses no random numbers: the
    first 1500 images are ``"train"``, the last ``DIGITS_NUM_TEST = 297`` are ``"test"``.
    ``root`` and ``download`` are ignored (the data ships inside scikit-learn).

    Returns:
        ``ImageData`` with images ``(N, 1, 8, 8)`` uint8.
    Raises:
        DataError: scikit-learn is not installed.
    """
    check_choice("split", split, SPLITS)
    try:
        from sklearn.datasets import load_digits as sklearn_load_digits
    except ImportError as e:
        raise DataError(
            "the 'digits' data set ships with scikit-learn, which is not installed: "
            "pip install scikit-learn"
        ) from e
    bunch = sklearn_load_digits()
    values = torch.from_numpy(np.asarray(bunch.images)).to(torch.int64)
    images = ((values * 255 + 8) // 16).to(torch.uint8).unsqueeze(1)
    labels = torch.as_tensor(np.asarray(bunch.target), dtype=torch.int64)
    n_train = images.shape[0] - DIGITS_NUM_TEST
    part = slice(0, n_train) if split == "train" else slice(n_train, None)
    return ImageData(
        images=images[part].contiguous(),
        labels=labels[part].contiguous(),
        name="digits",
        split=split,
        num_classes=10,
        class_names=tuple(map(str, range(10))),
    )
