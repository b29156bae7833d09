"""score_sde checkpoints: the key mapping, against the recorded layouts and against a functional
re-statement of score_sde's forward pass that reads official-layout weights directly."""
from __future__ import annotations

import io
import math
from typing import Dict, List, Tuple

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from scoresde import VESDE, VPSDE, SubVPSDE
from scoresde.models import (
    SCORE_SDE_CONFIGS,
    convert_score_sde_state_dict,
    ddpm_cifar,
    ddpmpp_cifar,
    get_score_fn,
    load_score_sde_checkpoint,
    ncsnpp_cifar,
    score_sde_key_map,
)
from scoresde.models.checkpoints import score_sde_layout


# ---------------------------------------------------------------------------------------------
# The recorded layouts (score_sde_keys/*.json) and the mapping agree, for every config.
@pytest.mark.parametrize("config", SCORE_SDE_CONFIGS)
def test_key_map_matches_recorded_layout(config):
    with torch.device("meta"):
        model = SCORE_SDE_CONFIGS[config].model()
    key_map = score_sde_key_map(model)
    layout = score_sde_layout(config)
    assert [("module." + e.official, e.kind) for e in key_map] == [(k, kind) for k, _, kind in layout]
    ours = model.state_dict()
    mapped = [e.ours for e in key_map if e.ours is not None]
    assert sorted(mapped) == sorted(ours) and len(set(mapped)) == len(mapped)
    for e, (_, shape, _) in zip(key_map, layout):
        if e.ours is not None:
            expected = (shape[1], shape[0], 1, 1) if e.transform == "nin" else tuple(shape)
            assert ours[e.ours].shape == expected, e
    n_params = sum(math.prod(s) for _, s, kind in layout if kind != "buffer")
    assert n_params == sum(p.numel() for p in model.parameters())


class NotAWeight:
    """A pickled object that weights_only loading must refuse."""


def _checkpoint_bytes(layout, with_ema=True) -> io.BytesIO:
    """A score_sde-style checkpoint with a distinct constant in every tensor (stride-0 views)."""
    model = {k: torch.tensor(float(i)).expand(shape) for i, (k, shape, _) in enumerate(layout)}
    opt = torch.optim.Adam(nn.Linear(2, 2).parameters())
    opt.zero_grad()
    sum(p.sum() for p in opt.param_groups[0]["params"]).backward()
    opt.step()
    checkpoint = {"model": model, "optimizer": opt.state_dict(), "step": 5}
    if with_ema:
        shadow = [torch.tensor(1e5 + i).expand(s) for i, (_, s, kind) in enumerate(layout) if kind == "param"]
        checkpoint["ema"] = {"decay": 0.999, "num_updates": 5, "shadow_params": shadow}
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    buffer.seek(0)
    return buffer


@pytest.mark.parametrize(
    "config, sde_type",
    [
        ("ve_cifar", VESDE),
        ("vp_cifar", VPSDE),
        ("subvp_cifar", SubVPSDE),
        ("ve_cifar_deep", VESDE),
        ("vp_cifar_deep", VPSDE),
        ("subvp_cifar_deep", SubVPSDE),
        ("ddpm_cifar", VPSDE),
    ],
)
def test_every_tensor_lands_in_its_place(config, sde_type):
    layout = score_sde_layout(config)
    index = {k[len("module."):]: i for i, (k, _, _) in enumerate(layout)}
    buffer = _checkpoint_bytes(layout)
    for ema in (False, True):
        buffer.seek(0)
        model, sde = load_score_sde_checkpoint(buffer, config, ema=ema)
        assert isinstance(sde, sde_type) and not model.training
        state = model.state_dict()
        for e in score_sde_key_map(model):
            if e.ours is None:
                continue
            i = index[e.official]
            # EMA weights replace the trainable parameters; frozen ones come from "model".
            value = 1e5 + i if (ema and e.kind == "param") else float(i)
            tensor = state[e.ours]
            assert tensor.min() == tensor.max() == value, (e, tensor.min(), value)


def test_load_errors():
    layout = score_sde_layout("vp_cifar")
    with pytest.raises(ValueError, match="valid names are: 'vp_cifar', 'subvp_cifar', 've_cifar'"):
        load_score_sde_checkpoint(io.BytesIO(), "cifar10")
    with pytest.raises(ValueError, match=r"missing \d+ keys, e.g. \['all_modules.0.W'"):  # a VP file read as VE
        load_score_sde_checkpoint(_checkpoint_bytes(layout), "ve_cifar", ema=False)
    with pytest.raises(ValueError, match="no EMA weights"):
        load_score_sde_checkpoint(_checkpoint_bytes(layout, with_ema=False), "vp_cifar")
    buffer = io.BytesIO()
    torch.save({"model": {}, "ema": NotAWeight()}, buffer)
    buffer.seek(0)
    with pytest.raises(ValueError, match="weights-only"):
        load_score_sde_checkpoint(buffer, "vp_cifar")


# ---------------------------------------------------------------------------------------------
# score_sde's forward pass, re-stated functionally over a state dict in its layout. Parameters
# are created on first use (in score_sde's registration order), so one call also builds a
# state dict of the official layout for any (small) configuration.
class Params:
    def __init__(self, seed: int) -> None:
        self.gen = torch.Generator().manual_seed(seed)
        self.state: Dict[str, torch.Tensor] = {}
        self.frozen: List[str] = []

    def __call__(self, name: str, shape: Tuple[int, ...], fan_in: int = 0, kind: str = "weight") -> torch.Tensor:
        if name not in self.state:
            z = torch.randn(shape, generator=self.gen, dtype=torch.float64)
            if kind == "weight":
                z = z / math.sqrt(fan_in)
            elif kind == "norm":
                z = 1 + 0.1 * z
            elif kind == "bias":
                z = 0.1 * z
            self.state[name] = z
        return self.state[name]


def _fir(x, k1, up, down, pad):
    """upfirdn2d by its definition: zero insertion, padding, convolution, decimation."""
    k = torch.tensor(k1, dtype=x.dtype)
    k = torch.outer(k, k)
    k = k / k.sum() * up * up
    B, C, H, W = x.shape
    z = x.new_zeros(B, C, H * up, W * up)
    z[:, :, ::up, ::up] = x
    z = F.pad(z, (pad[0], pad[1], pad[0], pad[1]))
    out = F.conv2d(z.reshape(B * C, 1, *z.shape[2:]), k.flip(0, 1)[None, None])
    return out.reshape(B, C, *out.shape[2:])[:, :, ::down, ::down]


def official_forward(P: Params, cfg: dict, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    nf, act, arch = cfg["nf"], F.silu, cfg["arch"]
    temb_dim = 4 * nf
    groups = (lambda c: 32) if arch == "ddpm" else (lambda c: min(c // 4, 32))
    skip_rescale = arch == "ncsnpp"
    rescale = (lambda a: a / math.sqrt(2.0)) if skip_rescale else (lambda a: a)
    counter = [0]

    def mod() -> str:
        counter[0] += 1
        return f"all_modules.{counter[0] - 1}."

    def dense(pre, h, i, o):
        return F.linear(h, P(pre + "weight", (o, i), i), P(pre + "bias", (o,), kind="bias"))

    def conv(pre, h, i, o, k=3, stride=1, padding=1):
        w, b = P(pre + "weight", (o, i, k, k), i * k * k), P(pre + "bias", (o,), kind="bias")
        return F.conv2d(h, w, b, stride, padding)

    def gn(pre, h):
        c = h.shape[1]
        return F.group_norm(h, groups(c), P(pre + "weight", (c,), kind="norm"), P(pre + "bias", (c,), kind="bias"),
                            1e-6)

    def nin(pre, h, i, o):
        W, b = P(pre + "W", (i, o), i), P(pre + "b", (o,), kind="bias")
        return torch.einsum("bchw,co->bohw", h, W) + b[None, :, None, None]

    def up2(h):
        if cfg["fir"]:
            return _fir(h, cfg["fir_kernel"], 2, 1, (2, 1))
        return h.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)

    def down2(h):
        if cfg["fir"]:
            return _fir(h, cfg["fir_kernel"], 1, 2, (1, 1))
        B, C, H, W = h.shape
        return h.reshape(B, C, H // 2, 2, W // 2, 2).mean(dim=(3, 5))

    def resblock(h, temb, i, o=None, up=False, down=False):
        pre, o = mod(), o or i
        x0 = h
        h = act(gn(pre + "GroupNorm_0.", h))
        if up:
            h, x0 = up2(h), up2(x0)
        elif down:
            h, x0 = down2(h), down2(x0)
        h = conv(pre + "Conv_0.", h, i, o)
        h = h + dense(pre + "Dense_0.", act(temb), temb_dim, o)[:, :, None, None]
        h = conv(pre + "Conv_1.", act(gn(pre + "GroupNorm_1.", h)), o, o)
        if arch == "ddpm" and i != o:
            x0 = nin(pre + "NIN_0.", x0, i, o)
        elif arch == "ncsnpp" and (i != o or up or down):
            x0 = conv(pre + "Conv_2.", x0, i, o, k=1, padding=0)
        return rescale(x0 + h)

    def attn(h):
        pre, (B, C, H, W) = mod(), h.shape
        n = gn(pre + "GroupNorm_0.", h)
        q, k, v = (nin(pre + f"NIN_{j}.", n, C, C) for j in range(3))
        w = torch.einsum("bchw,bcij->bhwij", q, k) * C**-0.5
        w = F.softmax(w.reshape(B, H, W, H * W), dim=-1).reshape(B, H, W, H, W)
        return rescale(h + nin(pre + "NIN_3.", torch.einsum("bhwij,bcij->bchw", w, v), C, C))

    # Time embedding.
    if cfg["embedding"] == "fourier":
        name = mod() + "W"
        P(name, (nf,), kind="fourier")
        P.frozen.append(name)
        proj = torch.log(labels)[:, None] * P.state[name][None] * 2 * math.pi
        temb = torch.cat([proj.sin(), proj.cos()], dim=1)
    else:
        half = nf // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=labels.dtype) / (half - 1))
        temb = torch.cat([(labels[:, None] * freqs).sin(), (labels[:, None] * freqs).cos()], dim=1)
    temb = dense(mod(), temb, temb.shape[1], temb_dim)
    temb = dense(mod(), act(temb), temb_dim, temb_dim)

    if not cfg["centered"]:
        x = 2 * x - 1
    ch_mult, res = cfg["ch_mult"], [cfg["image_size"] // 2**i for i in range(len(cfg["ch_mult"]))]
    channels = x.shape[1]
    pyramid, pyramid_ch = x, channels
    hs, hs_c = [conv(mod(), x, channels, nf)], [nf]
    in_ch = nf
    for level, mult in enumerate(ch_mult):
        for _ in range(cfg["num_res_blocks"]):
            h = resblock(hs[-1], temb, in_ch, nf * mult)
            in_ch = nf * mult
            if res[level] in cfg["attn_resolutions"]:
                h = attn(h)
            hs.append(h)
            hs_c.append(in_ch)
        if level != len(ch_mult) - 1:
            if arch == "ddpm":
                h = conv(mod() + "Conv_0.", F.pad(hs[-1], (0, 1, 0, 1)), in_ch, in_ch, stride=2, padding=0)
            else:
                h = resblock(hs[-1], temb, in_ch, down=True)
            if cfg.get("progressive_input") == "residual":
                pre = mod() + ("Conv2d_0." if cfg["fir"] else "Conv_0.")
                if cfg["fir"]:  # conv_downsample_2d: FIR with padding (2, 2), stride-2 conv
                    w = P(pre + "weight", (in_ch, pyramid_ch, 3, 3), pyramid_ch * 9)
                    b = P(pre + "bias", (in_ch,), kind="bias")
                    pyramid = F.conv2d(_fir(pyramid, cfg["fir_kernel"], 1, 1, (2, 2)), w, b, stride=2)
                else:
                    pyramid = conv(pre, F.pad(pyramid, (0, 1, 0, 1)), pyramid_ch, in_ch, stride=2, padding=0)
                pyramid_ch = in_ch
                pyramid = rescale(pyramid + h)
                h = pyramid
            hs.append(h)
            hs_c.append(in_ch)
    h = resblock(hs[-1], temb, in_ch)
    h = attn(h)
    h = resblock(h, temb, in_ch)
    for level in reversed(range(len(ch_mult))):
        for _ in range(cfg["num_res_blocks"] + 1):
            skip_ch = hs_c.pop()
            h = resblock(torch.cat([h, hs.pop()], dim=1), temb, in_ch + skip_ch, nf * ch_mult[level])
            in_ch = nf * ch_mult[level]
        if res[level] in cfg["attn_resolutions"]:
            h = attn(h)
        if level != 0:
            if arch == "ddpm":
                h = conv(mod() + "Conv_0.", up2(h), in_ch, in_ch)
            else:
                h = resblock(h, temb, in_ch, up=True)
    h = act(gn(mod(), h))
    h = conv(mod(), h, in_ch, channels)
    if cfg.get("scale_by_sigma"):
        if cfg["embedding"] == "fourier":
            used_sigmas = labels
        else:
            sigmas = torch.exp(torch.linspace(math.log(50), math.log(0.01), 1000, dtype=torch.float64))
            used_sigmas = sigmas[labels.long()]
        h = h / used_sigmas[:, None, None, None]
    return h


SMALL = dict(nf=16, ch_mult=(1, 2, 2), num_res_blocks=2, image_size=16, attn_resolutions=(8,), fir_kernel=(1, 3, 3, 1))
CASES = {
    # vp/cifar10_ddpmpp_continuous at a small size.
    "ddpmpp": (
        dict(arch="ncsnpp", fir=False, embedding="positional", centered=True, **SMALL),
        lambda: ddpmpp_cifar(**{k: v for k, v in SMALL.items() if k != "fir_kernel"}),
    ),
    # ve/cifar10_ncsnpp_continuous at a small size.
    "ncsnpp": (
        dict(arch="ncsnpp", fir=True, embedding="fourier", centered=False, progressive_input="residual",
             scale_by_sigma=True, **SMALL),
        lambda: ncsnpp_cifar(**SMALL),
    ),
    # ve/cifar10_ncsnpp (discrete SMLD training: positional embedding of the level index).
    "ncsnpp_discrete": (
        dict(arch="ncsnpp", fir=True, embedding="positional", centered=False, progressive_input="residual",
             scale_by_sigma=True, **SMALL),
        lambda: ncsnpp_cifar(**SMALL, embedding_type="positional", time_label="reversed_index"),
    ),
    # vp/ddpm/cifar10: official GroupNorm has 32 groups, ours min(C / 4, 32): equal from 128 on.
    "ddpm": (
        dict(arch="ddpm", fir=False, embedding="positional", centered=True, nf=128, ch_mult=(1, 2), num_res_blocks=1,
             image_size=8, attn_resolutions=(4,)),
        lambda: ddpm_cifar(nf=128, ch_mult=(1, 2), num_res_blocks=1, image_size=8, attn_resolutions=(4,)),
    ),
}


def _official_score(case, cfg, P, x, t):
    """score_sde's models/utils.py::get_score_fn for the case's SDE and training mode."""
    if case == "ddpmpp":  # VP, continuous=True
        std = VPSDE().marginal_coeffs(t)[1]
        return -official_forward(P, cfg, x, 999 * t) / std[:, None, None, None]
    if case == "ncsnpp":  # VE, continuous=True
        return official_forward(P, cfg, x, VESDE().sigma(t))
    if case == "ncsnpp_discrete":  # VE, continuous=False
        return official_forward(P, cfg, x, torch.round((1 - t) * 999).long().double())
    # VP, continuous=False: std from the DDPM table at labels.long().
    labels = 999 * t
    abar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0)
    return -official_forward(P, cfg, x, labels) / (1 - abar[labels.long()]).sqrt()[:, None, None, None]


@pytest.mark.parametrize("case", CASES)
def test_official_forward_and_score_match(case):
    cfg, make = CASES[case]
    torch.manual_seed(0)
    res = cfg["image_size"]
    x = torch.rand(2, 3, res, res, dtype=torch.float64)
    t = torch.tensor([0.3, 0.77], dtype=torch.float64)
    P = Params(seed=1)
    expected = _official_score(case, cfg, P, x, t)  # also builds P in the official layout
    official = {"module.sigmas": torch.zeros(1000, dtype=torch.float64)}
    official.update({"module." + k: v for k, v in P.state.items()})
    model = make().double().eval()
    model.load_state_dict(convert_score_sde_state_dict(official, model))
    sde = {"ddpmpp": VPSDE(), "ncsnpp": VESDE(), "ncsnpp_discrete": VESDE(), "ddpm": VPSDE()}[case]
    with torch.no_grad():
        torch.testing.assert_close(get_score_fn(model, sde)(x, t), expected, rtol=1e-9, atol=1e-9)

    # EMA weights: shadow_params follow the trainable parameters in registration order.
    trainable = [k for k in P.state if k not in P.frozen]
    gen = torch.Generator().manual_seed(2)
    shadow = [torch.randn(P.state[k].shape, generator=gen, dtype=torch.float64) / 4 + P.state[k] for k in trainable]
    P_ema = Params(seed=1)
    P_ema.state = dict(P.state)
    P_ema.state.update(zip(trainable, shadow))
    model.load_state_dict(convert_score_sde_state_dict(official, model, shadow_params=shadow))
    with torch.no_grad():
        expected = _official_score(case, cfg, P_ema, x, t)
        torch.testing.assert_close(get_score_fn(model, sde)(x, t), expected, rtol=1e-9, atol=1e-9)
