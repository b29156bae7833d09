"""What every reader of ``scoresde.data`` shares: the in-memory ``ImageData``, the splits and
the ``DataError`` raised for missing, corrupt or malformed data."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Tuple, Union

import torch

from ..types import Tensor

PathLike = Union[str, "os.PathLike[str]"]

SPLITS = ("train", "test")


class DataError(ValueError):
    """A data set's files are missing, corrupt or not in the expected format.

    The message names the file and directory involved and says what to do about it.
    """


@dataclass
class ImageData:
    """An image data set held in memory.

    Attributes:
        images: uint8 tensor ``(N, C, H, W)``, pixel values 0..255.
        labels: int64 tensor ``(N,)``, class indices in ``[0, num_classes)`` (all 0 for data
            without classes).
        name: the data set's key in ``DATASETS``.
        split: ``"train"`` or ``"test"``.
        num_classes: number of classes (0: the data has none, e.g. a folder without
            sub-folders).
        class_names: human-readable class names, indexed by label (may be empty).
    """

    images: Tensor
    labels: Tensor
    name: str
    split: str
    num_classes: int
    class_names: Tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(
                f"images must be a uint8 tensor of shape (N, C, H, W); got {self.images.dtype} "
                f"of shape {tuple(self.images.shape)}"
            )
        if self.labels.dtype != torch.int64 or self.labels.shape != self.images.shape[:1]:
            raise ValueError(
                f"labels must be an int64 tensor of shape ({self.images.shape[0]},); got "
                f"{self.labels.dtype} of shape {tuple(self.labels.shape)}"
            )

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def image_shape(self) -> Tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        c, h, w = self.images.shape[1:]
        return (c, h, w)
