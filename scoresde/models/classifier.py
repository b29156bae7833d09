"""A noise-conditional image classifier ``p_t(y | x_t)`` for classifier guidance
(Song et al. 2021, Sec. 5 and App. I.1).

Class-conditional sampling adds ``grad_x log p_t(y | x)`` to the score (Eq. 14), so the
classifier must be trained on noisy inputs ``x_t ~ p_0t(x_t | x_0)`` at every ``t`` and told
``t``. The paper uses a Wide-ResNet with the time embedding of the score model; this network
is the downsampling half of the DDPM++ / NCSN++ U-Net (:class:`~scoresde.models.NCSNpp`): the
same time embedding (sinusoidal of ``999 t`` or Gaussian Fourier features of ``log sigma``)
fed to every BigGAN residual block, then group norm, global average pooling and a linear
head giving ``num_classes`` logits. :func:`scoresde.models.get_log_prob_fn` turns it into
``log_prob_fn(x, t)`` with the same time-label convention as :func:`scoresde.get_score_fn`.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..types import Tensor
from ..utils import check_choice
from .layers import (
    ACTIVATIONS,
    AttnBlock,
    GaussianFourierProjection,
    ResnetBlockBigGAN,
    conv3x3,
    dense,
    group_norm,
    norm_act,
    sinusoidal_embedding,
)

__all__ = ["NoiseConditionalClassifier"]


class NoiseConditionalClassifier(nn.Module):
    """Time-conditioned convolutional classifier: returns logits ``(B, num_classes)``.

    Args:
        num_classes: number of classes (at least 2).
        image_size: resolution ``attn_resolutions`` refer to; any resolution divisible by
            ``2 ** (len(ch_mult) - 1)`` runs.
        in_channels: image channels.
        nf: base channel count.
        ch_mult: channel multiplier per resolution level (downsampling by 2 between levels).
        num_res_blocks: residual blocks per level.
        attn_resolutions: resolutions with self-attention.
        dropout: dropout rate inside the residual blocks.
        embedding_type: ``"positional"`` (sinusoidal embedding of the label, e.g. ``999 t``)
            or ``"fourier"`` (Gaussian Fourier features of ``log(label)``, a noise level).
        fourier_scale: scale of the Fourier frequencies.
        nonlinearity: activation name, a key of :data:`~scoresde.models.layers.ACTIVATIONS`.
        centered: inputs in ``[-1, 1]``; if ``False`` they are in ``[0, 1]`` and mapped by
            ``2 x - 1`` first.
        time_label: how :func:`scoresde.models.get_log_prob_fn` maps ``t`` to the label, a key
            of :data:`scoresde.models.TIME_LABELS`.
    """

    def __init__(
        self,
        num_classes: int = 10,
        image_size: int = 32,
        in_channels: int = 3,
        nf: int = 64,
        ch_mult: Sequence[int] = (1, 2, 2),
        num_res_blocks: int = 2,
        attn_resolutions: Sequence[int] = (),
        dropout: float = 0.0,
        embedding_type: str = "positional",
        fourier_scale: float = 16.0,
        nonlinearity: str = "swish",
        centered: bool = True,
        time_label: str = "999t",
    ) -> None:
        super().__init__()
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2; got {num_classes!r}")
        check_choice("embedding_type", embedding_type, ("positional", "fourier"))
        check_choice("nonlinearity", nonlinearity, ACTIVATIONS)
        self.num_classes = num_classes
        self.nf = nf
        self.centered = centered
        self.time_label = time_label
        self.act = ACTIVATIONS[nonlinearity]
        temb_dim = 4 * nf

        # Time embedding, as in NCSN++.
        self.fourier = GaussianFourierProjection(nf, scale=fourier_scale) if embedding_type == "fourier" else None
        self.time_dense0 = dense(2 * nf if self.fourier is not None else nf, temb_dim)
        self.time_dense1 = dense(temb_dim, temb_dim)

        # Downsampling path: residual blocks (with attention where asked), then a
        # downsampling residual block between levels.
        def block(in_ch: int, out_ch: int, down: bool = False) -> nn.Module:
            return ResnetBlockBigGAN(in_ch, out_ch, temb_dim=temb_dim, down=down, dropout=dropout,
                                     act=nonlinearity)

        self.conv_in = conv3x3(in_channels, nf)
        self.blocks = nn.ModuleList()
        in_ch = nf
        for level, mult in enumerate(ch_mult):
            for _ in range(num_res_blocks):
                self.blocks.append(block(in_ch, nf * mult))
                in_ch = nf * mult
                if image_size >> level in attn_resolutions:
                    self.blocks.append(AttnBlock(in_ch))
            if level != len(ch_mult) - 1:
                self.blocks.append(block(in_ch, in_ch, down=True))

        # Head: norm, activation, global average pool, linear.
        self.norm_out = group_norm(in_ch)
        self.head = dense(in_ch, num_classes)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        """Logits ``(B, num_classes)`` of images ``x`` ``(B, C, H, W)`` at time labels ``t`` ``(B,)``."""
        dtype = self.time_dense0.weight.dtype
        if self.fourier is not None:
            emb = self.fourier(torch.log(t).to(dtype))
        else:
            emb = sinusoidal_embedding(t, self.nf).to(dtype)
        temb = self.act(self.time_dense1(self.act(self.time_dense0(emb))))
        if not self.centered:
            x = 2 * x - 1
        h = self.conv_in(x)
        for block in self.blocks:
            h = block(h) if isinstance(block, AttnBlock) else block(h, temb)
        h = norm_act(self.norm_out, self.act, h).mean(dim=(2, 3))
        return self.head(h)
