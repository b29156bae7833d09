"""CIFAR-10 (Krizhevsky 2009), the python version: five training batches and one test batch,
each a pickle read with the restricted unpickler, from the extracted folder or the archive."""
from __future__ import annotations

import tarfile
import zlib
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch

from ..utils import check_choice
from ._base import SPLITS, DataError, ImageData, PathLike
from ._files import _read_file, _resolve_root, download_url, file_md5
from ._safe_pickle import restricted_unpickle

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_BATCHES = {
    "train": ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5"),
    "test": ("test_batch",),
}
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)


def _parse_cifar_batch(obj: object, source: str) -> Tuple[np.ndarray, np.ndarray]:
    """Images ``(n, 3, 32, 32)`` uint8 and labels ``(n,)`` int64 from one unpickled batch.

    A batch is a dict with ``data``: uint8 ``(n, 3072)`` whose rows hold the 1024 red, then
    1024 green, then 1024 blue values of an image, each plane row-major (so a row is an image
    in CHW order), and ``labels``: n ints in 0..9. Keys are bytes or str.
    """
    if not isinstance(obj, dict):
        raise DataError(f"{source} holds a {type(obj).__name__}, expected a CIFAR-10 batch dict")
    entries = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}
    data, labels = entries.get("data"), entries.get("labels")
    is_array = isinstance(data, np.ndarray)
    if not is_array or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        desc = f"{data.dtype} array of shape {data.shape}" if is_array else repr(type(data))
        raise DataError(
            f"{source}: expected key 'data' with a uint8 array of shape (n, 3072), got {desc} "
            f"(keys: {sorted(map(str, entries))})"
        )
    labels = np.asarray(labels) if labels is not None else np.zeros(0)
    if (
        labels.shape != (data.shape[0],)
        or not np.issubdtype(labels.dtype, np.integer)
        or (labels.size and (labels.min() < 0 or labels.max() >= len(CIFAR10_CLASSES)))
    ):
        raise DataError(
            f"{source}: expected key 'labels' with {data.shape[0]} integers in 0..9 "
            f"(keys: {sorted(map(str, entries))})"
        )
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _find_cifar_folder(root: Path, names: Sequence[str]) -> Optional[Path]:
    """``root/cifar-10-batches-py`` or ``root`` itself, whichever holds all of ``names``."""
    for folder in (root / CIFAR10_FOLDER, root):
        if all((folder / n).is_file() for n in names):
            return folder
    return None


def _read_tar_members(archive: Path, names: Sequence[str]) -> Dict[str, bytes]:
    """Read the regular files ``names`` from a .tar.gz in one pass, without extracting."""
    found: Dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                name = member.name[2:] if member.name.startswith("./") else member.name
                if name in names and member.isfile():
                    f = tar.extractfile(member)
                    if f is not None:
                        found[name] = f.read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise DataError(
            f"cannot read {archive} as a .tar.gz archive ({e}): it is corrupt or incomplete. "
            f"Delete it and download it again (download=True), or put the extracted folder "
            f"{CIFAR10_FOLDER}/ next to it"
        ) from e
    missing = [n for n in names if n not in found]
    if missing:
        raise DataError(
            f"{archive} lacks {', '.join(missing)}; it is not the python version of CIFAR-10 "
            f"({CIFAR10_URL})"
        )
    return found


def load_cifar10(
    root: Optional[PathLike] = None,
    split: str = "train",
    download: bool = False,
    *,
    check_md5: bool = True,
) -> ImageData:
    """CIFAR-10, 32x32 RGB, 50000 train / 10000 test images in 10 classes.

    Reads, in this order of preference, from ``root`` (default ``default_root("cifar10")``):
    the extracted folder ``cifar-10-batches-py/`` (or ``root`` itself holding the batch files
    ``data_batch_1`` .. ``data_batch_5``, ``test_batch``), else the archive
    ``cifar-10-python.tar.gz``, read in place without extracting it. With ``download=True`` and
    neither present, the archive is downloaded from ``CIFAR10_URL`` into ``root``.

    Args:
        root: directory holding the archive or the extracted folder.
        split: ``"train"`` or ``"test"``.
        download: download the archive (163 MB) if no data is found.
        check_md5: check the archive against the official md5 ``CIFAR10_MD5``, both when
            reading it and after downloading it. Pass False only for an archive you built
            yourself (tests do); the extracted folder is never checked.
    Returns:
        ``ImageData`` with images ``(N, 3, 32, 32)`` uint8.
    Raises:
        DataError: no data found, or the archive or a batch is corrupt.
    """
    check_choice("split", split, SPLITS)
    root = _resolve_root("cifar10", root)
    names = CIFAR10_BATCHES[split]
    folder = _find_cifar_folder(root, names)
    if folder is not None:
        blobs = [(_read_file(folder / n), str(folder / n)) for n in names]
    else:
        archive = root / CIFAR10_ARCHIVE
        expected_md5 = CIFAR10_MD5 if check_md5 else None
        if not archive.is_file():
            if not download:
                partial = root / CIFAR10_FOLDER
                lacking = [n for n in names if not (partial / n).is_file()]
                note = (
                    f" ({partial}/ exists but lacks {', '.join(lacking)})" if partial.is_dir() else ""
                )
                raise DataError(
                    f"CIFAR-10 {split} data not found in {root}: expected the archive "
                    f"{archive} or the extracted folder {partial}/ with "
                    f"{', '.join(names)}{note}. Put the python version of CIFAR-10 "
                    f"({CIFAR10_URL}) there, pass root=<the directory holding it>, or pass "
                    f"download=True to download it (163 MB) where a network is available"
                )
            download_url(CIFAR10_URL, archive, md5=expected_md5)
        elif expected_md5 is not None:
            actual = file_md5(archive)
            if actual != expected_md5:
                raise DataError(
                    f"{archive} has md5 {actual}, expected {expected_md5} (the official "
                    f"{CIFAR10_ARCHIVE}): the file is corrupt or incomplete. Delete it and "
                    f"download it again (download=True), or pass check_md5=False for an archive "
                    f"you built yourself"
                )
        members = [f"{CIFAR10_FOLDER}/{n}" for n in names]
        contents = _read_tar_members(archive, members)
        blobs = [(contents[m], f"{archive}:{m}") for m in members]

    images, labels = [], []
    for blob, source in blobs:
        x, y = _parse_cifar_batch(restricted_unpickle(blob, source), source)
        images.append(x)
        labels.append(y)
    return ImageData(
        images=torch.from_numpy(np.concatenate(images)),
        labels=torch.from_numpy(np.concatenate(labels)),
        name="cifar10",
        split=split,
        num_classes=10,
        class_names=CIFAR10_CLASSES,
    )
