"""NCSN++ and DDPM++ (Song et al. 2021, Sec. 4.4 and App. H.1), one class as in score_sde.

Both are U-Nets of BigGAN-type residual blocks with skip rescaling and self-attention at
16x16 on CIFAR-10. DDPM++ (the VP / sub-VP models) uses nearest-neighbour / average-pool
resampling, the sinusoidal time embedding of a label ``999 t`` and predicts the noise;
NCSN++ (the VE models) uses FIR resampling (Karras et al. 2020), a residual input pyramid,
Gaussian Fourier features of ``log sigma(t)`` and predicts ``sigma(t)`` times the score
(score_sde's ``scale_by_sigma``). The "deep" variants double the residual blocks per
resolution (8 instead of 4).

The network returns its raw output; turning it into a score (dividing by ``sigma(t)``,
flipping the sign for noise prediction) is the job of :func:`scoresde.get_score_fn`, which
reads :attr:`NCSNpp.parameterization` and :attr:`NCSNpp.time_label`.
"""
from __future__ import annotations

import math
from typing import Iterator, Optional, Sequence

import torch
from torch import nn

from ..types import Tensor
from ..utils import check_choice
from .layers import (
    ACTIVATIONS,
    AttnBlock,
    Combine,
    Downsample,
    GaussianFourierProjection,
    ResnetBlockBigGAN,
    ResnetBlockDDPM,
    Upsample,
    conv3x3,
    dense,
    group_norm,
    norm_act,
    sinusoidal_embedding,
)

__all__ = [
    "NCSNpp",
    "ddpmpp_cifar",
    "ddpmpp_deep_cifar",
    "ncsnpp_cifar",
    "ncsnpp_deep_cifar",
]

_SQRT_HALF = 1.0 / math.sqrt(2.0)


class _Level(nn.Module):
    """Modules of one resolution of the U-Net (a plain container, no forward)."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList()
        self.attns = nn.ModuleList()
        self.resample: Optional[nn.Module] = None
        # Input pyramid (down path) or output pyramid (up path) modules.
        self.pyramid: Optional[nn.Module] = None
        self.pyramid_norm: Optional[nn.Module] = None


class NCSNpp(nn.Module):
    """The NCSN++ / DDPM++ score network of score_sde (Song et al. 2021, App. H.1).

    The defaults build DDPM++ as configured for CIFAR-10 (``vp/cifar10_ddpmpp_continuous``);
    see :func:`ncsnpp_cifar` for NCSN++. Argument names are score_sde's config keys.

    Args:
        image_size: resolution the attention levels in ``attn_resolutions`` refer to. The
            network runs at any resolution divisible by ``2 ** (len(ch_mult) - 1)``;
            attention stays at the same levels.
        in_channels: image channels (``data.num_channels``); the output has the same.
        nf: base channel count.
        ch_mult: channel multiplier per resolution level.
        num_res_blocks: residual blocks per level on the way down (one more on the way up).
        attn_resolutions: resolutions (at ``image_size``) with self-attention.
        dropout: dropout rate inside the residual blocks.
        resamp_with_conv: 3x3 convolution in the standalone up/downsampling layers.
        fir: FIR resampling with ``fir_kernel`` instead of nearest / average pooling.
        fir_kernel: 1-D FIR taps.
        skip_rescale: divide residual sums by ``sqrt(2)``.
        resblock_type: ``"biggan"`` (resampling residual blocks) or ``"ddpm"`` (plain
            blocks and standalone resampling layers).
        progressive: output pyramid, ``"none"``, ``"output_skip"`` or ``"residual"``.
        progressive_input: input pyramid, ``"none"``, ``"input_skip"`` or ``"residual"``.
        progressive_combine: how ``"input_skip"`` merges, ``"sum"`` or ``"cat"``.
        embedding_type: ``"positional"`` (sinusoidal embedding of the label) or
            ``"fourier"`` (Gaussian Fourier features of ``log(label)``: the label is a noise
            level ``sigma > 0``).
        fourier_scale: scale of the Fourier frequencies.
        init_scale: initial scale of the last convolution of each block (0: near zero).
        nonlinearity: activation name, a key of :data:`~scoresde.models.layers.ACTIVATIONS`.
        centered: inputs are in ``[-1, 1]``; if ``False`` they are in ``[0, 1]`` and the
            network maps them by ``2 x - 1`` first (score_sde's ``data.centered``).
        num_classes: number of classes for a class-conditional model (0: unconditional).
            Label ``num_classes`` is the null label used for ``y=None`` (classifier-free
            guidance).
        parameterization: what the output means, read by :func:`scoresde.get_score_fn`.
        time_label: how :func:`scoresde.get_score_fn` maps ``t`` to the network's label.
    """

    def __init__(
        self,
        image_size: int = 32,
        in_channels: int = 3,
        nf: int = 128,
        ch_mult: Sequence[int] = (1, 2, 2, 2),
        num_res_blocks: int = 4,
        attn_resolutions: Sequence[int] = (16,),
        dropout: float = 0.1,
        resamp_with_conv: bool = True,
        fir: bool = False,
        fir_kernel: Sequence[float] = (1, 3, 3, 1),
        skip_rescale: bool = True,
        resblock_type: str = "biggan",
        progressive: str = "none",
        progressive_input: str = "none",
        progressive_combine: str = "sum",
        embedding_type: str = "positional",
        fourier_scale: float = 16.0,
        init_scale: float = 0.0,
        nonlinearity: str = "swish",
        centered: bool = True,
        num_classes: int = 0,
        parameterization: str = "eps",
        time_label: str = "999t",
    ) -> None:
        super().__init__()
        check_choice("resblock_type", resblock_type, ("biggan", "ddpm"))
        check_choice("progressive", progressive, ("none", "output_skip", "residual"))
        check_choice("progressive_input", progressive_input, ("none", "input_skip", "residual"))
        check_choice("progressive_combine", progressive_combine, ("sum", "cat"))
        check_choice("embedding_type", embedding_type, ("positional", "fourier"))
        check_choice("nonlinearity", nonlinearity, ACTIVATIONS)
        self.nf = nf
        self.in_channels = in_channels
        self.num_levels = len(ch_mult)
        self.num_res_blocks = num_res_blocks
        self.resblock_type = resblock_type
        self.progressive = progressive
        self.progressive_input = progressive_input
        self.embedding_type = embedding_type
        self.skip_rescale = skip_rescale
        self.centered = centered
        self.num_classes = num_classes
        self.parameterization = parameterization
        self.time_label = time_label
        self.act = ACTIVATIONS[nonlinearity]
        attn_levels = {i for i in range(self.num_levels) if image_size >> i in attn_resolutions}
        temb_dim = 4 * nf

        def resblock(in_ch: int, out_ch: Optional[int] = None, **kw: bool) -> nn.Module:
            common = dict(
                temb_dim=temb_dim,
                dropout=dropout,
                skip_rescale=skip_rescale,
                init_scale=init_scale,
                act=nonlinearity,
            )
            if resblock_type == "biggan":
                return ResnetBlockBigGAN(in_ch, out_ch, fir=fir, fir_kernel=fir_kernel, **kw, **common)
            return ResnetBlockDDPM(in_ch, out_ch, **common)

        def attn(ch: int) -> AttnBlock:
            return AttnBlock(ch, skip_rescale=skip_rescale, init_scale=init_scale)

        # Time (and class) embedding.
        if embedding_type == "fourier":
            self.fourier = GaussianFourierProjection(nf, scale=fourier_scale)
            embed_dim = 2 * nf
        else:
            self.fourier = None
            embed_dim = nf
        self.time_dense0 = dense(embed_dim, temb_dim)
        self.time_dense1 = dense(temb_dim, temb_dim)
        self.class_embed = nn.Embedding(num_classes + 1, temb_dim) if num_classes > 0 else None

        # Downsampling path.
        self.conv_in = conv3x3(in_channels, nf)
        hs_ch = [nf]
        in_ch = nf
        pyramid_ch = in_channels
        self.down = nn.ModuleList()
        for i_level, mult in enumerate(ch_mult):
            level = _Level()
            for _ in range(num_res_blocks):
                level.blocks.append(resblock(in_ch, nf * mult))
                in_ch = nf * mult
                if i_level in attn_levels:
                    level.attns.append(attn(in_ch))
                hs_ch.append(in_ch)
            if i_level != self.num_levels - 1:
                if resblock_type == "ddpm":
                    level.resample = Downsample(in_ch, with_conv=resamp_with_conv, fir=fir, fir_kernel=fir_kernel)
                else:
                    level.resample = resblock(in_ch, down=True)
                if progressive_input == "input_skip":
                    level.pyramid = Combine(pyramid_ch, in_ch, method=progressive_combine)
                    if progressive_combine == "cat":
                        in_ch *= 2
                elif progressive_input == "residual":
                    level.pyramid = Downsample(pyramid_ch, in_ch, with_conv=True, fir=fir, fir_kernel=fir_kernel)
                    pyramid_ch = in_ch
                hs_ch.append(in_ch)
            self.down.append(level)
        # Parameter-free pyramid resampling of the "skip" variants.
        self.pyramid_downsample = Downsample(in_channels, fir=fir, fir_kernel=fir_kernel)
        self.pyramid_upsample = Upsample(in_channels, fir=fir, fir_kernel=fir_kernel)

        # Middle.
        in_ch = hs_ch[-1]
        self.mid_block0 = resblock(in_ch)
        self.mid_attn = attn(in_ch)
        self.mid_block1 = resblock(in_ch)

        # Upsampling path, from the lowest resolution up.
        self.up = nn.ModuleList()
        pyramid_ch = 0
        for i_level in reversed(range(self.num_levels)):
            level = _Level()
            for _ in range(num_res_blocks + 1):
                level.blocks.append(resblock(in_ch + hs_ch.pop(), nf * ch_mult[i_level]))
                in_ch = nf * ch_mult[i_level]
            if i_level in attn_levels:
                level.attns.append(attn(in_ch))
            if progressive == "output_skip":
                level.pyramid_norm = group_norm(in_ch)
                level.pyramid = conv3x3(in_ch, in_channels, init_scale=init_scale)
            elif progressive == "residual" and i_level == self.num_levels - 1:
                level.pyramid_norm = group_norm(in_ch)
                level.pyramid = conv3x3(in_ch, in_ch)
                pyramid_ch = in_ch
            elif progressive == "residual":
                level.pyramid = Upsample(pyramid_ch, in_ch, with_conv=True, fir=fir, fir_kernel=fir_kernel)
                pyramid_ch = in_ch
            if i_level != 0:
                if resblock_type == "ddpm":
                    level.resample = Upsample(in_ch, with_conv=resamp_with_conv, fir=fir, fir_kernel=fir_kernel)
                else:
                    level.resample = resblock(in_ch, up=True)
            self.up.append(level)
        assert not hs_ch

        # Output head (the output pyramid is the output with "output_skip").
        if progressive != "output_skip":
            self.norm_out = group_norm(in_ch)
            self.conv_out = conv3x3(in_ch, in_channels, init_scale=init_scale)
        else:
            self.norm_out = self.conv_out = None

    # -----------------------------------------------------------------------------------------
    def embed(self, t: Tensor, y: Optional[Tensor] = None) -> Tensor:
        """Activated time (and class) embedding ``(B, 4 nf)`` that every block receives."""
        dtype = self.time_dense0.weight.dtype
        if self.fourier is not None:
            emb = self.fourier(torch.log(t).to(dtype))
        else:
            emb = sinusoidal_embedding(t, self.nf).to(dtype)
        temb = self.time_dense1(self.act(self.time_dense0(emb)))
        if self.class_embed is not None:
            temb = temb + self.class_embed(_class_labels(y, t, self.num_classes))
        elif y is not None:
            raise ValueError("this model is unconditional (num_classes=0); call it without y")
        return self.act(temb)

    def forward(self, x: Tensor, t: Tensor, y: Optional[Tensor] = None) -> Tensor:
        """Raw network output.

        Args:
            x: images ``(B, in_channels, H, W)``.
            t: time labels ``(B,)`` in the model's convention (:attr:`time_label`).
            y: class labels ``(B,)`` (long) for a class-conditional model; ``None`` (or the
                value ``num_classes``) is the null label.
        Returns:
            ``(B, in_channels, H, W)``.
        """
        temb = self.embed(t, y)
        if not self.centered:
            x = 2 * x - 1

        # Downsampling path; hs keeps the skip connections.
        input_pyramid = x
        hs = [self.conv_in(x)]
        for level in self.down:
            for i, block in enumerate(level.blocks):
                h = block(hs[-1], temb)
                if len(level.attns):
                    h = level.attns[i](h)
                hs.append(h)
            if level.resample is None:
                continue
            h = level.resample(hs[-1], temb) if self.resblock_type == "biggan" else level.resample(hs[-1])
            if self.progressive_input == "input_skip":
                input_pyramid = self.pyramid_downsample(input_pyramid)
                h = level.pyramid(input_pyramid, h)
            elif self.progressive_input == "residual":
                input_pyramid = self._rescale(level.pyramid(input_pyramid) + h)
                h = input_pyramid
            hs.append(h)

        # Middle.
        h = self.mid_block1(self.mid_attn(self.mid_block0(hs[-1], temb)), temb)

        # Upsampling path.
        pyramid = None
        for i_up, level in enumerate(self.up):
            for block in level.blocks:
                h = block(torch.cat([h, hs.pop()], dim=1), temb)
            if len(level.attns):
                h = level.attns[0](h)
            if self.progressive == "output_skip":
                pyramid_h = level.pyramid(self.act(level.pyramid_norm(h)))
                pyramid = pyramid_h if pyramid is None else self.pyramid_upsample(pyramid) + pyramid_h
            elif self.progressive == "residual" and i_up == 0:
                pyramid = level.pyramid(self.act(level.pyramid_norm(h)))
            elif self.progressive == "residual":
                pyramid = self._rescale(level.pyramid(pyramid) + h)
                h = pyramid
            if level.resample is not None:
                h = level.resample(h, temb) if self.resblock_type == "biggan" else level.resample(h)

        if self.progressive == "output_skip":
            return pyramid
        return self.conv_out(norm_act(self.norm_out, self.act, h))

    def _rescale(self, h: Tensor) -> Tensor:
        return h.mul_(_SQRT_HALF) if self.skip_rescale else h

    # -----------------------------------------------------------------------------------------
    def score_sde_modules(self) -> Iterator[nn.Module]:
        """Our modules in the order of score_sde's ``all_modules`` list (for checkpoints)."""
        if self.fourier is not None:
            yield self.fourier
        yield from (self.time_dense0, self.time_dense1, self.conv_in)
        for level in self.down:
            for i, block in enumerate(level.blocks):
                yield block
                if len(level.attns):
                    yield level.attns[i]
            if level.resample is not None:
                yield level.resample
                if level.pyramid is not None:
                    yield level.pyramid
        yield from (self.mid_block0, self.mid_attn, self.mid_block1)
        for level in self.up:
            yield from level.blocks
            yield from level.attns
            if level.pyramid_norm is not None:
                yield level.pyramid_norm
            if level.pyramid is not None:
                yield level.pyramid
            if level.resample is not None:
                yield level.resample
        if self.norm_out is not None:
            yield from (self.norm_out, self.conv_out)


def _class_labels(y: Optional[Tensor], t: Tensor, num_classes: int) -> Tensor:
    """Class labels ``(B,)``; ``None`` becomes the null label ``num_classes``."""
    if y is None:
        return torch.full(t.shape, num_classes, dtype=torch.long, device=t.device)
    return y.long()


# ---------------------------------------------------------------------------------------------
# CIFAR-10 presets of score_sde (configs/vp/cifar10_ddpmpp_continuous.py, etc.).
def ddpmpp_cifar(**overrides: object) -> NCSNpp:
    """DDPM++ cont. of ``vp/cifar10_ddpmpp_continuous`` (also sub-VP): 61,804,419 parameters.

    nf 128, ch_mult (1, 2, 2, 2), 4 BigGAN blocks per level, attention at 16x16, no FIR,
    positional embedding of ``999 t``, centered data, noise prediction. Keyword arguments
    override any :class:`NCSNpp` argument.
    """
    kwargs: dict = dict(
        image_size=32,
        nf=128,
        ch_mult=(1, 2, 2, 2),
        num_res_blocks=4,
        attn_resolutions=(16,),
        fir=False,
        progressive="none",
        progressive_input="none",
        embedding_type="positional",
        centered=True,
        parameterization="eps",
        time_label="999t",
    )
    kwargs.update(overrides)
    return NCSNpp(**kwargs)


def ddpmpp_deep_cifar(**overrides: object) -> NCSNpp:
    """Deep DDPM++ cont. (``vp/cifar10_ddpmpp_deep_continuous``): 8 blocks per level."""
    return ddpmpp_cifar(**{"num_res_blocks": 8, **overrides})


def ncsnpp_cifar(**overrides: object) -> NCSNpp:
    """NCSN++ cont. of ``ve/cifar10_ncsnpp_continuous``.

    nf 128, ch_mult (1, 2, 2, 2), 4 BigGAN blocks per level with FIR [1, 3, 3, 1]
    resampling, residual input pyramid, attention at 16x16, Gaussian Fourier features
    (scale 16) of ``log sigma(t)``, data in ``[0, 1]`` (``centered=False``) and output
    ``sigma(t) * score`` (``scale_by_sigma``).
    """
    kwargs: dict = dict(
        image_size=32,
        nf=128,
        ch_mult=(1, 2, 2, 2),
        num_res_blocks=4,
        attn_resolutions=(16,),
        fir=True,
        fir_kernel=(1, 3, 3, 1),
        progressive="none",
        progressive_input="residual",
        progressive_combine="sum",
        embedding_type="fourier",
        fourier_scale=16.0,
        centered=False,
        parameterization="sigma_score",
        time_label="sigma",
    )
    kwargs.update(overrides)
    return NCSNpp(**kwargs)


def ncsnpp_deep_cifar(**overrides: object) -> NCSNpp:
    """Deep NCSN++ cont. (``ve/cifar10_ncsnpp_deep_continuous``): 8 blocks per level."""
    return ncsnpp_cifar(**{"num_res_blocks": 8, **overrides})

