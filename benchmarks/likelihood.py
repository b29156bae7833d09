"""Accuracy and cost of the probability-flow likelihood against closed forms.

    python benchmarks/likelihood.py

For Gaussian data with the exact score the ODE's log-density is known exactly
(scoresde.toy.Gaussian.flow_log_prob). For D in {2, 64, 3072} (full-covariance Gaussians for
D <= 64, the isotropic N(m, 0.25 I) for 3072) and the VP SDE with RK45 at rtol = atol = 1e-5,
the table gives the mean relative error |logp - exact| / |exact|, the NFE, score-model forward
passes and vector-Jacobian products, and the wall time, for Rademacher, Gaussian and exact
divergences. The row "two-call baseline" reproduces the official code's call pattern for
comparison: scipy RK45 on the host and two model evaluations per NFE (one for the drift, one
inside the divergence).
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from scoresde import VPSDE, toy
from scoresde.likelihood import likelihood
from scoresde.sampling.ode import probability_flow_drift
from scoresde.utils import batch_sum


def closed_form_score(data: toy.Gaussian, sde, dtype):
    """Differentiable closed-form score of an isotropic Gaussian in the working dtype."""
    mean = data.mean.to(dtype).reshape((1,) + data.event_shape)
    var0 = float(data.eigvals[0])

    def score_fn(x, t):
        alpha, sigma = sde.marginal_coeffs(t)
        a = alpha.reshape(-1, *([1] * (x.ndim - 1)))
        return -(x - a * mean) / (a * a * var0 + sigma.reshape(a.shape) ** 2)

    return score_fn


class Counter:
    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, x, t):
        self.calls += 1
        return self.fn(x, t)


def two_call_baseline(score_fn, sde, x, generator, rtol=1e-5, atol=1e-5, eps=1e-5):
    """The official code's pattern: drift and Hutchinson divergence from separate model calls,
    integrated by scipy on the host (for timing comparison only)."""
    from scipy import integrate

    shape, B, D = tuple(x.shape), x.shape[0], x[0].numel()
    drift = probability_flow_drift(score_fn, sde)
    u = torch.randint(0, 2, shape, generator=generator).to(x.dtype) * 2 - 1
    nfe = [0]

    def fun(t, y):
        nfe[0] += 1
        xt = torch.from_numpy(y[: B * D]).to(x.dtype).reshape(shape)
        tt = torch.full((B,), t, dtype=x.dtype)
        with torch.no_grad():
            v = drift(xt, tt)
        with torch.enable_grad():
            x_ = xt.clone().requires_grad_(True)
            (g,) = torch.autograd.grad((drift(x_, tt) * u).sum(), x_)
        div = batch_sum(g * u)
        return np.concatenate([v.reshape(-1).double().numpy(), div.double().numpy()])

    y0 = np.concatenate([x.reshape(-1).double().numpy(), np.zeros(B)])
    sol = integrate.solve_ivp(fun, (eps, sde.T), y0, rtol=rtol, atol=atol, method="RK45")
    z = torch.from_numpy(sol.y[: B * D, -1]).to(x.dtype).reshape(shape)
    delta = torch.from_numpy(sol.y[B * D :, -1]).to(x.dtype)
    return sde.prior_logp(z) + delta, nfe[0]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats (median)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    sde = VPSDE()
    problems = [
        (2, toy.correlated_gaussian(dim=2), torch.float64, 256),
        (64, toy.correlated_gaussian(dim=64, seed=1), torch.float64, 64),
        (3072, toy.high_dim_gaussian(), torch.float32, 16),
    ]
    rows = []
    for D, data, dtype, B in problems:
        x = data.sample(B, generator=torch.Generator().manual_seed(0), dtype=dtype)
        exact_logp = data.flow_log_prob(x.double(), sde, eps=1e-5)
        score = closed_form_score(data, sde, dtype) if D == 3072 else data.score_fn(sde)
        variants = [("rademacher", dict(noise="rademacher")), ("gaussian", dict(noise="gaussian")),
                    ("exact", dict(exact=True))]
        for name, kwargs in variants:
            if name == "exact" and D == 3072:
                x_run, ref = x[:2], exact_logp[:2]  # 3072 VJPs per evaluation: two examples
            else:
                x_run, ref = x, exact_logp
            times = []
            for _ in range(args.repeats):
                counted = Counter(score)
                start = time.perf_counter()
                res = likelihood(counted, sde, x_run, generator=torch.Generator().manual_seed(1), **kwargs)
                times.append(time.perf_counter() - start)
            rel = ((res.logp.double() - ref).abs() / ref.abs()).mean().item()
            rows.append(dict(D=D, B=len(x_run), divergence=name, rel_err=rel, nfe=res.nfe,
                             forward_calls=counted.calls, vjps=res.nfe * res.n_vjp,
                             wall_s=float(np.median(times))))
        times = []
        for _ in range(args.repeats):
            counted = Counter(score)
            start = time.perf_counter()
            logp, nfe = two_call_baseline(counted, sde, x, torch.Generator().manual_seed(1))
            times.append(time.perf_counter() - start)
        rel = ((logp.double() - exact_logp).abs() / exact_logp.abs()).mean().item()
        rows.append(dict(D=D, B=B, divergence="two-call baseline (rademacher)", rel_err=rel, nfe=nfe,
                         forward_calls=counted.calls, vjps=nfe, wall_s=float(np.median(times))))
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(f"{r[k]:.2e}" if k == "rel_err" else (f"{r[k]:.3f}" if k == "wall_s" else str(r[k]))
                                for k in keys) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
