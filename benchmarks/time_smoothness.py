"""How smooth a trained network is in time, where the samplers evaluate it.

    python benchmarks/time_smoothness.py RUN [RUN ...] [--batch 8] [--width 0.02]

Fixed-step samplers assume that the model's prediction changes smoothly with ``t`` between
their grid points. A network need not: its time enters through a sinusoidal embedding of
``999 t`` (the official DDPM++ / NCSN++ convention), and until training has smoothed it out
the output can oscillate in ``t`` with periods of about 0.006-0.013. A step that is long
against those periods samples the oscillation rather than the trend, and the error stops
falling with the budget (docs/fast_samplers.md, "Where it falls short").

For each run, ``x_t0`` is taken on the probability-flow trajectory (RK45 from ``x_T`` to
``t0``), and the noise prediction ``eps(x_t0, t) = -sigma_t score(x_t0, t)`` is evaluated at
``points`` times across ``t0 +- width / 2`` with ``x_t0`` held fixed. The table gives the RMS
of what a quadratic in ``t`` fitted to those values leaves over, relative to the RMS of their
variation across the window: 1e-4 to 1e-3 for the exact scores of the toy problems (their
curvature), percents for a network that oscillates.
"""
from __future__ import annotations

import argparse
from typing import List, Sequence

import torch

from scoresde.sampling import rk45_sampler
from scoresde.sde import SDE

TIMES = (0.9, 0.7, 0.5, 0.3, 0.1)


@torch.no_grad()
def roughness(score_fn, sde: SDE, x: torch.Tensor, t0: float, width: float = 0.02, points: int = 41) -> float:
    """The RMS residual of a least-squares quadratic in ``t`` through ``eps(x, t)`` at
    ``points`` times in ``t0 +- width / 2`` (``x`` ``(B, *D)`` fixed), over the RMS of the
    values about their mean."""
    ts = torch.linspace(t0 - width / 2, t0 + width / 2, points, dtype=torch.float64)
    sigmas = sde.marginal_coeffs(ts)[1]
    rows = [-(s * score_fn(x, torch.full((x.shape[0],), float(t), dtype=x.dtype))).to(torch.float64).flatten()
            for t, s in zip(ts.tolist(), sigmas.tolist())]
    values = torch.stack(rows)  # (points, B * D)
    basis = torch.vander((ts - t0) / width, 3)  # (points, 3)
    fit = basis @ torch.linalg.lstsq(basis, values).solution
    spread = (values - values.mean(0)).pow(2).mean().sqrt()
    return ((values - fit).pow(2).mean().sqrt() / spread).item()


def trajectory_roughness(score_fn, sde: SDE, x_T: torch.Tensor, times: Sequence[float] = TIMES,
                         width: float = 0.02) -> List[float]:
    """:func:`roughness` at each ``t0`` in ``times``, at the states the probability-flow ODE
    (RK45, tolerance 1e-4) reaches from ``x_T``."""
    out = []
    for t0 in times:
        x, _ = rk45_sampler(score_fn, sde, x_T.shape, x_T=x_T, eps=t0, denoise=False, rtol=1e-4, atol=1e-4)
        out.append(roughness(score_fn, sde, x, t0, width))
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workdirs", nargs="+", metavar="RUN", help="trained run directories")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--width", type=float, default=0.02, help="window in t around each t0")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from scoresde.models import get_score_fn
    from scoresde.run import data_shape, load_run

    print("| run | step | " + " | ".join(f"t0 = {t}" for t in TIMES) + " |")
    print("| --- | ---: | " + " | ".join("---:" for _ in TIMES) + " |")
    for workdir in args.workdirs:
        config, model, sde, step = load_run(workdir, device="cpu")
        score_fn = get_score_fn(model, sde)
        shape = (args.batch,) + tuple(data_shape(config))
        x_T = sde.prior_sampling(shape, generator=torch.Generator().manual_seed(0))
        values = trajectory_roughness(score_fn, sde, x_T, TIMES, args.width)
        print(f"| {workdir} | {step} | " + " | ".join(f"{v:.2%}" for v in values) + " |", flush=True)


if __name__ == "__main__":
    main()
