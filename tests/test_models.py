"""Score networks and their layers: shapes, embeddings, FIR resampling, gradients, state dicts."""
from __future__ import annotations

import io
import math

import numpy as np
import pytest
import scipy.signal
import torch
import torch.nn.functional as F

from scoresde.models import (
    DDPM,
    MLP,
    MODELS,
    NCSNpp,
    ResidualMLP,
    ddpm_cifar,
    ddpmpp_cifar,
    ddpmpp_deep_cifar,
    get_model,
    ncsnpp_cifar,
    ncsnpp_deep_cifar,
)
from scoresde.models.layers import (
    GaussianFourierProjection,
    conv_downsample_2d,
    downsample_2d,
    make_fir_kernel,
    sinusoidal_embedding,
    upfirdn2d,
    upsample_2d,
    upsample_conv_2d,
)

# Tiny versions of the CIFAR-10 networks (same code paths, small channel counts).
TINY = dict(nf=8, ch_mult=(1, 2, 2), num_res_blocks=1, image_size=16, attn_resolutions=(8,))
TINY_NETS = {
    "ddpmpp": lambda **kw: ddpmpp_cifar(**{**TINY, **kw}),
    "ncsnpp": lambda **kw: ncsnpp_cifar(**{**TINY, **kw}),
    "ddpm": lambda **kw: ddpm_cifar(**{**TINY, **kw}),
}


def _randomize(model: torch.nn.Module) -> torch.nn.Module:
    """Give every weight an O(1)-gain random value (the DDPM init makes last layers ~0)."""
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim > 1:
                p.normal_(0, 1 / math.sqrt(p[0].numel()))
    return model


def _labels(name: str, batch: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    # NCSN++ embeds log(label): its labels are noise levels sigma > 0.
    t = torch.rand(batch, dtype=dtype)
    return 0.01 + 50 * t if name == "ncsnpp" else 999 * t


# ---------------------------------------------------------------------------------------------
# Shapes.
@pytest.mark.parametrize("name", TINY_NETS)
@pytest.mark.parametrize("channels", [1, 3])
def test_unet_shapes_any_resolution(name, channels):
    torch.manual_seed(0)
    model = TINY_NETS[name](in_channels=channels)
    for res in (8, 16, 32):
        x = torch.randn(2, channels, res, res)
        out = model(x, _labels(name, 2))
        assert out.shape == x.shape and out.dtype == x.dtype
        assert torch.isfinite(out).all()


def test_unet_non_square_and_float64():
    torch.manual_seed(0)
    model = TINY_NETS["ncsnpp"]().double()
    x = torch.randn(2, 3, 8, 16, dtype=torch.float64)
    out = model(x, _labels("ncsnpp", 2, torch.float64))
    assert out.shape == x.shape and out.dtype == torch.float64


@pytest.mark.parametrize("progressive", ["none", "output_skip", "residual"])
@pytest.mark.parametrize("progressive_input", ["none", "input_skip", "residual"])
@pytest.mark.parametrize("resblock_type", ["biggan", "ddpm"])
def test_ncsnpp_variants(progressive, progressive_input, resblock_type):
    torch.manual_seed(0)
    model = NCSNpp(
        in_channels=1,
        progressive=progressive,
        progressive_input=progressive_input,
        progressive_combine="cat",
        resblock_type=resblock_type,
        fir=True,
        embedding_type="fourier",
        **TINY,
    )
    x = torch.randn(2, 1, 16, 16)
    assert model(x, _labels("ncsnpp", 2)).shape == x.shape


@pytest.mark.parametrize("cls", [MLP, ResidualMLP])
@pytest.mark.parametrize("embedding", ["fourier", "sinusoidal"])
def test_mlp_shapes(cls, embedding):
    torch.manual_seed(0)
    model = cls(5, hidden_dim=32, embed_dim=16, embedding=embedding)
    x = torch.randn(7, 5)
    out = model(x, torch.rand(7))
    assert out.shape == (7, 5)
    model.double()
    assert model(x.double(), torch.rand(7, dtype=torch.float64)).dtype == torch.float64


# ---------------------------------------------------------------------------------------------
# Parameter counts of the published architectures (built on the meta device: no memory).
@pytest.mark.parametrize(
    "factory, count",
    [
        (ddpmpp_cifar, 61_804_419),
        (ddpmpp_deep_cifar, 106_632_579),
        (ncsnpp_cifar, 62_758_915),
        (ncsnpp_deep_cifar, 107_587_075),
        (ddpm_cifar, 35_218_947),
    ],
)
def test_preset_parameter_counts(factory, count):
    with torch.device("meta"):
        model = factory()
    assert sum(p.numel() for p in model.parameters()) == count


def test_get_model():
    assert isinstance(get_model("mlp", dim=2), MLP)
    assert isinstance(get_model("ddpm", **TINY), DDPM)
    assert set(MODELS) >= {"ncsnpp", "ddpm", "mlp", "resmlp", "ddpmpp_cifar", "ncsnpp_cifar", "ddpm_cifar"}
    with pytest.raises(ValueError, match="valid names are: 'ncsnpp'"):
        get_model("unet3000")
    with pytest.raises(ValueError, match="progressive"):
        NCSNpp(progressive="sideways")


# ---------------------------------------------------------------------------------------------
# Time embeddings.
@pytest.mark.parametrize("dim", [16, 17])
def test_sinusoidal_embedding_formula(dim):
    t = torch.tensor([0.0, 1.0, 17.5, 999.0], dtype=torch.float64)
    emb = sinusoidal_embedding(t, dim).numpy()
    half = dim // 2
    w = 10000.0 ** (-np.arange(half) / (half - 1))
    expected = np.concatenate([np.sin(t.numpy()[:, None] * w), np.cos(t.numpy()[:, None] * w)], axis=1)
    if dim % 2:
        expected = np.pad(expected, ((0, 0), (0, 1)))
    np.testing.assert_allclose(emb, expected, rtol=0, atol=1e-12)
    assert emb.shape == (4, dim)


def test_gaussian_fourier_features_are_fixed():
    torch.manual_seed(0)
    proj = GaussianFourierProjection(512, scale=16.0)
    assert not proj.W.requires_grad and "W" in proj.state_dict()
    assert abs(proj.W.std().item() - 16.0) < 2.0
    proj.double()
    t = torch.tensor([0.3, -1.2], dtype=torch.float64)
    args = 2 * math.pi * t[:, None] * proj.W[None]
    torch.testing.assert_close(proj(t), torch.cat([args.sin(), args.cos()], dim=1))
    # A model with Fourier features: W gets no gradient and no optimiser updates.
    model = TINY_NETS["ncsnpp"]()
    assert not model.fourier.W.requires_grad
    model(torch.randn(2, 3, 16, 16), _labels("ncsnpp", 2)).sum().backward()
    assert model.fourier.W.grad is None


# ---------------------------------------------------------------------------------------------
# FIR resampling against the definition of upfirdn2d, computed with scipy.
def _reference_upfirdn(x: torch.Tensor, k: torch.Tensor, up: int, down: int, pad) -> torch.Tensor:
    """Zero insertion, padding (negative: cropping), true 2-D convolution, decimation."""
    xs = x.numpy()
    B, C, H, W = xs.shape
    z = np.zeros((B, C, H * up, W * up))
    z[:, :, ::up, ::up] = xs
    p0, p1 = pad
    z = np.pad(z, ((0, 0), (0, 0), (max(p0, 0), max(p1, 0)), (max(p0, 0), max(p1, 0))))
    z = z[:, :, max(-p0, 0) : z.shape[2] - max(-p1, 0), max(-p0, 0) : z.shape[3] - max(-p1, 0)]
    out = np.stack(
        [np.stack([scipy.signal.convolve2d(z[b, c], k.numpy(), mode="valid") for c in range(C)]) for b in range(B)]
    )
    return torch.from_numpy(np.ascontiguousarray(out[:, :, ::down, ::down]))


KERNELS = [[1, 3, 3, 1], [1, 2, 5, 1], [1, 1], [2, 1, 3, 5, 1]]


@pytest.mark.parametrize("k1", KERNELS)
def test_fir_resampling_matches_definition(k1):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 6, dtype=torch.float64)
    k = make_fir_kernel(k1)
    p = k.shape[0] - 2
    up_ref = _reference_upfirdn(x, k * 4, 2, 1, ((p + 1) // 2 + 1, p // 2))
    down_ref = _reference_upfirdn(x, k, 1, 2, ((p + 1) // 2, p // 2))
    torch.testing.assert_close(upsample_2d(x, k), up_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(downsample_2d(x, k), down_ref, rtol=0, atol=1e-12)
    assert upsample_2d(x, k).shape == (2, 3, 16, 12) and downsample_2d(x, k).shape == (2, 3, 4, 3)
    # The general upfirdn2d with up, down, and negative (cropping) padding.
    for up, down, pad in [(2, 1, (2, 1)), (1, 2, (1, 1)), (3, 2, (1, -1)), (1, 1, (-1, 2))]:
        torch.testing.assert_close(upfirdn2d(x, k, up, down, pad), _reference_upfirdn(x, k, up, down, pad))


@pytest.mark.parametrize("k1", KERNELS[:2])
def test_fused_conv_resampling_matches_definition(k1):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64)
    k = make_fir_kernel(k1)
    # conv_downsample_2d: FIR with padding ((p+1)//2, p//2), p = kh - 2 + 2, then a stride-2 conv.
    p = k.shape[0]
    ref = F.conv2d(_reference_upfirdn(x, k, 1, 1, ((p + 1) // 2, p // 2)), w, stride=2)
    torch.testing.assert_close(conv_downsample_2d(x, w, k), ref)
    # upsample_conv_2d: zero insertion, full correlation with w, then FIR (gain 4).
    z = torch.zeros(2, 3, 15, 15, dtype=torch.float64)
    z[:, :, ::2, ::2] = x
    full = F.conv2d(F.pad(z, (2, 2, 2, 2)), w)
    p = k.shape[0] - 2 - 2
    ref = _reference_upfirdn(full, k * 4, 1, 1, ((p + 1) // 2 + 1, p // 2 + 1))
    torch.testing.assert_close(upsample_conv_2d(x, w, k), ref)
    assert ref.shape == (2, 4, 16, 16)


def test_box_kernel_is_nearest_and_average_pooling():
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    box = make_fir_kernel([1, 1])
    torch.testing.assert_close(upsample_2d(x, box), F.interpolate(x, scale_factor=2.0, mode="nearest"))
    torch.testing.assert_close(downsample_2d(x, box), F.avg_pool2d(x, 2))


# ---------------------------------------------------------------------------------------------
# Gradients, class conditioning, state dicts.
def _all_params_get_gradients(model, *inputs):
    model.train()
    model(*inputs).square().sum().backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("name", TINY_NETS)
def test_every_parameter_gets_a_gradient(name):
    torch.manual_seed(0)
    model = TINY_NETS[name]().double()
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    _all_params_get_gradients(model, x, _labels(name, 2, torch.float64))


def test_every_parameter_gets_a_gradient_mlp():
    torch.manual_seed(0)
    for model in (MLP(3, hidden_dim=16, num_classes=4), ResidualMLP(3, hidden_dim=16, num_classes=4)):
        y = torch.tensor([0, 1, 2, 3, 4])  # 4 = the null label
        _all_params_get_gradients(model.double(), torch.randn(5, 3, dtype=torch.float64), torch.rand(5).double(), y)


@pytest.mark.parametrize(
    "make",
    [
        lambda: TINY_NETS["ddpmpp"](num_classes=10),
        lambda: TINY_NETS["ddpm"](num_classes=10),
        lambda: MLP(3, hidden_dim=16, num_classes=10),
        lambda: ResidualMLP(3, hidden_dim=16, num_classes=10),
    ],
)
def test_class_conditional_null_label(make):
    torch.manual_seed(0)
    model = _randomize(make().eval())
    shape = (4, 3, 16, 16) if isinstance(model, NCSNpp) else (4, 3)
    x, t = torch.randn(shape), torch.rand(4) * 999
    with torch.no_grad():
        out_null = model(x, t)
        torch.testing.assert_close(out_null, model(x, t, torch.full((4,), 10)))
        out_labels = model(x, t, torch.tensor([0, 1, 2, 3]))
        assert (out_labels - out_null).abs().max() > 1e-3 * out_null.abs().max()
    unconditional = TINY_NETS["ddpmpp"]() if isinstance(model, NCSNpp) else MLP(3, hidden_dim=16)
    with pytest.raises(ValueError, match="unconditional"):
        unconditional(x, t, torch.zeros(4, dtype=torch.long))


@pytest.mark.parametrize("name", TINY_NETS)
def test_state_dict_round_trip_weights_only(name):
    torch.manual_seed(0)
    model = TINY_NETS[name]().eval()
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    torch.manual_seed(1)
    other = TINY_NETS[name]().eval()
    other.load_state_dict(torch.load(buffer, weights_only=True))
    x, t = torch.randn(2, 3, 16, 16), _labels(name, 2)
    with torch.no_grad():
        assert torch.equal(model(x, t), other(x, t))


# ---------------------------------------------------------------------------------------------
# Performance features: channels_last, bf16 autocast, torch.compile give the same outputs.
@pytest.mark.parametrize("name", TINY_NETS)
def test_channels_last_matches(name):
    torch.manual_seed(0)
    model = _randomize(TINY_NETS[name](nf=16).eval())
    x, t = torch.randn(2, 3, 16, 16), _labels(name, 2)
    with torch.no_grad():
        ref = model(x, t)
        model_cl = model.to(memory_format=torch.channels_last)
        out = model_cl(x.to(memory_format=torch.channels_last), t)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_bf16_autocast_close():
    torch.manual_seed(0)
    model = _randomize(TINY_NETS["ncsnpp"](nf=16).eval())
    with torch.no_grad():
        x, t = torch.randn(2, 3, 16, 16), _labels("ncsnpp", 2)
        ref = model(x, t)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x, t)
    assert out.dtype == torch.bfloat16
    err = (out.float() - ref).norm() / ref.norm()
    assert err < 0.05, err


@pytest.mark.slow
def test_torch_compile_matches(tmp_path, monkeypatch):
    # Inductor writes generated code to a cache directory: keep it in the test's tmp_path.
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    torch.manual_seed(0)
    model = _randomize(TINY_NETS["ncsnpp"](nf=16).eval())
    x, t = torch.randn(2, 3, 16, 16), _labels("ncsnpp", 2)
    compiled = torch.compile(model)
    try:
        with torch.no_grad():
            torch.testing.assert_close(compiled(x, t), model(x, t), rtol=1e-4, atol=1e-5)
    finally:
        torch._dynamo.reset()
