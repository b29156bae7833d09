"""The training step's own kernels: GroupNorm + activation with recomputation, the CPU dropout
mask and the gradient clipping, each against the torch operation it replaces."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from scoresde import precision
from scoresde.models.layers import ACTIVATIONS, AttnBlock, Dropout, group_norm, norm_act


def _norm(channels: int, dtype=torch.float64, affine: bool = True, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    norm = torch.nn.GroupNorm(min(channels // 4, 32), channels, eps=1e-6, affine=affine).to(dtype)
    if affine:
        with torch.no_grad():
            norm.weight.copy_(1 + 0.5 * torch.randn(channels, generator=g, dtype=dtype))
            norm.bias.copy_(0.5 * torch.randn(channels, generator=g, dtype=dtype))
    return norm


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
@pytest.mark.parametrize("affine", [True, False])
def test_norm_act_gradients_are_exact_in_float64(act, affine):
    """Values and first derivatives (x, weight, bias) of act(group_norm(x)), by gradcheck."""
    norm, f = _norm(8, affine=affine), ACTIVATIONS[act]
    x = torch.randn(2, 8, 5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x.requires_grad_(True)
    params = [p for p in norm.parameters()]
    assert torch.equal(norm_act(norm, f, x), f(norm(x)))
    assert torch.autograd.gradcheck(lambda x, *p: norm_act(norm, f, x), (x, *params))


def test_norm_act_channels_last_bf16_matches_float32():
    """bf16 channels_last (the CPU bf16 path): output in bf16 and channels_last, gradients
    within bf16 rounding of the float32 ones (2^-8 relative per rounding, a few roundings)."""
    norm = _norm(64, torch.float32)
    x = torch.randn(4, 64, 8, 8, generator=torch.Generator().manual_seed(2))
    x = x.contiguous(memory_format=torch.channels_last)
    grad = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    ref = F.silu(norm(x.requires_grad_(True)))
    ref_grads = torch.autograd.grad(ref, [x, norm.weight, norm.bias], grad)
    xb = x.detach().bfloat16().requires_grad_(True)
    out = norm_act(norm, F.silu, xb)
    assert out.dtype == torch.bfloat16 and out.is_contiguous(memory_format=torch.channels_last)
    grads = torch.autograd.grad(out, [xb, norm.weight, norm.bias], grad.bfloat16())
    assert grads[0].dtype == torch.bfloat16 and grads[1].dtype == torch.float32
    assert (out.float() - ref).abs().max() <= 3 * 2**-8 * ref.abs().max()
    for g, r in zip(grads, ref_grads):
        assert (g.float() - r).abs().max() <= 4 * 2**-8 * r.abs().max()


def test_norm_act_without_autograd_is_plain():
    norm = group_norm(8)
    x = torch.randn(2, 8, 4, 4)
    with torch.no_grad():
        assert torch.equal(norm_act(norm, F.silu, x), F.silu(norm(x)))


@pytest.mark.parametrize("p", [0.1, 0.5])
@pytest.mark.parametrize("channels_last", [False, True])
def test_cpu_dropout_is_nn_dropout_in_distribution(p, channels_last):
    """Drop rate within 5 binomial standard deviations of p; kept elements scaled by exactly
    1 / (1 - p); the gradient is the same mask; layout kept; reproducible from the seed."""
    x = torch.randn(16, 32, 16, 16, dtype=torch.float64) + 3.0  # no exact zeros
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    drop = Dropout(p)
    torch.manual_seed(0)
    y = drop(x)
    n = x.numel()
    dropped = (y == 0).sum().item()
    assert abs(dropped - p * n) <= 5 * math.sqrt(n * p * (1 - p))
    kept = y != 0
    assert torch.equal(y[kept], x[kept] * (1 / (1 - p)))
    assert y.is_contiguous(memory_format=torch.channels_last) == channels_last
    (g,) = torch.autograd.grad(y, x, torch.ones_like(y))
    assert torch.equal(g, torch.where(kept, torch.tensor(1 / (1 - p), dtype=g.dtype), 0.0))
    torch.manual_seed(0)
    assert torch.equal(drop(x), y)
    # Independent masks: neighbouring elements (in memory) are dropped together at rate p^2.
    flat = (y == 0).permute(0, 2, 3, 1).reshape(-1) if channels_last else (y == 0).reshape(-1)
    both = (flat[:-1] & flat[1:]).sum().item()
    assert abs(both - p * p * (n - 1)) <= 5 * math.sqrt(n * p * p * (1 - p * p)) + 5 * n * p**3
    drop.eval()
    assert drop(x) is x


def test_cpu_dropout_bf16():
    x = torch.randn(8, 16, 8, 8).bfloat16().requires_grad_(True)
    y = Dropout(0.1)(x)
    assert y.dtype == torch.bfloat16 and 0.05 < (y == 0).float().mean().item() < 0.15


@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_matches_torch(max_norm):
    """The same norm (float32 rounding) and the same scaled gradients as torch's, over
    contiguous and channels_last gradients; non-finite gradients give a non-finite norm."""
    g = torch.Generator().manual_seed(0)
    shapes = [(16, 8, 3, 3), (16,), (4, 16), (8, 16, 1, 1)]
    params = [torch.nn.Parameter(torch.zeros(s)) for s in shapes]
    grads = [torch.randn(s, generator=g) for s in shapes]
    grads[0] = grads[0].contiguous(memory_format=torch.channels_last)
    grads[3] = grads[3][:, :, :, :]  # a 1x1 kernel: both layouts at once
    twins = [torch.nn.Parameter(torch.zeros(s)) for s in shapes]
    for p, q, gr in zip(params, twins, grads):
        p.grad, q.grad = gr.clone(), gr.clone()
    ours = precision.clip_grad_norm_(params, max_norm)
    ref = torch.nn.utils.clip_grad_norm_(twins, max_norm)
    assert torch.allclose(ours, ref, rtol=1e-6)
    for p, q in zip(params, twins):
        assert torch.allclose(p.grad, q.grad, rtol=1e-6, atol=0)
        assert p.grad.stride() == q.grad.stride()
    if max_norm < 1:
        assert torch.allclose(torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in params])),
                              torch.tensor(max_norm), rtol=1e-5)
    params[1].grad[0] = float("nan")
    assert not torch.isfinite(precision.clip_grad_norm_(params, max_norm))


@pytest.mark.parametrize("channels_last", [False, True])
def test_attention_block_is_the_formula(channels_last):
    """AttnBlock = x + proj_out(softmax(q k^T / sqrt(C)) v) / sqrt(2), values and gradients in
    float64, whichever kernel torch picks for its one-head 4-D layout."""
    torch.manual_seed(0)
    block = AttnBlock(16, skip_rescale=True, init_scale=1.0).double()
    x = torch.randn(2, 16, 4, 3, dtype=torch.float64)
    if channels_last:
        block, x = block.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)

    def formula(x):
        h = block.norm(x)
        q, k, v = (f(h).flatten(2).transpose(1, 2) for f in (block.q, block.k, block.v))  # (B, HW, C)
        w = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(16), dim=-1)
        out = block.proj_out((w @ v).transpose(1, 2).reshape(x.shape))
        return (x + out) / math.sqrt(2)

    ours, ref = block(x), formula(x)
    assert torch.allclose(ours, ref, rtol=0, atol=1e-12)
    g = torch.randn(x.shape, dtype=torch.float64)
    assert torch.allclose(torch.autograd.grad(ours, x, g)[0], torch.autograd.grad(ref, x, g)[0], rtol=0, atol=1e-12)


def test_kernel_benchmark_runs(capsys, load_benchmark):
    """benchmarks/train.py --kernels prints one row per kernel and dtype (tiny sizes)."""
    bench = load_benchmark("train")
    threads = torch.get_num_threads()
    try:
        assert bench.main(["--kernels", "--tiny", "--steps", "1", "--batch", "1", "--threads", "1"]) == 0
    finally:
        torch.set_num_threads(threads)
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "x |" in line]
    assert len(rows) == 7 and all(float(r.split("|")[-2].strip()[:-1]) > 0 for r in rows)
