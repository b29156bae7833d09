"""Controllable generation (Song et al. 2021, Sec. 5 and App. I).

Given a forward SDE and a score ``s(x, t) ~ grad log p_t(x)``, conditional samples of
``p_0(x | y)`` come from the *conditional reverse-time SDE* (Eq. 14)

    dx = [f(x, t) - g(t)^2 (grad log p_t(x) + grad log p_t(y | x))] dt + g(t) dw_bar,

so every sampler of :mod:`scoresde.sampling` draws conditional samples when it is given the
conditional score ``grad log p_t(x | y) = grad log p_t(x) + grad log p_t(y | x)``. This module
builds such scores and the two constrained samplers of the paper:

* :func:`classifier_guidance`: ``s(x, t) + w grad_x log p_t(y | x)`` with a *noise-conditional*
  classifier ``p_t(y | x)`` (class-conditional sampling, Sec. 5 and App. I.1; the scale ``w``
  of Dhariwal & Nichol 2021; ``w = 1`` is Eq. 14);
* :func:`classifier_free_guidance`: ``(1 + w) s(x, t, y) - w s(x, t)`` with one conditional
  score model trained with label dropout (Ho & Salimans 2022, Eq. 6); ``w = 0`` is
  conditional sampling;
* :func:`inpaint`: the known part of ``x`` is replaced by a draw from the forward kernel
  ``p_0t(x_t | data)`` after every predictor and corrector step (App. I.2), through the
  samplers' ``constraint`` hook; a deterministic variant does the same for the
  probability-flow ODE;
* :func:`colorize`: inpainting in the coordinates ``u = M x`` given by an orthogonal 3x3
  matrix ``M`` whose first row is ``(1, 1, 1) / sqrt(3)``, so that the gray image is the
  known first coordinate (App. I.3).

The replacement method is an approximation
-----------------------------------------
Write ``x = (k, u)`` (known, unknown). Exact conditional sampling needs
``grad_u log p_t(u | k_0 = data)``. The replacement method instead evaluates the joint score
``grad_u log p_t(u, k_t)`` at ``k_t ~ p_0t(k_t | data)``, drawn independently of the current
``u``. When ``u`` and ``k`` are independent the two agree and the method is exact; when they
are correlated, ``k_t`` is not the value of the known part that goes with ``u`` under the
joint diffusion, and the samples of ``u`` are biased (for a Gaussian the bias is measured in
``tests/test_guidance.py`` and ``docs/guidance.md``; it does not shrink with more steps). The
method needs no retraining, which is its appeal; on digits (notebook 04) its completions fit
the known half but are often of another class.
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Union

import torch

from .models.adapter import CondScoreFn
from .sampling import SAMPLERS, sample
from .sampling._common import noise_like
from .sde import SDE
from .types import Constraint, ScoreFn, Tensor
from .utils import append_dims, check_data

__all__ = [
    "LogProbFn",
    "classifier_guidance",
    "classifier_free_guidance",
    "inpaint",
    "colorize",
    "replacement_constraint",
    "COLOR_DECOUPLING",
    "INPAINT_ODE_METHODS",
    "make_mask",
    "MASKS",
]

LogProbFn = Callable[[Tensor, Tensor], Tensor]
"""``log_prob_fn(x, t) -> (B, C)``: class log-probabilities ``log p_t(y | x)`` of a
noise-conditional classifier."""

Labels = Union[int, Tensor]

#: ODE solvers with the ``constraint`` hook (from :data:`scoresde.sampling.SAMPLERS`), for
#: ``inpaint(..., pc=False, method=...)``.
INPAINT_ODE_METHODS = tuple(name for name, spec in SAMPLERS.items() if spec.ode and spec.constraint)


def _labels(y: Labels, x: Tensor) -> Tensor:
    """Class labels ``(B,)`` (long, on ``x``'s device) from an int or a ``(B,)`` tensor."""
    if isinstance(y, Tensor):
        if y.shape != (x.shape[0],) or y.is_floating_point():
            raise ValueError(
                f"y must be an int or an integer tensor of shape (B,) = ({x.shape[0]},); "
                f"got {y.dtype} of shape {tuple(y.shape)}"
            )
        return y.to(device=x.device, dtype=torch.long)
    if isinstance(y, bool) or not isinstance(y, int):
        raise ValueError(f"y must be an int or an integer tensor of shape (B,); got {type(y).__name__}")
    return torch.full((x.shape[0],), y, dtype=torch.long, device=x.device)


def _check_scale(scale: float) -> float:
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale):
        raise ValueError(f"scale must be a finite number (the guidance strength w); got {scale!r}")
    return float(scale)


# ---------------------------------------------------------------------------------------------
# Guided scores.
def classifier_guidance(score_fn: ScoreFn, log_prob_fn: LogProbFn, y: Labels, scale: float) -> ScoreFn:
    """Class-conditional score from an unconditional score and a noise-conditional classifier.

    ``guided(x, t) = score_fn(x, t) + scale * grad_x log p_t(y | x)``: with ``scale = 1`` and
    the exact ``p_t(y | x)`` this is the score of ``p_t(x | y)`` (Song et al. 2021, Eq. 14 and
    App. I.1); larger scales sharpen the class (Dhariwal & Nichol 2021, Sec. 4).

    The gradient is taken with autograd under ``torch.enable_grad()`` (the samplers run under
    ``no_grad``): one classifier forward and backward pass per score evaluation (none when
    ``scale == 0``).

    Args:
        score_fn: ``score_fn(x, t)``, the unconditional score.
        log_prob_fn: ``log_prob_fn(x, t) -> (B, C)`` log-probabilities of a noise-conditional
            classifier (e.g. :func:`scoresde.models.get_log_prob_fn` of a network, or
            :meth:`scoresde.toy.GaussianMixture.log_posterior`, the exact one).
        y: the class, an int or a ``(B,)`` integer tensor (one per example).
        scale: the guidance scale ``w``.
    Returns:
        ``guided(x, t)`` with the shape of ``x``.
    """
    scale = _check_scale(scale)
    if not isinstance(y, Tensor):
        _labels(y, torch.empty(0))  # validate an int label at once

    def guided(x: Tensor, t: Tensor) -> Tensor:
        score = score_fn(x, t)
        if scale == 0:
            return score
        labels = _labels(y, x)
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(True)
            log_probs = log_prob_fn(x_in, t)
            # Rows are independent, so the gradient of the sum is each row's own gradient.
            selected = log_probs.gather(1, labels[:, None]).sum()
            (grad,) = torch.autograd.grad(selected, x_in)
        return score + scale * grad.to(score.dtype)

    return guided


def classifier_free_guidance(cond_score_fn: CondScoreFn, y: Labels, scale: float) -> ScoreFn:
    """Classifier-free guidance (Ho & Salimans 2022, Eq. 6).

    ``guided(x, t) = (1 + scale) s(x, t, y) - scale s(x, t, None)``, where ``s(x, t, y)`` is a
    conditional score and ``s(x, t, None)`` the unconditional one, both from one network
    trained with label dropout (:func:`scoresde.get_cond_score_fn`). It is the score of
    ``p_t(x | y)^(1 + w) / p_t(x)^w``, i.e. ``grad log p_t(x | y) + w grad log p_t(y | x)``
    with the implicit classifier ``p_t(y | x) ~ p_t(x | y) / p_t(x)``. With ``scale = 0`` it
    is exactly ``s(x, t, y)`` (and the unconditional score is not evaluated).

    Args:
        cond_score_fn: ``cond_score_fn(x, t, y)``; ``y=None`` gives the unconditional score.
        y: the class, an int or a ``(B,)`` integer tensor.
        scale: the guidance scale ``w``.
    Returns:
        ``guided(x, t)`` with the shape of ``x``.
    """
    scale = _check_scale(scale)
    if not isinstance(y, Tensor):
        _labels(y, torch.empty(0))

    def guided(x: Tensor, t: Tensor) -> Tensor:
        cond = cond_score_fn(x, t, _labels(y, x))
        if scale == 0:
            return cond
        return (1 + scale) * cond - scale * cond_score_fn(x, t, None)

    return guided


# ---------------------------------------------------------------------------------------------
# Inpainting: the replacement method through the samplers' constraint hook.
def replacement_constraint(
    sde: SDE,
    data: Tensor,
    mask: Tensor,
    *,
    noise: Optional[Tensor] = None,
    generator: Optional[torch.Generator] = None,
) -> Constraint:
    """``constraint(x, t)`` replacing the known part of ``x`` by its perturbed value at ``t``.

    Where ``mask`` is true, ``x`` becomes ``alpha(t) data + sigma(t) z``, a draw from the
    forward kernel ``p_0t(x_t | data)`` (Song et al. 2021, App. I.2); elsewhere it is kept.

    Args:
        sde: the forward SDE (its ``marginal_coeffs``).
        data: ``(B, *D)``; only its known entries matter.
        mask: boolean ``(B, *D)``, true where ``data`` is known.
        noise: a fixed ``z`` like ``data`` (the deterministic probability-flow variant:
            the known part then follows ``alpha(t) data + sigma(t) z``, which is the
            probability-flow map of the point mass at ``data``). ``None``: a fresh ``z`` from
            ``generator`` at every call (the stochastic replacement of the PC sampler).
        generator: for the fresh noise.
    """

    def constraint(x: Tensor, t: Tensor) -> Tensor:
        alpha, sigma = sde.marginal_coeffs(t)
        z = noise if noise is not None else noise_like(x, generator)
        known = append_dims(alpha, x.ndim) * data + append_dims(sigma, x.ndim) * z
        return torch.where(mask, known, x)

    return constraint


def _check_sample_kwargs(sample_kwargs: dict, data: Tensor, pc: bool, method: str) -> None:
    """Refuse what inpainting sets itself; take ``dtype`` / ``device`` out of ``sample_kwargs``
    when they agree with ``data`` (the result has its dtype and device)."""
    for key in ("x_T", "constraint"):
        if key in sample_kwargs:
            raise ValueError(f"{key} is set by inpainting itself (from data and mask); do not pass {key}=")
    dtype = sample_kwargs.pop("dtype", None)
    if dtype is not None and dtype != data.dtype:
        raise ValueError(f"dtype={dtype} disagrees with the data ({data.dtype}), whose dtype the result "
                         f"has: pass the data as data.to({dtype}) instead")
    device = sample_kwargs.pop("device", None)
    if device is not None:
        try:
            wanted = torch.device(device)
        except (RuntimeError, TypeError):
            raise ValueError(f"device={device!r} is not a torch device") from None
        if wanted.type != data.device.type or wanted.index not in (None, data.device.index):
            raise ValueError(f"device={str(device)!r} disagrees with the data (on {data.device}), whose "
                             f"device the result has: pass the data as data.to({str(device)!r}) instead")
    if pc:
        predictor = sample_kwargs.get("predictor", "euler_maruyama")
        if predictor in ("torchsde", "adaptive"):
            raise ValueError(
                f"predictor={predictor!r} has no constraint hook; inpaint with a PC predictor "
                "('euler_maruyama', 'reverse_diffusion', 'ancestral') or pc=False"
            )
    elif method not in INPAINT_ODE_METHODS:
        raise ValueError(
            f"inpainting with the probability-flow ODE (pc=False) needs a fixed-step solver with "
            f"the constraint hook: method must be one of {', '.join(map(repr, INPAINT_ODE_METHODS))}; "
            f"got method={method!r}"
        )


def inpaint(
    score_fn: ScoreFn,
    sde: SDE,
    data: Tensor,
    mask: Tensor,
    *,
    pc: bool = True,
    method: str = "heun",
    generator: Optional[torch.Generator] = None,
    **sample_kwargs,
) -> Tensor:
    """Fill in the unknown part of ``data`` (Song et al. 2021, Sec. 5 and App. I.2).

    PC (``pc=True``): the sampler of :func:`scoresde.sample` with the known entries replaced
    by a fresh draw of ``p_0t(x_t | data) = N(alpha(t) data, sigma(t)^2 I)`` at the start and
    after every predictor and corrector step (the paper's Alg. of App. I.2).

    ODE (``pc=False``): a fixed-step probability-flow solver (``method`` in
    :data:`INPAINT_ODE_METHODS`, default Heun) whose known entries are set to
    ``alpha(t) data + sigma(t) z`` after every step, with one ``z`` drawn at the start: the
    deterministic counterpart, since ``t -> alpha(t) data + sigma(t) z`` is exactly the
    probability-flow trajectory of the known coordinates under their own (point-mass) data
    distribution. Given ``z`` and the prior draw the result is deterministic.

    Both are approximate when known and unknown entries are correlated (see the module
    docstring). The result equals ``data`` exactly where ``mask`` is 1.

    Args:
        score_fn: the unconditional score ``score_fn(x, t)``.
        sde: the forward SDE.
        data: ``(B, *D)`` floating point; the known values (any value where unknown).
        mask: the shape of ``data`` (or broadcastable to it), 1 / ``True`` where known,
            0 / ``False`` where to be generated.
        pc: predictor-corrector sampling (``True``) or the probability-flow ODE.
        method: ODE solver for ``pc=False``: ``"euler"``, ``"heun"`` or ``"ddim"``.
        generator: random numbers of the prior, the sampler and the replacement noise.
        **sample_kwargs: passed to :func:`scoresde.sample` (``predictor``, ``corrector``,
            ``snr``, ``n_corrector_steps``, ``steps``, ``eps``, ``denoise``, ``progress``, ...).
            ``dtype`` and ``device`` are accepted when they agree with ``data``.
    Returns:
        ``(B, *D)`` in the dtype and on the device of ``data``.
    Raises:
        ValueError: for a mask that is not 0/1 or does not match ``data``, an ODE method
            without the constraint hook, ``x_T`` or ``constraint`` (set here), a ``dtype`` or
            ``device`` other than ``data``'s, or the arguments :func:`scoresde.sample` rejects.
    """
    data = check_data("data", data, min_ndim=2)
    mask = _check_mask(mask, data)
    _check_sample_kwargs(sample_kwargs, data, pc, method)
    noise = None if pc else noise_like(data, generator)
    constraint = replacement_constraint(sde, data, mask, noise=noise, generator=generator)
    x = sample(score_fn, sde, data.shape, pc=pc, method=method, generator=generator,
               device=data.device, dtype=data.dtype, constraint=constraint, **sample_kwargs)
    # The output equals data exactly where known (for VE sigma(0) = sigma_min > 0).
    return torch.where(mask, data, x)


def _check_mask(mask: object, data: Tensor) -> Tensor:
    if not isinstance(mask, Tensor):
        raise ValueError(f"mask must be a tensor of the shape of data {tuple(data.shape)}; "
                         f"got {type(mask).__name__}")
    try:
        mask = mask.to(data.device).expand(data.shape)
    except RuntimeError:
        raise ValueError(f"mask must have the shape of data {tuple(data.shape)} (or broadcast "
                         f"to it); got {tuple(mask.shape)}") from None
    if mask.dtype != torch.bool:
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError("mask must hold 0 / 1 (or booleans): 1 where data is known")
        mask = mask == 1
    return mask


# ---------------------------------------------------------------------------------------------
# Colorization: inpainting of the color coordinates of an orthogonal decoupling.
_S2, _S3, _S6 = math.sqrt(2.0), math.sqrt(3.0), math.sqrt(6.0)

#: Orthogonal ``M`` (3x3): ``u = M x`` per pixel; ``u_0 = (r + g + b) / sqrt(3) = sqrt(3) gray``
#: and ``u_1``, ``u_2`` span the colors orthogonal to gray (App. I.3).
COLOR_DECOUPLING = torch.tensor(
    [
        [1 / _S3, 1 / _S3, 1 / _S3],
        [1 / _S2, -1 / _S2, 0.0],
        [1 / _S6, 1 / _S6, -2 / _S6],
    ],
    dtype=torch.float64,
)


def _apply_channels(matrix: Tensor, x: Tensor) -> Tensor:
    """``matrix @ x`` along the channel dim 1 of ``x`` ``(B, 3, *spatial)``."""
    m = matrix.to(device=x.device, dtype=x.dtype)
    return torch.einsum("ij,bj...->bi...", m, x)


def colorize(score_fn: ScoreFn, sde: SDE, gray: Tensor, **sample_kwargs) -> Tensor:
    """Color images whose channel mean is ``gray`` (Song et al. 2021, Sec. 5 and App. I.3).

    With the orthogonal :data:`COLOR_DECOUPLING` ``M``, ``u = M x`` has the known first
    channel ``u_0 = sqrt(3) gray``. The SDEs are isotropic, so ``u_t = M x_t`` diffuses with
    the same kernel, and by the orthogonal change of variables its score is
    ``M s(M^T u, t)``. Inpainting ``u`` with that score and mapping back, ``x = M^T u``, gives
    ``mean_c(x) = u_0 / sqrt(3) = gray`` (to float rounding).

    Args:
        score_fn: the unconditional score of RGB data ``(B, 3, *spatial)``.
        sde: the forward SDE.
        gray: ``(B, 1, H, W)`` (any spatial shape), the channel mean of the RGB image, in the
            model's data range.
        **sample_kwargs: as for :func:`inpaint` (``pc``, ``method``, ``generator``, ...);
            ``dtype`` and ``device`` are accepted when they agree with ``gray``.
    Returns:
        ``(B, 3, H, W)`` in the dtype and on the device of ``gray``.
    """
    gray = check_data("gray", gray, min_ndim=3)
    if gray.shape[1] != 1:
        raise ValueError(f"gray must have one channel, shape (B, 1, H, W); got {tuple(gray.shape)}")
    M = COLOR_DECOUPLING

    def decoupled_score(u: Tensor, t: Tensor) -> Tensor:
        return _apply_channels(M, score_fn(_apply_channels(M.T, u), t))

    shape = (gray.shape[0], 3) + tuple(gray.shape[2:])
    known = torch.zeros(shape, device=gray.device, dtype=gray.dtype)
    known[:, :1] = math.sqrt(3.0) * gray
    mask = torch.zeros(shape, device=gray.device, dtype=torch.bool)
    mask[:, :1] = True
    u = inpaint(decoupled_score, sde, known, mask, **sample_kwargs)
    return _apply_channels(M.T, u)


#: The regions :func:`make_mask` knows (``P`` in ``random:P``: the probability of a pixel to generate).
MASKS = ("right_half", "left_half", "center", "random:P")


def make_mask(spec: str, shape, generator: Optional[torch.Generator] = None) -> Tensor:
    """Boolean mask of the known pixels, ``(B, C, H, W)`` like ``shape``, for :func:`inpaint`;
    ``spec`` names the region to generate: ``right_half``, ``left_half``, ``center`` (the
    central half-size square) or ``random:P`` (each pixel, all channels together, with
    probability ``P``). Raises ``ValueError`` for another ``spec``."""
    B, C, H, W = shape
    unknown = torch.zeros(B, 1, H, W, dtype=torch.bool)
    if spec == "right_half":
        unknown[..., W // 2:] = True
    elif spec == "left_half":
        unknown[..., : W // 2] = True
    elif spec == "center":
        unknown[..., H // 4: H - H // 4, W // 4: W - W // 4] = True
    elif spec.startswith("random:"):
        try:
            p = float(spec[len("random:"):])
        except ValueError:
            p = -1.0
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"mask {spec}: P in random:P must be a number in [0, 1], e.g. random:0.5")
        unknown = torch.rand(B, 1, H, W, generator=generator) < p
    else:
        raise ValueError(f"unknown mask {spec!r}; valid: {', '.join(MASKS)}")
    return (~unknown).expand(B, C, H, W)
