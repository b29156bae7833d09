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

Transforms are plain functions of a batch: ``to_model_range``, ``from_model_range``,
``random_flip``, ``resize``. ``InfiniteBatches`` yields shuffled, rank-sharded batches forever
and can be saved and restored mid-epoch.
"""
from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import http.client
import io
import logging
import math
import os
import pickle
import struct
import tarfile
import tempfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from .types import Tensor
from .utils import append_dims, check_choice

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

logger = logging.getLogger(__name__)

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
        labels: int64 tensor ``(N,)``, class indices in ``[0, num_classes)``.
        name: the data set's key in ``DATASETS``.
        split: ``"train"`` or ``"test"``.
        num_classes: number of classes.
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


# ---------------------------------------------------------------------------------------------
# Where the files are
# ---------------------------------------------------------------------------------------------

FASHION_MNIST_DEBIAN_ROOT = Path("/usr/share/datasets/fashion-mnist")
"""Where ``apt-get install dataset-fashion-mnist`` puts the four ``*-ubyte.gz`` files."""


def default_root(name: str) -> Path:
    """The directory a loader reads when ``root`` is None.

    ``fashion_mnist``: ``/usr/share/datasets/fashion-mnist`` (Debian package
    ``dataset-fashion-mnist``). ``cifar10`` and ``mnist``: ``$XDG_CACHE_HOME/scoresde/<name>``,
    i.e. ``~/.cache/scoresde/<name>`` by default. ``digits`` needs no directory.
    """
    if name == "fashion_mnist":
        return FASHION_MNIST_DEBIAN_ROOT
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "scoresde" / name


def _resolve_root(name: str, root: Optional[PathLike]) -> Path:
    return default_root(name) if root is None else Path(root).expanduser()


def file_md5(path: PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex md5 digest of a file, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def download_url(url: str, dest: PathLike, *, md5: Optional[str] = None, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` atomically, checking its md5 when given.

    The bytes go to a temporary file next to ``dest``, which is renamed onto ``dest`` only once
    the download is complete and its md5 matches; on any failure the temporary file is removed
    and ``dest`` is left untouched.

    Raises:
        DataError: the download failed or the md5 does not match.
    """
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    except OSError as e:
        raise DataError(
            f"cannot write to {dest.parent} ({e}); pass a writable root, or download {url} by "
            f"other means to {dest}"
        ) from e
    try:
        digest = hashlib.md5(usedforsecurity=False)
        with os.fdopen(fd, "wb") as out:
            logger.info("downloading %s to %s", url, dest)
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    while chunk := response.read(1 << 20):
                        digest.update(chunk)
                        out.write(chunk)
            except (OSError, ValueError, http.client.HTTPException) as e:
                raise DataError(
                    f"could not download {url} ({e}); download it by other means and put it at "
                    f"{dest}"
                ) from e
            out.flush()
            os.fsync(out.fileno())
        if md5 is not None and digest.hexdigest() != md5:
            raise DataError(
                f"the file downloaded from {url} has md5 {digest.hexdigest()}, expected {md5}; "
                f"it was not saved. Try again, or download it by other means to {dest}"
            )
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return dest


# ---------------------------------------------------------------------------------------------
# Restricted unpickling (CIFAR-10 batches are pickles)
# ---------------------------------------------------------------------------------------------


def _latin1_bytes(text: object, encoding: object) -> bytes:
    """Stand-in for ``_codecs.encode``, which Python 3 pickles (protocols 0-2) use for ``bytes``:
    ``encode(text, "latin1")``. Nothing else is accepted."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode is allowed only as encode(str, 'latin1')")
    return text.encode("latin1")


class _ReadOnlyCall:
    """An allowed function, wrapped so that a pickle's BUILD opcode cannot set attributes on it
    (a plain Python function would accept new ``__defaults__`` or ``__dict__`` entries)."""

    __slots__ = ("_fn",)

    def __init__(self, fn: Callable[..., Any]) -> None:
        object.__setattr__(self, "_fn", fn)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("read-only")

    def __call__(self, *args: Any) -> Any:
        return self._fn(*args)


@functools.lru_cache(maxsize=None)
def _allowed_globals() -> Dict[Tuple[str, str], Any]:
    """The only globals a pickle may name: what numpy arrays, numpy scalars and Python-3 bytes
    need. The numpy functions are taken from numpy's own ``__reduce__`` results, so they are the
    running numpy's whatever its internal module layout (``numpy.core`` before 2.0,
    ``numpy._core`` after); both spellings are accepted in the pickle."""
    reconstruct = _ReadOnlyCall(np.zeros(0, np.uint8).__reduce__()[0])
    frombuffer = _ReadOnlyCall(np.zeros(1, np.uint8).__reduce_ex__(5)[0])
    scalar = _ReadOnlyCall(np.uint8(0).__reduce__()[0])
    table: Dict[Tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _ReadOnlyCall(_latin1_bytes),
    }
    for core in ("numpy.core", "numpy._core"):
        table[(f"{core}.multiarray", "_reconstruct")] = reconstruct
        table[(f"{core}.multiarray", "scalar")] = scalar
        table[(f"{core}.numeric", "_frombuffer")] = frombuffer
    return table


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _allowed_globals()[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"the pickle refers to {module}.{name}, which is not allowed: only dicts, lists, "
                "strings, bytes, numbers and numpy arrays may be unpickled"
            ) from None


def restricted_unpickle(data: bytes, source: str = "pickle") -> Any:
    """Unpickle ``data`` allowing only plain containers, strings, bytes, numbers and numpy arrays.

    Any other global (a class or function such as ``os.system``) is refused before it is
    looked up, so no code from the pickle can run. Python 2 strings are decoded as latin-1,
    which is how numpy arrays pickled by Python 2 are read back.

    Args:
        data: the pickle's bytes.
        source: a name for the data (a file path) used in error messages.
    Raises:
        DataError: the pickle is corrupt or names a disallowed global.
    """
    try:
        return _RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except Exception as e:  # with no code allowed to run, every failure means bad data
        raise DataError(f"{source} is not a valid data pickle: {e}") from e


# ---------------------------------------------------------------------------------------------
# CIFAR-10
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# IDX files: MNIST and Fashion-MNIST
# ---------------------------------------------------------------------------------------------

# IDX type codes (third byte of the magic number) -> big-endian numpy dtype.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path.name} not found in {path.parent}") from None
    except OSError as e:
        raise DataError(f"cannot read {path}: {e}") from e


def _read_maybe_gzip(path: Path) -> bytes:
    raw = _read_file(path)
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path} is a corrupt or truncated gzip file ({e}); replace it") from e


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


# ---------------------------------------------------------------------------------------------
# scikit-learn's 8x8 digits
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# Picking a data set by name
# ---------------------------------------------------------------------------------------------

DATASETS: Dict[str, Callable[..., ImageData]] = {
    "cifar10": load_cifar10,
    "mnist": load_mnist,
    "fashion_mnist": load_fashion_mnist,
    "digits": load_digits,
}
"""Data set name -> loader ``(root=None, split="train", download=False, **options) -> ImageData``."""


def load_dataset(
    name: str,
    *,
    root: Optional[PathLike] = None,
    split: str = "train",
    download: bool = False,
    **options: Any,
) -> ImageData:
    """Load a data set of ``DATASETS`` into memory.

    ``name`` is matched case-insensitively with ``-`` read as ``_``, so score_sde's
    ``"CIFAR10"`` and ``"fashion-mnist"`` work too.

    Args:
        name: ``"cifar10"``, ``"mnist"``, ``"fashion_mnist"`` or ``"digits"``.
        root: directory holding the data set's files (default: ``default_root(name)``).
        split: ``"train"`` or ``"test"``.
        download: download missing files where the loader can (CIFAR-10 only).
        options: passed to the loader, e.g. ``check_md5=False`` for ``load_cifar10``.
    Raises:
        ValueError: unknown name or split (the message lists the valid ones).
        DataError: the files are missing or corrupt (the message says what to do).
    """
    key = name.lower().replace("-", "_") if isinstance(name, str) else name
    check_choice("dataset", key if key in DATASETS else name, DATASETS)
    check_choice("split", split, SPLITS)
    return DATASETS[key](root=root, split=split, download=download, **options)


# ---------------------------------------------------------------------------------------------
# Transforms: plain functions of a batch
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Batches for training
# ---------------------------------------------------------------------------------------------

Batch = Union[Tensor, Tuple[Tensor, ...]]


class InfiniteBatches:
    """Shuffled mini-batches of in-memory tensors, epoch after epoch, sharded over ranks.

    Each epoch draws a permutation ``perm = randperm(N)`` from the iterator's generator. Its
    ``k``-th global batch is ``perm[k G : (k + 1) G]`` with ``G = world_size * batch_size``,
    and rank ``r`` gets the slice ``[r * batch_size, (r + 1) * batch_size)`` of it. Given
    generators with the same seed, all ranks draw the same permutation, so at every step their
    batches are disjoint and, concatenated in rank order, equal the batch a single process
    would get with ``batch_size = G``.

    With ``drop_last=True`` an epoch has ``N // G`` steps and the last ``N mod G`` examples of
    each permutation are skipped. With ``drop_last=False`` it has ``ceil(N / G)`` steps and the
    last global batch is the remainder, split over ranks by ``torch.tensor_split`` (sizes
    differ by at most one; a rank may get an empty batch if the remainder is shorter than
    ``world_size``).

    ``state_dict()`` holds the epoch, the position in it and the generator state at the start
    of the epoch; ``load_state_dict()`` on a fresh iterator over the same data redraws that
    epoch's permutation, so a resumed run sees exactly the batches an uninterrupted run would.

    Args:
        data: a tensor ``(N, ...)`` or a tuple of tensors with the same ``N`` (e.g.
            ``(images, labels)``); batches have the same structure. Indexing happens on each
            tensor's device.
        batch_size: examples per batch on this rank.
        generator: its state seeds the shuffling; it is copied, so the iterator owns its random
            stream and the caller's generator is not advanced. Default: a fresh random seed.
        rank: this process's rank in ``[0, world_size)``.
        world_size: number of processes sharing each global batch.
        drop_last: skip each epoch's incomplete last global batch.
    """

    def __init__(
        self,
        data: Union[Tensor, Sequence[Tensor]],
        batch_size: int,
        *,
        generator: Optional[torch.Generator] = None,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = True,
    ) -> None:
        self._single = isinstance(data, torch.Tensor)
        self.tensors: Tuple[Tensor, ...] = (data,) if self._single else tuple(data)
        if not self.tensors or not all(isinstance(t, Tensor) and t.ndim >= 1 for t in self.tensors):
            raise ValueError("data must be a tensor (N, ...) or a non-empty sequence of such tensors")
        self.num_examples = self.tensors[0].shape[0]
        if any(t.shape[0] != self.num_examples for t in self.tensors):
            raise ValueError(
                "all tensors in data must have the same first dim; got "
                + ", ".join(str(t.shape[0]) for t in self.tensors)
            )
        if batch_size < 1 or world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(
                f"need batch_size >= 1, world_size >= 1 and 0 <= rank < world_size; got "
                f"batch_size={batch_size}, rank={rank}, world_size={world_size}"
            )
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size
        self.drop_last = drop_last
        if self.num_examples == 0 or (drop_last and self.num_examples < self.global_batch_size):
            raise ValueError(
                f"{self.num_examples} examples do not fill one global batch of "
                f"{self.global_batch_size} (= world_size * batch_size); use a smaller batch_size "
                "or drop_last=False"
            )
        if generator is None:
            self.generator = torch.Generator()
            self.generator.seed()
        else:
            self.generator = torch.Generator(device=generator.device)
            self.generator.set_state(generator.get_state())
        self._start_epoch(0)

    @property
    def global_batch_size(self) -> int:
        """``world_size * batch_size``: examples per step over all ranks."""
        return self.world_size * self.batch_size

    @property
    def batches_per_epoch(self) -> int:
        """Steps per epoch (the same on every rank)."""
        if self.drop_last:
            return self.num_examples // self.global_batch_size
        return -(-self.num_examples // self.global_batch_size)

    @property
    def epoch(self) -> int:
        """Index of the current epoch (starting at 0)."""
        return self._epoch

    @property
    def position(self) -> int:
        """Number of steps already taken in the current epoch."""
        return self._position

    def _start_epoch(self, epoch: int) -> None:
        self._epoch = epoch
        self._position = 0
        self._epoch_start_state = self.generator.get_state()
        self._perm = torch.randperm(
            self.num_examples, generator=self.generator, device=self.generator.device
        )

    def __iter__(self) -> Iterator[Batch]:
        return self

    def __next__(self) -> Batch:
        if self._position >= self.batches_per_epoch:
            self._start_epoch(self._epoch + 1)
        g, b = self.global_batch_size, self.batch_size
        step = self._perm[self._position * g : (self._position + 1) * g]
        if step.numel() == g:
            index = step[self.rank * b : (self.rank + 1) * b]
        else:
            index = torch.tensor_split(step, self.world_size)[self.rank]
        self._position += 1
        batch = tuple(t[index.to(t.device)] for t in self.tensors)
        return batch[0] if self._single else batch

    def state_dict(self) -> Dict[str, Any]:
        """The iterator's position: ``epoch``, ``position`` (steps taken in the epoch),
        ``generator`` (its state at the start of the epoch, a uint8 tensor) and the sizes it
        must be restored with. Identical on all ranks. Saves with ``torch.save`` and loads
        with ``torch.load(weights_only=True)``."""
        return {
            "epoch": self._epoch,
            "position": self._position,
            "generator": self._epoch_start_state.clone(),
            "num_examples": self.num_examples,
            "global_batch_size": self.global_batch_size,
            "drop_last": self.drop_last,
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Continue from ``state_dict()`` of an iterator over the same data.

        The number of examples, the global batch size and ``drop_last`` must match (the split
        of a global batch into ``world_size`` ranks may differ).
        """
        for key in ("num_examples", "global_batch_size", "drop_last"):
            if state[key] != getattr(self, key):
                raise ValueError(
                    f"cannot resume: the saved iterator had {key}={state[key]}, this one has "
                    f"{getattr(self, key)}"
                )
        if not 0 <= state["position"] <= self.batches_per_epoch:
            raise ValueError(
                f"saved position {state['position']} is outside 0..{self.batches_per_epoch}"
            )
        self.generator.set_state(state["generator"].cpu())
        self._start_epoch(int(state["epoch"]))
        self._position = int(state["position"])
