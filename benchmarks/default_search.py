"""Settings of ours against the best of the peer samplers, problem by problem, at one budget:
the search behind the rows of ``BUDGET_DEFAULTS`` (docs/fast_samplers.md, "Where to stop").

    pip install diffusers==0.42.1 torchdiffeq==0.2.5 && pip install --no-deps k-diffusion==0.1.1
    python benchmarks/default_search.py --nfe 10 --workdir runs/vp_digits \\
        --settings unipc:order=2,variant=bh2,prediction=data,skip_type=logSNR --stops 0.02,0.03,0.045

For every setting (each with each stop) and for the default, our error over the best peer's
error on each problem (below 1: ours is more accurate) and the worst of them, best first; the
problems, errors and peers are those of ``benchmarks/peers.py``. For scale, the same for each
peer setting against the best of the *other* peer settings: what one fixed peer setting gives
against the per-problem best of the rest (``--peer-rows`` of them, best first).

``--quality N`` adds, for each ``--workdir``, a check of what the ranking means for the
samples: ``N`` samples of each setting, of the default and of the problem's best peer from the
same ``x_T``, their error to a tight solution (the default at 100 NFE) and the Frechet distance
in pixel space between them and the run's training images (no Inception network; with ``N``
below the number of pixels it is biased upwards, alike for every sampler).
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Dict, List, Optional

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peers  # noqa: E402

SETTINGS = [
    "ipndm:order=3,skip_type=logSNR_quadratic",
    "ipndm:order=3,skip_type=logSNR",
    "unipc:order=2,variant=bh2,prediction=data,skip_type=logSNR",
    "unipc:order=3,variant=bh1,prediction=data,skip_type=logSNR",
]
PROBLEMS = {
    "gauss": lambda: peers.gaussian_problem(),
    "spectrum": lambda: peers.spectrum_gaussian_problem(),
    "ring": lambda: peers.ring_problem(),
}


def settings_with_stops(settings: List[str], stops: List[str]) -> List[str]:
    return [s + ("," if ":" in s else ":") + f"stop_noise={stop}" for s in settings for stop in stops]


def peer_ratios_against_the_rest(errors: Dict[str, float]) -> Dict[str, float]:
    """Each peer setting's error (``errors[name]``, on one problem at one budget) over the
    smallest error of the other settings."""
    ranked = sorted(errors.items(), key=lambda item: item[1])
    if len(ranked) < 2:
        return {}
    (first, e1), (_, e2) = ranked[0], ranked[1]
    return {name: error / (e2 if name == first else e1) for name, error in errors.items()}


def print_ratios(title: str, first: str, columns: List[str], ratios: Dict[str, List[float]],
                 rows: Optional[int] = None) -> None:
    """A markdown table of ``ratios[name]`` (one per column) and their worst, best first
    (the first ``rows`` of them)."""
    print(f"\n### {title}\n")
    print(f"| {first} | " + " | ".join(columns) + " | worst |")
    print("| --- |" + " ---: |" * (len(columns) + 1))
    for name, row in sorted(ratios.items(), key=lambda item: max(item[1]))[:rows]:
        print(f"| {name} | " + " | ".join(f"{r:.2f}" for r in row) + f" | {max(row):.2f} |")


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted to the rows of ``a`` ``(N, ...)`` and ``b``."""
    a, b = a.reshape(len(a), -1).double(), b.reshape(len(b), -1).double()
    ca, cb = torch.atleast_2d(torch.cov(a.T)), torch.atleast_2d(torch.cov(b.T))
    w, v = torch.linalg.eigh(ca)
    root_a = (v * w.clamp(min=0).sqrt()) @ v.T
    cross = torch.linalg.eigvalsh(root_a @ cb @ root_a).clamp(min=0).sqrt().sum()
    return float((a.mean(0) - b.mean(0)).pow(2).sum() + ca.trace() + cb.trace() - 2 * cross)


def quality(workdir: str, network: peers.Problem, nfe: int, runners: Dict[str, peers.Runner], n: int) -> None:
    """The ``--quality`` table of one run, whose network ``network`` (a problem of
    ``peers.network_problem``) already holds (see the module docstring)."""
    from scoresde.data import load_dataset, to_model_range
    from scoresde.run import read_config
    from scoresde.sampling import sample

    config, sde = read_config(workdir), network.sde
    shape = (n,) + tuple(network.x_T.shape[1:])
    x_T = sde.prior_sampling(shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        tight = sample(network.score_fn, sde, shape, pc=False, steps=99, x_T=x_T, eps=1e-3)
    problem = peers.Problem(network.name, sde, network.score_fn, x_T, tight)
    data = to_model_range(load_dataset(config.data.dataset, split="train").images, config.data.centered)
    print(f"\n### {problem.name}: {n} samples at {nfe} NFE; the training images' mean pixel variance "
          f"{float(data.double().var(0).mean()):.4f}\n")
    print("| sampler | error to the tight solution | Frechet distance (pixels) | mean pixel variance |")
    print("| --- | ---: | ---: | ---: |")
    for name, run in {"tight solution (the default at 100 NFE)": lambda p, k: (tight, 100), **runners}.items():
        with torch.no_grad():
            x, _ = run(problem, nfe)
        print(f"| {name} | {problem.error(x):.4g} | {frechet_distance(x, data):.4g} | "
              f"{float(x.double().var(0).mean()):.4f} |", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nfe", type=int, required=True, help="the budget, denoising step included")
    parser.add_argument("--problems", default="gauss,spectrum,ring",
                        help=f"comma-separated, from {', '.join(PROBLEMS)} (and the --workdir runs)")
    parser.add_argument("--workdir", action="append", default=[], help="a trained run (repeatable)")
    parser.add_argument("--settings", default=";".join(SETTINGS),
                        help="';'-separated settings, method:key=value,... (default: %(default)s)")
    parser.add_argument("--stops", default="eps,0.02,0.03,0.045,0.08",
                        help="sigma / alpha values to stop at, each tried with every setting ('eps': no stop)")
    parser.add_argument("--quality", type=int, default=0, metavar="N", help="the sample-quality check, N samples")
    parser.add_argument("--peer-rows", type=int, default=5, metavar="K",
                        help="the K best fixed peer settings against the rest of the peers (0: none)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = [p for p in args.problems.split(",") if p]
    unknown = [p for p in names if p not in PROBLEMS]
    if unknown:
        parser.error(f"unknown problem(s) {', '.join(unknown)}; valid: {', '.join(PROBLEMS)}")
    ours = {s: peers.setting_runner(s) for s in settings_with_stops(args.settings.split(";"), args.stops.split(","))}
    ours["the default"] = peers.default_runner

    problems = [PROBLEMS[p]() for p in names] + [peers.network_problem(w) for w in args.workdir]
    ratios: Dict[str, List[float]] = {name: [] for name in ours}
    peer_ratios: Dict[str, List[float]] = {}
    best_peers = []
    for problem in problems:
        runners, notes = peers.peer_runners(problem.sde)
        if not runners:
            parser.error("; ".join(notes))
        theirs = {name: row[args.nfe] for name, row in peers.evaluate(runners, problem, [args.nfe]).items()}
        best_error, best_name = min((error, name) for name, error in theirs.items())
        best_peers.append((problem.name, best_name, best_error, runners[best_name]))
        for name, ratio in peer_ratios_against_the_rest(theirs).items():
            peer_ratios.setdefault(name, []).append(ratio)
        for name, row in peers.evaluate(ours, problem, [args.nfe]).items():
            ratios[name].append(row[args.nfe] / best_error)

    columns = [p.name for p in problems]
    print_ratios(f"Our error over the best peer's at {args.nfe} NFE (below 1: ours is more accurate)",
                 "setting", columns, ratios)
    if args.peer_rows:
        complete = {name: row for name, row in peer_ratios.items() if len(row) == len(problems)}
        print_ratios(f"Each peer setting's error over the best of the other peer settings at {args.nfe} NFE",
                     "peer setting", columns, complete, args.peer_rows)
    print("\n| problem | best peer | its error |\n| --- | --- | ---: |")
    for problem_name, peer_name, error, _ in best_peers:
        print(f"| {problem_name} | {peer_name} | {error:.4g} |")

    if args.quality:
        for workdir, problem, (_, peer_name, _, peer) in zip(args.workdir, problems[len(names):],
                                                             best_peers[len(names):]):
            quality(workdir, problem, args.nfe, {**ours, peer_name: peer}, args.quality)
    return 0


if __name__ == "__main__":
    sys.exit(main())
