"""The training fast path: each piece keeps the step's results (bf16 within its rounding)."""
import copy

import pytest
import torch

from scoresde import VPSDE, precision
from scoresde.losses import dsm_loss_terms
from scoresde.models import NCSNpp, get_cond_score_fn

CPU = torch.device("cpu")
needs_cpu_bf16 = pytest.mark.skipif(precision.bf16_unsupported(CPU) is not None,
                                    reason="this CPU has no native bf16")


def tiny_net(seed: int = 0) -> NCSNpp:
    """A two-level DDPM++ on 8x8 images with every layer active (no zero-initialised output)."""
    torch.manual_seed(seed)
    net = NCSNpp(image_size=8, in_channels=1, nf=16, ch_mult=(1, 2), num_res_blocks=1,
                 attn_resolutions=(4,), dropout=0.0)
    with torch.no_grad():
        for p in net.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    return net


def dsm(net, x, device=CPU, bf16=False, seed=1):
    """The trainer's loss (continuous DSM, sigma^2 weighting) with fixed t and z."""
    g = torch.Generator().manual_seed(seed)
    t = (1e-5 + (1 - 1e-5) * torch.rand(x.shape[0], generator=g)).to(x.device)
    z = torch.randn(x.shape, generator=g).to(x.device)
    with precision.autocast(device, bf16):
        return dsm_loss_terms(get_cond_score_fn(net, VPSDE(), train=True), VPSDE(), x, t, z).mean()


def grads(net):
    return torch.cat([p.grad.flatten() for p in net.parameters() if p.grad is not None])


def test_missing_bf16_is_one_clear_line(monkeypatch):
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.setattr(torch.cpu, name, lambda: False, raising=False)
    reason = precision.bf16_unsupported(CPU)
    assert reason is not None and "AVX512-BF16" in reason and "AMX" in reason
    with pytest.raises(ValueError, match="run without bf16") as info:
        precision.autocast(CPU, True)
    assert "\n" not in str(info.value)
    with precision.autocast(CPU, False):  # disabled: no check, plain float32
        assert torch.ones(2, 2).matmul(torch.ones(2, 2)).dtype == torch.float32


def test_trainer_refuses_bf16_without_hardware_before_writing(monkeypatch, tmp_path):
    from scoresde import train
    from scoresde.config import UsageError, load_config

    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.setattr(torch.cpu, name, lambda: False, raising=False)
    config = load_config("vp_toy")
    config.training.n_iters = 1
    with pytest.raises(UsageError, match="--bf16: this CPU has neither AVX512-BF16 nor AMX"):
        train.main(config, str(tmp_path / "run"), device="cpu", bf16=True, quiet=True)
    assert not (tmp_path / "run").exists()


@needs_cpu_bf16
def test_cpu_bf16_runs_the_network_in_bf16_and_keeps_loss_and_grads_fp32():
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    net = tiny_net()
    with precision.autocast(CPU, True):
        assert net.conv_in(x).dtype == torch.bfloat16
    ref = dsm(net, x)
    ref.backward()
    g_ref = grads(net).clone()
    net.zero_grad()
    loss = dsm(net, x, bf16=True)
    loss.backward()
    assert loss.dtype == torch.float32 and all(p.dtype == torch.float32 for p in net.parameters())
    assert grads(net).dtype == torch.float32
    # bf16 keeps 8 bits of mantissa (relative rounding 2^-9 = 0.2% per operation).
    assert abs(loss.item() - ref.item()) < 0.02 * ref.item()
    assert (grads(net) - g_ref).norm() < 0.05 * g_ref.norm()


def test_channels_last_gives_the_same_loss_and_gradients():
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    nets = [tiny_net(), precision.to_channels_last(tiny_net())]
    conv = next(p for p in nets[1].parameters() if p.ndim == 4 and p.shape[1] > 1)
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    losses = [dsm(net, x.contiguous(memory_format=fmt))
              for net, fmt in zip(nets, (torch.contiguous_format, torch.channels_last))]
    for loss in losses:
        loss.backward()
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-6, atol=0)
    # Summation order differs: gradients agree to float32 rounding of the largest entries.
    g0, g1 = grads(nets[0]), grads(nets[1])
    assert (g1 - g0).abs().max() < 1e-5 * g0.abs().max()


def test_fused_adam_takes_the_plain_adam_steps():
    torch.manual_seed(0)
    params = [[torch.nn.Parameter(torch.randn(5, 3)), torch.nn.Parameter(torch.randn(7))] for _ in range(2)]
    with torch.no_grad():
        for p, q in zip(*params):
            q.copy_(p)
    opts = [torch.optim.Adam(params[0], lr=1e-2, foreach=False),
            torch.optim.Adam(params[1], lr=1e-2, **precision.adam_options(CPU))]
    assert opts[1].defaults["fused"]
    for _ in range(5):
        gs = [torch.randn_like(p) for p in params[0]]
        for ps, opt in zip(params, opts):
            for p, g in zip(ps, gs):
                p.grad = g.clone()
            opt.step()
    for p, q in zip(*params):
        torch.testing.assert_close(q, p, rtol=1e-6, atol=1e-7)


@pytest.mark.slow
def test_compiled_and_eager_losses_agree(tmp_path, monkeypatch):
    # Inductor's generated code goes to this test's own cache (another test compiles in parallel).
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    net = tiny_net()
    eager = dsm(net, x)
    eager.backward()
    g_eager = grads(net).clone()
    net.zero_grad()
    compiled = dsm(precision.compile_model(net), x)
    compiled.backward()
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grads(net), g_eager, rtol=1e-4, atol=1e-5)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_bf16_follows_fp32():
    device = torch.device("cuda")
    if precision.bf16_unsupported(device):
        pytest.skip(precision.bf16_unsupported(device))
    net = tiny_net().to(device)
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    ref_net = copy.deepcopy(net).cpu()
    ref = dsm(ref_net, x)
    loss = dsm(net, x.to(device), device=device, bf16=True)
    assert loss.dtype == torch.float32
    assert abs(loss.item() - ref.item()) < 0.02 * ref.item()


@pytest.mark.slow
def test_gpu_script_dry_run(tmp_path):
    """benchmarks/gpu.sh --dry-run: every step of the GPU check on the CPU, at tiny sizes."""
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run(["bash", os.path.join(root, "benchmarks", "gpu.sh"), "--dry-run"], capture_output=True,
                         text=True, timeout=1800,
                         env=dict(os.environ, PYTHON=sys.executable, TORCHINDUCTOR_CACHE_DIR=str(tmp_path)))
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "| side | s/step" in out.stdout and "images/s" in out.stdout
    rows = [line for line in out.stdout.splitlines() if line.startswith("| fp32 |") or line.startswith("| bf16")]
    assert len(rows) == (3 if precision.bf16_unsupported(CPU) is None else 1)
