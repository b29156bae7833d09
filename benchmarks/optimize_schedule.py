"""What ``optimize_schedule`` buys on a trained network: each solver on its fitted grid against
the same solver on the fixed grids, on a held-out batch (docs/fast_samplers.md).

    python benchmarks/optimize_schedule.py RUN_DIR [--nfes 5,10,20] [--warmup 16] [--batch 32]

The grid is fitted on a warm-up batch (seed 0) and judged on another batch (seed 1) against a
tight RK45 solution of the same ``x_T`` (benchmarks/peers.py, ``network_problem``). The time
column is the fitting's wall time.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peers import network_problem  # noqa: E402

from scoresde.sampling import SCHEDULE_METHODS, optimize_schedule  # noqa: E402

SOLVERS = {  # name: (method, solver arguments)
    "UniPC-3 (data, bh1)": ("unipc", {}),
    "DPM-Solver++(2M)": ("dpm_solver++", {}),
    "iPNDM-3": ("ipndm", dict(order=3)),
    "tAB-DEIS-3": ("deis", dict(order=3)),
}
GRIDS = ["logSNR", "time_quadratic", "vp_quadratic"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workdir")
    parser.add_argument("--nfes", default="5,10,20")
    parser.add_argument("--warmup", type=int, default=16, help="warm-up batch of the fitting")
    parser.add_argument("--batch", type=int, default=32, help="held-out batch")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    problem = network_problem(args.workdir, batch=args.batch, seed=1)
    shape = (args.warmup,) + tuple(problem.x_T.shape[1:])
    print(f"## {problem.name}: held-out batch {args.batch}, warm-up batch {args.warmup}; relative RMS error\n")
    print("| solver | NFE | fitted grid | " + " | ".join(GRIDS) + " | fitting (s) |")
    print("| --- | ---: | ---: | " + " | ".join("---:" for _ in GRIDS) + " | ---: |")
    for nfe in [int(n) for n in args.nfes.split(",")]:
        for name, (method, kwargs) in SOLVERS.items():
            solver = SCHEDULE_METHODS[method]
            start = time.perf_counter()
            grid = optimize_schedule(problem.score_fn, problem.sde, shape, nfe, method,
                                     generator=torch.Generator().manual_seed(0), **kwargs)
            seconds = time.perf_counter() - start
            with torch.no_grad():
                fitted = problem.error(solver(problem.score_fn, problem.sde, problem.x_T.shape, x_T=problem.x_T,
                                              timesteps=grid, **kwargs)[0])
                fixed = [problem.error(solver(problem.score_fn, problem.sde, problem.x_T.shape, x_T=problem.x_T,
                                              steps=nfe - 1, skip_type=g, **kwargs)[0]) for g in GRIDS]
            print(f"| {name} | {nfe} | {fitted:.4f} | " + " | ".join(f"{e:.4f}" for e in fixed)
                  + f" | {seconds:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
