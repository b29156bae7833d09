"""Exact-score toy distributions: scores are gradients of their log-densities, samples follow them,
and the exact probability-flow map and its density are right."""
import math

import pytest
import torch

from scoresde import VESDE, VPSDE, SubVPSDE, toy

F64 = torch.float64
SDES = [VPSDE(), SubVPSDE(), VESDE()]


def _dists():
    return {
        "isotropic": toy.Gaussian(torch.tensor([0.5, -1.0, 2.0]), 0.3),
        "diagonal": toy.Gaussian(torch.zeros(2, 2), torch.tensor([0.1, 0.5, 1.0, 2.0]), event_shape=(2, 2)),
        "full": toy.correlated_gaussian(dim=4),
        "ring": toy.ring(),
        "checkerboard": toy.checkerboard(),
        "mixture_unequal": toy.GaussianMixture(
            torch.tensor([[0.0, 0.0, 0.0], [2.0, 1.0, -1.0]]), torch.tensor([0.2, 0.5]), torch.tensor([0.3, 0.7])
        ),
    }


@pytest.mark.parametrize("name", list(_dists()))
@pytest.mark.parametrize("sde", SDES + [None], ids=["vp", "subvp", "ve", "data"])
def test_score_is_gradient_of_log_density(name, sde):
    dist = _dists()[name]
    gen = torch.Generator().manual_seed(0)
    x = dist.sample(16, generator=gen, dtype=F64)
    t = torch.rand(16, generator=gen, dtype=F64) * 0.9 + 0.05 if sde is not None else None
    x = (x + 0.3 * torch.randn(x.shape, generator=gen, dtype=F64)).requires_grad_(True)
    logp = dist.log_prob_t(x, t, sde)
    (grad,) = torch.autograd.grad(logp.sum(), x)
    torch.testing.assert_close(dist.score(x.detach(), t, sde), grad)
    if sde is not None:
        torch.testing.assert_close(dist.score_fn(sde)(x.detach(), t), grad)


def test_gaussian_log_prob_against_torch_distributions():
    dist = toy.correlated_gaussian(dim=5)
    x = dist.sample(7, generator=torch.Generator().manual_seed(1), dtype=F64)
    ref = torch.distributions.MultivariateNormal(dist.mean, dist.cov).log_prob(x)
    torch.testing.assert_close(dist.log_prob(x), ref)
    # Perturbed: N(alpha mean, alpha^2 cov + sigma^2 I).
    sde = VPSDE()
    t = torch.full((7,), 0.4, dtype=F64)
    alpha, sigma = sde.marginal_coeffs(t[:1])
    ref_t = torch.distributions.MultivariateNormal(
        alpha * dist.mean, alpha**2 * dist.cov + sigma**2 * torch.eye(5, dtype=F64)
    ).log_prob(x)
    torch.testing.assert_close(dist.log_prob_t(x, t, sde), ref_t)


def test_mixture_log_prob_is_the_weighted_sum():
    dist = _dists()["mixture_unequal"]
    x = torch.randn(6, 3, dtype=F64)
    comps = [
        torch.distributions.MultivariateNormal(mu, s**2 * torch.eye(3, dtype=F64))
        for mu, s in zip(dist.means, dist.stds)
    ]
    ref = torch.log(sum(w * c.log_prob(x).exp() for w, c in zip(dist.weights, comps)))
    torch.testing.assert_close(dist.log_prob(x), ref)
    post = dist.log_posterior(x).exp()
    torch.testing.assert_close(post.sum(1), torch.ones(6, dtype=F64))


def test_samples_follow_the_distribution():
    n = 40_000
    gen = torch.Generator().manual_seed(2)
    g = toy.correlated_gaussian(dim=3)
    x = g.sample(n, generator=gen, dtype=F64)
    se_mean = (torch.diagonal(g.cov) / n).sqrt()
    assert bool(((x.mean(0) - g.mean).abs() < 5 * se_mean).all())
    emp_cov = torch.cov(x.T)
    # Standard error of a covariance entry: sqrt((S_ii S_jj + S_ij^2) / n).
    d = torch.diagonal(g.cov)
    se_cov = ((d[:, None] * d[None, :] + g.cov**2) / n).sqrt()
    assert bool(((emp_cov - g.cov).abs() < 5 * se_cov).all())
    mix = _dists()["mixture_unequal"]
    x, labels = mix.sample(n, generator=gen, dtype=F64, return_labels=True)
    frac = (labels == 1).double().mean().item()
    assert abs(frac - 0.7) < 5 * math.sqrt(0.21 / n)
    # The ring's modes are 15 stds apart: the nearest mode is the true component.
    x, labels = toy.ring().sample(1000, generator=gen, dtype=F64, return_labels=True)
    assert torch.equal(toy.ring().nearest_component(x), labels)


def test_sampling_is_reproducible_and_keeps_dtype():
    r = toy.ring()
    a = r.sample(10, generator=torch.Generator().manual_seed(5))
    b = r.sample(10, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and a.dtype == torch.float32 and a.shape == (10, 2)
    hd = toy.high_dim_gaussian()
    assert hd.dim == 3072 and hd.sample(2).shape == (2, 3, 32, 32)
    assert abs(hd.eigvals[0].item() - 0.25) < 1e-15


@pytest.mark.parametrize("sde", SDES, ids=["vp", "subvp", "ve"])
def test_exact_flow_solves_the_probability_flow_ode(sde):
    """d/dt flow(x, s, t) = f(t) x_t - 1/2 g(t)^2 score(x_t, t), checked by central differences."""
    dist = toy.correlated_gaussian(dim=3)
    x = dist.sample(4, generator=torch.Generator().manual_seed(6), dtype=F64)
    s = torch.full((4,), 0.1, dtype=F64)
    for tv in (0.3, 0.8):
        t = torch.full((4,), tv, dtype=F64)
        h = 1e-5
        xt = dist.flow(x, sde, s, t)
        deriv = (dist.flow(x, sde, s, t + h) - dist.flow(x, sde, s, t - h)) / (2 * h)
        drift, _ = sde.reverse(dist.score_fn(sde), probability_flow=True).sde(xt, t)
        torch.testing.assert_close(deriv, drift, rtol=1e-6, atol=1e-6 * sde.prior_std)
    # The flow is invertible: forward then backward is the identity.
    z = dist.flow(x, sde, s, torch.ones(4, dtype=F64))
    torch.testing.assert_close(dist.flow(z, sde, torch.ones(4, dtype=F64), s), x)


@pytest.mark.parametrize("sde", SDES, ids=["vp", "subvp", "ve"])
def test_flow_log_prob_is_the_change_of_variables(sde):
    dist = toy.correlated_gaussian(dim=3)
    x = dist.sample(3, generator=torch.Generator().manual_seed(7), dtype=F64)
    eps = 1e-3
    lp = dist.flow_log_prob(x, sde, eps=eps)
    for b in range(3):
        xb = x[b : b + 1]
        fwd = lambda v: dist.flow(v, sde, torch.full((1,), eps, dtype=F64), torch.ones(1, dtype=F64))  # noqa: E731
        J = torch.autograd.functional.jacobian(fwd, xb).reshape(3, 3)
        ref = sde.prior_logp(fwd(xb)) + torch.linalg.slogdet(J)[1]
        torch.testing.assert_close(lp[b : b + 1], ref)
    # With the VP prior close to p_T, the flow density is close to the true density at eps.
    if isinstance(sde, VPSDE):
        t = torch.full((3,), eps, dtype=F64)
        torch.testing.assert_close(lp, dist.log_prob_t(x, t, sde), atol=1e-2, rtol=0)


def test_presets_and_validation():
    r = toy.ring(n_modes=8, radius=2.0)
    assert r.n_components == 8
    torch.testing.assert_close(r.means.norm(dim=1), torch.full((8,), 2.0, dtype=F64))
    assert toy.checkerboard().n_components == 8
    assert toy.get_toy("ring").n_components == 8
    with pytest.raises(ValueError, match="valid names are: ring, checkerboard"):
        toy.get_toy("moons")
    with pytest.raises(ValueError, match="shape"):
        r.score(torch.zeros(3, 3), torch.zeros(3), VPSDE())
    with pytest.raises(ValueError, match="positive definite"):
        toy.Gaussian(torch.zeros(2), torch.tensor([1.0, -1.0]))


def test_spectrum_gaussian_spans_its_variance_range_in_a_fixed_random_order():
    g = toy.spectrum_gaussian(event_shape=(4, 5), min_var=1e-3, max_var=0.5)
    var = g.eigvals
    assert g.dim == 20 and torch.allclose(var.min(), torch.tensor(1e-3, dtype=F64))
    assert torch.allclose(var.max(), torch.tensor(0.5, dtype=F64))
    ratios = var.sort().values[1:] / var.sort().values[:-1]
    assert torch.allclose(ratios, ratios[0].expand_as(ratios))  # geometric
    assert not torch.equal(var, var.sort().values)  # shuffled, and the same for the same seed
    assert torch.equal(var, toy.spectrum_gaussian(event_shape=(4, 5), min_var=1e-3, max_var=0.5).eigvals)
