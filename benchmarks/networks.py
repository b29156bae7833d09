"""CPU benchmark of the CIFAR-10 score networks: forward, training step, peak memory.

For each network it measures, each in a fresh Python process:

* ``fwd b8``: an eval-mode forward pass at batch 8 under ``torch.inference_mode``;
* ``train b8``: one training step at batch 8 -- ``zero_grad(set_to_none=True)``, forward,
  an epsilon-prediction MSE loss, backward, ``torch.optim.Adam(fused=True)`` step -- in train
  mode (dropout on);
* ``fwd b64`` (DDPM++ only): the eval-mode forward at batch 64 used for sampling.

Times are the median over ``--repeats`` runs after one warm-up run. Peak memory is the peak
resident set size (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) of the process that ran the
measurement, so it includes the interpreter, the torch libraries (about 0.2 GiB), the model,
gradients, optimizer state and all activations; every measurement starts a new process.

On a shared machine other processes distort the timings; the last column reports the CPU share
that processes other than the measurement used meanwhile (from ``/proc/stat`` minus the
measuring process's own CPU time; Linux only), and a ``*`` marks times measured while that
share exceeded ``--max-background``. With ``--retries`` a cell is measured again while that share
exceeds ``--max-background``, and the cleanest run is kept.

Usage::

    python benchmarks/networks.py                      # all networks, 2 threads
    python benchmarks/networks.py --models ddpmpp_cifar --repeats 7
    python benchmarks/networks.py --memory-format contiguous
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NETWORKS = ["ddpmpp_cifar", "ncsnpp_cifar", "ddpmpp_deep_cifar", "ncsnpp_deep_cifar", "ddpm_cifar"]


def _labels(model, batch: int):
    import torch

    t = torch.rand(batch) * 0.99 + 0.01
    # The network's own time input: 999 t, sigma(t) of the VE SDE, or the DDPM step.
    return {"999t": 999 * t, "index": 999 * t, "sigma": 0.01 * (5000.0**t)}[model.time_label]


def measure(name: str, mode: str, batch: int, repeats: int, threads: int, memory_format: str, bf16: bool) -> dict:
    """Run one measurement in this process; returns the median time and the peak RSS."""
    import torch

    sys.path.insert(0, ROOT)
    from scoresde.models import get_model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    fmt = torch.channels_last if memory_format == "channels_last" else torch.contiguous_format
    model = get_model(name).to(memory_format=fmt)
    x = torch.randn(batch, 3, 32, 32).to(memory_format=fmt)
    noise = torch.randn_like(x)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)
    times = []
    if mode == "train":
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=2e-4, fused=True)
        for _ in range(repeats + 1):
            labels = _labels(model, batch)
            start = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            with autocast:
                loss = (model(x, labels).float() - noise).square().mean()
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - start)
    else:
        model.eval()
        with torch.inference_mode():
            for _ in range(repeats + 1):
                labels = _labels(model, batch)
                start = time.perf_counter()
                with autocast:
                    model(x, labels)
                times.append(time.perf_counter() - start)
    return {
        "time_s": statistics.median(times[1:]),
        "times_s": times[1:],
        "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }


def _cpu_jiffies() -> tuple:
    """(busy, total) jiffies of all CPUs from /proc/stat, or (0, 0) where unavailable."""
    try:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return 0, 0
    return sum(values) - values[3] - values[4], sum(values)


def _wait_idle(timeout: float, max_load: float) -> None:
    """Wait up to ``timeout`` seconds for a second in which the CPUs are at most ``max_load`` busy."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        busy0, total0 = _cpu_jiffies()
        time.sleep(1.0)
        busy1, total1 = _cpu_jiffies()
        if (busy1 - busy0) <= max_load * max(total1 - total0, 1):
            return


def run_child(args: argparse.Namespace, name: str, mode: str, batch: int) -> dict:
    """Measure in a fresh process, again while others used more than ``--max-background``."""
    results = []
    for _ in range(1 + args.retries):
        _wait_idle(args.wait_idle, args.max_background)
        results.append(_run_child_once(args, name, mode, batch))
        if results[-1]["background"] <= args.max_background:
            break
    return min(results, key=lambda r: r["background"])


def _run_child_once(args: argparse.Namespace, name: str, mode: str, batch: int) -> dict:
    """Measure in a fresh process; adds the background CPU share seen meanwhile."""
    cmd = [
        sys.executable, __file__, "--child", name, mode, str(batch),
        "--repeats", str(args.repeats), "--threads", str(args.threads),
        "--memory-format", args.memory_format,
    ] + (["--bf16"] if args.bf16 else [])  # fmt: skip
    busy0, total0 = _cpu_jiffies()
    own0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    own1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy1, total1 = _cpu_jiffies()
    result = json.loads(out.strip().splitlines()[-1])
    tick = os.sysconf("SC_CLK_TCK")
    own = (own1.ru_utime + own1.ru_stime - own0.ru_utime - own0.ru_stime) * tick
    result["background"] = max(0.0, (busy1 - busy0 - own) / max(total1 - total0, 1))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=NETWORKS, choices=NETWORKS)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--memory-format", default="channels_last", choices=["channels_last", "contiguous"])
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (not the default fp32)")
    parser.add_argument("--max-background", type=float, default=0.05,
                        help="rerun a cell above this CPU share of other processes")
    parser.add_argument("--retries", type=int, default=3,
                        help="reruns per cell (the run with the least background load is kept)")
    parser.add_argument("--wait-idle", type=float, default=0.0,
                        help="before each run, wait up to this many seconds for idle CPUs")
    parser.add_argument("--child", nargs=3, metavar=("NAME", "MODE", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        name, mode, batch = args.child
        result = measure(name, mode, int(batch), args.repeats, args.threads, args.memory_format, args.bf16)
        print(json.dumps(result))
        return

    import torch

    print(
        f"torch {torch.__version__}, {args.threads} threads, {args.memory_format}, "
        f"{'bf16 autocast' if args.bf16 else 'fp32'}, median of {args.repeats} after 1 warm-up; "
        "peak = max RSS of a fresh process per cell"
    )
    print()
    print(
        "| network | params | fwd b8 (s) | fwd b8 peak (GiB) | train b8 (s) | train b8 peak (GiB) "
        "| fwd b64 (s) | fwd b64 peak (GiB) | max background load |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    sys.path.insert(0, ROOT)
    from scoresde.models import get_model

    for name in args.models:
        with torch.device("meta"):
            n_params = sum(p.numel() for p in get_model(name).parameters())
        cells = [name, f"{n_params / 1e6:.1f}M"]
        background = 0.0
        for mode, batch in [("forward", 8), ("train", 8), ("forward", 64)]:
            if batch == 64 and name != "ddpmpp_cifar":
                cells += ["", ""]
                continue
            result = run_child(args, name, mode, batch)
            # Flag a time measured while other processes were busy.
            flag = "*" if result["background"] > args.max_background else ""
            cells += [f"{result['time_s']:.2f}{flag}", f"{result['peak_gib']:.2f}"]
            background = max(background, result["background"])
        cells.append(f"{100 * background:.0f}%")
        print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
