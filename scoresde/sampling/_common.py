"""Pieces shared by the samplers: argument checks, devices, noise and a score counter."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch

from ..sde import SDE
from ..types import Device, ScoreFn, Shape, Tensor


class CountingScore:
    """Wraps a score function and counts its evaluations (the NFE)."""

    def __init__(self, score_fn: ScoreFn) -> None:
        self.score_fn = score_fn
        self.nfe = 0

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        self.nfe += 1
        return self.score_fn(x, t)


class SampleGenerators:
    """One ``torch.Generator`` per sample, passed as a sampler's ``generator``: row ``i`` of every
    :func:`noise_like` draw comes from generator ``i``, so a sample's noise does not depend on
    the other samples of its batch (``scoresde.sample`` seeds generator ``i`` from ``--seed``
    and the sample's index). The samplers that draw their noise with :func:`noise_like` (PC,
    DDIM, EDM, adaptive SDE) take it; give them ``x_T`` too (the prior is not drawn from it)."""

    def __init__(self, generators: Sequence[torch.Generator]) -> None:
        self.generators = list(generators)
        self.device = self.generators[0].device

    def randn(self, shape: Sequence[int], device: torch.device, dtype: torch.dtype) -> Tensor:
        """Noise ``(B, *D)``, row ``i`` from generator ``i`` (``B`` = the number of generators)."""
        if shape[0] != len(self.generators):
            raise ValueError(f"{len(self.generators)} generators cannot draw a batch of {shape[0]}")
        return torch.stack([torch.randn(tuple(shape[1:]), generator=g, device=device, dtype=dtype)
                            for g in self.generators])


def noise_like(x: Tensor, generator: Optional[torch.Generator]) -> Tensor:
    """Standard normal noise with the shape, device and dtype of ``x`` (from one generator, or
    row by row from :class:`SampleGenerators`)."""
    if isinstance(generator, SampleGenerators):
        return generator.randn(x.shape, x.device, x.dtype)
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def full_time(t: float, x: Tensor) -> Tensor:
    """The time ``t`` as a ``(B,)`` tensor on ``x``'s device and dtype (no host sync)."""
    return torch.full((x.shape[0],), t, device=x.device, dtype=x.dtype)


def resolve_device_dtype(
    x_T: Optional[Tensor],
    generator: Optional[torch.Generator],
    device: Device,
    dtype: Optional[torch.dtype],
) -> Tuple[torch.device, torch.dtype]:
    if device is None:
        device = x_T.device if x_T is not None else (generator.device if generator is not None else "cpu")
    if dtype is None:
        dtype = x_T.dtype if x_T is not None and x_T.is_floating_point() else torch.float32
    return torch.device(device), dtype


def init_state(
    sde: SDE,
    shape: Shape,
    x_T: Optional[Tensor],
    generator: Optional[torch.Generator],
    device: Device,
    dtype: Optional[torch.dtype],
) -> Tensor:
    """The starting point: ``x_T`` (copied to the device/dtype) or a draw from the prior."""
    device, dtype = resolve_device_dtype(x_T, generator, device, dtype)
    if x_T is not None:
        return x_T.to(device=device, dtype=dtype).clone()
    return sde.prior_sampling(shape, generator=generator, device=device, dtype=dtype)


def check_sampler_args(
    sde: SDE, shape: Shape, steps: Optional[int], eps: float, x_T: Optional[Tensor], min_steps: int = 1
) -> Tuple[Tuple[int, ...], int]:
    """Validate the arguments every sampler shares; return the shape and the step count."""
    try:
        shape = tuple(int(d) for d in shape)
    except TypeError:
        raise ValueError(f"shape must be a tuple of ints (B, *D); got {shape!r}") from None
    if len(shape) < 2 or any(d < 1 for d in shape):
        raise ValueError(f"shape must be (B, *D) with positive sizes and at least 2 dims; got {shape}")
    steps = sde.N if steps is None else steps
    if not isinstance(steps, int) or steps < min_steps:
        raise ValueError(f"steps must be an integer >= {min_steps}; got {steps!r}")
    if not 0 < eps < sde.T:
        raise ValueError(f"eps must lie in (0, T) = (0, {sde.T}); got {eps}")
    if x_T is not None:
        if not isinstance(x_T, torch.Tensor) or tuple(x_T.shape) != shape:
            got = tuple(x_T.shape) if isinstance(x_T, torch.Tensor) else type(x_T).__name__
            raise ValueError(f"x_T must be a tensor of the sampling shape {shape}; got {got}")
    return shape, steps


def progress_bar(total: Optional[int], enabled: bool, desc: str):
    """A tqdm bar (or a no-op stand-in when disabled)."""
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False)


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, *args, **kwargs) -> None:
        pass

    def close(self) -> None:
        pass


def flat_batch(x: Tensor) -> Tensor:
    return x.reshape(x.shape[0], -1)


def restore(x: Tensor, shape: Sequence[int]) -> Tensor:
    return x.reshape(tuple(shape))
