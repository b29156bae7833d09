"""Error against NFE and wall time of every sampler, driven by exact scores.

    python benchmarks/samplers.py                 # full table (about 30 min on 2 cores)
    python benchmarks/samplers.py --quick         # a few budgets, one SDE per problem
    python benchmarks/samplers.py --samplers DPM,EDM,adaptive --no-overhead
                                                  # the fast samplers only (docs/fast_samplers.md)
    python benchmarks/samplers.py --peers [--workdir RUN ...]
                                                  # the fixed-budget default against every
                                                  # diffusers / k-diffusion sampler (benchmarks/peers.py)

Problems:
  ring      the 8-mode 2-D ring (scoresde.toy.ring, 4000 samples). Metric: sliced W2 between
            each sample's offset from its nearest mode centre and the true offsets
            (N(0, 0.1^2 I)), which separates samplers (the global sliced W2 sits at its noise
            floor for all of them), and the largest mode-occupancy error. The noise floor is
            the same metric between two exact samples of the same size.
  gauss     N(m, 0.25 I) in 3072 dims (scoresde.toy.high_dim_gaussian, 500 samples):
            |sample var / true var - 1| and the RMS error of the sample mean (noise floors:
            sqrt(2 / (B D)) and 0.5 / sqrt(B)).
  flow      the same Gaussian, deterministic solvers with an "nfe" budget only: the sampler
            against the exact probability-flow map of the same x_T followed by the same final
            step (denoise_step; Tweedie to sigma = 0 for EDM), which removes the sampling noise
            of the variance: |var / var_exact - 1| and the RMS error relative to the RMS of
            x_exact - m.
  model     a trained network (--workdir, e.g. the Fashion-MNIST run of docs/benchmarks.md),
            NFE-budgeted samplers only: the RMS distance of the samples from a 200-NFE UniPC-3
            solution of the same x_T, relative to its RMS (--model-batch samples). The exact
            problems above have smooth model values in noise prediction at every noise level;
            a network's data prediction is the smoother one at low noise, so the ranking of
            samplers can differ here.
Budgets: "steps" (time steps), "tol" (rtol = atol of an adaptive ODE solver), "nfe" (total
score evaluations including the final denoising one; EDM uses the largest odd NFE within it)
and "sde tol" (rtol of the adaptive SDE solver, atol = 0.0078).
Also printed: the sampler's own time per step (outside the score function) at 3072 dims.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from typing import Callable, Dict, List, Tuple

import torch

from scoresde import VESDE, VPSDE, SubVPSDE, toy
from scoresde.sampling import (
    adaptive_sde_sampler,
    ddim_sampler,
    denoise_step,
    dpm_solver_pp_sampler,
    dpm_solver_sampler,
    edm_heun_sampler,
    euler_sampler,
    heun_sampler,
    pc_sampler,
    rk45_sampler,
    scipy_rk45_sampler,
    sdeint_sampler,
    unipc_sampler,
)

SDES = {"vp": VPSDE(), "subvp": SubVPSDE(), "ve": VESDE()}
STEPS = [10, 20, 50, 100, 250, 1000]
TOLS = [1e-3, 1e-4, 1e-5]
NFES = [10, 20, 35, 50, 100]
SDE_TOLS = [0.1, 0.05, 0.02, 0.01]
RING_N = 4000
GAUSS_B = 500


def gaussian_score(data: toy.Gaussian, sde) -> Callable:
    """Closed-form score of the isotropic Gaussian in the sampling dtype (cheap)."""
    mean = data.mean.float().reshape((1,) + data.event_shape)
    var0 = float(data.eigvals[0])

    def score_fn(x, t):
        alpha, sigma = sde.marginal_coeffs(t)
        a = alpha.reshape(-1, *([1] * (x.ndim - 1)))
        s2 = sigma.reshape(a.shape) ** 2
        return -(x - a * mean.to(x.dtype)) / (a * a * var0 + s2)

    return score_fn


def sliced_w2(a: torch.Tensor, b: torch.Tensor, n_proj: int = 256, seed: int = 0) -> float:
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(a.shape[1], n_proj, generator=g, dtype=torch.float64)
    theta /= theta.norm(dim=0, keepdim=True)
    pa, _ = torch.sort(a.double() @ theta, dim=0)
    pb, _ = torch.sort(b.double() @ theta, dim=0)
    return ((pa - pb) ** 2).mean().sqrt().item()


def ring_metrics(data: toy.GaussianMixture, x: torch.Tensor, ref_offsets: torch.Tensor) -> Dict[str, float]:
    if not bool(torch.isfinite(x).all()):
        return {"W2(offsets)": float("nan"), "occupancy err": float("nan")}
    k = data.nearest_component(x)
    offsets = x.double() - data.means[k]
    occ = torch.bincount(k, minlength=data.n_components).double() / len(x)
    return {
        "W2(offsets)": sliced_w2(offsets, ref_offsets),
        "occupancy err": (occ - 1 / data.n_components).abs().max().item(),
    }


def gauss_metrics(data: toy.Gaussian, x: torch.Tensor) -> Dict[str, float]:
    x = x.double().reshape(x.shape[0], -1)
    if not bool(torch.isfinite(x).all()):
        return {"|var/true-1|": float("nan"), "mean RMSE": float("nan")}
    var = ((x - data.mean) ** 2).mean().item()
    return {
        "|var/true-1|": abs(var / data.eigvals[0].item() - 1),
        "mean RMSE": (x.mean(0) - data.mean).pow(2).mean().sqrt().item(),
    }


def sampler_table(quick: bool) -> List[Tuple[str, str, Callable]]:
    """(name, budget kind, run(score_fn, sde, shape, budget, gen) -> (x, nfe))."""
    def pc(pred, corr):
        return lambda f, s, shp, n, g: pc_sampler(f, s, shp, steps=n, predictor=pred, corrector=corr,
                                                  snr=0.16, generator=g)
    rows = [
        ("PC euler_maruyama", "steps", pc("euler_maruyama", None)),
        ("PC euler_maruyama+langevin", "steps", pc("euler_maruyama", "langevin")),
        ("PC reverse_diffusion", "steps", pc("reverse_diffusion", None)),
        ("PC reverse_diffusion+langevin", "steps", pc("reverse_diffusion", "langevin")),
        ("PC ancestral", "steps", pc("ancestral", None)),
        ("PC ancestral+langevin", "steps", pc("ancestral", "langevin")),
        ("ODE rk45", "tol", lambda f, s, shp, tol, g: rk45_sampler(f, s, shp, rtol=tol, atol=tol, generator=g)),
        ("ODE scipy_rk45", "tol", lambda f, s, shp, tol, g: scipy_rk45_sampler(f, s, shp, rtol=tol, atol=tol,
                                                                                generator=g)),
        ("ODE euler", "steps", lambda f, s, shp, n, g: euler_sampler(f, s, shp, steps=n, generator=g)),
        ("ODE heun", "steps", lambda f, s, shp, n, g: heun_sampler(f, s, shp, steps=n, generator=g)),
        ("DDIM eta=0", "steps", lambda f, s, shp, n, g: ddim_sampler(f, s, shp, steps=n, generator=g)),
        ("DDIM eta=1", "steps", lambda f, s, shp, n, g: ddim_sampler(f, s, shp, steps=n, eta=1.0, generator=g)),
    ]
    for method in ("euler", "milstein", "srk", "reversible_heun"):
        rows.append((f"torchsde {method}", "steps",
                     lambda f, s, shp, n, g, m=method: sdeint_sampler(f, s, shp, method=m, steps=n, generator=g)))
    # The fast samplers at a total NFE budget n (denoising included).
    def dpm(**kw):
        return lambda f, s, shp, n, g: dpm_solver_sampler(f, s, shp, steps=n - 1, generator=g, **kw)

    def unipc(**kw):
        return lambda f, s, shp, n, g: unipc_sampler(f, s, shp, steps=n - 1, generator=g, **kw)
    rows += [
        ("DPM-Solver-1", "nfe", dpm(order=1)),
        ("DPM-Solver-2", "nfe", dpm(order=2)),
        ("DPM-Solver-3", "nfe", dpm(order=3)),
        ("DPM-Solver-2M", "nfe", dpm(order=2, multistep=True)),
        ("DPM-Solver-3M", "nfe", dpm(order=3, multistep=True)),
        ("DPM-Solver++(2M)", "nfe", lambda f, s, shp, n, g: dpm_solver_pp_sampler(f, s, shp, steps=n - 1, generator=g)),
        ("DPM-Solver++(3M)", "nfe", lambda f, s, shp, n, g: dpm_solver_pp_sampler(f, s, shp, steps=n - 1, order=3,
                                                                                   generator=g)),
        # Other time grids ("tq": time_quadratic; "edm_rho": Karras et al.'s rho = 7 noise
        # levels, i.e. "DPM++ 2M Karras").
        ("DPM-Solver-3M tq", "nfe", dpm(order=3, multistep=True, skip_type="time_quadratic")),
        ("DPM-Solver-3M edm_rho", "nfe", dpm(order=3, multistep=True, skip_type="edm_rho")),
        ("DPM-Solver++(2M) tq", "nfe", lambda f, s, shp, n, g: dpm_solver_pp_sampler(
            f, s, shp, steps=n - 1, skip_type="time_quadratic", generator=g)),
        ("DPM-Solver++(2M) edm_rho", "nfe", lambda f, s, shp, n, g: dpm_solver_pp_sampler(
            f, s, shp, steps=n - 1, skip_type="edm_rho", generator=g)),
        # UniPC (default: order 3, bh1, data prediction, logSNR grid, lower orders at the end
        # below 10 steps; "tq" row: lower orders at the end always, as UniPC's reference code).
        ("UniPC-3", "nfe", unipc()),
        ("UniPC-3 bh2", "nfe", unipc(variant="bh2")),
        ("UniPC-2", "nfe", unipc(order=2)),
        ("UniPC-3 noise", "nfe", unipc(prediction="noise")),
        ("UniPC-3 noise bh2 tq", "nfe", unipc(prediction="noise", variant="bh2", skip_type="time_quadratic",
                                              lower_order_final=math.inf)),
        ("UniPC-3 noise bh2 vpq", "nfe", unipc(prediction="noise", variant="bh2", skip_type="vp_quadratic",
                                               lower_order_final=math.inf)),
        ("UniPC-3 edm_rho", "nfe", unipc(skip_type="edm_rho")),
        ("EDM Heun", "nfe", lambda f, s, shp, n, g: edm_heun_sampler(f, s, shp, steps=(n - 1) // 2, generator=g)),
        ("EDM Heun churn=10", "nfe", lambda f, s, shp, n, g: edm_heun_sampler(f, s, shp, steps=(n - 1) // 2,
                                                                               S_churn=10.0, generator=g)),
        ("adaptive SDE", "sde tol", lambda f, s, shp, tol, g: adaptive_sde_sampler(f, s, shp, rtol=tol, generator=g)),
        ("adaptive SDE fresh", "sde tol",
         lambda f, s, shp, tol, g: adaptive_sde_sampler(f, s, shp, rtol=tol, brownian="fresh", generator=g)),
    ]
    if quick:
        keep = {"PC euler_maruyama", "PC reverse_diffusion+langevin", "PC ancestral", "ODE rk45",
                "ODE heun", "DDIM eta=0", "torchsde srk", "DPM-Solver-3", "DPM-Solver-3M",
                "DPM-Solver++(2M)", "UniPC-3", "EDM Heun", "adaptive SDE"}
        rows = [r for r in rows if r[0] in keep]
    return rows


def fmt(v: float) -> str:
    if isinstance(v, int):
        return str(v)
    if v != v:
        return "NaN"
    return f"{v:.2e}" if (abs(v) < 1e-2 or abs(v) >= 1e3) else f"{v:.4f}"


def flow_metrics(data: toy.Gaussian, x: torch.Tensor, exact: torch.Tensor) -> Dict[str, float]:
    """``x`` against the exact map ``exact`` of the same prior sample (see the module doc)."""
    m = data.mean.reshape((1,) + data.event_shape)
    dx, de = x.double() - m, exact - m
    if not bool(torch.isfinite(dx).all()):
        return {"|var/true-1|": float("nan"), "|var/var_exact-1|": float("nan"), "rel. RMSE": float("nan")}
    return {
        "|var/true-1|": abs(dx.pow(2).mean().item() / data.eigvals[0].item() - 1),
        "|var/var_exact-1|": abs(dx.pow(2).mean().item() / de.pow(2).mean().item() - 1),
        "rel. RMSE": ((x.double() - exact).pow(2).mean().sqrt() / de.pow(2).mean().sqrt()).item(),
    }


def exact_maps(data: toy.Gaussian, sde, x_T: torch.Tensor, eps: float = 1e-3) -> Dict[str, torch.Tensor]:
    """The exact flow of ``x_T`` to ``eps`` followed by denoise_step, or by Tweedie to
    sigma = 0 (EDM's last step), in float64."""
    B = x_T.shape[0]
    t_eps = torch.full((B,), eps, dtype=torch.float64)
    x = data.flow(x_T.double(), sde, torch.full((B,), sde.T, dtype=torch.float64), t_eps)
    score = data.score_fn(sde)
    alpha, sigma = sde.marginal_coeffs(t_eps)
    shape = (B,) + (1,) * (x.ndim - 1)
    tweedie = (x + sigma.reshape(shape) ** 2 * score(x, t_eps)) / alpha.reshape(shape)
    return {"denoise_step": denoise_step(score, sde, x, eps), "tweedie": tweedie}


def selected(sampler_name: str, only: List[str]) -> bool:
    """Whether ``--samplers`` (parts of names, case-insensitive; empty: all) keeps this sampler."""
    return not only or any(key.lower() in sampler_name.lower() for key in only)


def print_row(row: Dict) -> None:
    print("  " + " | ".join(f"{k}={fmt(v) if isinstance(v, float) else v}" for k, v in row.items()), flush=True)


def model_problem(workdir: str, only: List[str], nfes: List[int], batch: int) -> List[Dict]:
    """The NFE-budgeted samplers on a trained network against its own 200-NFE solution."""
    from scoresde.models import get_score_fn
    from scoresde.train import data_shape, load_run

    config, model, sde, step = load_run(workdir, device="cpu")
    score_fn = get_score_fn(model, sde)
    shape = (batch,) + data_shape(config)
    # The samplers draw x_T from the prior with their generator: seed 0 gives every one this x_T.
    x_T = sde.prior_sampling(shape, generator=torch.Generator().manual_seed(0))
    print(f"\n## model: {workdir} (step {step}, {config.training.sde}), {batch} samples; "
          "reference: UniPC-3 at 200 NFE", flush=True)
    with torch.no_grad():
        ref, _ = unipc_sampler(score_fn, sde, shape, steps=199, x_T=x_T)
        rows = []
        for sampler_name, kind, run in sampler_table(False):
            if kind != "nfe" or "churn" in sampler_name or not selected(sampler_name, only):
                continue
            for budget in nfes:
                start = time.perf_counter()
                x, nfe = run(score_fn, sde, shape, budget, torch.Generator().manual_seed(0))
                rmse = ((x - ref).pow(2).mean().sqrt() / ref.pow(2).mean().sqrt()).item()
                row = dict(problem="model", sde=config.training.sde, sampler=sampler_name,
                           budget=f"{budget} NFE", nfe=nfe, wall=time.perf_counter() - start,
                           **{"rel. RMSE vs 200 NFE": rmse})
                rows.append(row)
                print_row(row)
    return rows


def run_problem(name: str, sdes: List[str], steps: List[int], tols: List[float], quick: bool,
                max_nfe: int, only: List[str] = (), nfes: List[int] = NFES,
                sde_tols: List[float] = SDE_TOLS, gauss_batch: int = GAUSS_B,
                workdir: str = "", model_batch: int = 100) -> List[Dict]:
    if name == "model":
        return model_problem(workdir, only, nfes, model_batch)
    rows = []
    exact_of = None
    if name == "ring":
        data = toy.ring()
        shape = (RING_N, 2)
        ref = data.sample(RING_N, generator=torch.Generator().manual_seed(100), dtype=torch.float64)
        ref_offsets = ref - data.means[data.nearest_component(ref)]
        other = data.sample(RING_N, generator=torch.Generator().manual_seed(101), dtype=torch.float64)
        floor = ring_metrics(data, other, ref_offsets)
        print(f"\n## ring: noise floor W2(offsets) = {fmt(floor['W2(offsets)'])}, "
              f"occupancy err = {fmt(floor['occupancy err'])}", flush=True)
        metric = lambda x: ring_metrics(data, x, ref_offsets)  # noqa: E731
        make_score = lambda sde: data.score_fn(sde)  # noqa: E731
    else:
        data = toy.high_dim_gaussian()
        shape = (gauss_batch,) + data.event_shape
        exact = data.sample(gauss_batch, generator=torch.Generator().manual_seed(100))
        floor = gauss_metrics(data, exact)
        print(f"\n## {name} (3072-D N(m, 0.25 I), B={gauss_batch}): noise floor |var/true-1| = "
              f"{fmt(floor['|var/true-1|'])} (sd {fmt(math.sqrt(2 / (gauss_batch * data.dim)))}), "
              f"mean RMSE = {fmt(floor['mean RMSE'])}", flush=True)
        metric = lambda x: gauss_metrics(data, x)  # noqa: E731
        make_score = lambda sde: gaussian_score(data, sde)  # noqa: E731
        if name == "flow":
            exact_of = lambda sde: exact_maps(data, sde, sde.prior_sampling(  # noqa: E731
                shape, generator=torch.Generator().manual_seed(0)))
    for sde_name in sdes:
        sde = SDES[sde_name]
        score_fn = make_score(sde)
        maps = exact_of(sde) if exact_of is not None else None
        for sampler_name, kind, run in sampler_table(quick):
            if not selected(sampler_name, only):
                continue
            if maps is not None:
                if kind != "nfe" or "churn" in sampler_name:
                    continue
                ref = maps["tweedie" if sampler_name.startswith("EDM") else "denoise_step"]
                metric = lambda x, ref=ref: flow_metrics(data, x, ref)  # noqa: E731
            budgets = {"tol": tols, "nfe": nfes, "sde tol": sde_tols}.get(kind, steps)
            for budget in budgets:
                if kind == "steps" and sampler_name.startswith("torchsde") and budget > 250:
                    continue  # torchsde's Python stepping makes 1000 steps slow; trend is clear
                gen = torch.Generator().manual_seed(0)
                start = time.perf_counter()
                try:
                    x, nfe = run(score_fn, sde, shape, budget, gen)
                except Exception as exc:  # a solver that fails is a result too
                    print(f"  {sde_name} {sampler_name} {budget}: failed: {exc}", file=sys.stderr)
                    continue
                wall = time.perf_counter() - start
                label = {"tol": f"tol {budget:g}", "nfe": f"{budget} NFE", "sde tol": f"rtol {budget:g}"}
                row = dict(problem=name, sde=sde_name, sampler=sampler_name,
                           budget=label.get(kind, f"{budget} steps"),
                           nfe=nfe, wall=wall, **metric(x))
                rows.append(row)
                print_row(row)
                if nfe > max_nfe:
                    break
    return rows


def overhead_table(sdes: List[str], steps: int = 100, batch: int = GAUSS_B) -> List[Dict]:
    """Sampler time per step outside the score function, at 3072 dims."""
    data = toy.high_dim_gaussian()
    shape = (batch,) + data.event_shape
    rows = []
    for sde_name in sdes:
        sde = SDES[sde_name]
        inner = gaussian_score(data, sde)
        for name, kwargs in (("PC euler_maruyama", dict(predictor="euler_maruyama", corrector=None)),
                             ("PC reverse_diffusion+langevin",
                              dict(predictor="reverse_diffusion", corrector="langevin")),
                             ("PC ancestral", dict(predictor="ancestral", corrector=None))):
            spent = [0.0]

            def timed(x, t):
                t0 = time.perf_counter()
                out = inner(x, t)
                spent[0] += time.perf_counter() - t0
                return out

            pc_sampler(timed, sde, shape, steps=5, **kwargs)  # warm-up
            spent[0] = 0.0
            start = time.perf_counter()
            _, nfe = pc_sampler(timed, sde, shape, steps=steps, generator=torch.Generator().manual_seed(0), **kwargs)
            total = time.perf_counter() - start
            rows.append(dict(sde=sde_name, sampler=name, steps=steps, nfe=nfe,
                             ms_per_step=1e3 * total / steps,
                             overhead_ms_per_step=1e3 * (total - spent[0]) / steps))
    return rows


def print_markdown(rows: List[Dict]) -> None:
    if not rows:
        return
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(fmt(r[k]) if isinstance(r[k], float) else str(r[k]) for k in keys) + " |")


def peers_main(args) -> int:
    """``--peers``: the side-by-side table of benchmarks/peers.py."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import peers

    torch.set_num_threads(args.threads)
    budgets = [int(n) for n in args.nfes.split(",")] if args.nfes else peers.BUDGETS
    problems = [peers.gaussian_problem(batch=20 if args.quick else 100),
                peers.spectrum_gaussian_problem(batch=20 if args.quick else 100),
                peers.ring_problem(batch=100 if args.quick else 500)]
    problems += [peers.network_problem(w, batch=args.model_batch or 32) for w in args.workdir]
    rows = []
    for problem in problems:
        rows += peers.compare(problem, budgets, log=lambda line: print(line, flush=True))
    print("\n### The fixed-budget default against the best peer (relative RMS error; "
          "ratio > 1: ours is more accurate)\n")
    print_markdown(rows)
    if not args.no_overhead:
        print(f"\n### Overhead per NFE at batch 1 (3072-D; load average {os.getloadavg()[0]:.2f})\n")
        print_markdown(peers.overhead(repeats=5 if args.quick else 20))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few budgets, one SDE per problem")
    parser.add_argument("--problems", default="ring,gauss,flow")
    parser.add_argument("--sdes", default="vp,subvp,ve")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-nfe", type=int, default=100_000, help="stop a sampler's sweep past this NFE")
    parser.add_argument("--samplers", default="",
                        help="comma-separated parts of sampler names to run (default: all)")
    parser.add_argument("--no-overhead", action="store_true", help="skip the overhead table")
    parser.add_argument("--nfes", default="", help="comma-separated NFE budgets (default 10,20,35,50,100)")
    parser.add_argument("--gauss-batch", type=int, default=GAUSS_B,
                        help="samples of the 3072-D Gaussian (gauss, flow); the variance noise has sd sqrt(2 / (B D))")
    parser.add_argument("--workdir", action="append", default=[],
                        help="trained run for --problems model or --peers (repeatable with --peers)")
    parser.add_argument("--peers", action="store_true",
                        help="the fixed-budget default against diffusers' and k-diffusion's samplers at 5, 10, 20 "
                             "and 50 NFE on two 3072-D Gaussians, the ring and each --workdir (benchmarks/peers.py)")
    parser.add_argument("--model-batch", type=int, default=None,
                        help="samples for --problems model (default 100; --peers: 32)")
    args = parser.parse_args(argv)
    if args.peers:
        return peers_main(args)
    if len(args.workdir) > 1:
        parser.error("--workdir is repeatable only with --peers")
    args.workdir = args.workdir[0] if args.workdir else ""
    if "model" in args.problems.split(",") and not args.workdir:
        parser.error("--problems model needs --workdir DIR (a run written by python -m scoresde.train)")
    torch.set_num_threads(args.threads)
    steps, tols, sdes = STEPS, TOLS, args.sdes.split(",")
    nfes, sde_tols = NFES, SDE_TOLS
    if args.quick:
        steps, tols, sdes = [10, 20, 100], [1e-3, 1e-5], sdes[:1]
        nfes, sde_tols = [10, 20], [0.05]
    if args.nfes:
        nfes = [int(n) for n in args.nfes.split(",")]
    if args.gauss_batch < 2:
        parser.error("--gauss-batch must be at least 2")
    only = [k for k in args.samplers.split(",") if k]
    all_rows = []
    for problem in args.problems.split(","):
        all_rows += run_problem(problem, sdes, steps, tols, args.quick, args.max_nfe, only, nfes, sde_tols,
                                args.gauss_batch, args.workdir, args.model_batch or 100)
    for problem in args.problems.split(","):
        print(f"\n### {problem}\n")
        print_markdown([{k: v for k, v in r.items() if k != "problem"} for r in all_rows if r["problem"] == problem])
    if not args.no_overhead:
        print("\n### sampler overhead per step (3072-D, batch 500, outside the score function)\n")
        print_markdown(overhead_table(sdes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
