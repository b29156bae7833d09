"""Loading the published checkpoints of score_sde_pytorch (Song et al. 2021) into our networks.

A score_sde checkpoint ``checkpoint_*.pth`` is a dict saved by ``torch.save``::

    {"model": DataParallel(net).state_dict(),        # keys "module.all_modules.{i}.{name}"
     "ema": {"decay": float, "num_updates": int,
             "shadow_params": [Tensor, ...]},        # one per trainable parameter, in order
     "optimizer": Adam state dict, "step": int}

It holds only dicts, lists, tuples, strings, numbers and tensors, so it is read with
``torch.load(..., weights_only=True)``: no pickled code is ever executed (a file that needs
more than that is rejected with an error, never loaded another way).

Key mapping. score_sde keeps the network as one flat ``all_modules`` list, indexed in the
order its ``__init__`` appends modules; our networks name their modules. Each network yields
its modules in score_sde's order (:meth:`NCSNpp.score_sde_modules`), and each module type
maps its official parameter names to ours (``_MODULE_KEYS`` below):

=====================================  ==========================================
score_sde (inside ``all_modules.{i}``)  scoresde
=====================================  ==========================================
``W`` (GaussianFourierProjection)        ``fourier.W``
``weight``, ``bias`` (Linear/Conv/Norm)  ``time_dense0``, ``conv_in``, ``norm_out``, ...
``GroupNorm_0`` / ``GroupNorm_1``        ``norm0`` / ``norm1`` of a residual block
``Conv_0`` / ``Conv_1``                  ``conv0`` / ``conv1``
``Dense_0``                              ``temb_proj``
``Conv_2`` or ``NIN_0``                  ``shortcut`` (``NIN`` ``W`` (in, out) -> 1x1 conv)
``GroupNorm_0``, ``NIN_0..3`` (attn)     ``norm``, ``q``, ``k``, ``v``, ``proj_out``
``Conv_0`` / ``Conv2d_0`` (resampling)   ``conv`` of Upsample / Downsample / Combine
=====================================  ==========================================

A ``NIN`` weight ``W`` of shape ``(in, out)`` becomes the 1x1 convolution weight
``W.T[:, :, None, None]``. The ``sigmas`` buffer (score_sde's SMLD noise table) is dropped:
the noise levels come from the SDE through :func:`scoresde.get_score_fn`. The EMA's
``shadow_params`` follow score_sde's ``model.parameters()`` restricted to
``requires_grad=True``, i.e. every ``"param"`` key in state-dict order, skipping buffers and
the frozen Fourier frequencies (which are taken from ``"model"``).

The state-dict layouts of the supported configs are recorded in ``score_sde_keys/*.json``
(written by ``scripts/make_score_sde_keys.py``); the tests check the mapping against them.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import IO, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from einops import rearrange
from torch import nn

from ..sde import SDE, VESDE, VPSDE, SubVPSDE
from ..types import Tensor
from .ddpm import ddpm_cifar
from .layers import (
    AttnBlock,
    Combine,
    Downsample,
    GaussianFourierProjection,
    ResnetBlockBigGAN,
    ResnetBlockDDPM,
    Upsample,
)
from .ncsnpp import NCSNpp, ddpmpp_cifar, ddpmpp_deep_cifar, ncsnpp_cifar, ncsnpp_deep_cifar

__all__ = [
    "ScoreSDEConfig",
    "SCORE_SDE_CONFIGS",
    "KeyMapEntry",
    "score_sde_key_map",
    "convert_score_sde_state_dict",
    "load_score_sde_checkpoint",
    "score_sde_layout",
]

PathOrFile = Union[str, "os.PathLike[str]", IO[bytes]]


@dataclass(frozen=True)
class ScoreSDEConfig:
    """A score_sde config we can load: its official name, network preset and SDE."""

    official: str  #: the config file in score_sde_pytorch, e.g. "vp/cifar10_ddpmpp_continuous"
    layout: str  #: the file in score_sde_keys/ with its state-dict layout
    model: Callable[[], NCSNpp]  #: builds our network
    sde: Callable[[], SDE]  #: builds the matching SDE (the config's beta/sigma range, N=1000)


#: Supported score_sde configs by short name.
SCORE_SDE_CONFIGS: Dict[str, ScoreSDEConfig] = {
    "vp_cifar": ScoreSDEConfig(
        "vp/cifar10_ddpmpp_continuous", "ddpmpp_cifar", ddpmpp_cifar, lambda: VPSDE(0.1, 20.0, 1000)
    ),
    "subvp_cifar": ScoreSDEConfig(
        "subvp/cifar10_ddpmpp_continuous", "ddpmpp_cifar", ddpmpp_cifar, lambda: SubVPSDE(0.1, 20.0, 1000)
    ),
    "ve_cifar": ScoreSDEConfig(
        "ve/cifar10_ncsnpp_continuous", "ncsnpp_cifar", ncsnpp_cifar, lambda: VESDE(0.01, 50.0, 1000)
    ),
    "vp_cifar_deep": ScoreSDEConfig(
        "vp/cifar10_ddpmpp_deep_continuous", "ddpmpp_deep_cifar", ddpmpp_deep_cifar, lambda: VPSDE(0.1, 20.0, 1000)
    ),
    "subvp_cifar_deep": ScoreSDEConfig(
        "subvp/cifar10_ddpmpp_deep_continuous", "ddpmpp_deep_cifar", ddpmpp_deep_cifar,
        lambda: SubVPSDE(0.1, 20.0, 1000),
    ),
    "ve_cifar_deep": ScoreSDEConfig(
        "ve/cifar10_ncsnpp_deep_continuous", "ncsnpp_deep_cifar", ncsnpp_deep_cifar, lambda: VESDE(0.01, 50.0, 1000)
    ),
    "ddpm_cifar": ScoreSDEConfig("vp/ddpm/cifar10", "ddpm_cifar", ddpm_cifar, lambda: VPSDE(0.1, 20.0, 1000)),
}


@dataclass(frozen=True)
class KeyMapEntry:
    """One tensor of a score_sde state dict and where it goes in ours."""

    official: str  #: key in score_sde's network (without the ``module.`` prefix)
    ours: Optional[str]  #: key in our state dict (``None``: dropped)
    kind: str  #: "param" (trainable, tracked by the EMA), "frozen" or "buffer"
    transform: str = "copy"  #: "copy", or "nin" (``W (in, out)`` -> 1x1 conv weight)


def _pair(official: str, ours: str, transform: str = "copy") -> List[Tuple[str, str, str]]:
    # A weight / bias pair; NIN layers call them W / b.
    if transform == "nin":
        return [(f"{official}.W", f"{ours}.weight", "nin"), (f"{official}.b", f"{ours}.bias", "copy")]
    return [(f"{official}.weight", f"{ours}.weight", "copy"), (f"{official}.bias", f"{ours}.bias", "copy")]


def _resblock_keys(block: nn.Module) -> List[Tuple[str, str, str]]:
    keys = _pair("GroupNorm_0", "norm0") + _pair("Conv_0", "conv0")
    if block.temb_proj is not None:
        keys += _pair("Dense_0", "temb_proj")
    keys += _pair("GroupNorm_1", "norm1") + _pair("Conv_1", "conv1")
    if block.shortcut is not None:
        if isinstance(block, ResnetBlockDDPM) and not block.conv_shortcut:
            keys += _pair("NIN_0", "shortcut", "nin")
        else:
            keys += _pair("Conv_2", "shortcut")
    return keys


def _module_keys(module: nn.Module) -> List[Tuple[str, str, str]]:
    """(official name, our name, transform) of one ``all_modules`` entry, in official order."""
    if isinstance(module, (ResnetBlockBigGAN, ResnetBlockDDPM)):
        return _resblock_keys(module)
    if isinstance(module, AttnBlock):
        keys = _pair("GroupNorm_0", "norm")
        for i, ours in enumerate(("q", "k", "v", "proj_out")):
            keys += _pair(f"NIN_{i}", ours, "nin")
        return keys
    if isinstance(module, (Upsample, Downsample)):
        if module.conv is None:
            return []
        # layerspp wraps the FIR variant's weights in up_or_down_sampling.Conv2d ("Conv2d_0").
        return _pair("Conv2d_0" if module.fir else "Conv_0", "conv")
    if isinstance(module, Combine):
        return _pair("Conv_0", "conv")
    if isinstance(module, GaussianFourierProjection):
        return [("W", "W", "copy")]
    if isinstance(module, (nn.Linear, nn.Conv2d, nn.GroupNorm)):
        return [("weight", "weight", "copy"), ("bias", "bias", "copy")]
    raise TypeError(f"no score_sde key mapping for {type(module).__name__}")


def score_sde_key_map(model: NCSNpp) -> List[KeyMapEntry]:
    """The explicit key mapping from score_sde's layout to ``model``, in state-dict order.

    Works for every :class:`NCSNpp` (including :class:`DDPM`) built without class labels;
    entries come out in score_sde's state-dict order (the ``sigmas`` buffer first).
    """
    if getattr(model, "class_embed", None) is not None:
        raise ValueError("score_sde has no class-conditional networks; build the model with num_classes=0")
    names = {id(m): name for name, m in model.named_modules()}
    entries = [KeyMapEntry("sigmas", None, "buffer")]
    for i, module in enumerate(model.score_sde_modules()):
        prefix = names[id(module)]
        for official, ours, transform in _module_keys(module):
            param = module.get_parameter(ours)
            kind = "param" if param.requires_grad else "frozen"
            entries.append(KeyMapEntry(f"all_modules.{i}.{official}", f"{prefix}.{ours}", kind, transform))
    return entries


def _convert(tensor: Tensor, transform: str) -> Tensor:
    if transform == "nin":
        return rearrange(tensor, "i o -> o i 1 1").contiguous()
    return tensor


def convert_score_sde_state_dict(
    state_dict: Dict[str, Tensor],
    model: NCSNpp,
    shadow_params: Optional[Sequence[Tensor]] = None,
) -> Dict[str, Tensor]:
    """Turn a score_sde network state dict (and optionally its EMA) into ``model``'s layout.

    Args:
        state_dict: the checkpoint's ``"model"`` entry; the ``module.`` prefix is optional.
        model: the network to load into (defines the mapping, see :func:`score_sde_key_map`).
        shadow_params: the checkpoint's ``ema["shadow_params"]``; when given, these replace
            the trainable parameters (the EMA weights), in score_sde's parameter order.
    Returns:
        a state dict for ``model.load_state_dict`` (every parameter of ``model``).
    Raises:
        ValueError: on missing or unexpected keys, or shape mismatches, naming them.
    """
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state_dict.items()}
    key_map = score_sde_key_map(model)
    expected = {e.official for e in key_map}
    missing = sorted(expected - state.keys())
    unexpected = sorted(state.keys() - expected)
    if missing or unexpected:
        raise ValueError(
            "the state dict does not have the layout of this network "
            f"(missing {len(missing)} keys, e.g. {missing[:3]}; "
            f"unexpected {len(unexpected)} keys, e.g. {unexpected[:3]})"
        )
    trainable = [e for e in key_map if e.kind == "param"]
    if shadow_params is not None and len(shadow_params) != len(trainable):
        raise ValueError(
            f"the EMA has {len(shadow_params)} shadow parameters; this network has "
            f"{len(trainable)} trainable parameters"
        )
    sources = {e.official: state[e.official] for e in key_map}
    if shadow_params is not None:
        sources.update({e.official: p for e, p in zip(trainable, shadow_params)})
    ours = model.state_dict()
    out: Dict[str, Tensor] = {}
    for e in key_map:
        if e.ours is None:
            continue
        tensor = _convert(sources[e.official], e.transform)
        if tensor.shape != ours[e.ours].shape:
            raise ValueError(
                f"shape mismatch: score_sde {e.official} {tuple(sources[e.official].shape)} "
                f"cannot fill {e.ours} {tuple(ours[e.ours].shape)}"
            )
        out[e.ours] = tensor
    return out


def score_sde_layout(name: str) -> List[Tuple[str, List[int], str]]:
    """The recorded score_sde state-dict layout ``[(key, shape, kind), ...]`` of a config."""
    config = _config(name)
    path = os.path.join(os.path.dirname(__file__), "score_sde_keys", config.layout + ".json")
    with open(path, encoding="utf-8") as f:
        return [tuple(k) for k in json.load(f)["keys"]]  # type: ignore[misc]


def _config(name: str) -> ScoreSDEConfig:
    for short, config in SCORE_SDE_CONFIGS.items():
        if name in (short, config.official):
            return config
    raise ValueError(
        f"unknown score_sde config {name!r}; valid names are: " + ", ".join(repr(k) for k in SCORE_SDE_CONFIGS)
    )


def load_score_sde_checkpoint(
    path: PathOrFile,
    config: str,
    *,
    ema: bool = True,
    map_location: Union[str, torch.device] = "cpu",
) -> Tuple[NCSNpp, SDE]:
    """Read a score_sde_pytorch checkpoint into our network and build its SDE.

    ``get_score_fn(model, sde)`` then gives the same score as score_sde's
    ``get_score_fn(sde, model, continuous=True)`` (for ``"ddpm_cifar"``: its
    ``continuous=False``, the discrete DDPM convention the model was trained with).
    Data scale: the VP / sub-VP / DDPM models take data in ``[-1, 1]``, the VE models data in
    ``[0, 1]`` (``model.centered``).

    Args:
        path: a ``checkpoint_*.pth`` file (path or binary file object).
        config: one of :data:`SCORE_SDE_CONFIGS` (``"vp_cifar"``, ``"subvp_cifar"``,
            ``"ve_cifar"``, their ``"_deep"`` variants, ``"ddpm_cifar"``) or the official
            config name (``"vp/cifar10_ddpmpp_continuous"``, ...).
        ema: load the EMA weights (what score_sde samples with) instead of the raw ones.
        map_location: device for the loaded tensors.
    Returns:
        ``(model, sde)``; the model is in eval mode, on ``map_location``.
    Raises:
        ValueError: for an unknown config, a file that is not a score_sde checkpoint, or a
            layout that does not match the config.
    """
    spec = _config(config)
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - surface any reader error as one clear message
        raise ValueError(
            f"cannot read {path!r} as a weights-only torch checkpoint ({err}); score_sde "
            "checkpoints hold only tensors and plain containers"
        ) from err
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        raise ValueError(f"{path!r} is not a score_sde checkpoint (no 'model' entry)")
    shadow = None
    if ema:
        if "ema" not in checkpoint or "shadow_params" not in checkpoint["ema"]:
            raise ValueError(f"{path!r} has no EMA weights; load it with ema=False")
        shadow = checkpoint["ema"]["shadow_params"]
    model = spec.model()
    model.load_state_dict(convert_score_sde_state_dict(checkpoint["model"], model, shadow))
    return model.to(map_location).eval(), spec.sde()

