"""Write the state-dict layouts of score_sde's CIFAR-10 checkpoints as JSON data files.

score_sde_pytorch (Song et al. 2021) stores its networks as ``DataParallel(model)``, so every
key starts with ``module.``; the network is a flat ``all_modules`` list, indexed in the
order its ``__init__`` appends to it, plus a ``sigmas`` buffer. This script enumerates that
naming scheme on its own (it does not import scoresde's networks), so the files are an
independent record of the layout that ``scoresde.models.checkpoints`` maps from; the tests
compare the two.

Each file holds ``{"config", "num_parameters", "keys": [[key, shape, kind], ...]}`` in
state-dict order, where ``kind`` is ``"param"`` (trainable; tracked by the EMA's
``shadow_params`` in this order), ``"frozen"`` (a parameter with ``requires_grad=False``:
the Gaussian Fourier frequencies) or ``"buffer"``.

Usage: ``python scripts/make_score_sde_keys.py`` (rewrites
``scoresde/models/score_sde_keys/*.json``).
"""
from __future__ import annotations

import json
import os
from typing import List, Sequence, Tuple

Entry = Tuple[str, List[int], str]

OUT_DIR = os.path.join(os.path.dirname(__file__), "..", "scoresde", "models", "score_sde_keys")


def _linear(i: int, o: int) -> List[Entry]:
    return [("weight", [o, i], "param"), ("bias", [o], "param")]


def _conv(i: int, o: int, k: int = 3) -> List[Entry]:
    return [("weight", [o, i, k, k], "param"), ("bias", [o], "param")]


def _gn(c: int) -> List[Entry]:
    return [("weight", [c], "param"), ("bias", [c], "param")]


def _nin(i: int, o: int) -> List[Entry]:
    return [("W", [i, o], "param"), ("b", [o], "param")]


def _sub(name: str, entries: List[Entry]) -> List[Entry]:
    return [(f"{name}.{k}", s, kind) for k, s, kind in entries]


def _resblock_biggan(in_ch: int, out_ch: int, temb: int, resample: bool) -> List[Entry]:
    # layerspp.ResnetBlockBigGANpp registers GroupNorm_0, Conv_0, Dense_0, GroupNorm_1,
    # Dropout_0, Conv_1 and, when the shape changes, the 1x1 Conv_2.
    e = _sub("GroupNorm_0", _gn(in_ch)) + _sub("Conv_0", _conv(in_ch, out_ch))
    e += _sub("Dense_0", _linear(temb, out_ch)) + _sub("GroupNorm_1", _gn(out_ch))
    e += _sub("Conv_1", _conv(out_ch, out_ch))
    if in_ch != out_ch or resample:
        e += _sub("Conv_2", _conv(in_ch, out_ch, 1))
    return e


def _resblock_ddpm(in_ch: int, out_ch: int, temb: int) -> List[Entry]:
    # layers.ResnetBlockDDPM / layerspp.ResnetBlockDDPMpp: a NIN shortcut (no conv_shortcut).
    e = _sub("GroupNorm_0", _gn(in_ch)) + _sub("Conv_0", _conv(in_ch, out_ch))
    e += _sub("Dense_0", _linear(temb, out_ch)) + _sub("GroupNorm_1", _gn(out_ch))
    e += _sub("Conv_1", _conv(out_ch, out_ch))
    if in_ch != out_ch:
        e += _sub("NIN_0", _nin(in_ch, out_ch))
    return e


def _attn(c: int) -> List[Entry]:
    e = _sub("GroupNorm_0", _gn(c))
    for i in range(4):
        e += _sub(f"NIN_{i}", _nin(c, c))
    return e


def ncsnpp_layout(
    nf: int,
    ch_mult: Sequence[int],
    num_res_blocks: int,
    attn_resolutions: Sequence[int],
    image_size: int,
    channels: int,
    fir: bool,
    progressive_input: str,
    embedding_type: str,
    num_scales: int = 1000,
) -> List[Entry]:
    """models/ncsnpp.py::NCSNpp with resblock_type="biggan", progressive="none"."""
    modules: List[List[Entry]] = []
    temb = 4 * nf
    if embedding_type == "fourier":
        modules.append([("W", [nf], "frozen")])
        embed_dim = 2 * nf
    else:
        embed_dim = nf
    modules += [_linear(embed_dim, temb), _linear(temb, temb)]
    resolutions = [image_size // 2**i for i in range(len(ch_mult))]
    modules.append(_conv(channels, nf))
    hs_c = [nf]
    in_ch = nf
    pyramid_ch = channels
    for i_level, mult in enumerate(ch_mult):
        for _ in range(num_res_blocks):
            out_ch = nf * mult
            modules.append(_resblock_biggan(in_ch, out_ch, temb, False))
            in_ch = out_ch
            if resolutions[i_level] in attn_resolutions:
                modules.append(_attn(in_ch))
            hs_c.append(in_ch)
        if i_level != len(ch_mult) - 1:
            modules.append(_resblock_biggan(in_ch, in_ch, temb, True))
            if progressive_input == "residual":
                # layerspp.Downsample(fir, with_conv=True) holds up_or_down_sampling.Conv2d.
                name = "Conv2d_0" if fir else "Conv_0"
                modules.append(_sub(name, _conv(pyramid_ch, in_ch)))
                pyramid_ch = in_ch
            hs_c.append(in_ch)
    in_ch = hs_c[-1]
    modules += [_resblock_biggan(in_ch, in_ch, temb, False), _attn(in_ch)]
    modules.append(_resblock_biggan(in_ch, in_ch, temb, False))
    for i_level in reversed(range(len(ch_mult))):
        for _ in range(num_res_blocks + 1):
            out_ch = nf * ch_mult[i_level]
            modules.append(_resblock_biggan(in_ch + hs_c.pop(), out_ch, temb, False))
            in_ch = out_ch
        if resolutions[i_level] in attn_resolutions:
            modules.append(_attn(in_ch))
        if i_level != 0:
            modules.append(_resblock_biggan(in_ch, in_ch, temb, True))
    assert not hs_c
    modules += [_gn(in_ch), _conv(in_ch, channels)]
    return _flatten(modules, num_scales)


def ddpm_layout(
    nf: int,
    ch_mult: Sequence[int],
    num_res_blocks: int,
    attn_resolutions: Sequence[int],
    image_size: int,
    channels: int,
    num_scales: int = 1000,
) -> List[Entry]:
    """models/ddpm.py::DDPM (conditional, resamp_with_conv=True)."""
    temb = 4 * nf
    modules: List[List[Entry]] = [_linear(nf, temb), _linear(temb, temb), _conv(channels, nf)]
    resolutions = [image_size // 2**i for i in range(len(ch_mult))]
    hs_c = [nf]
    in_ch = nf
    for i_level, mult in enumerate(ch_mult):
        for _ in range(num_res_blocks):
            out_ch = nf * mult
            modules.append(_resblock_ddpm(in_ch, out_ch, temb))
            in_ch = out_ch
            if resolutions[i_level] in attn_resolutions:
                modules.append(_attn(in_ch))
            hs_c.append(in_ch)
        if i_level != len(ch_mult) - 1:
            modules.append(_sub("Conv_0", _conv(in_ch, in_ch)))
            hs_c.append(in_ch)
    in_ch = hs_c[-1]
    modules += [_resblock_ddpm(in_ch, in_ch, temb), _attn(in_ch), _resblock_ddpm(in_ch, in_ch, temb)]
    for i_level in reversed(range(len(ch_mult))):
        for _ in range(num_res_blocks + 1):
            out_ch = nf * ch_mult[i_level]
            modules.append(_resblock_ddpm(in_ch + hs_c.pop(), out_ch, temb))
            in_ch = out_ch
        if resolutions[i_level] in attn_resolutions:
            modules.append(_attn(in_ch))
        if i_level != 0:
            modules.append(_sub("Conv_0", _conv(in_ch, in_ch)))
    assert not hs_c
    modules += [_gn(in_ch), _conv(in_ch, channels)]
    return _flatten(modules, num_scales)


def _flatten(modules: List[List[Entry]], num_scales: int) -> List[Entry]:
    # The root registers the `sigmas` buffer before `all_modules`; DataParallel adds `module.`.
    keys: List[Entry] = [("module.sigmas", [num_scales], "buffer")]
    for i, entries in enumerate(modules):
        keys += [(f"module.all_modules.{i}.{k}", s, kind) for k, s, kind in entries]
    return keys


CIFAR = dict(nf=128, ch_mult=(1, 2, 2, 2), attn_resolutions=(16,), image_size=32, channels=3)

LAYOUTS = {
    "ddpmpp_cifar": (
        "vp/cifar10_ddpmpp_continuous, subvp/cifar10_ddpmpp_continuous",
        lambda: ncsnpp_layout(num_res_blocks=4, fir=False, progressive_input="none", embedding_type="positional",
                              **CIFAR),
    ),
    "ddpmpp_deep_cifar": (
        "vp/cifar10_ddpmpp_deep_continuous, subvp/cifar10_ddpmpp_deep_continuous",
        lambda: ncsnpp_layout(num_res_blocks=8, fir=False, progressive_input="none", embedding_type="positional",
                              **CIFAR),
    ),
    "ncsnpp_cifar": (
        "ve/cifar10_ncsnpp_continuous",
        lambda: ncsnpp_layout(num_res_blocks=4, fir=True, progressive_input="residual", embedding_type="fourier",
                              **CIFAR),
    ),
    "ncsnpp_deep_cifar": (
        "ve/cifar10_ncsnpp_deep_continuous",
        lambda: ncsnpp_layout(num_res_blocks=8, fir=True, progressive_input="residual", embedding_type="fourier",
                              **CIFAR),
    ),
    "ddpm_cifar": ("vp/ddpm/cifar10", lambda: ddpm_layout(num_res_blocks=2, **CIFAR)),
}


def main() -> None:
    os.makedirs(OUT_DIR, exist_ok=True)
    for name, (config, layout) in LAYOUTS.items():
        keys = layout()
        n_params = 0
        for _, shape, kind in keys:
            if kind != "buffer":
                size = 1
                for s in shape:
                    size *= s
                n_params += size
        path = os.path.join(OUT_DIR, name + ".json")
        with open(path, "w", encoding="utf-8") as f:
            f.write('{"config": %s,\n "num_parameters": %d,\n "keys": [\n' % (json.dumps(config), n_params))
            f.write(",\n".join("  " + json.dumps(list(k), separators=(",", ":")) for k in keys))
            f.write("\n ]}\n")
        print(f"{path}: {len(keys)} keys, {n_params:,} parameters")


if __name__ == "__main__":
    main()
