"""The SDEs against their defining equations, Monte Carlo simulation and the DDPM/SMLD chains.

Tolerances: Monte Carlo comparisons use M paths and allow 5 standard errors (sample mean:
std / sqrt(M); sample variance: var * sqrt(2 / M)), which fails by chance with probability
below 1e-6 per check; the Euler-Maruyama bias of the reference simulation (O(dt) with
dt = 1/2000) is two orders of magnitude below that.
"""
import math

import pytest
import torch

from scoresde import SDE, VESDE, VPSDE, RectifiedFlow, SubVPSDE
from scoresde.utils import append_dims

F64 = torch.float64
SDES = {
    "vp": lambda: VPSDE(),
    "subvp": lambda: SubVPSDE(),
    "ve": lambda: VESDE(),
    "rf": lambda: RectifiedFlow(),
}


@pytest.fixture(params=list(SDES))
def sde(request):
    return SDES[request.param]()


def _t(values):
    return torch.tensor(values, dtype=F64)


# ----------------------------------------------------------------------------------------------
# Closed forms.
def test_vp_closed_forms():
    sde = VPSDE(beta_min=0.1, beta_max=20.0)
    t = _t([0.0, 0.3, 1.0])
    x = torch.ones(3, 2, dtype=F64)
    drift, g = sde.sde(x, t)
    beta = 0.1 + t * 19.9
    torch.testing.assert_close(drift, -0.5 * beta[:, None] * x)
    torch.testing.assert_close(g, beta.sqrt())
    mean, std = sde.marginal_prob(x, t)
    lmc = -0.25 * t**2 * 19.9 - 0.5 * t * 0.1
    torch.testing.assert_close(mean, lmc.exp()[:, None] * x)
    torch.testing.assert_close(std, (1 - (2 * lmc).exp()).sqrt())


def test_subvp_and_ve_closed_forms():
    t = _t([0.1, 0.5, 1.0])
    x = torch.ones(3, 2, dtype=F64)
    sub = SubVPSDE()
    lmc = -0.25 * t**2 * 19.9 - 0.5 * t * 0.1
    _, g = sub.sde(x, t)
    beta = 0.1 + t * 19.9
    torch.testing.assert_close(g, (beta * (1 - torch.exp(-2 * 0.1 * t - 19.9 * t**2))).sqrt())
    torch.testing.assert_close(sub.marginal_prob(x, t)[1], 1 - (2 * lmc).exp())
    ve = VESDE(sigma_min=0.01, sigma_max=50.0)
    drift, g = ve.sde(x, t)
    sigma = 0.01 * (50 / 0.01) ** t
    assert torch.equal(drift, torch.zeros_like(x))
    torch.testing.assert_close(g, sigma * math.sqrt(2 * math.log(50 / 0.01)))
    mean, std = ve.marginal_prob(x, t)
    torch.testing.assert_close(mean, x)
    torch.testing.assert_close(std, sigma)


def test_kernel_solves_the_moment_equations(sde):
    """For dx = f(t) x dt + g dw: d log alpha / dt = f(t) and d sigma^2 / dt = 2 f sigma^2 + g^2.

    (VE's kernel keeps score_sde's sigma(0) = sigma_min, which does not change the derivative.)
    """
    t = (sde.T * torch.linspace(0.05, 1.0, 9, dtype=F64)).requires_grad_()
    alpha, sigma = sde.marginal_coeffs(t)
    dlog_alpha = torch.autograd.grad((alpha.log() + 0 * t).sum(), t, retain_graph=True)[0]
    dvar = torch.autograd.grad((sigma**2).sum(), t)[0]
    x = torch.ones(9, 1, dtype=F64)
    drift, g = sde.sde(x, t.detach())
    f = drift[:, 0]
    torch.testing.assert_close(dlog_alpha, f)
    torch.testing.assert_close(dvar, 2 * f * sigma.detach() ** 2 + g**2)


def test_schedule_layer_members_agree_with_the_kernel(sde):
    """diffusion = g of sde(); log_snr = log(alpha / sigma); the kernel derivatives match autograd."""
    t = (sde.T * torch.linspace(0.05, 1.0, 9, dtype=F64)).requires_grad_()
    alpha, sigma = sde.marginal_coeffs(t)
    d_alpha = torch.autograd.grad((alpha + 0 * t).sum(), t, retain_graph=True)[0]
    d_sigma = torch.autograd.grad(sigma.sum(), t)[0]
    t = t.detach()
    da, ds = sde.marginal_coeffs_derivative(t)
    torch.testing.assert_close(da, d_alpha)
    torch.testing.assert_close(ds, d_sigma)
    # The base class's generic derivative from f and g agrees with the closed form.
    torch.testing.assert_close(SDE.marginal_coeffs_derivative(sde, t), (da, ds))
    _, g = sde.sde(torch.ones(9, 2, dtype=F64), t)
    assert torch.equal(sde.diffusion(t), g)
    torch.testing.assert_close(sde.log_snr(t), (alpha / sigma).log().detach())
    torch.testing.assert_close(sde.log_snr(t), SDE.log_snr(sde, t))


def test_t_from_log_snr_inverts_log_snr(sde):
    """The closed-form inverse, on any shape, equals the base class's float64 bisection."""
    t = sde.T * torch.tensor([[1e-4, 0.01, 0.1], [0.5, 0.9, 1.0]], dtype=F64)
    lam = sde.log_snr(t.reshape(-1)).reshape(2, 3)
    back = sde.t_from_log_snr(lam)
    assert back.shape == (2, 3) and back.dtype == F64
    torch.testing.assert_close(back, t, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(SDE.t_from_log_snr(sde, lam), t, rtol=1e-10, atol=1e-12)
    lam32 = lam.float()
    back32 = sde.t_from_log_snr(lam32)
    assert back32.dtype == torch.float32
    torch.testing.assert_close(back32.double(), t, rtol=1e-4, atol=1e-6)
    # Strictly decreasing lambda.
    assert bool((lam.reshape(-1).diff() < 0).all())


def test_vp_log_snr_is_stable_at_small_t():
    """At t = 1e-7 alpha / sigma in float32 loses digits; the closed form keeps them."""
    sde = VPSDE()
    t = torch.tensor([1e-7, 1e-5], dtype=torch.float32)
    ref = -0.5 * torch.log(torch.expm1(sde.integrated_beta(t.double())))
    torch.testing.assert_close(sde.log_snr(t).double(), ref, rtol=1e-6, atol=0)


def test_marginal_prob_matches_monte_carlo_of_the_sde(sde):
    """Simulate dx = f dt + g dw with Euler-Maruyama (2000 steps of T / 2000) from a fixed x0,
    up to 0.95 T (where rectified flow's drift f = -1/(1 - t) is still resolved by the steps)."""
    M, n_steps = 20_000, 2000
    gen = torch.Generator().manual_seed(0)
    x0 = torch.full((M, 1), 1.5, dtype=F64)
    x = x0.clone()
    dt = sde.T / n_steps
    checkpoints = {500: None, 1000: None, 1900: None}
    for k in range(n_steps):
        t = torch.full((M,), k * dt, dtype=F64)
        drift, g = sde.sde(x, t)
        x = x + drift * dt + g[:, None] * math.sqrt(dt) * torch.randn(
            x.shape, generator=gen, dtype=F64
        )
        if k + 1 in checkpoints:
            checkpoints[k + 1] = x.clone()
        if k + 1 == max(checkpoints):
            break
    for k, xk in checkpoints.items():
        t = torch.full((1,), k * dt, dtype=F64)
        mean, std = sde.marginal_prob(x0[:1], t)
        # The SDE started at a point has variance sigma(t)^2 - sigma(0)^2 (sigma(0) = 0 except
        # for VE, whose kernel follows score_sde in keeping sigma_min; see VESDE).
        var = std**2 - sde.marginal_coeffs(torch.zeros(1, dtype=F64))[1] ** 2
        sd = var.sqrt().item()
        assert abs(xk.mean().item() - mean.item()) < 5 * sd / math.sqrt(M)
        assert abs(xk.var().item() / var.item() - 1) < 5 * math.sqrt(2 / M)


def test_transition_is_consistent_with_the_kernel(sde):
    t = sde.T * torch.linspace(0.2, 1.0, 7, dtype=F64)
    dt = torch.full_like(t, 0.13)
    m, v = sde.transition(t, dt)
    a1, s1 = sde.marginal_coeffs(t)
    a0, s0 = sde.marginal_coeffs(t - dt)
    torch.testing.assert_close(m, a1 / a0)
    torch.testing.assert_close(v, s1**2 - m**2 * s0**2)
    assert bool((v > 0).all())
    # Tiny steps stay accurate in float32 (no cancellation): v ~ (d sigma^2/dt - 2 f sigma^2) dt.
    t32 = t.float()
    m32, v32 = sde.transition(t32, 1e-6)
    m64, v64 = sde.transition(t32.double(), 1e-6)  # the same (rounded) times
    torch.testing.assert_close(v32.double(), v64, rtol=1e-5, atol=0)


def test_exact_steps_compose_to_the_kernel(sde):
    """x_T from x_eps by 10 exact steps has the kernel's mean and variance (any step size)."""
    grid = torch.linspace(1e-3, sde.T, 11, dtype=F64)
    mean_coef, var = torch.ones(1, dtype=F64), torch.zeros(1, dtype=F64)
    for s, t in zip(grid[:-1], grid[1:]):
        m, v = sde.transition(t.reshape(1), (t - s).reshape(1))
        mean_coef, var = m * mean_coef, m**2 * var + v
    a0, s0 = sde.marginal_coeffs(grid[:1])
    a1, s1 = sde.marginal_coeffs(grid[-1:])
    torch.testing.assert_close(mean_coef, a1 / a0)
    torch.testing.assert_close(var, s1**2 - (a1 / a0) ** 2 * s0**2)


def test_prior(sde):
    gen = torch.Generator().manual_seed(1)
    z = sde.prior_sampling((4000, 3, 2), generator=gen, dtype=F64)
    assert z.shape == (4000, 3, 2) and z.dtype == F64
    assert abs(z.std().item() / sde.prior_std - 1) < 5 * math.sqrt(2 / z.numel())
    ref = torch.distributions.Normal(0.0, sde.prior_std).log_prob(z).sum(dim=(1, 2))
    torch.testing.assert_close(sde.prior_logp(z), ref)
    again = sde.prior_sampling((4000, 3, 2), generator=torch.Generator().manual_seed(1), dtype=F64)
    assert torch.equal(z, again)


# ----------------------------------------------------------------------------------------------
# Discrete chains: DDPM for VP, SMLD for VE.
def test_vp_schedule_is_ddpm():
    sde = VPSDE(0.1, 20, 1000)
    assert torch.equal(sde.discrete_betas, torch.linspace(1e-4, 0.02, 1000))
    torch.testing.assert_close(sde.alphas, 1 - torch.linspace(1e-4, 0.02, 1000))
    betas64 = torch.linspace(1e-4, 0.02, 1000, dtype=F64)
    torch.testing.assert_close(sde.alphas_cumprod, torch.cumprod(1 - betas64, 0).float())


def test_discrete_index_of_the_sampling_grid():
    sde = VPSDE()
    for eps in (1e-3, 1e-5):
        for dtype in (torch.float32, F64):
            grid = torch.linspace(1.0, eps, 1000, dtype=dtype)
            assert torch.equal(sde.discrete_index(grid), torch.arange(999, -1, -1))


def test_vp_discretize_is_the_ddpm_forward_step():
    sde = VPSDE()
    i = torch.tensor([0, 1, 500, 999])
    t = i.to(F64) / 999
    x = torch.randn(4, 3, 5, generator=torch.Generator().manual_seed(0), dtype=F64)
    f, G = sde.discretize(x, t)
    beta = torch.linspace(1e-4, 0.02, 1000, dtype=F64)[i]
    torch.testing.assert_close(x + f, (1 - beta).sqrt()[:, None, None] * x)
    torch.testing.assert_close(G, beta.sqrt())
    # The chain's marginal after i steps is N(sqrt(abar_i) x0, (1 - abar_i) I).
    alpha, sigma = sde.discrete_marginal_coeffs(t)
    abar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=F64), 0)[i]
    torch.testing.assert_close(alpha, abar.sqrt())
    torch.testing.assert_close(sigma, (1 - abar).sqrt())


def test_ve_discretize_is_the_smld_step():
    sde = VESDE()
    sigmas = torch.exp(torch.linspace(math.log(0.01), math.log(50.0), 1000, dtype=F64))
    torch.testing.assert_close(sde.discrete_sigmas, sigmas.float())
    i = torch.tensor([0, 1, 999])
    t = i.to(F64) / 999
    x = torch.randn(3, 4, dtype=F64)
    f, G = sde.discretize(x, t)
    prev = torch.tensor([0.0, sigmas[0].item(), sigmas[998].item()], dtype=F64)
    assert torch.equal(f, torch.zeros_like(x))
    torch.testing.assert_close(G, (sigmas[i] ** 2 - prev**2).sqrt())
    # The continuous kernel at t_i is the SMLD noise level sigma_i.
    torch.testing.assert_close(sde.marginal_coeffs(t)[1], sigmas[i])


def test_subvp_discretize_is_euler_maruyama():
    sde = SubVPSDE(N=100)
    t = _t([0.2, 0.7])
    x = torch.randn(2, 3, dtype=F64)
    f, G = sde.discretize(x, t)
    drift, g = sde.sde(x, t)
    torch.testing.assert_close(f, drift / 100)
    torch.testing.assert_close(G, g / 10)


def test_discretize_with_a_step_size_is_the_exact_transition(sde):
    t = _t([0.5, sde.T])
    x = torch.randn(2, 3, dtype=F64)
    f, G = sde.discretize(x, t, dt=0.5)
    m, v = sde.transition(t, 0.5)
    torch.testing.assert_close(x + f, m[:, None] * x)
    torch.testing.assert_close(G, v.sqrt())
    # Large steps stay valid: the official VP table for 10 steps has beta_9 = 2.0 > 1.
    m, v = sde.transition(sde.T * torch.linspace(0.1, 1.0, 10, dtype=F64), 0.1 * sde.T)
    assert bool(((m > 0) & (m <= 1 + 1e-12) & (v > 0)).all())


# ----------------------------------------------------------------------------------------------
# Reverse-time SDE, probability-flow ODE, ancestral and Langevin coefficients.
def test_reverse_sde_and_probability_flow(sde):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(5, 2, 3, generator=gen, dtype=F64)
    t = torch.rand(5, generator=gen, dtype=F64)
    score = torch.randn(5, 2, 3, generator=gen, dtype=F64)
    score_fn = lambda x_, t_: score  # noqa: E731
    f, g = sde.sde(x, t)
    drift, diffusion = sde.reverse(score_fn).sde(x, t)
    torch.testing.assert_close(drift, f - append_dims(g**2, 3) * score)
    torch.testing.assert_close(diffusion, g)
    drift, diffusion = sde.reverse(score_fn, probability_flow=True).sde(x, t)
    torch.testing.assert_close(drift, f - 0.5 * append_dims(g**2, 3) * score)
    assert torch.equal(diffusion, torch.zeros_like(g))
    for dt in (None, 0.01):
        fd, G = sde.discretize(x, t, dt)
        rev_f, rev_G = sde.reverse(score_fn).discretize(x, t, dt)
        torch.testing.assert_close(rev_f, fd - append_dims(G**2, 3) * score)
        torch.testing.assert_close(rev_G, G)
        rev_f, rev_G = sde.reverse(score_fn, True).discretize(x, t, dt)
        torch.testing.assert_close(rev_f, fd - 0.5 * append_dims(G**2, 3) * score)
        assert torch.equal(rev_G, torch.zeros_like(G))
    rsde = sde.reverse(score_fn)
    assert rsde.N == sde.N and rsde.T == sde.T


@pytest.mark.parametrize("dt", [None, 0.05])
def test_ancestral_step_is_the_gaussian_posterior(sde, dt):
    """For point-mass data x0, Tweedie's formula is exact, so the ancestral step must equal the
    posterior q(x_s | x_t, x0) of the chosen step (mean and 'posterior' variance)."""
    gen = torch.Generator().manual_seed(4)
    x0 = torch.randn(3, 4, generator=gen, dtype=F64)
    t = _t([0.3, 0.6, 0.95])
    if dt is None:
        alpha, sigma = sde.discrete_marginal_coeffs(t)
    else:
        alpha, sigma = sde.marginal_coeffs(t)
    x_t = alpha[:, None] * x0 + sigma[:, None] * torch.randn(3, 4, generator=gen, dtype=F64)
    score = -(x_t - alpha[:, None] * x0) / sigma[:, None] ** 2
    m, v = sde.discrete_transition(t) if dt is None else sde.transition(t, dt)
    # Posterior of x_s given x_t and x0: x_s ~ N(alpha_s x0, sigma_s^2), x_t = m x_s + sqrt(v) z.
    alpha_s = alpha / m
    sigma2_s = (sigma**2 - v) / m**2
    post_var = 1 / (1 / sigma2_s + m**2 / v)
    post_mean = post_var[:, None] * (alpha_s[:, None] * x0 / sigma2_s[:, None] + m[:, None] * x_t / v[:, None])
    x_mean, std = sde.ancestral_step(x_t, t, score, dt=dt, variance="posterior")
    torch.testing.assert_close(x_mean, post_mean)
    torch.testing.assert_close(std**2, post_var)
    _, std_beta = sde.ancestral_step(x_t, t, score, dt=dt, variance="beta")
    torch.testing.assert_close(std_beta**2, v)


def test_vp_ancestral_step_is_ddpm_algorithm_2():
    sde = VPSDE()
    i = torch.tensor([1, 400, 999])
    t = i.to(F64) / 999
    x = torch.randn(3, 2, dtype=F64)
    score = torch.randn(3, 2, dtype=F64)
    beta = torch.linspace(1e-4, 0.02, 1000, dtype=F64)[i]
    x_mean, std = sde.ancestral_step(x, t, score)
    torch.testing.assert_close(x_mean, (x + beta[:, None] * score) / (1 - beta[:, None]).sqrt())
    torch.testing.assert_close(std, beta.sqrt())
    assert sde.ancestral_variance == "beta"
    torch.testing.assert_close(sde.langevin_alpha(t), 1 - beta)
    assert torch.equal(VESDE().langevin_alpha(t), torch.ones_like(t))


# ----------------------------------------------------------------------------------------------
# Shapes, dtypes, validation.
@pytest.mark.parametrize("shape", [(4, 3), (4, 3, 8, 8), (4, 2, 3, 4, 5)])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_shapes_and_dtypes(sde, shape, dtype):
    x = torch.randn(shape, dtype=dtype)
    t = torch.rand(shape[0], dtype=dtype)
    drift, g = sde.sde(x, t)
    assert drift.shape == shape and g.shape == (shape[0],)
    mean, std = sde.marginal_prob(x, t)
    assert mean.shape == shape and std.shape == (shape[0],)
    for dt in (None, 0.1):
        f, G = sde.discretize(x, t, dt)
        assert f.shape == shape and G.shape == (shape[0],)
        x_mean, s = sde.ancestral_step(x, t, x, dt)
        assert x_mean.shape == shape and s.shape == (shape[0],)
        assert f.dtype == G.dtype == x_mean.dtype == s.dtype == dtype
    z = sde.prior_sampling(shape, dtype=dtype)
    assert z.shape == shape and sde.prior_logp(z).shape == (shape[0],)
    for v in (drift, g, mean, std, z, sde.prior_logp(z)):
        assert v.dtype == dtype


def test_constructor_validation():
    with pytest.raises(ValueError, match="beta_min"):
        VPSDE(beta_min=5.0, beta_max=1.0)
    with pytest.raises(ValueError, match="sigma_min"):
        VESDE(sigma_min=1.0, sigma_max=0.5)
    with pytest.raises(ValueError, match="N must be"):
        SubVPSDE(N=0)
    with pytest.raises(ValueError, match="variance"):
        VPSDE().ancestral_step(torch.zeros(1, 2), torch.ones(1), torch.zeros(1, 2), variance="x")
    assert repr(VPSDE()) == "VPSDE(beta_min=0.1, beta_max=20.0, N=1000)"
