"""The DDPM U-Net (Ho et al. 2020, "Denoising Diffusion Probabilistic Models", App. B).

A PixelCNN++-style U-Net: two residual blocks per resolution (channel multipliers
(1, 2, 2, 2) on CIFAR-10), self-attention at 16x16, GroupNorm, dropout, and a sinusoidal
positional embedding of the diffusion step, projected by a two-layer MLP and added to
every residual block. It predicts the noise ``eps``. In score_sde it is the ``ddpm`` model
of ``configs/vp/ddpm/cifar10.py`` (35,218,947 parameters), trained on the discrete DDPM
chain; Song et al. (2021, Sec. 4) use it as the discrete VP baseline.

Architecturally it is the NCSN++ class with plain DDPM residual blocks, no skip rescaling and
standalone resampling layers, so it subclasses :class:`~scoresde.models.ncsnpp.NCSNpp` (the
module layout is score_sde's, which keeps checkpoint conversion in one place).
"""
from __future__ import annotations

from typing import Sequence

from .ncsnpp import NCSNpp

__all__ = ["DDPM", "ddpm_cifar"]


class DDPM(NCSNpp):
    """The DDPM U-Net of Ho et al. (2020).

    Args:
        image_size: resolution the attention levels refer to (any multiple of
            ``2 ** (len(ch_mult) - 1)`` works at run time).
        in_channels: image channels; the output has the same.
        nf: base channel count.
        ch_mult: channel multiplier per resolution level.
        num_res_blocks: residual blocks per level (one more on the way up).
        attn_resolutions: resolutions (at ``image_size``) with self-attention.
        dropout: dropout rate inside the residual blocks.
        resamp_with_conv: 3x3 convolutions after upsampling / as strided downsampling.
        nonlinearity: activation name (``"swish"`` in DDPM).
        centered: inputs are in ``[-1, 1]``; if ``False``, in ``[0, 1]`` (mapped by ``2x - 1``).
        num_classes: classes of a class-conditional model (0: unconditional); label
            ``num_classes`` is the null label used for ``y=None``.
        parameterization: output meaning for :func:`scoresde.get_score_fn` (``"eps"``).
        time_label: time label convention for :func:`scoresde.get_score_fn`; ``"index"`` is
            the DDPM step ``t (N - 1) / T`` with the discrete chain's noise levels.
    """

    def __init__(
        self,
        image_size: int = 32,
        in_channels: int = 3,
        nf: int = 128,
        ch_mult: Sequence[int] = (1, 2, 2, 2),
        num_res_blocks: int = 2,
        attn_resolutions: Sequence[int] = (16,),
        dropout: float = 0.1,
        resamp_with_conv: bool = True,
        nonlinearity: str = "swish",
        centered: bool = True,
        num_classes: int = 0,
        parameterization: str = "eps",
        time_label: str = "index",
    ) -> None:
        super().__init__(
            image_size=image_size,
            in_channels=in_channels,
            nf=nf,
            ch_mult=ch_mult,
            num_res_blocks=num_res_blocks,
            attn_resolutions=attn_resolutions,
            dropout=dropout,
            resamp_with_conv=resamp_with_conv,
            fir=False,
            skip_rescale=False,
            resblock_type="ddpm",
            progressive="none",
            progressive_input="none",
            embedding_type="positional",
            init_scale=0.0,
            nonlinearity=nonlinearity,
            centered=centered,
            num_classes=num_classes,
            parameterization=parameterization,
            time_label=time_label,
        )


def ddpm_cifar(**overrides: object) -> DDPM:
    """DDPM of ``vp/ddpm/cifar10`` (Ho et al. 2020's CIFAR-10 model): 35,218,947 parameters.

    Keyword arguments override any :class:`DDPM` argument.
    """
    return DDPM(**overrides)  # type: ignore[arg-type]
