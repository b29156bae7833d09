"""Training step of DDPM++ (vp_cifar) side by side with the official score_sde_pytorch.

    python benchmarks/train.py                         # fp32 and bf16 against the official fp32
    python benchmarks/train.py --variants fp32,fp32-contiguous,fp32-loop-adam   # what each choice buys
    python benchmarks/train.py --memory                # also peak memory, one fresh process per variant
    python benchmarks/train.py --device cuda --batch 128
    python benchmarks/train.py --kernels               # our step's own kernels against torch's

Both sides train the same network (61.8M parameters) from the same weights (ours loaded from
the official model's state dict, checked equal on a forward pass first), on the same batch
(random images of CIFAR's shape), with the same loss (continuous DSM, sigma^2 weighting,
mean over dimensions) and Adam with warm-up, gradient clipping and EMA. The official side is
its own ``losses.get_step_fn`` as its ``run_lib.train`` calls it; our side is the step of
``scoresde.train`` with the options of the variant. Steps alternate between the sides in one
process (the order rotates every round), so both see the same load; the table gives medians.

The official code is imported from ``--official`` (default ``.ref/score_sde_pytorch``, a
git-ignored folder; get it with ``git clone https://github.com/yang-song/score_sde_pytorch
.ref/score_sde_pytorch``). Its ``op`` package compiles CUDA kernels at import; DDPM++ never
calls them (``fir=False``), so on the CPU the benchmark puts pure-torch stand-ins in its place.
Without the official code the benchmark says so and times ours alone. It needs ml_collections
(as scoresde does) and nothing else of score_sde's requirements (no TensorFlow).
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import subprocess
import sys
import time
import types

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from scoresde import precision
from scoresde.config import load_config
from scoresde.models import ExponentialMovingAverage, convert_score_sde_state_dict, get_score_fn
from scoresde.models.layers import Dropout, group_norm, norm_act, upfirdn2d
from scoresde.run import make_model, make_objective, make_optimizer, make_sampler, make_sde

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: Our variants: options of the training step (see :func:`our_runner`).
VARIANTS = {
    "fp32": dict(),  # the trainer's default
    "bf16": dict(bf16=True),
    "fp32-compile": dict(compile=True),
    "bf16-compile": dict(bf16=True, compile=True),
    "fp32-contiguous": dict(channels_last=False),
    "fp32-loop-adam": dict(adam="for-loop"),
}
DEFAULTS = dict(bf16=False, compile=False, channels_last=True, adam="fast")


# ---------------------------------------------------------------------------------------------
# The official code.
def _stub_cuda_ops() -> None:
    """Pure-torch stand-ins for score_sde's ``op`` package (CUDA kernels compiled at import)."""
    op = types.ModuleType("op")

    def official_upfirdn2d(x, kernel, up=1, down=1, pad=(0, 0)):
        return upfirdn2d(x, kernel, up=up, down=down, pad=tuple(pad))

    def fused_leaky_relu(x, bias, negative_slope=0.2, scale=2**0.5):
        return F.leaky_relu(x + bias.view(1, -1, *[1] * (x.ndim - 2)), negative_slope) * scale

    op.upfirdn2d, op.fused_leaky_relu = official_upfirdn2d, fused_leaky_relu
    sys.modules["op"] = op


def import_official(path: str, device: str):
    """The official modules ``(config, losses, mutils, ema_module, sde_lib)``, or None when absent."""
    if not os.path.isfile(os.path.join(path, "models", "ncsnpp.py")):
        return None
    if device == "cpu" or not torch.cuda.is_available():
        _stub_cuda_ops()
    sys.path.insert(0, path)
    configs = types.ModuleType("configs")  # its configs, not our repository's package of that name
    configs.__path__ = [os.path.join(path, "configs")]
    sys.modules["configs"] = configs
    cfg = importlib.import_module("configs.vp.cifar10_ddpmpp_continuous").get_config()
    importlib.import_module("models.ncsnpp")  # registers the network
    return (cfg, importlib.import_module("losses"), importlib.import_module("models.utils"),
            importlib.import_module("models.ema"), importlib.import_module("sde_lib"))


#: ``--tiny``: a two-level DDPM++ with nf 16 and one block per level, to smoke-test the script.
TINY = dict(nf=16, ch_mult=(1, 2), num_res_blocks=1)


def official_runner(official, device: str, batch: int, tiny: bool = False):
    """The official model and its training step ``step(x)``."""
    cfg, losses, mutils, ema_module, sde_lib = official
    cfg.device = torch.device(device)
    if tiny:
        cfg.model.update(TINY)
    cfg.training.batch_size = batch
    model = mutils.create_model(cfg)  # DataParallel, as score_sde trains it
    optimizer = losses.get_optimizer(cfg, model.parameters())
    state = dict(optimizer=optimizer, model=model, step=0,
                 ema=ema_module.ExponentialMovingAverage(model.parameters(), decay=cfg.model.ema_rate))
    sde = sde_lib.VPSDE(beta_min=cfg.model.beta_min, beta_max=cfg.model.beta_max, N=cfg.model.num_scales)
    step_fn = losses.get_step_fn(sde, train=True, optimize_fn=losses.optimization_manager(cfg),
                                 reduce_mean=cfg.training.reduce_mean, continuous=True,
                                 likelihood_weighting=cfg.training.likelihood_weighting)
    return model, lambda x: step_fn(state, x)


# ---------------------------------------------------------------------------------------------
# Ours.
def our_config(tiny: bool = False):
    config = load_config("vp_cifar")
    if tiny:
        config.model.kwargs.update(TINY)
    return config


def our_runner(device: str, batch: int, official_model=None, tiny=False, bf16=False, compile=False,
               channels_last=True, adam="fast"):
    """Our model (from the official weights when given) and the step of ``scoresde.train.main``
    (its factories and loss; the options switch parts of its fast path off or on)."""
    config = our_config(tiny)
    config.training.batch_size = batch
    torch.manual_seed(0)
    model = make_model(config).to(device)
    if official_model is not None:
        model.load_state_dict(convert_score_sde_state_dict(official_model.state_dict(), model))
    if channels_last:
        model = precision.to_channels_last(model)
    sde = make_sde(config)
    optimizer = make_optimizer(config, model.parameters())
    if adam == "for-loop":  # torch's default on the CPU, which the official code gets
        optimizer = torch.optim.Adam(model.parameters(), **dict(optimizer.defaults, fused=None, foreach=False))
    ema = ExponentialMovingAverage(model.parameters(), decay=config.model.ema_rate)
    step_loss = make_objective(config, sde, precision.compile_model(model) if compile else model)
    autocast = precision.autocast(torch.device(device), bf16)
    generator = torch.Generator(device=device).manual_seed(1)
    o, counter = config.optim, [0]

    def step(x: torch.Tensor) -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = step_loss(x, None, generator)
        loss.backward()
        for group in optimizer.param_groups:
            group["lr"] = o.lr * min((counter[0] + 1) / max(o.warmup, 1), 1.0)
        precision.clip_grad_norm_(model.parameters(), max_norm=o.grad_clip)
        optimizer.step()
        ema.update(model.parameters())
        counter[0] += 1
        return loss

    return model, step


# ---------------------------------------------------------------------------------------------
def _load() -> str:
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


def check_same_network(official_model, ours, device: str) -> float:
    """Relative difference of the two networks' eval outputs on one batch, with every layer
    active (the zero-initialised output layers get random weights on both sides first)."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in official_model.parameters():
            p.add_(1e-2 * torch.randn(p.shape, generator=g).to(p.device))
    ours.load_state_dict(convert_score_sde_state_dict(official_model.state_dict(), ours))
    x = torch.randn(4, 3, 32, 32, generator=g).to(device)
    labels = (999 * torch.rand(4, generator=g)).to(device)
    official_model.eval(), ours.eval()
    with torch.no_grad():
        ref = official_model(x, labels)
        diff = (ref - ours(x, labels)).abs().max() / ref.abs().max()
    official_model.train(), ours.train()
    return diff.item()


def build(names, args, with_official=True):
    """``{name: step}`` for the official code (when present) and our variants ``names``."""
    device = args.device
    official = import_official(args.official, device) if with_official else None
    runners, official_model = {}, None
    if official is not None:
        official_model, runners["official"] = official_runner(official, device, args.batch, args.tiny)
    for name in names:
        options = dict(DEFAULTS, **VARIANTS[name])
        reason = precision.bf16_unsupported(torch.device(device)) if options["bf16"] else None
        if reason:
            print(f"skipping {name}: {reason}")
            continue
        model, runners[name] = our_runner(device, args.batch, official_model, args.tiny, **options)
        if official_model is not None and name == names[0]:
            print(f"same weights: max |official - ours| / max |official| of the eval forward = "
                  f"{check_same_network(official_model, model, device):.1e}")
    return runners


def sampling_rate(args, steps: int):
    """Seconds per step of the recipe's sampler (``sampling`` of vp_cifar) at ``--batch``."""
    config = our_config(args.tiny)
    full = config.sampling.steps or make_sde(config).N
    config.sampling.steps = steps
    device = torch.device(args.device)
    model = precision.to_channels_last(make_model(config).to(device)).eval()
    sde = make_sde(config)
    shape = (args.batch, 3, 32, 32)
    seconds = []
    for _ in range(2):  # the first run warms up
        generator = torch.Generator(device=device).manual_seed(0)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        make_sampler(config)(get_score_fn(model, sde), sde, shape, generator)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    per_step = seconds[-1] / steps
    s = config.sampling
    print(f"\nsampling ({s.method}: {s.predictor} + {s.corrector}, the recipe's {full} steps), batch "
          f"{args.batch}: {1e3 * per_step:.1f} ms/step over {steps} steps = "
          f"{args.batch / (per_step * full):.3g} images/s; load {_load()}")


def kernels(args) -> None:
    """Our training step's own kernels against the torch operations they replace, alternating
    in one process on DDPM++'s shapes: GroupNorm+SiLU and dropout (forward and backward, on a
    ``--batch`` x 128 x 32 x 32 channels_last map, float32 and bf16), attention (3-D inputs
    against AttnBlock's one-head 4-D layout) and gradient clipping (over gradients shaped like
    the 61.8M weights)."""
    device = torch.device(args.device)
    x32 = torch.randn(args.batch, 128, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    norm = group_norm(128).to(device)
    model = precision.to_channels_last(make_model(our_config(args.tiny)).to(device))
    params = list(model.parameters())
    for p in params:  # channels_last where the trainer has it
        p.grad = torch.randn_like(p)
    precision.clip_grad_norm_(params, 1.0)  # norm 1: later calls leave the gradients as they are

    def recomputed(h):
        return checkpoint(lambda a: F.silu(norm(a)), h, use_reentrant=False, preserve_rng_state=False)

    def fwd_bwd(f, x):
        x = x.detach().requires_grad_(True)
        y = f(x)
        y.backward(torch.ones_like(y))

    cases = []
    for dtype in (torch.float32, torch.bfloat16):
        x = x32.to(dtype)
        name = str(dtype).replace("torch.", "")
        # torch's own way to keep only the input: activation checkpointing.
        cases.append((f"GroupNorm+SiLU fwd+bwd, recomputed, {name}", lambda x=x: fwd_bwd(recomputed, x),
                      lambda x=x: fwd_bwd(lambda h: norm_act(norm, F.silu, h), x)))
        cases.append((f"dropout 0.1 fwd+bwd, {name}", lambda x=x: fwd_bwd(torch.nn.Dropout(0.1), x),
                      lambda x=x: fwd_bwd(Dropout(0.1), x)))
        # Attention at 16x16 (256 tokens of 256 channels): 3-D inputs (torch's math kernel)
        # against AttnBlock's one-head 4-D layout (where torch picks its flash kernel).
        q, k, v = (torch.randn(args.batch, 256, 256, device=device, dtype=dtype, requires_grad=True) for _ in "qkv")
        cases.append((f"attention fwd+bwd, 3-D against one-head 4-D inputs, {name}",
                      lambda q=q, k=k, v=v: F.scaled_dot_product_attention(q, k, v).sum().backward(),
                      lambda q=q, k=k, v=v: F.scaled_dot_product_attention(
                          q[:, None], k[:, None], v[:, None]).sum().backward()))
    cases.append(("gradient clipping, 61.8M weights", lambda: torch.nn.utils.clip_grad_norm_(params, 1.0),
                  lambda: precision.clip_grad_norm_(params, 1.0)))
    print(f"torch {torch.__version__}, {args.device}, {torch.get_num_threads()} threads, median of "
          f"{args.steps * 4} alternating calls; load before: {_load()}\n")
    print("| kernel | torch (ms) | ours (ms) | speed-up |")
    print("| --- | ---: | ---: | ---: |")
    for label, theirs, ours in cases:
        times = {"torch": [], "ours": []}
        for r in range(2 + args.steps * 4):
            for side, f in (("torch", theirs), ("ours", ours))[:: 1 if r % 2 else -1]:
                seconds = timed(lambda _: f(), None, args.device)
                if r >= 2:
                    times[side].append(seconds)
        t, o = statistics.median(times["torch"]), statistics.median(times["ours"])
        print(f"| {label} | {1e3 * t:.2f} | {1e3 * o:.2f} | {t / o:.2f}x |")
    print(f"\nload after: {_load()}")


def timed(step, x, device: str) -> float:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    step(x)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def child(name: str, args) -> None:
    """Peak memory of one variant (or of the official code) in this fresh process."""
    torch.set_num_threads(args.threads)
    runners = build([] if name == "official" else [name], args, with_official=name == "official")
    x = torch.rand(args.batch, 3, 32, 32, device=args.device) * 2 - 1
    step = runners[name]
    for _ in range(args.warmup):
        step(x)
    # The peak of the training steps alone, not of the imports and the model's set-up (which
    # differ between the two code bases): CUDA's allocator peak, or on Linux the peak resident
    # set size VmHWM after resetting it ("5" > /proc/self/clear_refs, Linux >= 4.0).
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    else:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:  # not Linux: the process's whole peak, set-up included
            print("cannot reset the peak RSS here (/proc/self/clear_refs): the figure includes set-up",
                  file=sys.stderr)
    for _ in range(2):
        step(x)
    if cuda:
        peak = torch.cuda.max_memory_allocated()
    elif os.path.exists("/proc/self/status"):
        with open("/proc/self/status") as f:
            peak = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
    else:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # bytes on macOS
    print(json.dumps({"peak_bytes": peak}))


def peak_memory(name: str, args) -> float:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", name, "--device", args.device,
           "--batch", str(args.batch), "--threads", str(args.threads), "--official", args.official,
           "--warmup", str(args.warmup)] + (["--tiny"] if args.tiny else [])
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_bytes"] / 2**30


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", default="fp32,bf16", help=f"ours, from: {', '.join(VARIANTS)}")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5, help="measured steps per side (after warm-up)")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured steps per side first")
    parser.add_argument("--memory", action="store_true", help="peak memory: one fresh process per side")
    parser.add_argument("--official", default=os.path.join(ROOT, ".ref", "score_sde_pytorch"),
                        help="folder of a score_sde_pytorch checkout")
    parser.add_argument("--sample-steps", type=int, default=0,
                        help="also time this many steps of the recipe's sampler (0: no)")
    parser.add_argument("--kernels", action="store_true",
                        help="time our step's own kernels against torch's (no training step)")
    parser.add_argument("--tiny", action="store_true", help="a tiny DDPM++ (checks the script, measures nothing)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    names = [n for n in args.variants.split(",") if n]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant {unknown[0]!r}; valid: {', '.join(VARIANTS)}")
    if args.child:
        child(args.child, args)
        return 0
    torch.set_num_threads(args.threads)
    if args.kernels:
        kernels(args)
        return 0
    runners = build(names, args)
    if "official" not in runners:
        print(f"official score_sde_pytorch not found in {args.official}: timing ours alone "
              "(see the module docstring to fetch it)")
    print(f"torch {torch.__version__}, {args.device}, batch {args.batch}, {args.threads} threads, "
          f"median of {args.steps} alternating steps after {args.warmup} warm-up; load (1/5/15 min) "
          f"before: {_load()}")
    x = torch.rand(args.batch, 3, 32, 32, device=args.device) * 2 - 1
    order = list(runners)
    times = {name: [] for name in order}
    for r in range(args.warmup + args.steps):
        for name in order[r % len(order):] + order[:r % len(order)]:  # rotate who goes first
            seconds = timed(runners[name], x, args.device)
            if r >= args.warmup:
                times[name].append(seconds)
    load_after = _load()
    base = statistics.median(times["official"]) if "official" in times else None
    # Peak memory in a fresh process per side (a compiled variant would compile again: skipped).
    memory = {name: peak_memory(name, args) for name in order
              if args.memory and not VARIANTS.get(name, {}).get("compile")}
    kind = "max allocated" if args.device.startswith("cuda") else "peak RSS of the steps"
    print()
    print(f"| side | s/step (median) | min-max | img/s | speed-up over official | peak memory, {kind} (GiB) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name in order:
        med = statistics.median(times[name])
        ratio = f"{base / med:.2f}x" if base is not None else "-"
        mem = f"{memory[name]:.2f}" if name in memory else "-"
        print(f"| {name} | {med:.3f} | {min(times[name]):.3f}-{max(times[name]):.3f} | {args.batch / med:.1f} "
              f"| {ratio} | {mem} |")
    print(f"\nload (1/5/15 min) after: {load_after}")
    if args.sample_steps:
        sampling_rate(args, args.sample_steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
