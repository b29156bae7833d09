"""Training speed and memory: steps/s and peak memory of the vp_cifar recipe (DDPM++, 61.8M
parameters) at batch 8 on the CPU, and the wall time of the vp_digits quickstart.

    python benchmarks/train.py                    # vp_cifar batch 8 (synthetic CIFAR-shaped data)
    python benchmarks/train.py --quickstart       # also time the whole vp_digits run
    python benchmarks/train.py --device cuda --batch 128   # on a GPU

Each measurement runs in a fresh process; peak memory is that process's maximum resident set
size (CPU) or torch.cuda.max_memory_allocated (GPU). CIFAR-10 itself is not needed: the data
are random images of CIFAR's shape (data.dataset=synthetic), which costs the same per step.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import json, resource, sys, time, torch
from scoresde import train
from scoresde.config import load_config, apply_overrides
args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
config = load_config(args["config"])
apply_overrides(config, [(k, str(v)) for k, v in args["overrides"].items()])
start = time.perf_counter()
code = train.main(config, args["workdir"], device=args["device"], quiet=True, bf16=args["bf16"])
total = time.perf_counter() - start
peak = (torch.cuda.max_memory_allocated() if args["device"].startswith("cuda")
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
print(json.dumps({"code": code, "seconds": total, "peak_bytes": peak}))
"""


def run_child(config, overrides, device, threads, bf16=False):
    with tempfile.TemporaryDirectory() as workdir:
        payload = json.dumps({"config": config, "overrides": overrides, "workdir": workdir,
                              "device": device, "threads": threads, "bf16": bf16})
        out = subprocess.run([sys.executable, "-c", CHILD, payload], capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(out.stderr[-3000:])
        return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5, help="measured steps (after warm-up)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--configs", default="vp_cifar")
    parser.add_argument("--quickstart", action="store_true", help="time the full vp_digits run")
    args = parser.parse_args(argv)
    print("| config | device | batch | steps/s | s/step | peak memory (GiB) |")
    print("|---|---|---|---|---|---|")
    for name in args.configs.split(","):
        common = {"data.dataset": "synthetic", "data.n_train": 256, "training.batch_size": args.batch,
                  "training.snapshot_sampling": False, "training.log_freq": 1, "training.snapshot_freq": 10**9}
        # Steps per second from the difference of two runs (removes start-up and the first
        # steps' allocations), peak memory from the longer one.
        short = run_child(name, dict(common, **{"training.n_iters": 2}), args.device, args.threads, args.bf16)
        long = run_child(name, dict(common, **{"training.n_iters": 2 + args.steps}), args.device, args.threads,
                         args.bf16)
        per_step = (long["seconds"] - short["seconds"]) / args.steps
        print(f"| {name} | {args.device} | {args.batch} | {1 / per_step:.3f} | {per_step:.2f} | "
              f"{long['peak_bytes'] / 2**30:.2f} |", flush=True)
    if args.quickstart:
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as workdir:
            subprocess.run([sys.executable, "-m", "scoresde.train", "--config", "vp_digits", "--workdir", workdir],
                           check=True, capture_output=True)
        print(f"\nvp_digits quickstart (3000 steps + 3 sample grids): {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
