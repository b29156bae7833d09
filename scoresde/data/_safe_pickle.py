"""Restricted unpickling: CIFAR-10's batches are pickles, and a pickle can run any code. This
unpickler builds only dicts, lists, strings, bytes, numbers and numpy arrays; audit it here,
apart from the data set readers."""
from __future__ import annotations

import functools
import io
import pickle
from typing import Any, Callable, Dict, Tuple

import numpy as np

from ._base import DataError


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
