"""Export a trained run to one safetensors file (EMA weights + config), and load it back.

    python -m scoresde.export --workdir runs/vp_digits --out model.safetensors

The file holds the network's state dict with the EMA weights and, in its metadata, the run's
config as JSON (``"scoresde.config"``) and training step (``"scoresde.step"``). It is written
in the safetensors format (an 8-byte little-endian header length, a JSON header giving each
tensor's dtype, shape and byte range, then the raw bytes) without the ``safetensors`` package,
which reads it as well; :func:`load_exported` rebuilds the network and SDE from it.
"""
from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import tempfile
from typing import Dict, Optional, Tuple

import ml_collections
import torch

from .config import UsageError, to_json
from .sde import SDE

__all__ = ["save_safetensors", "load_safetensors", "export_run", "load_exported", "cli"]

_DTYPES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}
_TORCH_DTYPES = {name: dtype for dtype, name in _DTYPES.items()}


def save_safetensors(tensors: Dict[str, torch.Tensor], path: str,
                     metadata: Optional[Dict[str, str]] = None) -> str:
    """Write ``tensors`` (any shapes; float, bfloat16, int, uint8 or bool) and the string
    ``metadata`` to a safetensors file; the file appears whole or not at all. Returns ``path``."""
    header: Dict[str, object] = {"__metadata__": dict(metadata or {})}
    chunks, offset = [], 0
    for name, tensor in tensors.items():
        if tensor.dtype not in _DTYPES:
            raise ValueError(f"tensor {name!r} has dtype {tensor.dtype}; "
                             f"safetensors takes {sorted(_DTYPES.values())}")
        data = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        header[name] = {"dtype": _DTYPES[tensor.dtype], "shape": list(tensor.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # the data starts 8-byte aligned
    folder = os.path.dirname(os.path.abspath(path))
    with tempfile.NamedTemporaryFile(dir=folder, suffix=".part", delete=False) as f:
        f.write(struct.pack("<Q", len(encoded)) + encoded)
        for data in chunks:
            f.write(data)
    os.replace(f.name, path)
    return path


def load_safetensors(path: str) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    """The tensors and the metadata of a safetensors file."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        (length,) = struct.unpack("<Q", raw[:8])
        header = json.loads(raw[8 : 8 + length])
        metadata = header.pop("__metadata__", {}) or {}
        data = memoryview(raw)[8 + length :]
        tensors = {}
        for name, entry in header.items():
            dtype, (start, end) = _TORCH_DTYPES[entry["dtype"]], entry["data_offsets"]
            if end > start:
                tensors[name] = torch.frombuffer(bytearray(data[start:end]), dtype=dtype).reshape(entry["shape"])
            else:
                tensors[name] = torch.empty(entry["shape"], dtype=dtype)
    except (struct.error, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise ValueError(f"{path} is not a safetensors file ({exc})") from None
    return tensors, metadata


def export_run(workdir: str, out: str, *, checkpoint: Optional[str] = None) -> str:
    """Write the EMA weights and config of the run in ``workdir`` (its latest checkpoint, or
    ``checkpoint``) to the safetensors file ``out``; returns ``out``.

    Raises:
        UsageError: ``workdir`` is not a training run, or its checkpoint does not load.
    """
    from .train import load_run

    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise UsageError(f"the folder of --out ({folder}) does not exist: create it first")
    config, model, _, step = load_run(workdir, checkpoint=checkpoint, ema=True, device="cpu")
    metadata = {"format": "pt", "scoresde.config": to_json(config), "scoresde.step": str(step)}
    return save_safetensors(model.state_dict(), out, metadata)


def load_exported(path: str, *, device: Optional[str] = None
                  ) -> Tuple[ml_collections.ConfigDict, torch.nn.Module, SDE]:
    """The config, network (in eval mode, on ``device``, default CPU) and SDE of a file written
    by :func:`export_run`; ``scoresde.get_score_fn(model, sde)`` then gives its score.

    Raises:
        ValueError: the file is not a safetensors file written by :func:`export_run`.
    """
    from .train import make_model, make_sde

    tensors, metadata = load_safetensors(path)
    if "scoresde.config" not in metadata:
        raise ValueError(f"{path} has no scoresde config in its metadata: "
                         "write it with python -m scoresde.export")
    config = ml_collections.ConfigDict(json.loads(metadata["scoresde.config"]))
    model = make_model(config)
    model.load_state_dict(tensors)
    return config, model.to(device or "cpu").eval(), make_sde(config)


def cli(argv=None) -> int:
    """``python -m scoresde.export``; returns the exit status (2 for usage errors)."""
    parser = argparse.ArgumentParser(prog="python -m scoresde.export", description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", required=True,
                        help="training run to export (its config.json and checkpoints/)")
    parser.add_argument("--out", required=True, help="safetensors file to write (e.g. model.safetensors)")
    parser.add_argument("--checkpoint", help="checkpoint file to export (default: the run's latest)")
    args = parser.parse_args(argv)
    try:
        export_run(args.workdir, args.out, checkpoint=args.checkpoint)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(cli())
