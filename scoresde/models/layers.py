"""Building blocks of the score networks: time embeddings, FIR resampling, residual and
attention blocks.

References:
    Ho et al. (2020), "Denoising Diffusion Probabilistic Models", App. B (the DDPM U-Net:
    residual blocks with a projected sinusoidal time embedding, self-attention at 16x16).
    Song et al. (2021), "Score-Based Generative Modeling through SDEs", App. H.1 (NCSN++ /
    DDPM++: BigGAN-type residual blocks, FIR up/down-sampling, skip rescaling by 1/sqrt(2),
    Gaussian Fourier time features, progressive growing of inputs and outputs).
    Karras et al. (2020), "Analyzing and Improving the Image Quality of StyleGAN" (the FIR
    resampling ``upfirdn2d``), and Tancik et al. (2020) for random Fourier features.

Every block here works on images ``(B, C, H, W)`` of any size and in either memory format
(``torch.contiguous_format`` or ``torch.channels_last``); nothing is compiled.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..types import Tensor
from ..utils import append_dims, check_choice

__all__ = [
    "ACTIVATIONS",
    "variance_scaling_",
    "conv3x3",
    "conv1x1",
    "dense",
    "group_norm",
    "norm_act",
    "Dropout",
    "sinusoidal_embedding",
    "GaussianFourierProjection",
    "make_fir_kernel",
    "upfirdn2d",
    "upsample_2d",
    "downsample_2d",
    "upsample_conv_2d",
    "conv_downsample_2d",
    "Upsample",
    "Downsample",
    "ResnetBlockBigGAN",
    "ResnetBlockDDPM",
    "AttnBlock",
    "Combine",
]

#: Nonlinearities by the names score_sde's configs use (``model.nonlinearity``).
ACTIVATIONS: Dict[str, Callable[[Tensor], Tensor]] = {
    "swish": F.silu,
    "relu": F.relu,
    "elu": F.elu,
    "lrelu": lambda x: F.leaky_relu(x, 0.2),
}

_SQRT_HALF = 1.0 / math.sqrt(2.0)


# ---------------------------------------------------------------------------------------------
# Initialisation and plain layers.
@torch.no_grad()
def variance_scaling_(weight: Tensor, scale: float = 1.0) -> Tensor:
    """DDPM's initialisation, in place: uniform with variance ``scale / fan_avg``.

    ``fan_avg = (fan_in + fan_out) / 2`` with the receptive field included, as in
    ``tf.variance_scaling_initializer(scale, mode="fan_avg", distribution="uniform")``.
    ``scale=0`` becomes ``1e-10`` (an almost-zero layer that still passes gradients).
    """
    scale = 1e-10 if scale == 0 else scale
    receptive = weight[0, 0].numel() if weight.ndim > 2 else 1
    fan_avg = 0.5 * (weight.shape[0] + weight.shape[1]) * receptive
    bound = math.sqrt(3.0 * scale / fan_avg)
    return weight.uniform_(-bound, bound)


def conv3x3(
    in_ch: int, out_ch: int, *, stride: int = 1, padding: int = 1, init_scale: float = 1.0
) -> nn.Conv2d:
    """3x3 convolution with DDPM initialisation and a zero bias."""
    conv = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=padding)
    variance_scaling_(conv.weight, init_scale)
    nn.init.zeros_(conv.bias)
    return conv


def conv1x1(in_ch: int, out_ch: int, *, init_scale: float = 1.0) -> nn.Conv2d:
    """1x1 convolution (score_sde's ``NIN`` / ``conv1x1``) with DDPM initialisation."""
    conv = nn.Conv2d(in_ch, out_ch, 1)
    variance_scaling_(conv.weight, init_scale)
    nn.init.zeros_(conv.bias)
    return conv


def dense(in_features: int, out_features: int, *, init_scale: float = 1.0) -> nn.Linear:
    """Linear layer with DDPM initialisation and a zero bias."""
    layer = nn.Linear(in_features, out_features)
    variance_scaling_(layer.weight, init_scale)
    nn.init.zeros_(layer.bias)
    return layer


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with ``min(channels // 4, 32)`` groups and ``eps=1e-6``, as in NCSN++."""
    return nn.GroupNorm(min(channels // 4, 32), channels, eps=1e-6)


class _GroupNormAct(torch.autograd.Function):
    """``act(group_norm(x))`` that keeps only ``x`` (and the group statistics) for the backward
    pass, where the normalised tensor is recomputed. See :func:`norm_act`."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Optional[Tensor], bias: Optional[Tensor], groups: int, eps: float,
                act: Callable[[Tensor], Tensor]) -> Tensor:
        N, C, HxW = x.shape[0], x.shape[1], math.prod(x.shape[2:])
        y, mean, rstd = torch.ops.aten.native_group_norm(x, weight, bias, N, C, HxW, groups, eps)
        ctx.save_for_backward(x, weight, bias, mean, rstd)
        ctx.groups, ctx.eps, ctx.act = groups, eps, act
        return act(y)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        x, weight, bias, mean, rstd = ctx.saved_tensors
        N, C, HxW = x.shape[0], x.shape[1], math.prod(x.shape[2:])
        # Recompute y = group_norm(x) (the forward's own kernel: the same values), then
        # back through the activation (SiLU by its derivative kernel, others by autograd).
        y = torch.ops.aten.native_group_norm(x, weight, bias, N, C, HxW, ctx.groups, ctx.eps)[0]
        if ctx.act is F.silu:
            grad_y = torch.ops.aten.silu_backward(grad, y)
        else:
            with torch.enable_grad():
                y.requires_grad_(True)
                (grad_y,) = torch.autograd.grad(ctx.act(y), y, grad)
        # torch's CPU GroupNorm backward is 2-3x slower in bf16 than in float32 on channels_last
        # inputs (upcasting included): on the CPU, 16-bit inputs go through the float32
        # kernel (the gradients agree to 16-bit rounding).
        dtype = x.dtype
        if x.device.type == "cpu" and dtype in (torch.bfloat16, torch.float16):
            x, grad_y = x.float(), grad_y.float()
        # The kernel reads both in one memory format (as torch's own GroupNorm backward does).
        fmt = torch.channels_last if x.ndim == 4 and not x.is_contiguous() and x.is_contiguous(
            memory_format=torch.channels_last) else torch.contiguous_format
        x, grad_y = x.contiguous(memory_format=fmt), grad_y.contiguous(memory_format=fmt)
        dx, dw, db = torch.ops.aten.native_group_norm_backward(
            grad_y, x, mean, rstd, weight, N, C, HxW, ctx.groups, list(ctx.needs_input_grad[:3]))
        return (None if dx is None else dx.to(dtype)), dw, db, None, None, None


def norm_act(norm: nn.GroupNorm, act: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """``act(norm(x))`` for a GroupNorm ``norm``, keeping only ``x`` for the backward pass.

    Under autograd the normalised tensor (the activation's input) is recomputed in the
    backward pass instead of being stored: one GroupNorm forward more per layer, one feature
    map less in memory (about a third of a residual block's activation memory). The values
    are those of ``act(norm(x))``, in ``x``'s dtype (bf16 under bf16 autocast, where the
    statistics are still accumulated in float32). Not twice differentiable. Under
    ``torch.compile`` it is ``act(norm(x))``, left to the compiler.

    Args:
        norm: the GroupNorm layer (with or without affine parameters).
        act: an elementwise nonlinearity, e.g. ``F.silu``.
        x: ``(B, C, ...)``.
    """
    weight, bias = norm.weight, norm.bias
    needs_grad = x.requires_grad or (weight is not None and weight.requires_grad)
    # Under torch.compile, TorchInductor fuses the two and decides itself what to recompute.
    if torch.is_grad_enabled() and needs_grad and not torch.compiler.is_compiling():
        return _GroupNormAct.apply(x, weight, bias, norm.num_groups, norm.eps, act)
    return act(norm(x))


class Dropout(nn.Dropout):
    """``nn.Dropout`` with a faster mask on the CPU, the same distribution.

    torch's CPU dropout multiplies by a noise tensor, 0 or ``1 / (1 - p)``, drawn with
    ``bernoulli_`` at about 6 ns per element. Here each element gets 32 bits from ``random_``
    instead, and is dropped when they fall below ``p * 2**32``: the drop rate is ``p`` to
    within ``2**-32``, the output is ``x * noise`` with the same noise values in ``x``'s dtype,
    saved for the backward pass as torch does, in about half the time forward and backward
    (``benchmarks/train.py --kernels``). Elsewhere (CUDA, or under ``torch.compile``, which
    generates its own mask) it is ``nn.Dropout``.
    """

    def forward(self, x: Tensor) -> Tensor:
        if (not self.training or self.p in (0, 1) or self.inplace or x.device.type != "cpu"
                or torch.compiler.is_compiling()):
            return super().forward(x)
        n = x.numel()
        bits = torch.empty((n + 1) // 2, dtype=torch.int64).random_(-2**63, None).view(torch.int32)[:n]
        # The noise in x's memory layout: empty_like keeps a dense layout (else makes one), so
        # its memory is one block, filled in memory order with 1 (kept) or 0 (dropped).
        noise = torch.empty_like(x)
        torch.ge(bits, round(self.p * 2**32) - 2**31, out=noise.as_strided((n,), (1,)))
        return x * noise.div_(1 - self.p)


# ---------------------------------------------------------------------------------------------
# Time embeddings.
def sinusoidal_embedding(t: Tensor, dim: int, max_positions: float = 10000.0) -> Tensor:
    """Transformer-style positional embedding of a time label (Ho et al. 2020, App. B).

    ``emb[:, j] = sin(t w_j)`` and ``emb[:, half + j] = cos(t w_j)`` for ``j < half = dim // 2``
    with ``w_j = max_positions ** (-j / (half - 1))``; an odd ``dim`` gets one zero column.

    Args:
        t: time labels ``(B,)`` (any real numbers; DDPM uses step indices ``0..999``).
        dim: embedding size.
    Returns:
        ``(B, dim)`` in the floating dtype of ``t`` (float32 for integer labels).
    """
    half = dim // 2
    dtype = t.dtype if t.is_floating_point() else torch.get_default_dtype()
    freqs = torch.exp(
        torch.arange(half, device=t.device, dtype=dtype) * (-math.log(max_positions) / (half - 1))
    )
    args = t.to(dtype)[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    return F.pad(emb, (0, 1)) if dim % 2 == 1 else emb


class GaussianFourierProjection(nn.Module):
    """Random Fourier features of a scalar (Song et al. 2021, App. H.1; Tancik et al. 2020).

    ``emb = [sin(2 pi t W), cos(2 pi t W)]`` with fixed frequencies ``W ~ N(0, scale^2)``.
    ``W`` is a frozen parameter (``requires_grad=False``), as in score_sde, so it is saved in
    the state dict, counted among the parameters, and ignored by optimisers and the EMA.

    Args:
        embedding_size: number of frequencies; the output has ``2 * embedding_size`` features.
        scale: standard deviation of the frequencies (16 for score_sde's CIFAR-10 configs).
    """

    def __init__(self, embedding_size: int = 256, scale: float = 1.0) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.randn(embedding_size) * scale, requires_grad=False)

    def forward(self, t: Tensor) -> Tensor:
        """``t`` ``(B,)`` -> ``(B, 2 * embedding_size)``."""
        # The operation order of score_sde (float32 rounding of arguments in the hundreds).
        proj = t[:, None] * self.W[None, :] * 2 * math.pi
        return torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)


# ---------------------------------------------------------------------------------------------
# FIR resampling (StyleGAN2's upfirdn2d), with plain convolutions.
def make_fir_kernel(k: Sequence[float], gain: float = 1.0) -> Tensor:
    """2-D FIR kernel from a 1-D (separable) or 2-D list, normalised to sum to ``gain``.

    Returns a float64 tensor; callers cast it to the data's dtype and device.
    """
    kernel = torch.as_tensor(k, dtype=torch.float64)
    if kernel.ndim == 1:
        kernel = torch.outer(kernel, kernel)
    if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1]:
        raise ValueError(f"FIR kernel must be 1-D or square 2-D; got shape {tuple(kernel.shape)}")
    return kernel * (gain / kernel.sum())


def _depthwise(kernel: Tensor, x: Tensor) -> Tensor:
    """The 2-D kernel as a depthwise convolution weight ``(C, 1, kh, kw)`` for ``x``."""
    kernel = kernel.to(device=x.device, dtype=x.dtype)
    return kernel[None, None].expand(x.shape[1], 1, *kernel.shape)


def upfirdn2d(
    x: Tensor, kernel: Tensor, up: int = 1, down: int = 1, pad: Tuple[int, int] = (0, 0)
) -> Tensor:
    """Upsample by zero insertion, pad, FIR-filter and downsample, per channel.

    The definition of StyleGAN2's ``upfirdn2d`` with the same padding on both spatial axes:
    insert ``up - 1`` zeros after every pixel, pad ``pad[0]`` before and ``pad[1]`` after
    (negative values crop), convolve with ``kernel`` (a true convolution: the kernel is
    flipped), and keep every ``down``-th output. Output size
    ``(H up + pad[0] + pad[1] - kh) // down + 1``. This is the general reference path; the
    resampling functions below use cheaper equivalent convolutions where they can.

    Args:
        x: ``(B, C, H, W)``.
        kernel: ``(kh, kw)`` FIR kernel (not normalised here).
    """
    B, C, H, W = x.shape
    if up > 1:
        x = rearrange(x, "b c h w -> b c h 1 w 1")
        x = F.pad(x, (0, up - 1, 0, 0, 0, up - 1))
        x = rearrange(x, "b c h u w v -> b c (h u) (w v)")
    x = F.pad(x, (pad[0], pad[1], pad[0], pad[1]))
    return F.conv2d(x, _depthwise(kernel.flip(0, 1), x), stride=down, groups=C)


def _check_factor(kernel: Tensor, factor: int) -> None:
    if factor < 1 or kernel.shape[0] < factor:
        raise ValueError(f"need 1 <= factor <= kernel size; got factor={factor}")


def upsample_2d(x: Tensor, kernel: Tensor, factor: int = 2) -> Tensor:
    """Upsample ``(B, C, H, W)`` by ``factor`` with a normalised FIR ``kernel``.

    Equals ``upfirdn2d(x, kernel * factor**2, up=factor, pad=((p+1)//2 + factor - 1, p//2))``
    with ``p = kh - factor`` (score_sde's ``upsample_2d``; a constant image stays constant
    away from the border). Computed as one depthwise transposed convolution, which skips the
    multiplications by the inserted zeros.
    """
    _check_factor(kernel, factor)
    kh = kernel.shape[0]
    p = kh - factor
    pad0, pad1 = (p + 1) // 2 + factor - 1, p // 2
    # A transposed convolution with padding kh - 1 - pad0 gives (H - 1) f - 2 padding + kh
    # outputs; output_padding `extra` (independent of H) makes up the H f of upfirdn2d.
    padding = kh - 1 - pad0
    extra = factor + pad0 + pad1 + 1 + 2 * padding - 2 * kh
    if padding < 0 or not 0 <= extra < factor:
        return upfirdn2d(x, kernel * factor**2, up=factor, pad=(pad0, pad1))
    weight = _depthwise(kernel * factor**2, x)
    return F.conv_transpose2d(
        x, weight, stride=factor, padding=padding, output_padding=extra, groups=x.shape[1]
    )


def downsample_2d(x: Tensor, kernel: Tensor, factor: int = 2) -> Tensor:
    """Downsample ``(B, C, H, W)`` by ``factor`` with a normalised FIR ``kernel``.

    Equals ``upfirdn2d(x, kernel, down=factor, pad=((p+1)//2, p//2))`` with
    ``p = kh - factor`` (score_sde's ``downsample_2d``), computed as one strided depthwise
    convolution that only evaluates the kept outputs.
    """
    _check_factor(kernel, factor)
    p = kernel.shape[0] - factor
    pad0, pad1 = (p + 1) // 2, p // 2
    weight = _depthwise(kernel.flip(0, 1), x)
    if pad0 != pad1:
        x = F.pad(x, (pad0, pad1, pad0, pad1))
        pad0 = 0
    return F.conv2d(x, weight, stride=factor, padding=pad0, groups=x.shape[1])


def upsample_conv_2d(x: Tensor, weight: Tensor, kernel: Tensor, factor: int = 2) -> Tensor:
    """Upsampling followed by a convolution with ``weight`` ``(out, in, k, k)``, fused.

    StyleGAN2's ``upsample_conv_2d`` as in score_sde: a stride-``factor`` transposed
    convolution with the spatially flipped weight, then the FIR ``kernel * factor**2`` with
    padding ``((p+1)//2 + factor - 1, p//2 + 1)``, ``p = kh - factor - (k - 1)``. Output
    ``(B, out, H factor, W factor)``; no bias is added.
    """
    _check_factor(kernel, factor)
    k = weight.shape[-1]
    p = kernel.shape[0] - factor - (k - 1)
    # conv_transpose2d's weight is (in, out, k, k).
    w = weight.flip(-2, -1).transpose(0, 1)
    x = F.conv_transpose2d(x, w, stride=factor)
    return upfirdn2d(x, kernel * factor**2, pad=((p + 1) // 2 + factor - 1, p // 2 + 1))


def conv_downsample_2d(x: Tensor, weight: Tensor, kernel: Tensor, factor: int = 2) -> Tensor:
    """A convolution with ``weight`` ``(out, in, k, k)`` followed by downsampling, fused.

    StyleGAN2's ``conv_downsample_2d`` as in score_sde: the FIR ``kernel`` with padding
    ``((p+1)//2, p//2)``, ``p = kh - factor + k - 1``, then a stride-``factor`` convolution
    without padding. Output ``(B, out, H / factor, W / factor)``; no bias is added.
    """
    _check_factor(kernel, factor)
    p = kernel.shape[0] - factor + weight.shape[-1] - 1
    pad0, pad1 = (p + 1) // 2, p // 2
    fir = _depthwise(kernel.flip(0, 1), x)
    if pad0 == pad1:
        x = F.conv2d(x, fir, padding=pad0, groups=x.shape[1])
    else:
        x = F.conv2d(F.pad(x, (pad0, pad1, pad0, pad1)), fir, groups=x.shape[1])
    return F.conv2d(x, weight, stride=factor)


def _naive_upsample(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


def _naive_downsample(x: Tensor) -> Tensor:
    return F.avg_pool2d(x, 2)


class _FIR(nn.Module):
    """Holds a FIR kernel as a non-persistent buffer (it follows ``.to()`` and ``.double()``)."""

    def __init__(self, fir: bool, fir_kernel: Sequence[float]) -> None:
        super().__init__()
        self.fir = fir
        self.fir_kernel = tuple(fir_kernel)
        kernel = make_fir_kernel(fir_kernel).float() if fir else None
        self.register_buffer("kernel", kernel, persistent=False)

    def upsample(self, x: Tensor) -> Tensor:
        """2x FIR (or nearest-neighbour) upsampling, no convolution."""
        return upsample_2d(x, self.kernel) if self.fir else _naive_upsample(x)

    def downsample(self, x: Tensor) -> Tensor:
        """2x FIR (or average-pooling) downsampling, no convolution."""
        return downsample_2d(x, self.kernel) if self.fir else _naive_downsample(x)


class Upsample(_FIR):
    """2x upsampling, with an optional 3x3 convolution (score_sde's ``layerspp.Upsample``).

    Nearest-neighbour (``fir=False``) or FIR (``fir=True``); with ``with_conv`` and ``fir``
    the two are fused as in StyleGAN2 (:func:`upsample_conv_2d`).

    Args:
        in_ch: input channels.
        out_ch: output channels (default ``in_ch``; must equal it without a convolution).
        with_conv: follow the upsampling by a 3x3 convolution.
        fir: FIR filter instead of nearest-neighbour.
        fir_kernel: 1-D FIR taps (made separable and normalised).
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: Optional[int] = None,
        with_conv: bool = False,
        fir: bool = False,
        fir_kernel: Sequence[float] = (1, 3, 3, 1),
    ) -> None:
        super().__init__(fir, fir_kernel)
        out_ch = out_ch or in_ch
        self.with_conv = with_conv
        self.conv = conv3x3(in_ch, out_ch) if with_conv else None

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in_ch, H, W)`` -> ``(B, out_ch, 2H, 2W)``."""
        if self.conv is None:
            return self.upsample(x)
        if not self.fir:
            return self.conv(_naive_upsample(x))
        h = upsample_conv_2d(x, self.conv.weight, self.kernel)
        return h + append_dims(self.conv.bias, 3)


class Downsample(_FIR):
    """2x downsampling, with an optional 3x3 convolution (score_sde's ``layerspp.Downsample``).

    Average pooling (``fir=False``; with a convolution: a stride-2 3x3 convolution after
    padding one pixel right and below, TensorFlow's ``SAME``) or FIR (``fir=True``; with a
    convolution fused as in StyleGAN2, :func:`conv_downsample_2d`).

    Args: as :class:`Upsample`.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: Optional[int] = None,
        with_conv: bool = False,
        fir: bool = False,
        fir_kernel: Sequence[float] = (1, 3, 3, 1),
    ) -> None:
        super().__init__(fir, fir_kernel)
        out_ch = out_ch or in_ch
        self.with_conv = with_conv
        self.conv = conv3x3(in_ch, out_ch, stride=2, padding=0) if with_conv else None

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in_ch, H, W)`` -> ``(B, out_ch, H/2, W/2)``."""
        if self.conv is None:
            return self.downsample(x)
        if not self.fir:
            return self.conv(F.pad(x, (0, 1, 0, 1)))
        h = conv_downsample_2d(x, self.conv.weight, self.kernel)
        return h + append_dims(self.conv.bias, 3)


# ---------------------------------------------------------------------------------------------
# Residual and attention blocks.
class _ResnetBlock(nn.Module):
    """Shared body of the residual blocks: norm-act-conv, time bias, norm-act-dropout-conv."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        temb_dim: Optional[int],
        dropout: float,
        skip_rescale: bool,
        init_scale: float,
        act: str,
    ) -> None:
        super().__init__()
        check_choice("act", act, ACTIVATIONS)
        self.act = ACTIVATIONS[act]
        self.norm0 = group_norm(in_ch)
        self.conv0 = conv3x3(in_ch, out_ch)
        self.temb_proj = dense(temb_dim, out_ch) if temb_dim is not None else None
        self.norm1 = group_norm(out_ch)
        self.dropout = Dropout(dropout)
        self.conv1 = conv3x3(out_ch, out_ch, init_scale=init_scale)
        self.skip_rescale = skip_rescale
        self.in_ch, self.out_ch = in_ch, out_ch

    def _second_half(self, h: Tensor, temb: Optional[Tensor]) -> Tensor:
        # Add the projected time embedding as a per-channel bias (temb is already activated).
        if temb is not None and self.temb_proj is not None:
            h = h.add_(append_dims(self.temb_proj(temb), h.ndim))
        h = norm_act(self.norm1, self.act, h)
        return self.conv1(self.dropout(h))

    def _merge(self, x: Tensor, h: Tensor) -> Tensor:
        # Residual sum, rescaled by 1/sqrt(2) to keep the variance (Song et al. 2021, App. H.1).
        out = x + h
        return out.mul_(_SQRT_HALF) if self.skip_rescale else out


class ResnetBlockBigGAN(_ResnetBlock):
    """BigGAN-type residual block with optional 2x resampling (NCSN++ / DDPM++).

    ``h = conv1(dropout(act(norm1(conv0(resample(act(norm0(x)))) + dense(temb)))))``, the
    skip path ``x`` is resampled the same way and passed through a 1x1 convolution when the
    shape changes, and the result is ``(skip + h) / sqrt(2)`` with ``skip_rescale``.

    Args:
        in_ch: input channels.
        out_ch: output channels (default ``in_ch``).
        temb_dim: size of the (activated) time embedding, or ``None`` for no time input.
        up: upsample by 2 inside the block.
        down: downsample by 2 inside the block.
        dropout: dropout rate before the second convolution.
        fir: FIR resampling (else nearest-neighbour / average pooling).
        fir_kernel: 1-D FIR taps.
        skip_rescale: divide the residual sum by ``sqrt(2)``.
        init_scale: initial scale of the last convolution (0: the block starts as identity).
        act: nonlinearity name, a key of :data:`ACTIVATIONS`.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: Optional[int] = None,
        temb_dim: Optional[int] = None,
        up: bool = False,
        down: bool = False,
        dropout: float = 0.1,
        fir: bool = False,
        fir_kernel: Sequence[float] = (1, 3, 3, 1),
        skip_rescale: bool = True,
        init_scale: float = 0.0,
        act: str = "swish",
    ) -> None:
        out_ch = out_ch or in_ch
        super().__init__(in_ch, out_ch, temb_dim, dropout, skip_rescale, init_scale, act)
        if up and down:
            raise ValueError("a block cannot both upsample and downsample")
        self.up, self.down = up, down
        self.resample = _FIR(fir, fir_kernel)
        self.shortcut = conv1x1(in_ch, out_ch) if (in_ch != out_ch or up or down) else None

    def forward(self, x: Tensor, temb: Optional[Tensor] = None) -> Tensor:
        """``x`` ``(B, in_ch, H, W)``, activated ``temb`` ``(B, temb_dim)`` -> ``(B, out_ch, H', W')``."""
        h = norm_act(self.norm0, self.act, x)
        if self.up:
            h, x = self.resample.upsample(h), self.resample.upsample(x)
        elif self.down:
            h, x = self.resample.downsample(h), self.resample.downsample(x)
        h = self._second_half(self.conv0(h), temb)
        if self.shortcut is not None:
            x = self.shortcut(x)
        return self._merge(x, h)


class ResnetBlockDDPM(_ResnetBlock):
    """The residual block of DDPM (Ho et al. 2020), optionally with NCSN++'s skip rescaling.

    ``h = conv1(dropout(act(norm1(conv0(act(norm0(x))) + dense(temb)))))`` and ``x + h`` (or
    ``(x + h) / sqrt(2)``); a 1x1 (or, with ``conv_shortcut``, 3x3) convolution maps the skip
    path when the channel count changes.

    Args:
        in_ch: input channels.
        out_ch: output channels (default ``in_ch``).
        temb_dim: size of the (activated) time embedding, or ``None``.
        conv_shortcut: 3x3 instead of 1x1 convolution on the skip path.
        dropout: dropout rate before the second convolution.
        skip_rescale: divide the residual sum by ``sqrt(2)``.
        init_scale: initial scale of the last convolution.
        act: nonlinearity name.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: Optional[int] = None,
        temb_dim: Optional[int] = None,
        conv_shortcut: bool = False,
        dropout: float = 0.1,
        skip_rescale: bool = False,
        init_scale: float = 0.0,
        act: str = "swish",
    ) -> None:
        out_ch = out_ch or in_ch
        super().__init__(in_ch, out_ch, temb_dim, dropout, skip_rescale, init_scale, act)
        self.conv_shortcut = conv_shortcut
        if in_ch == out_ch:
            self.shortcut = None
        elif conv_shortcut:
            self.shortcut = conv3x3(in_ch, out_ch)
        else:
            self.shortcut = conv1x1(in_ch, out_ch, init_scale=0.1)

    def forward(self, x: Tensor, temb: Optional[Tensor] = None) -> Tensor:
        """``x`` ``(B, in_ch, H, W)``, activated ``temb`` ``(B, temb_dim)`` -> ``(B, out_ch, H, W)``."""
        h = self._second_half(self.conv0(norm_act(self.norm0, self.act, x)), temb)
        if self.shortcut is not None:
            x = self.shortcut(x)
        return self._merge(x, h)


class AttnBlock(nn.Module):
    """Single-head self-attention over all pixels (Ho et al. 2020; NCSN++ ``AttnBlockpp``).

    ``x + proj_out(softmax(q k^T / sqrt(C)) v)`` with ``q, k, v`` 1x1 convolutions of
    ``norm(x)``, divided by ``sqrt(2)`` with ``skip_rescale``. Uses
    ``F.scaled_dot_product_attention`` with one head in its 4-D layout, so that torch can pick a
    flash kernel (no ``(HW)^2`` tensor is kept for the backward pass).

    Args:
        channels: channels ``C``.
        skip_rescale: divide the residual sum by ``sqrt(2)``.
        init_scale: initial scale of the output projection.
    """

    def __init__(self, channels: int, skip_rescale: bool = False, init_scale: float = 0.0) -> None:
        super().__init__()
        self.norm = group_norm(channels)
        self.q = conv1x1(channels, channels, init_scale=0.1)
        self.k = conv1x1(channels, channels, init_scale=0.1)
        self.v = conv1x1(channels, channels, init_scale=0.1)
        self.proj_out = conv1x1(channels, channels, init_scale=init_scale)
        self.skip_rescale = skip_rescale

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` -> ``(B, C, H, W)``."""
        H, W = x.shape[-2:]
        h = self.norm(x)
        # One head, in SDPA's (batch, heads, tokens, channels) layout: with 4-D inputs torch
        # can pick its flash kernels (on the CPU 1.9x faster than the 3-D path's in bf16;
        # benchmarks/train.py --kernels).
        q, k, v = (rearrange(f(h), "b c h w -> b 1 (h w) c") for f in (self.q, self.k, self.v))
        h = F.scaled_dot_product_attention(q, k, v)
        h = self.proj_out(rearrange(h, "b 1 (h w) c -> b c h w", h=H, w=W))
        out = x + h
        return out.mul_(_SQRT_HALF) if self.skip_rescale else out


class Combine(nn.Module):
    """Merge a 1x1-projected pyramid input into features (NCSN++ ``input_skip``).

    Args:
        dim1: channels of the pyramid input.
        dim2: channels of the features.
        method: ``"sum"`` (add) or ``"cat"`` (concatenate; doubles the channels).
    """

    def __init__(self, dim1: int, dim2: int, method: str = "cat") -> None:
        super().__init__()
        check_choice("method", method, ("cat", "sum"))
        self.conv = conv1x1(dim1, dim2)
        self.method = method

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """Pyramid ``x`` ``(B, dim1, H, W)`` and features ``y`` ``(B, dim2, H, W)``."""
        h = self.conv(x)
        return torch.cat([h, y], dim=1) if self.method == "cat" else h + y
