"""Time-conditioned MLPs for vector data ``(B, D)``: the toy score networks.

Song et al. (2021) illustrate score-based SDEs on 2-D mixtures with small MLPs; these are such
networks, with the time embedding of the U-Nets (Gaussian Fourier features, Tancik et al.
2020 / Song et al. 2021, App. H.1, or the sinusoidal embedding of Ho et al. 2020, App. B)
projected by a two-layer MLP, and an optional class embedding with a null label for
classifier-free guidance (Ho & Salimans 2022).
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn

from ..types import Tensor
from ..utils import check_choice
from .layers import ACTIVATIONS, Dropout, GaussianFourierProjection, dense, sinusoidal_embedding

__all__ = ["MLP", "ResidualMLP"]


class _TimeConditioned(nn.Module):
    """Shared time / class embedding of the vector networks."""

    def __init__(
        self,
        hidden_dim: int,
        embed_dim: int,
        embedding: str,
        fourier_scale: float,
        num_classes: int,
        nonlinearity: str,
        parameterization: str,
        time_label: str,
    ) -> None:
        super().__init__()
        check_choice("embedding", embedding, ("fourier", "sinusoidal"))
        check_choice("nonlinearity", nonlinearity, ACTIVATIONS)
        self.act = ACTIVATIONS[nonlinearity]
        self.embed_dim = embed_dim
        self.fourier = GaussianFourierProjection(embed_dim // 2, fourier_scale) if embedding == "fourier" else None
        self.time_dense0 = dense(embed_dim, hidden_dim)
        self.time_dense1 = dense(hidden_dim, hidden_dim)
        self.num_classes = num_classes
        self.class_embed = nn.Embedding(num_classes + 1, hidden_dim) if num_classes > 0 else None
        self.parameterization = parameterization
        self.time_label = time_label

    def embed(self, t: Tensor, y: Optional[Tensor]) -> Tensor:
        """Time (and class) embedding ``(B, hidden_dim)``."""
        dtype = self.time_dense0.weight.dtype
        if self.fourier is not None:
            emb = self.fourier(t.to(dtype))
        else:
            emb = sinusoidal_embedding(t, self.embed_dim).to(dtype)
        temb = self.time_dense1(self.act(self.time_dense0(emb)))
        if self.class_embed is not None:
            if y is None:
                y = torch.full(t.shape, self.num_classes, dtype=torch.long, device=t.device)
            temb = temb + self.class_embed(y.long())
        elif y is not None:
            raise ValueError("this model is unconditional (num_classes=0); call it without y")
        return temb


class MLP(_TimeConditioned):
    """A plain MLP on ``[x, embedding(t)]``.

    Args:
        dim: data dimension ``D``.
        hidden_dim: width of the hidden layers (and of the time embedding).
        num_layers: number of hidden layers.
        embed_dim: size of the raw time features (Fourier or sinusoidal).
        embedding: ``"fourier"`` (Gaussian Fourier features of the label; suits ``t`` in
            ``[0, 1]``) or ``"sinusoidal"`` (suits step-like labels, e.g. ``"999t"``).
        fourier_scale: standard deviation of the Fourier frequencies.
        num_classes: classes of a class-conditional model (0: unconditional); label
            ``num_classes`` is the null label used for ``y=None``.
        nonlinearity: activation name.
        parameterization: output meaning for :func:`scoresde.get_score_fn`.
        time_label: time label convention for :func:`scoresde.get_score_fn`.
    """

    def __init__(
        self,
        dim: int,
        hidden_dim: int = 256,
        num_layers: int = 3,
        embed_dim: int = 64,
        embedding: str = "fourier",
        fourier_scale: float = 16.0,
        num_classes: int = 0,
        nonlinearity: str = "swish",
        parameterization: str = "eps",
        time_label: str = "t",
    ) -> None:
        super().__init__(
            hidden_dim, embed_dim, embedding, fourier_scale, num_classes, nonlinearity, parameterization, time_label
        )
        widths = [dim + hidden_dim] + [hidden_dim] * num_layers
        self.layers = nn.ModuleList(dense(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.out = dense(hidden_dim, dim, init_scale=0.0)

    def forward(self, x: Tensor, t: Tensor, y: Optional[Tensor] = None) -> Tensor:
        """``x`` ``(B, D)``, time labels ``t`` ``(B,)``, class labels ``y`` ``(B,)`` -> ``(B, D)``."""
        h = torch.cat([x, self.act(self.embed(t, y))], dim=1)
        for layer in self.layers:
            h = self.act(layer(h))
        return self.out(h)


class ResidualMLP(_TimeConditioned):
    """A residual MLP: pre-norm blocks ``h + W2 drop(act(W1 act(norm(h)) + A temb))``.

    Args:
        dim: data dimension ``D``.
        hidden_dim: width of the residual stream.
        num_blocks: number of residual blocks.
        embed_dim: size of the raw time features.
        embedding: ``"fourier"`` or ``"sinusoidal"`` (see :class:`MLP`).
        fourier_scale: standard deviation of the Fourier frequencies.
        dropout: dropout rate inside the blocks.
        num_classes: classes of a class-conditional model (0: unconditional).
        nonlinearity: activation name.
        parameterization: output meaning for :func:`scoresde.get_score_fn`.
        time_label: time label convention for :func:`scoresde.get_score_fn`.
    """

    def __init__(
        self,
        dim: int,
        hidden_dim: int = 256,
        num_blocks: int = 4,
        embed_dim: int = 64,
        embedding: str = "fourier",
        fourier_scale: float = 16.0,
        dropout: float = 0.0,
        num_classes: int = 0,
        nonlinearity: str = "swish",
        parameterization: str = "eps",
        time_label: str = "t",
    ) -> None:
        super().__init__(
            hidden_dim, embed_dim, embedding, fourier_scale, num_classes, nonlinearity, parameterization, time_label
        )
        self.inp = dense(dim, hidden_dim)
        self.blocks = nn.ModuleList(_ResidualBlock(hidden_dim, dropout, self.act) for _ in range(num_blocks))
        self.norm_out = nn.LayerNorm(hidden_dim)
        self.out = dense(hidden_dim, dim, init_scale=0.0)

    def forward(self, x: Tensor, t: Tensor, y: Optional[Tensor] = None) -> Tensor:
        """``x`` ``(B, D)``, time labels ``t`` ``(B,)``, class labels ``y`` ``(B,)`` -> ``(B, D)``."""
        temb = self.act(self.embed(t, y))
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, temb)
        return self.out(self.act(self.norm_out(h)))


class _ResidualBlock(nn.Module):
    def __init__(self, width: int, dropout: float, act: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.act = act
        self.norm = nn.LayerNorm(width)
        self.fc0 = dense(width, width)
        self.temb_proj = dense(width, width)
        self.dropout = Dropout(dropout)
        self.fc1 = dense(width, width, init_scale=0.0)

    def forward(self, h: Tensor, temb: Tensor) -> Tensor:
        r = self.fc0(self.act(self.norm(h))) + self.temb_proj(temb)
        return h + self.fc1(self.dropout(self.act(r)))
