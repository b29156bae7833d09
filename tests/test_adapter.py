"""get_score_fn: output scalings checked against the exact score of Gaussian data, time labels,
train / eval semantics and class conditioning.

The fake network answers with posterior means computed by Gaussian conditioning (not from the
score): for ``x = alpha x0 + sigma eps`` with ``x0 ~ N(mu, s0^2 I)``,
``E[x0 | x] = mu + alpha s0^2 (x - alpha mu) / V`` and ``E[eps | x] = sigma (x - alpha mu) / V``,
``V = alpha^2 s0^2 + sigma^2``; the v and velocity targets are the same combinations of these
as of ``x0`` and ``eps``, with ``alpha'``, ``sigma'`` from autograd of ``marginal_coeffs``. The
adapter must turn each into the exact score (Tweedie's formula)."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import scoresde
from scoresde import VESDE, VPSDE, RectifiedFlow, SubVPSDE
from scoresde.models import MLP, PARAMETERIZATIONS, TIME_LABELS, get_cond_score_fn, get_score_fn
from scoresde.utils import append_dims

SDES = {"vp": VPSDE(0.1, 20.0, 1000), "subvp": SubVPSDE(0.1, 20.0, 1000), "ve": VESDE(0.01, 50.0, 1000),
        "rf": RectifiedFlow()}
MU, S0 = 0.7, 0.3  # x0 ~ N(MU, S0^2 I)


def exact_score(sde, x, t):
    """Score of p_t for x0 ~ N(mu, s0^2 I): -(x - alpha mu) / (alpha^2 s0^2 + sigma^2)."""
    alpha, sigma = sde.marginal_coeffs(t)
    var = alpha**2 * S0**2 + sigma**2
    return -(x - append_dims(alpha, x.ndim) * MU) / append_dims(var, x.ndim)


def label_to_time(sde, label, time_label):
    """Invert the continuous time labels (what a network trained on them implicitly does)."""
    if time_label == "t":
        return label
    if time_label == "999t":
        return label / 999
    # "sigma" with a VE SDE: sigma = sigma_min (sigma_max / sigma_min)^t.
    return torch.log(label / sde.sigma_min) / math.log(sde.sigma_max / sde.sigma_min)


class ExactGaussianModel(nn.Module):
    """A fake network that outputs the exact answer in a given parameterization."""

    def __init__(self, sde, parameterization, time_label):
        super().__init__()
        self.sde, self.parameterization, self.time_label = sde, parameterization, time_label

    def forward(self, x, label):
        t = label_to_time(self.sde, label, self.time_label).detach().requires_grad_()
        alpha, sigma = self.sde.marginal_coeffs(t)
        d_alpha = torch.autograd.grad((alpha + 0 * t).sum(), t, retain_graph=True)[0]
        d_sigma = torch.autograd.grad(sigma.sum(), t)[0]
        a, s, da, ds = (append_dims(c.detach(), x.ndim) for c in (alpha, sigma, d_alpha, d_sigma))
        V = a**2 * S0**2 + s**2
        x0 = MU + a * S0**2 * (x - a * MU) / V  # E[x0 | x_t]
        eps = s * (x - a * MU) / V  # E[eps | x_t]
        score = exact_score(self.sde, x, t.detach())
        return {
            "eps": eps,
            "score": score,
            "sigma_score": s * score,
            "x0": x0,
            "v": a * eps - s * x0,
            "velocity": da * x0 + ds * eps,
        }[self.parameterization]


# sigma labels are inverted in closed form only for the VE SDE.
LABELS = [(s, lab) for s in SDES for lab in ("t", "999t", "sigma") if lab != "sigma" or s == "ve"]


@pytest.mark.parametrize("sde_name, time_label", LABELS)
@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
def test_exact_score_of_gaussian_data(sde_name, time_label, parameterization):
    sde = SDES[sde_name]
    gen = torch.Generator().manual_seed(0)
    t = torch.rand(6, generator=gen, dtype=torch.float64) * 0.98 + 0.01
    x = torch.randn(6, 2, 3, generator=gen, dtype=torch.float64) * 2
    model = ExactGaussianModel(sde, parameterization, time_label)
    score_fn = get_score_fn(model, sde)  # conventions read from the model's attributes
    torch.testing.assert_close(score_fn(x, t), exact_score(sde, x, t), rtol=1e-10, atol=1e-12)


class Recorder(nn.Module):
    """Returns ones and records the labels it was called with."""

    def __init__(self, parameterization="eps", time_label="t"):
        super().__init__()
        self.parameterization, self.time_label = parameterization, time_label
        self.labels = None

    def forward(self, x, label, y=None):
        self.labels, self.y = label, y
        return torch.ones_like(x)


def test_time_label_conventions():
    t = torch.tensor([0.0, 0.25, 0.5004, 1.0], dtype=torch.float64)
    x = torch.zeros(4, 3, dtype=torch.float64)
    vp, ve = SDES["vp"], SDES["ve"]
    rec = Recorder()
    expected = {
        ("t", vp): t,
        ("999t", vp): 999 * t,
        ("sigma", ve): 0.01 * (50 / 0.01) ** t,
        ("index", vp): 999 * t,  # unrounded, as score_sde's discrete VP score function
        ("reversed_index", ve): torch.round((1 - t) * 999),
    }
    for (label, sde), value in expected.items():
        get_score_fn(rec, sde, time_label=label)(x, t)
        torch.testing.assert_close(rec.labels, value)


def test_discrete_labels_scale_with_the_chain():
    t = torch.tensor([0.0, 0.3, 0.5004, 1.0], dtype=torch.float64)
    x = torch.zeros(4, 3, dtype=torch.float64)
    vp, ve = SDES["vp"], SDES["ve"]
    # DDPM (score_sde continuous=False): std = sqrt(1 - abar_i), i = floor(999 t).
    abar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0)
    i = torch.floor(999 * t).long()
    score = get_score_fn(Recorder("eps"), vp, time_label="index")(x, t)
    torch.testing.assert_close(score, -1 / (1 - abar[i]).sqrt()[:, None].expand(4, 3))
    # SMLD (score_sde's VE, continuous=False): label j counts from sigma_max; the network's
    # output is divided by sigmas[j] of the descending table (scale_by_sigma).
    sigmas_desc = torch.exp(torch.linspace(math.log(50), math.log(0.01), 1000, dtype=torch.float64))
    j = torch.round((1 - t) * 999).long()
    score = get_score_fn(Recorder("sigma_score"), ve, time_label="reversed_index")(x, t)
    torch.testing.assert_close(score, (1 / sigmas_desc[j])[:, None].expand(4, 3))
    # Continuous labels scale with the continuous kernel.
    score = get_score_fn(Recorder("eps"), vp, time_label="999t")(x[1:], t[1:])
    torch.testing.assert_close(score, -1 / vp.marginal_coeffs(t[1:])[1][:, None].expand(3, 3))


def test_invalid_names_and_missing_conventions():
    sde = SDES["vp"]
    with pytest.raises(ValueError, match="valid values are: 'eps', 'score', 'sigma_score', 'x0', 'v', 'velocity'"):
        get_score_fn(Recorder(), sde, parameterization="v_prediction")
    with pytest.raises(ValueError, match="valid values are: 't', '999t'"):
        get_score_fn(Recorder(), sde, time_label="seconds")
    with pytest.raises(ValueError, match="no `parameterization` attribute"):
        get_score_fn(lambda x, t: x, sde)
    # Explicit arguments work for any callable.
    score_fn = get_score_fn(lambda x, t: x, sde, parameterization="score", time_label="t")
    x = torch.randn(2, 3)
    assert torch.equal(score_fn(x, torch.rand(2)), x)
    assert scoresde.get_score_fn is get_score_fn
    assert set(TIME_LABELS) == {"t", "999t", "sigma", "index", "reversed_index"}


def test_train_flag_switches_mode_only_during_the_call():
    torch.manual_seed(0)
    model = MLP(4, hidden_dim=32)
    model.dropout = nn.Dropout(0.5)
    model.out = nn.Sequential(model.dropout, model.out)  # dropout before the output layer
    with torch.no_grad():
        model.out[1].weight.normal_()
    sde = SDES["vp"]
    x, t = torch.randn(8, 4), torch.rand(8) * 0.9 + 0.05
    for start_training in (True, False):
        model.train(start_training)
        model.layers[0].eval()  # a submodule in another mode must be restored too
        eval_fn = get_score_fn(model, sde)
        assert torch.equal(eval_fn(x, t), eval_fn(x, t))  # deterministic: dropout off
        assert model.training == start_training and not model.layers[0].training
        train_fn = get_score_fn(model, sde, train=True)
        assert not torch.equal(train_fn(x, t), train_fn(x, t))  # dropout on
        assert model.training == start_training and not model.layers[0].training


def test_class_conditional_score_functions():
    torch.manual_seed(0)
    sde = SDES["vp"]
    model = MLP(3, hidden_dim=16, num_classes=5)
    with torch.no_grad():
        model.out.weight.normal_()
        model.class_embed.weight.normal_()
    x, t, y = torch.randn(4, 3), torch.rand(4) * 0.9 + 0.05, torch.tensor([0, 1, 4, 2])
    cond = get_cond_score_fn(model, sde)
    torch.testing.assert_close(get_score_fn(model, sde, y=y)(x, t), cond(x, t, y))
    torch.testing.assert_close(get_score_fn(model, sde)(x, t), cond(x, t, None))
    torch.testing.assert_close(cond(x, t, None), cond(x, t, torch.full((4,), 5)))  # null label
    assert not torch.allclose(cond(x, t, y), cond(x, t, None))
    # The conditional score is -eps / sigma of the network called with the labels.
    expected = -model(x, t, y) / sde.marginal_coeffs(t)[1][:, None]
    torch.testing.assert_close(cond(x, t, y), expected)
