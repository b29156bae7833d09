"""Training checkpoints: state dicts and JSON in one ``torch.save`` file per saved step.

``checkpoints/checkpoint_<step>.pt`` holds only tensors, numbers, strings, lists and dicts, so
it loads with ``torch.load(..., weights_only=True)``: nothing in it can run code. Files are
written to a temporary name in the same folder, flushed to disk and renamed, so a crash never
leaves a half-written checkpoint under a real name; :func:`remove_stale_temporaries` deletes
what a kill during a write leaves behind. Checkpoints get the permissions of any other output
(``0666`` less the umask).
"""
from __future__ import annotations

import os
import re
import tempfile
from typing import Dict, List, Optional, Tuple

import torch

from .config import UsageError

__all__ = ["checkpoint_path", "list_checkpoints", "latest_checkpoint", "save_checkpoint",
           "load_checkpoint", "prune_checkpoints", "remove_stale_temporaries"]

_TMP_PREFIX = ".tmp_checkpoint_"

_NAME = re.compile(r"^checkpoint_(\d+)\.pt$")


def checkpoint_path(directory: str, step: int) -> str:
    return os.path.join(directory, f"checkpoint_{step}.pt")


def list_checkpoints(directory: str) -> List[Tuple[int, str]]:
    """``(step, path)`` of every checkpoint in ``directory``, by step."""
    if not os.path.isdir(directory):
        return []
    found = []
    for name in os.listdir(directory):
        m = _NAME.match(name)
        if m:
            found.append((int(m.group(1)), os.path.join(directory, name)))
    return sorted(found)


def latest_checkpoint(directory: str) -> Optional[Tuple[int, str]]:
    found = list_checkpoints(directory)
    return found[-1] if found else None


def save_checkpoint(path: str, state: Dict) -> None:
    """Write ``state`` atomically (temporary file, fsync, rename)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=directory)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def remove_stale_temporaries(directory: str) -> List[str]:
    """Delete the temporary files a kill during :func:`save_checkpoint` left in ``directory``
    (call it before a run starts writing); returns their paths."""
    if not os.path.isdir(directory):
        return []
    stale = [os.path.join(directory, n) for n in os.listdir(directory) if n.startswith(_TMP_PREFIX)]
    for path in stale:
        os.remove(path)
    return stale


def load_checkpoint(path: str, map_location=None) -> Dict:
    """Load a checkpoint with ``weights_only=True``; a damaged file is a :class:`UsageError`."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        if isinstance(exc, RuntimeError) and "CUDA" in str(exc):
            raise UsageError(f"cannot load {path} onto {map_location}: {str(exc).splitlines()[0]}; "
                             "use --device cpu") from None
        raise UsageError(
            f"cannot read checkpoint {path}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}. "
            "It is damaged or not a scoresde checkpoint: move it out of the checkpoints folder "
            "(the previous one is then used) or start a new --workdir"
        ) from None
    if not isinstance(state, dict) or "model" not in state or "step" not in state:
        raise UsageError(f"{path} is not a scoresde training checkpoint (no model / step entries)")
    return state


def prune_checkpoints(directory: str, keep_last: int, keep_every: int = 0) -> None:
    """Delete old checkpoints, keeping the last ``keep_last`` and every ``keep_every`` multiple."""
    found = list_checkpoints(directory)
    for step, path in found[: max(len(found) - keep_last, 0)]:
        if keep_every > 0 and step % keep_every == 0:
            continue
        os.remove(path)
