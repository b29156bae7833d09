"""The fast samplers (DPM-Solver, UniPC, EDM, DEIS, iPNDM, adaptive SDE) driven by exact scores.

Tolerances as in test_sampling.py: mode occupancy of the 8-mode ring within 5 binomial
standard errors, sqrt(p (1 - p) / n) with p = 1/8; variances within 5 standard errors of a
sample variance, sqrt(2 / N) over N independent coordinates, plus a stated discretization
allowance (measured errors at the step counts used here are below half of it). Deterministic
solvers are compared with the exact probability-flow map of Gaussian data
(toy.Gaussian.flow), and their convergence orders come from a slope fit of that error
against the number of steps.
"""
import math

import numpy as np
import pytest
import torch

from scoresde import VESDE, VPSDE, SubVPSDE, sample, toy
from scoresde.sampling import (
    ODE_METHODS,
    SKIP_TYPES,
    adaptive_sde_sampler,
    ddim_sampler,
    denoise_step,
    dpm_solver_pp_sampler,
    dpm_solver_sampler,
    edm_heun_sampler,
    edm_rho_grid,
    edm_sigmas,
    log_snr,
    log_snr_grid,
    log_snr_quadratic_grid,
    rk45_sampler,
    time_from_log_snr,
    time_quadratic_grid,
    unipc_sampler,
    vp_quadratic_grid,
)
from scoresde.sampling.adaptive_sde import _BrownianMemory
from scoresde.sampling.dpm_solver import singlestep_orders
from scoresde.sampling.unipc import _difference_weights
from scoresde.sampling.unipc import phi as _phi

F64 = torch.float64
SDES = {"vp": VPSDE(), "subvp": SubVPSDE(), "ve": VESDE()}
RING = toy.ring()
GAUSS = toy.Gaussian(0.5 * torch.sin(torch.arange(64, dtype=F64)), 0.25)


def _slope(steps, errors):
    return float(np.polyfit(np.log(steps), np.log(errors), 1)[0])


# ----------------------------------------------------------------------------------------------
# Grids and the inverse log-SNR map.
@pytest.mark.parametrize("sde_name", list(SDES))
def test_time_from_log_snr_inverts_log_snr(sde_name):
    sde = SDES[sde_name]
    t = [1.0, 0.7, 0.31, 0.05, 1e-2, 1e-3, 1e-4]
    back = time_from_log_snr(sde, log_snr(sde, t))
    assert max(abs(a - b) / a for a, b in zip(t, back)) < 1e-12


@pytest.mark.parametrize("sde_name", list(SDES))
def test_grids(sde_name):
    sde = SDES[sde_name]
    grid = log_snr_grid(sde, 1e-3, 12)
    lam = log_snr(sde, grid)
    assert grid[0] == 1.0 and grid[-1] == 1e-3 and len(grid) == 12
    steps = np.diff(lam)
    assert np.all(steps > 0) and np.ptp(steps) < 1e-10 * abs(steps[0])
    # EDM: sigma_t / alpha_t = exp(-lambda) follows Karras et al.'s Eq. 5 between the ends.
    grid = edm_rho_grid(sde, 1e-3, 9, rho=7.0)
    sig = [math.exp(-v) for v in log_snr(sde, grid)]
    np.testing.assert_allclose(sig, edm_sigmas(sig[-1], sig[0], 9, 7.0), rtol=1e-10)
    assert grid[0] == 1.0 and grid[-1] == 1e-3


def test_vp_quadratic_grid():
    # On the standard VP SDE it is DDIM's time-quadratic grid.
    for n in (2, 3, 10, 20):
        np.testing.assert_allclose(vp_quadratic_grid(VPSDE(), 1e-3, n), time_quadratic_grid(1.0, 1e-3, n),
                                   rtol=1e-12, atol=1e-14)
    # On any SDE its lambda values are those of the standard VP SDE at times equally spaced in
    # sqrt(t) between the VP times whose lambda are this SDE's lambda(T) and lambda(eps).
    vp = VPSDE()
    for sde in (VESDE(), SubVPSDE(), VESDE(sigma_min=0.002, sigma_max=80.0)):
        grid = vp_quadratic_grid(sde, 1e-3, 12)
        assert grid[0] == sde.T and grid[-1] == 1e-3 and len(grid) == 12
        lam = log_snr(sde, grid)
        u = np.sqrt(time_from_log_snr(vp, [lam[0], lam[-1]]))
        taus = (np.linspace(u[0], u[1], 12) ** 2).tolist()
        np.testing.assert_allclose(lam[1:-1], log_snr(vp, taus)[1:-1], rtol=1e-9, atol=1e-9)
    # The same lambda values on every SDE with the same lambda range: VE with the VP ends.
    lam_T, lam_eps = log_snr(vp, [1.0, 1e-3])
    ve = VESDE(sigma_min=math.exp(-lam_eps), sigma_max=math.exp(-lam_T))
    np.testing.assert_allclose(log_snr(ve, vp_quadratic_grid(ve, 0.0, 9)),
                               log_snr(vp, vp_quadratic_grid(vp, 1e-3, 9)), rtol=1e-9, atol=1e-9)


def test_log_snr_quadratic_grid():
    """Its lambda values are the weighted mean of the log-SNR grid's and the quadratic grid's,
    on every SDE; weight 0 and 1 are those two grids."""
    for sde in (VPSDE(), SubVPSDE(), VESDE(), VESDE(sigma_min=0.002, sigma_max=80.0)):
        for n in (2, 3, 12):
            assert log_snr_quadratic_grid(sde, 1e-3, 1) == [sde.T]
            grid = log_snr_quadratic_grid(sde, 1e-3, n)
            assert grid[0] == sde.T and grid[-1] == 1e-3 and len(grid) == n
            assert all(b < a for a, b in zip(grid, grid[1:]))
            lam_a = np.array(log_snr(sde, log_snr_grid(sde, 1e-3, n)))
            lam_b = np.array(log_snr(sde, vp_quadratic_grid(sde, 1e-3, n)))
            np.testing.assert_allclose(log_snr(sde, grid), 0.6 * lam_a + 0.4 * lam_b, rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(log_snr_quadratic_grid(sde, 1e-3, n, weight=0.0), log_snr_grid(sde, 1e-3, n),
                                       rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(log_snr_quadratic_grid(sde, 1e-3, n, weight=1.0),
                                       vp_quadratic_grid(sde, 1e-3, n), rtol=1e-9, atol=1e-12)
    # Longer steps in lambda at both ends than in the middle, shorter than the quadratic grid's.
    vp = VPSDE()
    steps = np.diff(log_snr(vp, log_snr_quadratic_grid(vp, 1e-3, 50)))
    quadratic = np.diff(log_snr(vp, vp_quadratic_grid(vp, 1e-3, 50)))
    assert steps[0] > steps[24] < steps[-1] and steps[0] < quadratic[0] and steps[-1] < quadratic[-1]


def test_time_grids_and_edm_sigmas():
    np.testing.assert_allclose(time_quadratic_grid(1.0, 1e-2, 4), [1.0, 0.49, 0.16, 0.01], rtol=1e-12)
    s = edm_sigmas(0.002, 80.0, 18, rho=7.0)
    assert s[0] == 80.0 and s[-1] == 0.002
    roots = np.diff(np.array(s) ** (1 / 7))
    assert np.ptp(roots) < 1e-12


@pytest.mark.parametrize("steps", range(1, 31))
def test_singlestep_orders_spend_the_budget(steps):
    for order in (1, 2, 3):
        orders = singlestep_orders(steps, order)
        assert sum(orders) == steps and max(orders) <= order
    # DPM-Solver-fast (Lu et al. 2022, Sec. 3.4): 3, ..., 3 then the remainder.
    assert singlestep_orders(9, 3) == [3, 3, 2, 1] and singlestep_orders(10, 3) == [3, 3, 3, 1]
    assert singlestep_orders(11, 3) == [3, 3, 3, 2] and singlestep_orders(7, 2) == [2, 2, 2, 1]


# ----------------------------------------------------------------------------------------------
# Distributions: the Gaussian (64-D) and the ring.
RECIPES = {
    "dpm_solver-3": dict(pc=False, method="dpm_solver", order=3, steps=60),
    "dpm_solver-2": dict(pc=False, method="dpm_solver", order=2, steps=80),
    "dpm_solver-3M": dict(pc=False, method="dpm_solver", order=3, multistep=True, steps=60),
    "dpm_solver-2M": dict(pc=False, method="dpm_solver", order=2, multistep=True, steps=80),
    "dpm_solver++": dict(pc=False, method="dpm_solver++", steps=80),
    "unipc-3": dict(pc=False, method="unipc", steps=40),
    "unipc-2 noise bh2": dict(pc=False, method="unipc", order=2, prediction="noise", variant="bh2", steps=40),
    "unipc-3 noise bh2 vp_quadratic": dict(pc=False, method="unipc", prediction="noise", variant="bh2",
                                           skip_type="vp_quadratic", lower_order_final=math.inf, steps=40),
    "edm_heun": dict(pc=False, method="edm_heun", steps=60),
    "edm_heun churn": dict(pc=False, method="edm_heun", steps=60, S_churn=5.0),
    "adaptive": dict(pc=True, predictor="adaptive", corrector=None),
}


@pytest.mark.parametrize("sde_name", list(SDES))
@pytest.mark.parametrize("recipe", list(RECIPES))
def test_gaussian_mean_and_variance(sde_name, recipe):
    sde = SDES[sde_name]
    B = 2000
    x = sample(GAUSS.score_fn(sde), sde, (B, 64), generator=torch.Generator().manual_seed(4),
               dtype=F64, **RECIPES[recipe])
    assert x.dtype == F64 and bool(torch.isfinite(x).all())
    rel_var = ((x - GAUSS.mean) ** 2).mean().item() / 0.25 - 1
    assert abs(rel_var) < 5 * math.sqrt(2 / x.numel()) + 0.02, rel_var
    mean_err = (x.mean(0) - GAUSS.mean).abs().max().item()
    assert mean_err < 5 * 0.5 / math.sqrt(B) * 1.3  # max over 64 coordinates: allow 30% more


@pytest.mark.parametrize("sde_name", list(SDES))
@pytest.mark.parametrize("recipe", list(RECIPES))
def test_ring_modes_and_spread(sde_name, recipe):
    sde = SDES[sde_name]
    n = 4000
    x = sample(RING.score_fn(sde), sde, (n, 2), generator=torch.Generator().manual_seed(0),
               **RECIPES[recipe])
    assert bool(torch.isfinite(x).all())
    k = RING.nearest_component(x)
    occ = torch.bincount(k, minlength=8).double() / n
    assert (occ - 1 / 8).abs().max().item() < 5 * math.sqrt((1 / 8) * (7 / 8) / n), occ
    rel = (x.double() - RING.means[k]).var().item() / RING.stds[0].item() ** 2 - 1
    assert abs(rel) < 5 * math.sqrt(2 / (2 * n)) + 0.02, rel


@pytest.mark.parametrize("sde_name", ["vp", "ve"])
def test_adaptive_fresh_noise_matches_the_paper_and_is_biased_in_2d(sde_name):
    """With brownian="fresh" (Alg. 1 as published) a rejected step redraws its noise; on the
    2-D ring that visibly moves mass between modes, which the default "memory" does not."""
    sde = SDES[sde_name]
    n = 4000
    x, _ = adaptive_sde_sampler(RING.score_fn(sde), sde, (n, 2), brownian="fresh",
                                generator=torch.Generator().manual_seed(0))
    occ = torch.bincount(RING.nearest_component(x), minlength=8).double() / n
    assert (occ - 1 / 8).abs().max().item() > 5 * math.sqrt((1 / 8) * (7 / 8) / n)


def test_brownian_memory_is_unbiased_under_adversarial_rejection():
    """Reject every first try whose increment is positive, then retry half the step: with the
    Brownian bridge the path stays a Brownian motion, so W(1) ~ N(0, 1) exactly."""
    torch.manual_seed(0)
    B = 20000
    gen = torch.Generator().manual_seed(11)
    x = torch.zeros(B, 1, dtype=F64)
    path = _BrownianMemory(x, capacity=4)
    s = torch.zeros(B, dtype=F64)
    for _ in range(60):
        h = (1.0 - s).clamp(min=0)
        h = torch.where(h > 0.25, torch.full_like(h, 0.25), h)
        first = torch.ones(B, dtype=torch.bool)
        while True:
            dw, w_target = path.increment(h, torch.randn(B, 1, generator=gen, dtype=F64))
            accept = ~(first & (dw[:, 0] > 0)) | (h == 0)
            path.update(h, w_target, accept)
            s = torch.where(accept, s + h, s)
            if bool(accept.all()):
                break
            h = torch.where(accept, torch.zeros_like(h), 0.5 * h)
            first = first & accept
        if bool((s >= 1.0 - 1e-12).all()):
            break
    w = path.w_now[:, 0]
    se = 1 / math.sqrt(B)
    assert abs(w.mean().item()) < 5 * se
    assert abs(w.var().item() - 1) < 5 * math.sqrt(2) * se


# ----------------------------------------------------------------------------------------------
# Convergence orders against the exact probability-flow map.
ORDER_CASES = [
    ("dpm_solver-1", dpm_solver_sampler, dict(order=1), [16, 32, 64, 128], 1),
    ("dpm_solver-2", dpm_solver_sampler, dict(order=2), [16, 32, 64, 128], 2),
    # NFE budgets = 2 (mod 3): steps of order 3 and a last one of order 2 (still O(h^3)).
    ("dpm_solver-3", dpm_solver_sampler, dict(order=3), [50, 98, 194, 386], 3),
    ("dpm_solver-2M", dpm_solver_sampler, dict(order=2, multistep=True), [16, 32, 64, 128], 2),
    ("dpm_solver++(2M)", dpm_solver_pp_sampler, dict(order=2), [16, 32, 64, 128], 2),
    ("edm_heun", edm_heun_sampler, dict(), [8, 16, 32, 64], 2),
    # UniPC-p: UniC raises the predictor's order p by one.
    ("unipc-1", unipc_sampler, dict(order=1), [16, 32, 64, 128], 2),
    ("unipc-2", unipc_sampler, dict(order=2), [16, 32, 64, 128], 3),
    ("unipc-2 noise", unipc_sampler, dict(order=2, prediction="noise"), [16, 32, 64, 128], 3),
    ("unipc-1 bh2", unipc_sampler, dict(order=1, variant="bh2"), [16, 32, 64, 128], 2),
]


@pytest.mark.parametrize("sde_name", list(SDES))
def test_convergence_orders(sde_name):
    sde = SDES[sde_name]
    data = toy.correlated_gaussian(dim=4)
    z = sde.prior_sampling((16, 4), generator=torch.Generator().manual_seed(9), dtype=F64)
    exact = data.flow(z, sde, torch.ones(16, dtype=F64), torch.full((16,), 1e-3, dtype=F64))
    for name, fn, kwargs, steps, order in ORDER_CASES:
        errors = [(fn(data.score_fn(sde), sde, (16, 4), steps=n, x_T=z, denoise=False, **kwargs)[0]
                   - exact).abs().max().item() for n in steps]
        assert abs(_slope(steps, errors) + order) < 0.3, (name, errors)


@pytest.mark.parametrize("sde_name", list(SDES))
def test_third_order_multistep_beats_second_order(sde_name):
    """The 3M updates are third order; their lower-order warm-up steps (as in the paper) keep
    the global order at two or more, with a much smaller error than 2M."""
    sde = SDES[sde_name]
    data = toy.correlated_gaussian(dim=4)
    z = sde.prior_sampling((16, 4), generator=torch.Generator().manual_seed(9), dtype=F64)
    exact = data.flow(z, sde, torch.ones(16, dtype=F64), torch.full((16,), 1e-3, dtype=F64))
    steps = [32, 64, 128]
    for fn in (dpm_solver_sampler, dpm_solver_pp_sampler):
        multi = dict(multistep=True) if fn is dpm_solver_sampler else {}
        err3 = [(fn(data.score_fn(sde), sde, (16, 4), steps=n, order=3, x_T=z, denoise=False, **multi)[0]
                 - exact).abs().max().item() for n in steps]
        err2 = [(fn(data.score_fn(sde), sde, (16, 4), steps=n, order=2, x_T=z, denoise=False, **multi)[0]
                 - exact).abs().max().item() for n in steps]
        assert _slope(steps, err3) < -2.3, err3
        assert all(a < 0.2 * b for a, b in zip(err3, err2)), (err3, err2)


@pytest.mark.parametrize("sde_name", list(SDES))
def test_unipc_3_is_at_least_third_order(sde_name):
    """UniPC-3's interior steps are fourth order; its warm-up steps (orders 2 and 3 with UniC)
    keep the global order at three or more (measured slopes 3.4-4.1)."""
    sde = SDES[sde_name]
    data = toy.correlated_gaussian(dim=4)
    z = sde.prior_sampling((16, 4), generator=torch.Generator().manual_seed(9), dtype=F64)
    exact = data.flow(z, sde, torch.ones(16, dtype=F64), torch.full((16,), 1e-3, dtype=F64))
    steps = [64, 128, 256, 512]  # past the sign change of sub-VP's error near 50 steps
    for kwargs in (dict(), dict(prediction="noise", variant="bh2")):
        errors = [(unipc_sampler(data.score_fn(sde), sde, (16, 4), steps=n, x_T=z, denoise=False, **kwargs)[0]
                   - exact).abs().max().item() for n in steps]
        assert _slope(steps, errors) < -3.0, (kwargs, errors)


def test_phi_functions():
    """phi_k(z) = int_0^1 e^((1-u) z) u^(k-1) / (k-1)! du, by Gauss-Legendre quadrature, on
    both sides of the switch between the series and the recursion (|z| = 0.5)."""
    # 40-point Gauss-Legendre: the Taylor remainder of e^((1-u) z) at |z| <= 3 beyond degree
    # 79 is below 3^80 / 80! ~ 1e-80, so the quadrature is exact to rounding (1e-16).
    u, w = np.polynomial.legendre.leggauss(40)
    u, w = 0.5 * (u + 1), 0.5 * w
    for z in (-3.0, -0.51, -0.49, -1e-3, 1e-3, 0.3, 0.5, 2.0):
        for k in (1, 2, 3, 4):
            quad = float(np.sum(w * np.exp((1 - u) * z) * u ** (k - 1))) / math.factorial(k - 1)
            assert abs(_phi(k, z) - quad) < 1e-13 * quad, (k, z)


@pytest.mark.parametrize("prediction", ["data", "noise"])
def test_unipc_weights_integrate_polynomials_exactly(prediction):
    """With K >= 2 differences the weights solve UniPC's order conditions exactly: for a
    model value m(lambda_s + u) that is a polynomial of degree K in u, sum_m c_m D_m equals
    int_0^h e^(-/+(h - u)) (m(u) - m(0)) du, the part of (**) / (*) beyond the first term."""
    u, w = np.polynomial.legendre.leggauss(40)  # exact to rounding here, as in test_phi_functions
    for h, rs in ((0.7, [-1.0, 1.0]), (1.3, [-0.8, -1.9, 1.0]), (0.2, [-1.0, -2.0])):
        coef = np.random.default_rng(0).normal(size=len(rs) + 1)
        poly = lambda v: sum(c * v ** j for j, c in enumerate(coef))  # noqa: E731
        sign = -1.0 if prediction == "data" else 1.0
        x = 0.5 * h * (u + 1)
        exact = 0.5 * h * float(np.sum(w * np.exp(sign * (h - x)) * (poly(x) - poly(0.0))))
        weights = _difference_weights(h, rs, prediction, "bh1")
        approx = sum(c * (poly(r * h) - poly(0.0)) for c, r in zip(weights, rs))
        assert abs(approx - exact) < 1e-12 * max(1.0, abs(exact)), (h, rs)


def test_unipc_single_difference_uses_b_of_h():
    """With one difference the paper fixes a_1 = 1/2: c_1 = B(h) / (2 r_1), B = h (bh1) or
    1 - e^-h / e^h - 1 (bh2); UniP-2 with bh2 and data prediction is DPM-Solver++(2M)."""
    h, r = 0.8, -1.25
    assert _difference_weights(h, [r], "data", "bh1") == [pytest.approx(h / (2 * r), rel=1e-15)]
    assert _difference_weights(h, [r], "data", "bh2") == [pytest.approx(-math.expm1(-h) / (2 * r), rel=1e-14)]
    assert _difference_weights(h, [r], "noise", "bh2") == [pytest.approx(math.expm1(h) / (2 * r), rel=1e-14)]


def test_unipc_first_step_is_ddim_and_corrector_reuses_the_evaluation():
    """One and two steps of UniPC-1: the predictor is DDIM; the corrector (UniC-1, a trapezoid-like
    rule in lambda) moves the result with no extra evaluation: 2 NFE, and a different result
    from two DDIM steps."""
    sde = VPSDE()
    fn = GAUSS.score_fn(sde)
    z = sde.prior_sampling((8, 64), generator=torch.Generator().manual_seed(3), dtype=F64)
    one, nfe1 = unipc_sampler(fn, sde, z.shape, order=1, steps=1, x_T=z, denoise=False)
    ddim1, _ = dpm_solver_pp_sampler(fn, sde, z.shape, order=1, steps=1, x_T=z, denoise=False)  # DDIM
    two, nfe2 = unipc_sampler(fn, sde, z.shape, order=1, steps=2, x_T=z, denoise=False)
    ddim2, _ = dpm_solver_pp_sampler(fn, sde, z.shape, order=1, steps=2, x_T=z, denoise=False)
    assert (nfe1, nfe2) == (1, 2)
    torch.testing.assert_close(one, ddim1, rtol=1e-10, atol=1e-10)
    assert (two - ddim2).abs().max().item() > 1e-3


def test_unipc_lower_order_final_thresholds():
    """True is DPM-Solver's rule (fewer than 10 steps), inf UniPC's reference code (always)."""
    sde = VESDE()
    fn = GAUSS.score_fn(sde)
    z = sde.prior_sampling((4, 64), generator=torch.Generator().manual_seed(8), dtype=F64)
    run = lambda steps, lof: unipc_sampler(fn, sde, z.shape, steps=steps, lower_order_final=lof, x_T=z)[0]  # noqa: E731
    assert torch.equal(run(8, True), run(8, math.inf)) and not torch.equal(run(8, True), run(8, False))
    assert torch.equal(run(12, True), run(12, False)) and not torch.equal(run(12, True), run(12, math.inf))
    assert torch.equal(run(12, 13), run(12, math.inf))


# ----------------------------------------------------------------------------------------------
# Exact equivalences.
def test_first_order_dpm_solvers_are_ddim():
    """DPM-Solver-1 and DPM-Solver++(1) are DDIM (Lu et al. 2022, Sec. 4.1); on VP the final
    denoising step is DDIM's last step to x0."""
    sde = VPSDE()
    fn = GAUSS.score_fn(sde)
    z = sde.prior_sampling((8, 64), generator=torch.Generator().manual_seed(1), dtype=F64)
    a, nfe_a = dpm_solver_sampler(fn, sde, z.shape, order=1, steps=12, skip_type="time_uniform", x_T=z)
    b, nfe_b = dpm_solver_pp_sampler(fn, sde, z.shape, order=1, steps=12, skip_type="time_uniform", x_T=z)
    c, nfe_c = ddim_sampler(fn, sde, z.shape, steps=13, discrete=False, x_T=z)
    assert nfe_a == nfe_b == nfe_c == 13
    torch.testing.assert_close(a, c, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(b, c, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("sde_name", list(SDES))
def test_edm_last_step_is_tweedie(sde_name):
    """EDM's final Euler step to sigma = 0 returns the denoiser D = (x + sigma^2 s) / alpha at
    the last level (t = eps)."""
    sde = SDES[sde_name]
    fn = GAUSS.score_fn(sde)
    z = sde.prior_sampling((8, 64), generator=torch.Generator().manual_seed(2), dtype=F64)
    x_eps, _ = edm_heun_sampler(fn, sde, z.shape, steps=6, x_T=z, denoise=False)
    x_0, nfe = edm_heun_sampler(fn, sde, z.shape, steps=6, x_T=z)
    t = torch.full((8,), 1e-3, dtype=F64)
    alpha, sigma = sde.marginal_coeffs(t)
    tweedie = (x_eps + sigma[:, None] ** 2 * fn(x_eps, t)) / alpha[:, None]
    assert nfe == 13
    torch.testing.assert_close(x_0, tweedie, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("sde_name", list(SDES))
def test_deterministic_samplers_follow_the_exact_flow(sde_name):
    """At a generous budget each solver lands on the exact flow map, and denoise=True adds
    the library's denoising step (the same map as rk45 with denoising)."""
    sde = SDES[sde_name]
    data = toy.correlated_gaussian(dim=4)
    fn = data.score_fn(sde)
    z = sde.prior_sampling((32, 4), generator=torch.Generator().manual_seed(7), dtype=F64)
    exact = data.flow(z, sde, torch.ones(32, dtype=F64), torch.full((32,), 1e-3, dtype=F64))
    scale = exact.abs().max().item()
    for x, _ in (dpm_solver_sampler(fn, sde, z.shape, steps=200, x_T=z, denoise=False),
                 dpm_solver_sampler(fn, sde, z.shape, steps=100, multistep=True, x_T=z, denoise=False),
                 dpm_solver_pp_sampler(fn, sde, z.shape, steps=100, order=3, x_T=z, denoise=False),
                 unipc_sampler(fn, sde, z.shape, steps=100, x_T=z, denoise=False),
                 edm_heun_sampler(fn, sde, z.shape, steps=200, x_T=z, denoise=False)):
        assert (x - exact).abs().max().item() < 1e-3 * scale
    x, _ = dpm_solver_sampler(fn, sde, z.shape, steps=200, x_T=z)
    torch.testing.assert_close(x, denoise_step(fn, sde, exact, 1e-3), rtol=1e-4, atol=1e-4 * scale)


# ----------------------------------------------------------------------------------------------
# NFE, dispatch, dtype, reproducibility, errors.
def test_nfe_counts():
    sde = VPSDE()
    calls = []
    fn = GAUSS.score_fn(sde)
    counting = lambda x, t: calls.append(1) or fn(x, t)  # noqa: E731
    shape = (4, 64)

    def check(result):
        assert result[1] == len(calls), (result[1], len(calls))
        calls.clear()
        return result[1]

    for steps in (1, 2, 3, 7, 10, 11, 20):
        for order in (1, 2, 3):
            assert check(dpm_solver_sampler(counting, sde, shape, steps=steps, order=order)) == steps + 1
            assert check(dpm_solver_sampler(counting, sde, shape, steps=steps, order=order,
                                            denoise=False)) == steps
            assert check(dpm_solver_sampler(counting, sde, shape, steps=steps, order=order,
                                            multistep=True)) == steps + 1
            assert check(dpm_solver_pp_sampler(counting, sde, shape, steps=steps, order=order)) == steps + 1
            for kwargs in (dict(), dict(prediction="noise", variant="bh2", skip_type="time_quadratic")):
                assert check(unipc_sampler(counting, sde, shape, steps=steps, order=order, **kwargs)) == steps + 1
                assert check(unipc_sampler(counting, sde, shape, steps=steps, order=order, denoise=False,
                                           **kwargs)) == steps
        assert check(edm_heun_sampler(counting, sde, shape, steps=steps)) == 2 * steps + 1
        assert check(edm_heun_sampler(counting, sde, shape, steps=steps, denoise=False)) == 2 * steps
        assert check(edm_heun_sampler(counting, sde, shape, steps=steps, S_churn=10.0)) == 2 * steps + 1
    assert check(dpm_solver_sampler(counting, sde, shape)) == 21  # default budget 20
    assert check(edm_heun_sampler(counting, sde, shape)) == 35  # EDM's 18 levels
    assert check(unipc_sampler(counting, sde, shape)) == 21
    nfe = check(adaptive_sde_sampler(counting, sde, shape, generator=torch.Generator().manual_seed(0)))
    assert nfe % 2 == 1 and nfe > 3  # two evaluations per iteration, plus the denoising one
    nfe = check(adaptive_sde_sampler(counting, sde, shape, denoise=False))
    assert nfe % 2 == 0


def test_sample_dispatch():
    sde = VESDE()
    fn = GAUSS.score_fn(sde)
    shape = (6, 64)
    assert {"dpm_solver", "dpm_solver++", "edm_heun", "unipc"} <= set(ODE_METHODS)
    cases = [
        (dict(method="dpm_solver", steps=10, order=2), dpm_solver_sampler, dict(steps=10, order=2)),
        (dict(method="dpm_solver", steps=9, multistep=True, skip_type="time_quadratic"),
         dpm_solver_sampler, dict(steps=9, multistep=True, skip_type="time_quadratic")),
        (dict(method="dpm_solver++", steps=8), dpm_solver_pp_sampler, dict(steps=8)),
        (dict(method="unipc", steps=8, order=2, variant="bh2", prediction="noise", skip_type="edm_rho"),
         unipc_sampler, dict(steps=8, order=2, variant="bh2", prediction="noise", skip_type="edm_rho")),
        (dict(method="edm_heun", steps=5, S_churn=3.0, S_noise=1.003), edm_heun_sampler,
         dict(steps=5, S_churn=3.0, S_noise=1.003)),
    ]
    for kwargs, fn_low, low_kwargs in cases:
        a = sample(fn, sde, shape, pc=False, generator=torch.Generator().manual_seed(5), **kwargs)
        b, _ = fn_low(fn, sde, shape, generator=torch.Generator().manual_seed(5), **low_kwargs)
        assert torch.equal(a, b), kwargs
    a = sample(fn, sde, shape, predictor="adaptive", corrector=None, rtol=0.02, atol=0.01,
               generator=torch.Generator().manual_seed(6))
    b, _ = adaptive_sde_sampler(fn, sde, shape, rtol=0.02, atol=0.01, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    a = sample(fn, sde, shape, predictor="adaptive", corrector=None, generator=torch.Generator().manual_seed(6))
    b, _ = adaptive_sde_sampler(fn, sde, shape, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b)  # the paper's tolerances by default
    # rk45 keeps its defaults (1e-5) when rtol / atol are left out.
    z = sde.prior_sampling(shape, generator=torch.Generator().manual_seed(7))
    assert torch.equal(sample(fn, sde, shape, pc=False, x_T=z), rk45_sampler(fn, sde, shape, x_T=z)[0])


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_dtype_shape_and_reproducibility(dtype):
    sde = VPSDE()
    data = toy.high_dim_gaussian(event_shape=(2, 3, 4))
    fn = data.score_fn(sde)
    shape = (3, 2, 3, 4)
    runs = [
        lambda g: dpm_solver_sampler(fn, sde, shape, steps=6, generator=g, dtype=dtype),
        lambda g: dpm_solver_sampler(fn, sde, shape, steps=6, multistep=True, generator=g, dtype=dtype),
        lambda g: dpm_solver_pp_sampler(fn, sde, shape, steps=6, generator=g, dtype=dtype),
        lambda g: unipc_sampler(fn, sde, shape, steps=6, generator=g, dtype=dtype),
        lambda g: edm_heun_sampler(fn, sde, shape, steps=3, S_churn=2.0, generator=g, dtype=dtype),
        lambda g: adaptive_sde_sampler(fn, sde, shape, generator=g, dtype=dtype),
    ]
    for run in runs:
        a, _ = run(torch.Generator().manual_seed(0))
        b, _ = run(torch.Generator().manual_seed(0))
        c, _ = run(torch.Generator().manual_seed(1))
        assert a.dtype == dtype and a.shape == shape and bool(torch.isfinite(a).all())
        assert torch.equal(a, b) and not torch.equal(a, c)
    z = torch.zeros(shape, dtype=dtype)
    for method in ("dpm_solver", "dpm_solver++", "edm_heun", "unipc"):
        assert sample(fn, sde, shape, pc=False, method=method, steps=4, x_T=z).dtype == dtype


@pytest.mark.parametrize("sde_name", list(SDES))
@pytest.mark.parametrize("steps", [1, 2, 3])
def test_no_nan_for_few_steps(sde_name, steps):
    sde = SDES[sde_name]
    fn = toy.high_dim_gaussian(event_shape=(3, 4, 4)).score_fn(sde)
    shape = (4, 3, 4, 4)
    for kwargs in (dict(method="dpm_solver", order=3), dict(method="dpm_solver", order=3, multistep=True),
                   dict(method="dpm_solver++"), dict(method="unipc"), dict(method="unipc", prediction="noise"),
                   dict(method="edm_heun"), dict(method="edm_heun", S_churn=40.0)):
        for skip in SKIP_TYPES:
            if kwargs["method"] == "edm_heun" and skip != "logSNR":
                continue
            extra = {} if kwargs["method"] == "edm_heun" else dict(skip_type=skip)
            x = sample(fn, sde, shape, pc=False, steps=steps, generator=torch.Generator().manual_seed(0),
                       **kwargs, **extra)
            assert bool(torch.isfinite(x).all()), kwargs


def test_progress_bar_runs(capsys):
    sde = VPSDE()
    fn = GAUSS.score_fn(sde)
    sample(fn, sde, (2, 64), pc=False, method="dpm_solver", steps=6, progress=True)
    sample(fn, sde, (2, 64), pc=False, method="dpm_solver++", steps=6, progress=True)
    sample(fn, sde, (2, 64), pc=False, method="unipc", steps=6, progress=True)
    sample(fn, sde, (2, 64), pc=False, method="edm_heun", steps=3, progress=True)
    sample(fn, sde, (2, 64), predictor="adaptive", corrector=None, progress=True)
    assert "nfe" in capsys.readouterr().err


def test_bad_arguments():
    sde = VPSDE()
    fn = GAUSS.score_fn(sde)
    shape = (2, 64)
    with pytest.raises(ValueError, match=r"unknown method='dpm'; valid values are: 'rk45', .*'ddim', "
                                         r"'dpm_solver', 'dpm_solver\+\+', 'edm_heun'"):
        sample(fn, sde, shape, pc=False, method="dpm")
    with pytest.raises(ValueError, match=r"unknown predictor='fast'; valid values are: .*'torchsde', 'adaptive'"):
        sample(fn, sde, shape, predictor="fast")
    with pytest.raises(ValueError, match=r"unknown order=4; valid values are: 1, 2, 3"):
        sample(fn, sde, shape, pc=False, method="dpm_solver", order=4)
    with pytest.raises(ValueError, match=r"unknown order=4; valid values are: 1, 2, 3"):
        dpm_solver_pp_sampler(fn, sde, shape, order=4)
    with pytest.raises(ValueError, match=r"unknown skip_type='karras'; valid values are: 'logSNR', "
                                         r"'time_uniform', 'time_quadratic', 'edm_rho', 'vp_quadratic', "
                                         r"'logSNR_quadratic'"):
        dpm_solver_sampler(fn, sde, shape, skip_type="karras")
    with pytest.raises(ValueError, match=r"unknown variant='bh3'; valid values are: 'bh1', 'bh2'"):
        sample(fn, sde, shape, pc=False, method="unipc", variant="bh3")
    with pytest.raises(ValueError, match=r"unknown prediction='score'; valid values are: 'data', 'noise'"):
        unipc_sampler(fn, sde, shape, prediction="score")
    with pytest.raises(ValueError, match=r"unknown order=4; valid values are: 1, 2, 3"):
        unipc_sampler(fn, sde, shape, order=4)
    with pytest.raises(ValueError, match="lower_order_final must be"):
        unipc_sampler(fn, sde, shape, lower_order_final=-1)
    with pytest.raises(ValueError, match=r"unknown brownian='tree'; valid values are: 'memory', 'fresh'"):
        adaptive_sde_sampler(fn, sde, shape, brownian="tree")
    with pytest.raises(ValueError, match="corrector=None"):
        sample(fn, sde, shape, predictor="adaptive")
    with pytest.raises(ValueError, match="chooses its own steps"):
        sample(fn, sde, shape, predictor="adaptive", corrector=None, steps=10)
    with pytest.raises(ValueError, match="steps must be"):
        sample(fn, sde, shape, pc=False, method="dpm_solver", steps=0)
    with pytest.raises(ValueError, match="eps must lie"):
        sample(fn, sde, shape, pc=False, method="edm_heun", eps=0.0)
    with pytest.raises(ValueError, match="need rho > 0"):
        edm_heun_sampler(fn, sde, shape, rho=0.0)
    with pytest.raises(ValueError, match="need rtol >= 0"):
        adaptive_sde_sampler(fn, sde, shape, atol=0.0)
    with pytest.raises(ValueError, match="x_T must be a tensor of the sampling shape"):
        dpm_solver_sampler(fn, sde, shape, x_T=torch.zeros(3, 64))
