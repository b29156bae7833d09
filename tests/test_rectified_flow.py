"""RectifiedFlow against closed forms: its SDE, its discrete chain, every sampler and the likelihood.

The kernel against a Monte Carlo run of the discretized forward SDE, the exact transitions, the
reverse SDE, the ancestral step and the schedule layer are checked with the other SDEs in
tests/test_sde.py (RectifiedFlow is one of its parameters).

Tolerances. Deterministic solvers are compared with the exact probability-flow map of Gaussian
data (scoresde.toy.Gaussian.flow), relative to the largest coordinate, with allowances about
three times the measured errors. Samples of 2-D Gaussian data: the normalized mean error
(m - mu) / sd of n samples (4000; 1000 for torchsde) has standard error 1 / sqrt(n) and a normalized covariance entry
(C - Sigma)_ij / sqrt(Sigma_ii Sigma_jj) at most sqrt(2 / n); we allow 5 of those plus an
allowance for the discretization (and the Langevin corrector's stationary bias, 2.6% at
snr 0.16), which the measured errors at 20000 samples stay below.
"""
import math

import pytest
import torch

from scoresde import RectifiedFlow, sample, toy
from scoresde.likelihood import likelihood
from scoresde.sampling import (
    ddim_sampler,
    dpm_solver_pp_sampler,
    dpm_solver_sampler,
    edm_heun_sampler,
    euler_sampler,
    heun_sampler,
    rk45_sampler,
    unipc_sampler,
)

F64 = torch.float64
SDE = RectifiedFlow()
DATA = toy.Gaussian(torch.tensor([1.0, -0.5]), torch.tensor([[1.0, 0.5], [0.5, 0.8]]))


def test_closed_forms():
    t = torch.tensor([0.0, 0.25, 0.5, 0.9, SDE.T], dtype=F64)
    alpha, sigma = SDE.marginal_coeffs(t)
    torch.testing.assert_close(alpha, 1 - t)
    torch.testing.assert_close(sigma, t)
    drift, g = SDE.sde(torch.ones(5, 3, dtype=F64), t)
    torch.testing.assert_close(drift[:, 0], -1 / (1 - t))
    torch.testing.assert_close(g**2, 2 * t / (1 - t))
    lam = SDE.log_snr(t[1:])
    torch.testing.assert_close(lam, torch.log((1 - t[1:]) / t[1:]))
    torch.testing.assert_close(SDE.t_from_log_snr(lam), t[1:])
    assert SDE.prior_std == 1.0 and SDE.T == 0.999
    assert repr(SDE) == "RectifiedFlow(T=0.999, N=1000)"
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="T must lie in"):
            RectifiedFlow(T=bad)


def test_everything_is_finite_at_T_in_float32():
    t = torch.full((4,), SDE.T, dtype=torch.float32)
    x = torch.randn(4, 3)
    for v in (*SDE.sde(x, t), *SDE.marginal_coeffs(t), *SDE.transition(t, 1e-3),
              *SDE.discrete_transition(t), *SDE.ancestral_step(x, t, -x), SDE.log_snr(t)):
        assert bool(torch.isfinite(v).all())


def test_discrete_chain_composes_to_its_marginals():
    """Step i is the exact transition from t_{i-1} = i T / N to t_i = (i + 1) T / N."""
    sde = RectifiedFlow(N=10)
    grid = torch.arange(10, dtype=F64) * (sde.T / 9)  # the sampler's times, indices 0..9
    mean_coef, var = torch.ones(1, dtype=F64), torch.zeros(1, dtype=F64)
    for i in range(10):
        m, v = sde.discrete_transition(grid[i : i + 1])
        mean_coef, var = m * mean_coef, m**2 * var + v
        alpha, sigma = sde.discrete_marginal_coeffs(grid[i : i + 1])
        torch.testing.assert_close(mean_coef, alpha)
        torch.testing.assert_close(var, sigma**2)
    torch.testing.assert_close(alpha, torch.tensor([1 - sde.T], dtype=F64))


def test_deterministic_samplers_follow_the_exact_flow():
    data = toy.correlated_gaussian(dim=4)
    fn = data.score_fn(SDE)
    z = SDE.prior_sampling((32, 4), generator=torch.Generator().manual_seed(7), dtype=F64)
    exact = data.flow(z, SDE, torch.full((32,), SDE.T, dtype=F64), torch.full((32,), 1e-3, dtype=F64))
    scale = exact.abs().max().item()
    kw = dict(x_T=z, denoise=False)
    runs = {
        "rk45": (rk45_sampler(fn, SDE, z.shape, rtol=1e-7, atol=1e-7, **kw), 1e-6),
        "euler": (euler_sampler(fn, SDE, z.shape, steps=1000, **kw), 5e-3),
        "heun": (heun_sampler(fn, SDE, z.shape, steps=200, **kw), 5e-5),
        "ddim": (ddim_sampler(fn, SDE, z.shape, steps=1000, **kw), 3e-3),
        "dpm_solver": (dpm_solver_sampler(fn, SDE, z.shape, steps=200, **kw), 5e-5),
        "dpm_solver multistep": (dpm_solver_sampler(fn, SDE, z.shape, steps=100, multistep=True, **kw), 1e-4),
        "dpm_solver++ 3": (dpm_solver_pp_sampler(fn, SDE, z.shape, steps=100, order=3, **kw), 1e-4),
        "unipc": (unipc_sampler(fn, SDE, z.shape, steps=100, **kw), 5e-5),
        "edm_heun": (edm_heun_sampler(fn, SDE, z.shape, steps=200, **kw), 3e-3),
    }
    for name, ((x, _), tol) in runs.items():
        assert (x - exact).abs().max().item() < tol * scale, name


RECIPES = {
    # Predictor-corrector samplers of the reverse SDE (200 steps).
    "euler_maruyama+langevin": (dict(pc=True, predictor="euler_maruyama", corrector="langevin", steps=200), 0.05),
    "reverse_diffusion+annealed_langevin": (
        dict(pc=True, predictor="reverse_diffusion", corrector="annealed_langevin", steps=200), 0.05),
    "ancestral": (dict(pc=True, predictor="ancestral", corrector=None, steps=200), 0.03),
    "euler_maruyama": (dict(pc=True, predictor="euler_maruyama", corrector=None, steps=200), 0.03),
    "torchsde": (dict(pc=True, predictor="torchsde", corrector=None, steps=50), 0.03),
    "adaptive": (dict(pc=True, predictor="adaptive", corrector=None), 0.05),
    "edm_heun churn": (dict(pc=False, method="edm_heun", steps=50, S_churn=10.0), 0.05),
    # Probability-flow ODE solvers.
    "rk45": (dict(pc=False, method="rk45"), 0.01),
    "scipy_rk45": (dict(pc=False, method="scipy_rk45"), 0.01),
    "euler": (dict(pc=False, method="euler", steps=200), 0.02),
    "heun": (dict(pc=False, method="heun", steps=50), 0.01),
    "ddim": (dict(pc=False, method="ddim", steps=100), 0.03),
    "dpm_solver": (dict(pc=False, method="dpm_solver"), 0.02),
    "dpm_solver++": (dict(pc=False, method="dpm_solver++"), 0.02),
    "unipc": (dict(pc=False, method="unipc"), 0.02),
    "edm_heun": (dict(pc=False, method="edm_heun", steps=50), 0.02),
}


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_every_sampler_recovers_gaussian_data(recipe):
    kwargs, allowance = RECIPES[recipe]
    n = 1000 if recipe == "torchsde" else 4000  # its Brownian interval is costly in n
    x = sample(DATA.score_fn(SDE), SDE, (n, 2), generator=torch.Generator().manual_seed(1), dtype=F64,
               **kwargs)
    assert bool(torch.isfinite(x).all())
    sd = DATA.cov.diag().sqrt()
    mean_err = ((x.mean(0) - DATA.mean) / sd).abs().max().item()
    cov_err = ((torch.cov(x.T) - DATA.cov) / sd.outer(sd)).abs().max().item()
    assert mean_err < 5 / math.sqrt(n) + allowance, mean_err
    assert cov_err < 5 * math.sqrt(2 / n) + allowance, cov_err


def test_exact_likelihood_of_gaussian_data():
    """log_likelihood with the exact score equals the density of the probability-flow map (to
    solver tolerance) and, on average over the data, the true log-density within 5e-3 nats:
    what remains is the prior N(0, I) standing in for p_T (alpha(T) = 1e-3)."""
    x = DATA.sample(64, generator=torch.Generator().manual_seed(0), dtype=F64)
    res = likelihood(DATA.score_fn(SDE), SDE, x, exact=True, rtol=1e-7, atol=1e-7)
    torch.testing.assert_close(res.logp, DATA.flow_log_prob(x, SDE, eps=1e-5), rtol=0, atol=1e-4)
    assert abs((res.logp - DATA.log_prob(x)).mean().item()) < 5e-3
    assert (res.logp - DATA.log_prob(x)).abs().max().item() < 2e-2


# ----------------------------------------------------------------------------------------------
# The rf_digits config end to end: a velocity network trained with the flow-matching loss.
RF_DIGITS = [
    "--config", "rf_digits",
    "--config.training.n_iters=4", "--config.training.snapshot_freq=2", "--config.training.log_freq=2",
    "--config.training.batch_size=8", "--config.sampling.steps=3", "--config.sampling.n_samples=4",
    "--config.model.kwargs.nf=8",
]


def test_rf_digits_trains_and_samples(tmp_path):
    pytest.importorskip("sklearn")
    from scoresde import train

    assert train.cli(RF_DIGITS + ["--workdir", str(tmp_path)]) == 0
    assert (tmp_path / "samples" / "samples_4.png").exists()
    config, model, sde, step = train.load_run(str(tmp_path))
    assert step == 4 and repr(sde) == "RectifiedFlow(T=0.999, N=1000)"
    assert model.parameterization == "velocity" and config.training.weighting == "flow_matching"
    with open(tmp_path / "metrics.csv") as f:
        rows = f.read().splitlines()[1:]
    assert len(rows) == 2 and all(math.isfinite(float(r.split(",")[1])) for r in rows)


def test_rf_digits_rejects_an_unknown_weighting(tmp_path, capsys):
    workdir = tmp_path / "run"
    from scoresde import train

    assert train.cli(RF_DIGITS + ["--config.training.weighting=cfm", "--workdir", str(workdir)]) == 2
    assert "unknown training.weighting 'cfm'; valid: sigma2, g2, flow_matching" in capsys.readouterr().err
    assert not workdir.exists()
