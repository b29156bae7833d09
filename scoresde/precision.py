"""The fast path of the training step: memory format, fused Adam, ``torch.compile``, bf16.

Each piece keeps the step's mathematics; only bf16 changes its rounding:

* :func:`to_channels_last` stores 4-D weights and images as NHWC, the layout oneDNN (CPU) and
  cuDNN run convolutions in without reordering (same values, another memory layout).
* :func:`adam_options` asks for torch's fused Adam kernel (one pass over the parameters
  instead of a dozen per-tensor operations); the update is Adam's, the same formula.
* :func:`clip_grad_norm_` is ``torch.nn.utils.clip_grad_norm_`` (the L2 norm over all
  gradients), with each gradient's squared norm taken as one BLAS dot product, faster on the
  CPU than torch's per-tensor norm kernel (``benchmarks/train.py --kernels``); the same norm
  to float32 rounding.
* :func:`compile_model` is ``torch.compile`` (optional: it compiles for minutes before the
  first step, so it pays off only on long runs).
* :func:`autocast` runs the network's forward pass in bfloat16 where the hardware computes it
  natively (CUDA GPUs with bf16; CPUs with AVX512-BF16 or AMX). Only the network: weights,
  gradients, Adam, the EMA and the loss stay in float32, so the loss is reduced in float32
  (:func:`check_bf16` says in one line when the hardware lacks bf16).
"""
from __future__ import annotations

import contextlib
from typing import Callable, ContextManager, Dict, Iterable, Optional

import torch
from torch import nn

__all__ = ["bf16_unsupported", "check_bf16", "autocast", "adam_options", "to_channels_last", "clip_grad_norm_",
           "compile_model"]


def bf16_unsupported(device: torch.device) -> Optional[str]:
    """Why ``device`` cannot run bf16 natively, or ``None`` when it can."""
    if device.type == "cuda":
        return None if torch.cuda.is_bf16_supported(including_emulation=False) else (
            f"the GPU {torch.cuda.get_device_name(device)} has no bf16 arithmetic")
    if device.type == "cpu":
        # Private probes of torch.cpu; absent in older torch (then: no support known).
        native = [getattr(torch.cpu, name, lambda: False)() for name in
                  ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
        return None if any(native) else (
            "this CPU has neither AVX512-BF16 nor AMX (bf16 would be emulated, slower than float32)")
    return f"bf16 autocast is not supported on device type {device.type!r}"


def check_bf16(device: torch.device) -> None:
    """Raise ``ValueError`` (one line) when ``device`` lacks native bf16."""
    reason = bf16_unsupported(device)
    if reason is not None:
        raise ValueError(f"bf16 needs native hardware support: {reason}; run without bf16")


def autocast(device: torch.device, enabled: bool) -> ContextManager:
    """bf16 autocast of the network's forward pass on ``device`` (a no-op when not ``enabled``).

    Convolutions, matrix products and attention run in bf16; normalisations and reductions
    stay in float32 (torch's autocast policy). Checks the hardware first (:func:`check_bf16`).
    """
    if not enabled:
        return contextlib.nullcontext()
    check_bf16(device)
    return torch.autocast(device.type, dtype=torch.bfloat16)


def adam_options(device: torch.device) -> Dict[str, bool]:
    """Keyword arguments of ``torch.optim.Adam`` for its fastest exact implementation on ``device``.

    ``fused=True`` where torch has a fused kernel (CPU and CUDA), else ``{}`` (torch's default).
    """
    from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

    return {"fused": True} if device.type in _get_fused_kernels_supported_devices() else {}


def to_channels_last(model: nn.Module) -> nn.Module:
    """``model`` with its 4-D weights in channels_last (NHWC) layout, in place; returns it."""
    return model.to(memory_format=torch.channels_last)


def clip_grad_norm_(parameters: Iterable[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Scale the gradients in place so that their joint L2 norm is at most ``max_norm``.

    What ``torch.nn.utils.clip_grad_norm_(parameters, max_norm)`` does (factor
    ``min(1, max_norm / (norm + 1e-6))``, no host synchronisation), with each gradient's
    squared norm computed as a dot product of its memory with itself. Returns the norm before
    clipping (a 0-d tensor; non-finite when a gradient is).
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    norm = torch.stack([torch.dot(_flat(g), _flat(g)).float() for g in grads]).sum().sqrt()
    factor = (max_norm / (norm + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(factor)
    return norm


def _flat(x: torch.Tensor) -> torch.Tensor:
    """The elements of ``x`` as a 1-D tensor: a view of its memory when it is one dense block
    (contiguous or channels_last, as gradients are), else a copy."""
    if x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last):
        return x.as_strided((x.numel(),), (1,), x.storage_offset())
    return x.reshape(-1)


def compile_model(model: nn.Module) -> Callable:
    """``torch.compile(model)``: the same module, run by TorchInductor's generated kernels.

    The returned module shares ``model``'s parameters (train, save and average ``model``).
    """
    return torch.compile(model)
