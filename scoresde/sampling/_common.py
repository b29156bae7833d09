"""Pieces shared by the samplers: argument checks, devices, noise, a score counter, the
set-up and finishing steps, and the per-step report (progress bar and ``callback``)."""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple

import torch

from ..sde import SDE
from ..types import Device, ScoreFn, Shape, Tensor

#: ``callback(i, t, x, x0_hat)`` after step ``i`` (from 0): the time ``t`` reached, the state
#: ``x`` ``(B, *D)`` there and Tweedie's estimate ``x0_hat = (x' + sigma^2 score) / alpha`` of the
#: clean data from the sampler's latest score evaluation (at ``x'``, time ``t'``).
StepCallback = Callable[[int, float, Tensor, Tensor], None]


class CountingScore:
    """Wraps a score function, counts its evaluations (the NFE) and keeps the latest one."""

    def __init__(self, score_fn: ScoreFn) -> None:
        self.score_fn = score_fn
        self.nfe = 0
        self.last: Optional[Tuple[Tensor, Tensor, Tensor]] = None

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        self.nfe += 1
        score = self.score_fn(x, t)
        self.last = (x, t, score)
        return score

    def x0_hat(self, sde: SDE) -> Tensor:
        """Tweedie's estimate ``(x + sigma_t^2 score) / alpha_t`` at the latest evaluation."""
        assert self.last is not None, "x0_hat before any score evaluation"
        x, t, score = self.last
        alpha, sigma = sde.marginal_coeffs(t)
        shape = (-1,) + (1,) * (x.ndim - 1)
        return (x + sigma.reshape(shape) ** 2 * score) / alpha.reshape(shape)


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


class StepReport:
    """The end of each sampler step: the progress bar and the user's ``callback``."""

    def __init__(self, counted: CountingScore, sde: SDE, total: Optional[int], progress: bool, desc: str,
                 callback: Optional[StepCallback]) -> None:
        self.counted, self.sde, self.callback = counted, sde, callback
        self.bar = progress_bar(total, progress, desc)

    def __call__(self, i: int, t: float, x: Tensor) -> None:
        self.bar.update()
        self.bar.set_postfix(t=f"{t:.4f}", nfe=self.counted.nfe)
        if self.callback is not None:
            self.callback(i, t, x, self.counted.x0_hat(self.sde))

    def close(self) -> None:
        self.bar.close()


def denoise_step(score_fn: ScoreFn, sde: SDE, x: Tensor, eps: float) -> Tensor:
    """Noise-free step from ``t = eps`` to ``0``: the posterior mean ``(x + v s) / m``."""
    t = full_time(eps, x)
    x_mean, _ = sde.ancestral_step(x, t, score_fn(x, t), dt=eps)
    return x_mean


def finish(counted: CountingScore, sde: SDE, x: Tensor, eps: float, denoise: bool) -> Tuple[Tensor, int]:
    """The shared end of the samplers that stop at ``eps``: :func:`denoise_step` if asked
    (one NFE); returns the samples and the NFE."""
    if denoise:
        x = denoise_step(counted, sde, x, eps)
    return x, counted.nfe


def check_timesteps(sde: SDE, timesteps, steps: Optional[int]) -> List[float]:
    """A user's time grid as host floats: strictly decreasing, in ``(0, T]``, at least two
    times, and ``len(timesteps) - 1 == steps`` if ``steps`` is given (``steps`` here counts
    intervals)."""
    grid = [float(t) for t in (timesteps.tolist() if isinstance(timesteps, torch.Tensor) else timesteps)]
    if len(grid) < 2 or any(not b < a for a, b in zip(grid, grid[1:])) or not 0 < grid[-1] or grid[0] > sde.T:
        raise ValueError(f"timesteps must be at least two strictly decreasing times in (0, T] = (0, {sde.T}]; "
                         f"got {grid}")
    if steps is not None and steps != len(grid) - 1:
        raise ValueError(f"steps disagrees with the {len(grid)} timesteps: pass only one of them")
    return grid


def start(
    score_fn: ScoreFn,
    sde: SDE,
    shape: Shape,
    steps: Optional[int],
    eps: float,
    x_T: Optional[Tensor],
    generator: Optional[torch.Generator],
    device: Device,
    dtype: Optional[torch.dtype],
    *,
    timesteps=None,
    default_steps: Optional[int] = None,
    grid_points: int = 1,
) -> Tuple[CountingScore, Tensor, int, float, Optional[List[float]]]:
    """The shared set-up of a sampler: checks the arguments, wraps the score in a counter and
    draws (or copies) ``x_T``. ``timesteps``, if given, is the sampler's whole time grid of
    ``steps + grid_points`` times (``steps`` and ``eps`` then follow from it). Returns the
    counter, the state, ``steps``, ``eps`` and the grid (``None`` without ``timesteps``)."""
    grid = None
    if timesteps is not None:
        grid = check_timesteps(sde, timesteps, None if steps is None else steps + grid_points - 1)
        steps, eps = len(grid) - grid_points, grid[-1]
    elif steps is None:
        steps = default_steps
    shape, steps = check_sampler_args(sde, shape, steps, eps, x_T)
    counted = CountingScore(score_fn)
    return counted, init_state(sde, shape, x_T, generator, device, dtype), steps, eps, grid


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
