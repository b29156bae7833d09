"""Denoising score matching against its closed form for Gaussian data.

For x0 ~ N(mu, Sigma) with eigenvalues lambda_k, x_t = alpha x0 + sigma z and the exact score
s = -(alpha^2 Sigma + sigma^2 I)^{-1} (x_t - alpha mu), the residual sigma s + z has, in the
eigenbasis of Sigma, independent coordinates of variance

    E[(sigma s + z)_k^2] = alpha^2 lambda_k / (alpha^2 lambda_k + sigma^2)       (*)

(derivation: (sigma s + z)_k = z_k alpha^2 lambda_k / V_k - sigma alpha e_k / V_k with
e_k ~ N(0, lambda_k), V_k = alpha^2 lambda_k + sigma^2). So the expected DSM loss at time t is
lambda(t)/sigma(t)^2 times the mean of (*) over k ("mean") or half its sum ("sum"), and any
other score function adds E[lambda ||s' - s||^2] > 0. Monte Carlo averages are compared with
the exact expectation within 5 standard errors of the sampled per-example terms.
"""
import math

import pytest
import torch
from scipy import integrate

from scoresde import VESDE, VPSDE, RectifiedFlow, SubVPSDE, ddpm_loss, dsm_loss, get_score_fn, smld_loss, toy
from scoresde.losses import discrete_dsm_loss, dsm_loss_terms, importance_sample_time

F64 = torch.float64
SDES = {"vp": VPSDE(), "subvp": SubVPSDE(), "ve": VESDE()}
DATA = toy.correlated_gaussian(dim=4, min_var=0.1, max_var=2.0)


def expected_terms(sde, t, weighting, reduce, alpha=None, sigma=None):
    """Closed-form expectation (*) of the per-example loss at times t."""
    if alpha is None:
        alpha, sigma = sde.marginal_coeffs(t)
    lam = DATA.eigvals
    a2l = alpha[:, None] ** 2 * lam[None]
    per_dim = a2l / (a2l + sigma[:, None] ** 2)
    r = per_dim.mean(1) if reduce == "mean" else 0.5 * per_dim.sum(1)
    if weighting == "g2":
        _, g = sde.sde(torch.zeros(len(t), 1, dtype=F64), t)
        r = r * (g / sigma) ** 2
    return r


def assert_mc_close(samples, expected_mean):
    se = samples.std().item() / math.sqrt(samples.numel())
    assert abs(samples.mean().item() - float(expected_mean)) < 5 * se, (
        samples.mean().item(),
        float(expected_mean),
        se,
    )


@pytest.mark.parametrize("sde_name", list(SDES))
@pytest.mark.parametrize("weighting", ["sigma2", "g2"])
@pytest.mark.parametrize("reduce", ["mean", "sum"])
def test_loss_at_exact_score_equals_closed_form(sde_name, weighting, reduce):
    sde = SDES[sde_name]
    gen = torch.Generator().manual_seed(0)
    B = 20_000
    x0 = DATA.sample(B, generator=gen, dtype=F64)
    t = 1e-3 + (1 - 1e-3) * torch.rand(B, generator=gen, dtype=F64)
    z = torch.randn(x0.shape, generator=gen, dtype=F64)
    terms = dsm_loss_terms(DATA.score_fn(sde), sde, x0, t, z, weighting=weighting, reduce=reduce)
    assert terms.shape == (B,)
    assert_mc_close(terms - expected_terms(sde, t, weighting, reduce), 0.0)


@pytest.mark.parametrize("sde_name", list(SDES))
@pytest.mark.parametrize("weighting", ["sigma2", "g2"])
def test_dsm_loss_expectation_over_time(sde_name, weighting):
    """dsm_loss draws t ~ U(eps, T): its mean is the time integral of the closed form."""
    sde = SDES[sde_name]
    eps = 1e-3
    exact, _ = integrate.quad(
        lambda s: expected_terms(sde, torch.tensor([s], dtype=F64), weighting, "mean").item(),
        eps, 1.0, limit=200, points=[1e-2, 1e-1],
    )
    exact /= 1 - eps
    gen = torch.Generator().manual_seed(1)
    B = 20_000
    x0 = DATA.sample(B, generator=gen, dtype=F64)
    loss = dsm_loss(DATA.score_fn(sde), sde, x0, weighting=weighting, eps=eps, generator=gen)
    assert loss.ndim == 0 and loss.dtype == F64
    # Standard error from an independent draw of per-example terms at uniform times.
    t = eps + (1 - eps) * torch.rand(B, generator=gen, dtype=F64)
    z = torch.randn(x0.shape, generator=gen, dtype=F64)
    terms = dsm_loss_terms(DATA.score_fn(sde), sde, x0, t, z, weighting=weighting)
    se = terms.std().item() / math.sqrt(B)
    assert abs(loss.item() - exact) < 5 * se


@pytest.mark.parametrize("sde_name", list(SDES))
def test_loss_is_minimized_at_the_exact_score(sde_name):
    sde = SDES[sde_name]
    exact_fn = DATA.score_fn(sde)
    B = 20_000
    x0 = DATA.sample(B, generator=torch.Generator().manual_seed(2), dtype=F64)
    shift = torch.tensor([0.3, -0.2, 0.1, 0.0], dtype=F64)
    perturbations = {
        "scaled": lambda x, t: 1.1 * exact_fn(x, t),
        "shifted": lambda x, t: exact_fn(x, t) + shift / sde.marginal_coeffs(t)[1][:, None],
    }
    # Common random numbers: the same t and z for every score function.
    base = dsm_loss(exact_fn, sde, x0, generator=torch.Generator().manual_seed(3))
    for name, fn in perturbations.items():
        worse = dsm_loss(fn, sde, x0, generator=torch.Generator().manual_seed(3))
        assert worse > base, name
    # The shifted score adds exactly E[sigma^2 |shift / sigma|^2] / D = |shift|^2 / D.
    t = 1e-5 + (1 - 1e-5) * torch.rand(B, generator=torch.Generator().manual_seed(4), dtype=F64)
    z = torch.randn(x0.shape, generator=torch.Generator().manual_seed(5), dtype=F64)
    diff = dsm_loss_terms(perturbations["shifted"], sde, x0, t, z) - dsm_loss_terms(exact_fn, sde, x0, t, z)
    assert_mc_close(diff, (shift**2).mean())


def test_sum_reduction_is_half_the_sum():
    sde = VPSDE()
    x0 = DATA.sample(8, generator=torch.Generator().manual_seed(6), dtype=F64)
    t = torch.rand(8, dtype=F64)
    z = torch.randn_like(x0)
    fn = lambda x, t: torch.zeros_like(x)  # noqa: E731
    mean = dsm_loss_terms(fn, sde, x0, t, z, reduce="mean")
    total = dsm_loss_terms(fn, sde, x0, t, z, reduce="sum")
    torch.testing.assert_close(total, 0.5 * 4 * mean)
    torch.testing.assert_close(mean, (z**2).mean(1))  # a zero score leaves the noise


@pytest.mark.parametrize("sde_name", list(SDES))
def test_importance_sampling_is_unbiased_and_reduces_variance(sde_name):
    sde = SDES[sde_name]
    eps, B = 1e-5, 40_000
    gen = torch.Generator().manual_seed(7)
    x0 = DATA.sample(B, generator=gen, dtype=F64)
    z = torch.randn(x0.shape, generator=gen, dtype=F64)
    t_is, w = importance_sample_time(sde, "g2", B, eps=eps, generator=gen, dtype=F64)
    assert bool(((t_is >= eps) & (t_is <= 1)).all())
    is_terms = w * dsm_loss_terms(DATA.score_fn(sde), sde, x0, t_is, z)
    t_u = eps + (1 - eps) * torch.rand(B, generator=gen, dtype=F64)
    u_terms = dsm_loss_terms(DATA.score_fn(sde), sde, x0, t_u, z, weighting="g2")
    exact, _ = integrate.quad(
        lambda s: expected_terms(sde, torch.tensor([s], dtype=F64), "g2", "mean").item(),
        eps, 1.0, limit=400, points=[1e-4, 1e-3, 1e-2, 1e-1],
    )
    exact /= 1 - eps
    assert_mc_close(is_terms, exact)
    assert_mc_close(u_terms, exact)
    assert is_terms.std() <= u_terms.std() * 1.01
    if sde_name == "vp":  # g^2 / sigma^2 ~ 1/t: importance sampling removes most of the variance
        assert is_terms.std() < 0.5 * u_terms.std()
    loss = dsm_loss(DATA.score_fn(sde), sde, x0, weighting="g2", importance_sampling=True, eps=eps,
                    generator=torch.Generator().manual_seed(8))
    assert abs(loss.item() - exact) < 5 * is_terms.std().item() / math.sqrt(B)


@pytest.mark.parametrize("sde_name", ["vp", "ve"])
def test_discrete_losses_at_the_exact_discrete_score(sde_name):
    sde = SDES[sde_name]
    reps = 20
    i = torch.arange(sde.N).repeat(reps)
    B = len(i)
    x0 = DATA.sample(B, generator=torch.Generator().manual_seed(9), dtype=F64)

    def discrete_exact_score(x, t):  # exact score of the chain's marginal at index(t)
        alpha, sigma = sde.discrete_marginal_coeffs(t)
        V = alpha[:, None] ** 2 * DATA.eigvals + sigma[:, None] ** 2
        y = (x - alpha[:, None] * DATA.mean) @ DATA.eigvecs
        return -(y / V) @ DATA.eigvecs.T

    t_i = i.to(F64) / (sde.N - 1)
    alpha, sigma = sde.discrete_marginal_coeffs(t_i)
    loss_fn, reduce = (ddpm_loss, "mean") if sde_name == "vp" else (smld_loss, "sum")
    loss = loss_fn(discrete_exact_score, sde, x0, i=i, generator=torch.Generator().manual_seed(10))
    expected = expected_terms(sde, t_i, "sigma2", reduce, alpha, sigma)
    # Per-example variance of the terms, from the closed form's scale: use an empirical draw.
    same = discrete_dsm_loss(discrete_exact_score, sde, x0, reduce=reduce, i=i,
                             generator=torch.Generator().manual_seed(10))
    torch.testing.assert_close(loss, same)
    z = torch.randn(x0.shape, generator=torch.Generator().manual_seed(11), dtype=F64)
    x = alpha[:, None] * x0 + sigma[:, None] * z
    terms = (sigma[:, None] * discrete_exact_score(x, t_i) + z) ** 2
    terms = terms.mean(1) if reduce == "mean" else 0.5 * terms.sum(1)
    se = terms.std().item() / math.sqrt(B)
    assert abs(loss.item() - expected.mean().item()) < 5 * se


def test_ddpm_loss_is_the_epsilon_regression():
    """With eps_theta = -sigma_i s, the DDPM loss is mean((eps - eps_theta)^2) at the drawn i."""
    sde = VPSDE(N=10)
    x0 = torch.randn(6, 3, dtype=F64)
    i = torch.tensor([0, 1, 2, 5, 9, 9])
    eps_pred = torch.randn(6, 3, dtype=F64)
    score_fn = lambda x, t: -eps_pred / sde.discrete_marginal_coeffs(t)[1][:, None]  # noqa: E731
    loss = ddpm_loss(score_fn, sde, x0, i=i, generator=torch.Generator().manual_seed(0))
    z = torch.randn(6, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    torch.testing.assert_close(loss, ((z - eps_pred) ** 2).mean())


@pytest.mark.parametrize("shape", [(3, 5), (3, 2, 4, 4), (3, 2, 2, 3, 3)])
def test_shapes_dtype_and_reproducibility(shape):
    sde = VPSDE()
    x0 = torch.randn(shape)
    fn = lambda x, t: -x  # noqa: E731
    a = dsm_loss(fn, sde, x0, generator=torch.Generator().manual_seed(0))
    b = dsm_loss(fn, sde, x0, generator=torch.Generator().manual_seed(0))
    assert a.dtype == torch.float32 and a.ndim == 0 and torch.equal(a, b)
    assert ddpm_loss(fn, sde, x0).dtype == torch.float32


def test_bad_input_raises_clear_errors():
    sde = VPSDE()
    x0 = torch.randn(4, 3)
    fn = lambda x, t: -x  # noqa: E731
    cases = [
        (dict(t=torch.rand(4, 1)), r"t must have shape \(B,\) = \(4,\)"),
        (dict(t=torch.rand(5)), r"t must have shape \(B,\) = \(4,\)"),
        (dict(t=torch.tensor([0.1, 0.2, 1.5, 0.3])), r"t must lie in \[0.0, 1.0\]"),
        (dict(t=torch.tensor([0.1, -0.2, 0.5, 0.3])), r"t must lie in"),
        (dict(weighting="likelihood"), r"unknown weighting='likelihood'; valid values are: 'sigma2', 'g2'"),
        (dict(reduce="max"), r"unknown reduce='max'"),
        (dict(eps=1.0), r"eps must lie in"),
        (dict(t=torch.rand(4), importance_sampling=True), r"either t or importance_sampling"),
    ]
    for kwargs, msg in cases:
        with pytest.raises(ValueError, match=msg):
            dsm_loss(fn, sde, x0, **kwargs)
    with pytest.raises(ValueError, match="x0 must be a torch.Tensor"):
        dsm_loss(fn, sde, [[1.0, 2.0]])
    with pytest.raises(ValueError, match="floating-point"):
        dsm_loss(fn, sde, torch.ones(4, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="needs a VPSDE"):
        ddpm_loss(fn, VESDE(), x0)
    with pytest.raises(ValueError, match="needs a VESDE"):
        smld_loss(fn, VPSDE(), x0)
    with pytest.raises(ValueError, match="i must be an integer tensor"):
        ddpm_loss(fn, sde, x0, i=torch.zeros(4))


@pytest.mark.parametrize("sde_name", ["rf", "vp", "subvp", "ve"])
def test_flow_matching_weighting_is_the_conditional_flow_matching_loss(sde_name):
    """With a "velocity" network u(x, t), the flow_matching-weighted DSM term equals
    ||u - (alpha' x0 + sigma' z)||^2 (for rectified flow: ||u - (z - x0)||^2), exactly."""
    sde = {"rf": RectifiedFlow(), **SDES}[sde_name]
    gen = torch.Generator().manual_seed(5)
    W = torch.randn(4, 4, generator=gen, dtype=F64)

    class Velocity(torch.nn.Module):  # any function of (x, t) will do
        parameterization, time_label = "velocity", "t"

        def forward(self, x, t):
            return torch.tanh(x @ W) * (1 + t[:, None])

    model = Velocity()
    x0 = DATA.sample(64, generator=gen, dtype=F64)
    t = 1e-3 + (sde.T - 2e-3) * torch.rand(64, generator=gen, dtype=F64)
    z = torch.randn(x0.shape, generator=gen, dtype=F64)
    terms = dsm_loss_terms(get_score_fn(model, sde), sde, x0, t, z, weighting="flow_matching")
    alpha, sigma = sde.marginal_coeffs(t)
    da, ds = sde.marginal_coeffs_derivative(t)
    x_t = alpha[:, None] * x0 + sigma[:, None] * z
    target = da[:, None] * x0 + ds[:, None] * z
    torch.testing.assert_close(terms, ((model(x_t, t) - target) ** 2).mean(1), rtol=1e-9, atol=1e-12)
    if sde_name == "rf":
        torch.testing.assert_close(target, z - x0)
