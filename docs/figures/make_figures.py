"""Regenerate the documentation's figures (small PNGs in this folder) with exact scores.

    python docs/figures/make_figures.py                                   # toy figures, about a minute
    python docs/figures/make_figures.py --digits-workdir runs/vp_digits   # also the digits grids

Needs matplotlib (the ``docs`` extra). The toy figures use the closed-form scores of
:mod:`scoresde.toy` under the VP SDE, in float64, with fixed seeds.
"""
from __future__ import annotations

import argparse
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import scoresde  # noqa: E402
from scoresde import toy  # noqa: E402
from scoresde.plotting import outside_count  # noqa: E402
from scoresde.sampling import (  # noqa: E402
    ddim_sampler,
    denoise_step,
    dpm_solver_pp_sampler,
    dpm_solver_sampler,
    edm_heun_sampler,
    euler_maruyama_predictor,
    euler_sampler,
    heun_sampler,
    pc_sampler,
    rk45_sampler,
    step_pairs,
    uniform_grid,
)

HERE = os.path.dirname(os.path.abspath(__file__))
DTYPE = torch.float64
DPI = 80


def save(fig, name: str) -> None:
    path = os.path.join(HERE, name)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    print(f"wrote {path} ({os.path.getsize(path) / 1024:.0f} KiB)")


def trajectories(sde) -> None:
    """Forward SDE paths of ring samples, and reverse SDE and ODE paths back to the ring."""
    ring = toy.ring()
    score = ring.score_fn(sde)
    n, steps = 60, 200
    grid = uniform_grid(sde.T, 1e-3, steps)
    g = torch.Generator().manual_seed(0)
    # Forward: the exact transition of the SDE over each step (SDE.discretize with dt).
    x = ring.sample(n, generator=g, dtype=DTYPE)
    forward = [x]
    fwd_grid = grid[::-1]
    for t_prev, t in zip(fwd_grid[:-1], fwd_grid[1:]):
        f, G = sde.discretize(x, torch.full((n,), t, dtype=DTYPE), t - t_prev)
        x = x + f + G[:, None] * torch.randn(x.shape, generator=g, dtype=DTYPE)
        forward.append(x)
    # Reverse SDE: the Euler-Maruyama predictor, step by step.
    x_T = sde.prior_sampling((n, 2), generator=g, dtype=DTYPE)
    x, reverse = x_T, [x_T]
    for k, (t_cur, t_next) in enumerate(step_pairs(grid)):
        last = k == steps - 1
        x, x_mean = euler_maruyama_predictor(score, sde, x, torch.full((n,), t_cur, dtype=DTYPE),
                                             t_cur - t_next, t_cur - t_next, g, add_noise=not last)
        reverse.append(x_mean if last else x)
    # Probability-flow ODE: Heun from T to each time of a coarse grid, from the same x_T.
    ode = [x_T] + [heun_sampler(score, sde, (n, 2), steps=100, eps=t, x_T=x_T, denoise=False)[0]
                   for t in uniform_grid(sde.T, 1e-3, 41)[1:]]
    panels = [("forward SDE: data to noise", forward), ("reverse SDE (Euler-Maruyama)", reverse),
              ("probability-flow ODE (Heun)", ode)]
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.2))
    for ax, (title, path) in zip(axes, panels):
        p = torch.stack(path)  # (steps, n, 2)
        for j in range(n if "ODE" in title else 15):  # a few stochastic paths stay readable
            ax.plot(p[:, j, 0], p[:, j, 1], lw=0.5, alpha=0.6, color="tab:blue")
        ax.scatter(p[0, :, 0], p[0, :, 1], s=8, color="tab:green", zorder=3, label="start")
        ax.scatter(p[-1, :, 0], p[-1, :, 1], s=8, color="tab:red", zorder=3, label="end")
        ax.set_title(title, fontsize=10)
        ax.set_xlim(-3.5, 3.5)
        ax.set_ylim(-3.5, 3.5)
        ax.set_aspect("equal")
    axes[0].legend(loc="lower left", fontsize=8)
    fig.suptitle(f"2-D ring of 8 Gaussians, {sde}, exact score", fontsize=10)
    save(fig, "trajectories.png")


def error_vs_nfe(sde) -> None:
    """Deterministic solvers against the exact probability-flow map of a Gaussian."""
    gauss = toy.high_dim_gaussian()  # 3072-D (3x32x32), the Gaussian of benchmarks.md
    score = gauss.score_fn(sde)
    B, eps = 200, 1e-3
    shape = (B,) + gauss.event_shape
    x_T = sde.prior_sampling(shape, generator=torch.Generator().manual_seed(0), dtype=DTYPE)
    ref = denoise_step(score, sde, gauss.flow(x_T, sde, torch.full((B,), sde.T, dtype=DTYPE),
                                              torch.full((B,), eps, dtype=DTYPE)), eps)
    m = gauss.mean.reshape((1,) + gauss.event_shape)
    err = lambda x: ((x - ref).pow(2).mean() / (ref - m).pow(2).mean()).sqrt().item()  # noqa: E731
    solvers = {
        "Euler": lambda n: euler_sampler(score, sde, shape, steps=n - 1, x_T=x_T),
        "Heun": lambda n: heun_sampler(score, sde, shape, steps=(n - 1) // 2, x_T=x_T),
        "DDIM": lambda n: ddim_sampler(score, sde, shape, steps=n, discrete=False, x_T=x_T),
        "DPM-Solver-3": lambda n: dpm_solver_sampler(score, sde, shape, steps=n - 1, x_T=x_T),
        "DPM-Solver-3M": lambda n: dpm_solver_sampler(score, sde, shape, steps=n - 1, multistep=True, x_T=x_T),
        "DPM-Solver++(2M)": lambda n: dpm_solver_pp_sampler(score, sde, shape, steps=n - 1, x_T=x_T),
        "EDM Heun": lambda n: edm_heun_sampler(score, sde, shape, steps=(n - 1) // 2, x_T=x_T),
    }
    fig, ax = plt.subplots(figsize=(6.5, 4.3))
    for name, run in solvers.items():
        pts = [run(n) for n in (10, 15, 20, 35, 50, 100, 200)]
        ax.loglog([nfe for _, nfe in pts], [err(x) for x, _ in pts], "o-", ms=3, label=name)
    pts = [rk45_sampler(score, sde, shape, rtol=tol, atol=tol, x_T=x_T) for tol in (1e-2, 1e-3, 1e-4, 1e-5)]
    ax.loglog([nfe for _, nfe in pts], [err(x) for x, _ in pts], "s--", ms=3, label="RK45 (adaptive)")
    ax.set_xlabel("NFE (score evaluations)")
    ax.set_ylabel("relative RMS error vs exact flow")
    ax.set_title(f"Probability-flow ODE solvers, {sde}, Gaussian in {gauss.dim} dims", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    save(fig, "error_vs_nfe.png")


def ring_samplers(sde) -> None:
    """Scatter plots of samplers on the ring at about 20 NFE."""
    ring = toy.ring()
    score = ring.score_fn(sde)
    n = 2000
    shape = (n, 2)
    g = lambda: torch.Generator().manual_seed(2)  # noqa: E731
    runs = {
        "data": lambda: (ring.sample(n, generator=g(), dtype=DTYPE), 0),
        "PC Euler-Maruyama, 20 steps": lambda: pc_sampler(score, sde, shape, steps=20, corrector=None,
                                                          generator=g(), dtype=DTYPE),
        "PC reverse diffusion + Langevin, 10": lambda: pc_sampler(score, sde, shape, steps=10,
                                                                  predictor="reverse_diffusion",
                                                                  generator=g(), dtype=DTYPE),
        "ancestral (DDPM), 20": lambda: pc_sampler(score, sde, shape, steps=20, predictor="ancestral",
                                                   corrector=None, generator=g(), dtype=DTYPE),
        "DDIM, 20": lambda: ddim_sampler(score, sde, shape, steps=20, discrete=False, generator=g(), dtype=DTYPE),
        "DPM-Solver-3M, 19": lambda: dpm_solver_sampler(score, sde, shape, steps=19, multistep=True,
                                                        generator=g(), dtype=DTYPE),
        "DPM-Solver++(2M), 19": lambda: dpm_solver_pp_sampler(score, sde, shape, steps=19, generator=g(), dtype=DTYPE),
        "EDM Heun, 9": lambda: edm_heun_sampler(score, sde, shape, steps=9, generator=g(), dtype=DTYPE),
    }
    fig, axes = plt.subplots(2, 4, figsize=(12, 6.4), sharex=True, sharey=True)
    for ax, (name, run) in zip(axes.flat, runs.items()):
        x, nfe = run()
        k = ring.nearest_component(x)
        spread = (x.double() - ring.means[k]).std().item()
        ax.scatter(x[:, 0], x[:, 1], s=1, alpha=0.35, rasterized=True)
        ax.scatter(ring.means[:, 0], ring.means[:, 1], marker="+", color="red", s=30)
        outside = outside_count(x, (-3.0, 3.0))
        ax.set_title(f"{name}\nNFE {nfe}, spread {spread:.3f} (true 0.100), {outside} outside", fontsize=8)
        ax.set_xlim(-3, 3)
        ax.set_ylim(-3, 3)
        ax.set_aspect("equal")
    fig.tight_layout()
    save(fig, "ring_samplers.png")


def digits(workdir: str) -> None:
    """Sample grids of a trained vp_digits run: PC (Euler-Maruyama) against the ODE."""
    from scoresde.plotting import image_grid
    from scoresde.train import load_run

    config, model, sde, step = load_run(workdir)
    score = scoresde.get_score_fn(model, sde)
    shape = (64, 1, 8, 8)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    runs = {"PC Euler-Maruyama, 500 steps": pc_sampler(score, sde, shape, steps=500, corrector=None, generator=g()),
            "probability-flow ODE, RK45": rk45_sampler(score, sde, shape, rtol=1e-3, atol=1e-3, generator=g()),
            "DPM-Solver++(2M), 20 steps": dpm_solver_pp_sampler(score, sde, shape, steps=19, generator=g())}
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.4))
    for ax, (name, (x, nfe)) in zip(axes, runs.items()):
        ax.imshow(image_grid(x, value_range=(-1, 1))[:, :, 0], cmap="gray")
        ax.set_title(f"{name} (NFE {nfe})", fontsize=10)
        ax.axis("off")
    fig.suptitle(f"vp_digits after {step} training steps", fontsize=10)
    save(fig, "digits_samples.png")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--digits-workdir", help="a trained vp_digits run: also draw its sample grids")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    sde = scoresde.VPSDE()
    trajectories(sde)
    error_vs_nfe(sde)
    ring_samplers(sde)
    if args.digits_workdir:
        digits(args.digits_workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
