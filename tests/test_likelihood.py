"""Likelihood through the probability-flow ODE against closed forms.

With the exact score of Gaussian data N(mu, Sigma), the probability-flow map from eps to T is
linear (scoresde.toy.Gaussian.flow), so the density it assigns to data is known exactly
(Gaussian.flow_log_prob). Solver tolerance 1e-7 leaves errors near 1e-6 nats; we allow 1e-4.
Hutchinson's estimator is unbiased: its mean error over B examples is compared with 5 standard
errors of the per-example errors.
"""
import math

import pytest
import torch

from scoresde import (
    VESDE,
    VPSDE,
    RectifiedFlow,
    SubVPSDE,
    bits_per_dim,
    decode,
    encode,
    log_likelihood,
    toy,
)
from scoresde.likelihood import likelihood

F64 = torch.float64
SDES = {"vp": VPSDE(), "subvp": SubVPSDE(), "ve": VESDE(), "rf": RectifiedFlow()}
TOL = dict(rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("sde_name", list(SDES))
def test_exact_divergence_matches_the_flow_density(sde_name):
    sde = SDES[sde_name]
    data = toy.correlated_gaussian(dim=4)
    x = data.sample(16, generator=torch.Generator().manual_seed(0), dtype=F64)
    ref = data.flow_log_prob(x, sde, eps=1e-5)
    res = likelihood(data.score_fn(sde), sde, x, exact=True, **TOL)
    torch.testing.assert_close(res.logp, ref, rtol=0, atol=1e-4)
    torch.testing.assert_close(res.prior_logp + res.delta_logp, res.logp)
    torch.testing.assert_close(res.z, data.flow(x, sde, torch.full((16,), 1e-5, dtype=F64),
                                                  torch.full((16,), sde.T, dtype=F64)),
                               rtol=1e-5, atol=1e-5 * sde.prior_std)
    assert res.n_vjp == 4 and res.nfe > 0
    scipy_res = likelihood(data.score_fn(sde), sde, x, exact=True, solver="scipy_rk45", **TOL)
    torch.testing.assert_close(scipy_res.logp, ref, rtol=0, atol=1e-4)
    assert scipy_res.nfe == res.nfe  # the same Dormand-Prince controls


@pytest.mark.parametrize("noise", ["rademacher", "gaussian"])
@pytest.mark.parametrize("n_probes", [1, 4])
def test_hutchinson_is_unbiased(noise, n_probes):
    sde = VPSDE()
    data = toy.correlated_gaussian(dim=4)
    B = 400
    x = data.sample(B, generator=torch.Generator().manual_seed(1), dtype=F64)
    ref = data.flow_log_prob(x, sde, eps=1e-5)
    est = log_likelihood(data.score_fn(sde), sde, x, noise=noise, n_probes=n_probes, rtol=1e-6,
                         atol=1e-6, generator=torch.Generator().manual_seed(2))
    err = est - ref
    assert abs(err.mean().item()) < 5 * err.std().item() / math.sqrt(B) + 1e-4
    assert err.std().item() > 1e-3  # the estimator does vary on a full-covariance Jacobian


def test_more_probes_reduce_the_variance():
    sde = VPSDE()
    data = toy.correlated_gaussian(dim=4)
    x = data.sample(200, generator=torch.Generator().manual_seed(3), dtype=F64)
    ref = data.flow_log_prob(x, sde, eps=1e-5)
    spread = []
    for n in (1, 8):
        est = log_likelihood(data.score_fn(sde), sde, x, n_probes=n, rtol=1e-6, atol=1e-6,
                             generator=torch.Generator().manual_seed(4))
        spread.append((est - ref).std().item())
    assert spread[1] < 0.5 * spread[0]  # 1 / sqrt(8) in theory


@pytest.mark.parametrize("sde_name", list(SDES))
def test_rademacher_is_exact_for_a_diagonal_jacobian(sde_name):
    """Diagonal covariance: the drift's Jacobian is diagonal and u_i^2 = 1, so u^T J u = tr J."""
    sde = SDES[sde_name]
    data = toy.Gaussian(torch.zeros(3, 4, 4, dtype=F64), torch.linspace(0.05, 2.0, 48, dtype=F64),
                        event_shape=(3, 4, 4))
    x = data.sample(6, generator=torch.Generator().manual_seed(5), dtype=F64)
    est = log_likelihood(data.score_fn(sde), sde, x, **TOL, generator=torch.Generator().manual_seed(6))
    torch.testing.assert_close(est, data.flow_log_prob(x, sde, eps=1e-5), rtol=0, atol=1e-4)
    assert est.shape == (6,)


def _expected_bpd(images, sde, mu, s, data_range, eps=1e-5):
    """Closed-form E_U[bpd] for isotropic Gaussian data N(mu, s^2 I) and the exact score.

    The flow map is z = alpha_T mu + r (y - alpha_eps mu), r = sqrt(V_T / V_eps), V_t =
    alpha_t^2 s^2 + sigma_t^2, so the model density of y is Gaussian with variance (P / r)^2
    (P the prior std). For y uniform on a bin of width w and centre c,
    E[(z)^2] = r^2 ((c - m_y)^2 + w^2 / 12), m_y = alpha_eps mu - alpha_T mu / r.
    """
    lo, hi = data_range
    D = images[0].numel()
    a0, s0 = (v.item() for v in sde.marginal_coeffs(torch.tensor([eps], dtype=F64)))
    a1, s1 = (v.item() for v in sde.marginal_coeffs(torch.tensor([sde.T], dtype=F64)))
    r = math.sqrt((a1**2 * s**2 + s1**2) / (a0**2 * s**2 + s0**2))
    P = sde.prior_std
    w = (hi - lo) / 256
    c = lo + (hi - lo) * (images.double() + 0.5) / 256
    m_y = a0 * mu - a1 * mu / r
    ez2 = r**2 * ((c - m_y) ** 2 + w**2 / 12)
    e_logp = (-0.5 * math.log(2 * math.pi * P**2) - ez2 / (2 * P**2) + math.log(r)).reshape(len(images), -1).sum(1)
    return -e_logp / (D * math.log(2)) - math.log2(hi - lo) + 8


@pytest.mark.parametrize("sde_name,data_range", [("vp", (-1.0, 1.0)), ("ve", (0.0, 1.0))])
def test_bits_per_dim_of_a_discretized_gaussian(sde_name, data_range):
    sde = SDES[sde_name]
    lo, hi = data_range
    gen = torch.Generator().manual_seed(7)
    pixels = (128 + 30 * torch.randn(48, 1, 4, 4, generator=gen)).round().clamp(0, 255).to(torch.uint8)
    # The continuous model: y ~ N(mu, s^2) per pixel, the pixel distribution mapped to data_range.
    mu = lo + (hi - lo) * 128.5 / 256
    s = (hi - lo) * 30 / 256
    data = toy.Gaussian(torch.full((1, 4, 4), mu, dtype=F64), s**2, event_shape=(1, 4, 4))
    images = pixels.double()  # integer-valued float64 images keep the computation in float64
    bpd = bits_per_dim(data.score_fn(sde), sde, images, data_range=data_range, n_dequant=4,
                       generator=torch.Generator().manual_seed(8), **TOL)
    expected = _expected_bpd(pixels, sde, mu, s, data_range)
    diff = bpd - expected
    # Only the dequantization noise remains (Rademacher is exact here): 5 standard errors.
    assert abs(diff.mean().item()) < 5 * diff.std().item() / math.sqrt(len(diff)) + 1e-4
    assert bool((diff.abs() < 0.05).all())
    assert 3 < expected.mean().item() < 8  # a sanity check on the scale: ~log2(30 sqrt(2 pi e))


@pytest.mark.parametrize("sde_name", list(SDES))
def test_encode_decode_round_trip(sde_name):
    sde = SDES[sde_name]
    data = toy.correlated_gaussian(dim=3)
    x = data.sample(32, generator=torch.Generator().manual_seed(10), dtype=F64)
    z, nfe_e = encode(data.score_fn(sde), sde, x, **TOL)
    back, nfe_d = decode(data.score_fn(sde), sde, z, **TOL)
    torch.testing.assert_close(back, x, rtol=1e-5, atol=1e-5)
    assert nfe_e > 0 and nfe_d > 0


@pytest.mark.parametrize("shape", [(5, 6), (2, 3, 4, 4)])
def test_shapes_and_dtypes(shape):
    sde = VPSDE()
    data = toy.Gaussian(torch.zeros(shape[1:]), 0.5, event_shape=shape[1:])
    for dtype in (torch.float32, F64):
        x = data.sample(shape[0], dtype=dtype)
        res = likelihood(data.score_fn(sde), sde, x)
        assert res.logp.shape == (shape[0],) and res.logp.dtype == dtype and res.z.shape == shape
    exact = likelihood(data.score_fn(sde), sde, x, exact=True, exact_chunk=7)
    torch.testing.assert_close(exact.logp, res.logp, rtol=0, atol=1e-3)


def test_bad_input():
    sde = VPSDE()
    fn = lambda x, t: -x  # noqa: E731
    with pytest.raises(ValueError, match="unknown noise='uniform'; valid values are: 'rademacher', 'gaussian'"):
        log_likelihood(fn, sde, torch.zeros(2, 3), noise="uniform")
    with pytest.raises(ValueError, match="x must have a batch dimension"):
        log_likelihood(fn, sde, torch.zeros(3))
    with pytest.raises(ValueError, match="n_probes"):
        log_likelihood(fn, sde, torch.zeros(2, 3), n_probes=0)
    with pytest.raises(ValueError, match="unknown solver"):
        log_likelihood(fn, sde, torch.zeros(2, 3), solver="euler")
    with pytest.raises(ValueError, match=r"images must hold integers in \[0, 255\]"):
        bits_per_dim(fn, sde, torch.rand(2, 3))
    with pytest.raises(ValueError, match="data_range"):
        bits_per_dim(fn, sde, torch.zeros(2, 3), data_range=(1.0, -1.0))


def test_the_likelihood_module_is_not_shadowed_by_a_function():
    import importlib
    import types

    import scoresde

    module = importlib.import_module("scoresde.likelihood")
    assert isinstance(scoresde.likelihood, types.ModuleType) and scoresde.likelihood is module
    assert scoresde.likelihood_result is module.likelihood
