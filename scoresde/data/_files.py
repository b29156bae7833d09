"""Where data files live, reading them, and downloading them atomically with an md5 check."""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import logging
import os
import tempfile
import urllib.request
import zlib
from pathlib import Path
from typing import Optional

from ._base import DataError, PathLike

logger = logging.getLogger(__name__)


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
