"""Controllable generation against exact answers (Song et al. 2021, Sec. 5 and App. I).

Gaussian and Gaussian-mixture data have closed-form perturbed scores and exact noisy
classifiers (:mod:`scoresde.toy`), so guided and inpainted samples can be compared with the
exact conditional distributions, in float64 with fixed seeds. Tolerances are multiples of the
Monte Carlo standard error (SE) of the statistic at the sample size used: ``5 SE`` keeps the
chance of a false failure below 1e-6 per check.
"""
import math

import pytest
import torch

import scoresde
from scoresde import toy
from scoresde.guidance import COLOR_DECOUPLING, INPAINT_ODE_METHODS
from scoresde.sampling import euler_sampler, pc_sampler
from scoresde.sampling.grids import step_pairs, uniform_grid

F64 = torch.float64
SDE = scoresde.VPSDE()


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def normal_cdf(z):
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


# ---------------------------------------------------------------------------------------------
# The sampler hook.
def test_constraint_is_applied_at_start_after_every_step_and_to_the_output():
    g = toy.Gaussian(torch.zeros(2), 1.0)
    seen = []

    def record(x, t):
        seen.append(round(float(t[0]), 6))
        return x

    pc_sampler(g.score_fn(SDE), SDE, (3, 2), steps=3, corrector="langevin", constraint=record,
               generator=gen(), dtype=F64)
    # start at T; corrector at t_k then predictor to t_{k+1}; the last predictor's output at 0.
    assert seen == [1.0, 1.0, 0.5005, 0.5005, 0.001, 0.001, 0.0]
    seen.clear()
    euler_sampler(g.score_fn(SDE), SDE, (3, 2), steps=2, constraint=record, generator=gen(), dtype=F64)
    assert seen == [1.0, 0.5005, 0.001, 0.0]  # start, two steps, the denoised output


def test_constraint_none_is_the_unconstrained_sampler():
    g = toy.Gaussian(torch.zeros(2), 1.0)
    a, _ = pc_sampler(g.score_fn(SDE), SDE, (5, 2), steps=10, generator=gen(), dtype=F64)
    b, _ = pc_sampler(g.score_fn(SDE), SDE, (5, 2), steps=10, generator=gen(), dtype=F64,
                      constraint=lambda x, t: x)
    assert torch.equal(a, b)


# ---------------------------------------------------------------------------------------------
# Inpainting a 2-D Gaussian x = (k, u): k known (= a), u generated.
#
# The exact answer is the Gaussian conditional N(mu_u + rho (a - mu_k), 1 - rho^2). The
# replacement method (App. I.2) is exact only when u and k are independent: it evaluates the
# joint score grad_u log p_t(u, k_t) at k_t ~ p_0t(k_t | a), drawn independently of the current
# u, so the known part it sees is not the one that goes with u under the joint diffusion. With
# the exact Gaussian score every update is affine in (u, k_t, noise), so the law of the
# algorithm's output is Gaussian and its mean and variance follow from propagating moments
# through the same updates. `replacement_law` does that; the samples must match it within
# Monte Carlo error, and its distance to the exact conditional is the method's bias.
MU = (0.3, -0.2)
A_KNOWN = 1.0


def two_dim_gaussian(rho):
    return toy.Gaussian(torch.tensor(MU, dtype=F64), torch.tensor([[1.0, rho], [rho, 1.0]], dtype=F64))


def replacement_law(rho, steps, pc, eps=1e-3):
    """Exact mean and variance of u after VP inpainting with the exact score: PC with the
    Euler-Maruyama predictor and no corrector, or the Euler ODE with one fixed z."""
    cov = torch.tensor([[1.0, rho], [rho, 1.0]], dtype=F64)
    mu_k, mu_u = MU

    def coeffs(t):
        alpha, sigma = (float(v) for v in SDE.marginal_coeffs(torch.tensor([t], dtype=F64)))
        P = torch.linalg.inv(alpha**2 * cov + sigma**2 * torch.eye(2, dtype=F64))
        # s_u = -P_uk (k - alpha mu_k) - P_uu (u - alpha mu_u), with k = alpha a + sigma z.
        return alpha, sigma, float(P[1, 0]), float(P[1, 1]), SDE.beta_min + t * (SDE.beta_max - SDE.beta_min)

    m, v, c_uz = 0.0, 1.0, 0.0  # u_T ~ N(0, 1); c_uz = Cov(u, z) of the ODE's fixed z
    if pc:
        for t_cur, t_next in step_pairs(uniform_grid(SDE.T, eps, steps)):
            alpha, sigma, P_uk, P_uu, beta = coeffs(t_cur)
            dt = t_cur - t_next
            # u' = u + dt (beta u / 2 + beta s_u) + sqrt(beta dt) z' = A u + c + C xi + G z'
            A = 1 + dt * beta * (0.5 - P_uu)
            c = dt * beta * (P_uu * alpha * mu_u - P_uk * alpha * (A_KNOWN - mu_k))
            C = -dt * beta * P_uk * sigma
            G2 = 0.0 if t_next == 0.0 else beta * dt  # the last step is noise-free (denoise)
            m, v = A * m + c, A * A * v + C * C + G2
        return m, v
    grid = uniform_grid(SDE.T, eps, steps + 1)
    for t_cur, t_next in zip(grid[:-1], grid[1:]):
        alpha, sigma, P_uk, P_uu, beta = coeffs(t_cur)
        h = t_next - t_cur
        # u' = u + h (-beta u / 2 - beta s_u / 2) = A u + c + C z with the fixed z.
        A = 1 + 0.5 * h * beta * (P_uu - 1)
        c = 0.5 * h * beta * (P_uk * alpha * (A_KNOWN - mu_k) - P_uu * alpha * mu_u)
        C = 0.5 * h * beta * P_uk * sigma
        m, v, c_uz = A * m + c, A * A * v + 2 * A * C * c_uz + C * C, A * c_uz + C
    # Denoising step at eps: u_0 = (u + sigma^2 s_u) / alpha.
    alpha, sigma, P_uk, P_uu, _ = coeffs(eps)
    A = (1 - sigma**2 * P_uu) / alpha
    c = sigma**2 * (P_uu * alpha * mu_u - P_uk * alpha * (A_KNOWN - mu_k)) / alpha
    C = -(sigma**3) * P_uk / alpha
    return A * m + c, A * A * v + 2 * A * C * c_uz + C * C


def inpaint_2d(rho, pc, n=20000, steps=200, seed=0):
    g = two_dim_gaussian(rho)
    data = torch.tensor([[A_KNOWN, 123.0]], dtype=F64).expand(n, 2)  # the unknown value is ignored
    mask = torch.tensor([1, 0])
    kwargs = dict(corrector=None) if pc else dict(method="euler")
    x = scoresde.inpaint(g.score_fn(SDE), SDE, data, mask, pc=pc, steps=steps, generator=gen(seed), **kwargs)
    assert torch.equal(x[:, 0], data[:, 0])  # known coordinates exactly
    return x[:, 1]


def check_moments(u, mean, var):
    """Sample mean and variance of u against (mean, var) within 5 SE: SE(mean) = sqrt(var / n),
    SE(var) = var sqrt(2 / n) for Gaussian u."""
    n = u.numel()
    assert abs(u.mean().item() - mean) < 5 * math.sqrt(var / n), (u.mean().item(), mean)
    assert abs(u.var().item() - var) < 5 * var * math.sqrt(2 / n), (u.var().item(), var)


@pytest.mark.parametrize("pc", [True, False], ids=["pc", "ode"])
def test_inpainting_independent_coordinates_is_exact(pc):
    # rho = 0: the conditional is the marginal N(-0.2, 1) and the method is exact up to the
    # sampler's discretization, which replacement_law gives: PC, 200 steps: mean -0.2007, var
    # 1.0069; ODE: mean -0.1987 (the VP prior N(0, 1) ignores alpha(T) mu_u = -0.0013), var 1.
    m, v = replacement_law(0.0, 200, pc)
    assert abs(m - MU[1]) < 2e-3 and abs(v - 1) < 1e-2
    u = inpaint_2d(0.0, pc)
    check_moments(u, MU[1], 1.0)  # n = 20000: 5 SE = 0.035 (mean), 0.05 (variance)
    check_moments(u, m, v)


@pytest.mark.parametrize("pc", [True, False], ids=["pc", "ode"])
def test_inpainting_correlated_gaussian_has_the_replacement_bias(pc):
    rho = 0.8
    exact_mean, exact_var = MU[1] + rho * (A_KNOWN - MU[0]), 1 - rho**2  # 0.36, 0.36
    m, v = replacement_law(rho, 200, pc)
    # The samples follow the law of the algorithm (tight: 5 SE at n = 20000).
    u = inpaint_2d(rho, pc)
    check_moments(u, m, v)
    # That law is biased towards the unconditional N(-0.2, 1) by the replacement. Measured
    # (and stable in the step count, so it is the method's bias, not discretization):
    #   PC:  mean 0.150 (exact 0.36), variance 0.50 (exact 0.36);
    #   ODE: mean 0.044,              variance 0.67.
    # In the PC limit u sees k_t only through its mean alpha(t) a: the fresh noise of the
    # replacement averages out, so the correlated part of the conditional is lost.
    bias_mean, bias_var = (0.21, 0.14) if pc else (0.32, 0.32)
    assert abs(m - exact_mean) < bias_mean and abs(v - exact_var) < bias_var
    assert m < exact_mean - 0.1  # the bias is real: the method is not exact under correlation
    n = u.numel()
    assert abs(u.mean().item() - exact_mean) < bias_mean + 5 * math.sqrt(v / n)


def test_inpainting_keeps_known_entries_and_draws_independent_ones_from_the_marginal():
    # 6-D diagonal Gaussian, 3 entries known per row (a different pattern per row): the
    # unknown entries are independent of the known ones, so they follow N(mu_i, var_i).
    mean = torch.tensor([0.5, -0.5, 1.0, 0.0, 0.2, -1.0], dtype=F64)
    var = torch.tensor([0.5, 1.0, 0.2, 2.0, 1.0, 0.3], dtype=F64)
    g = toy.Gaussian(mean, var)
    n = 6000
    data = g.sample(n, generator=gen(1), dtype=F64)
    mask = torch.rand(n, 6, generator=gen(2), dtype=F64) < 0.5
    x = scoresde.inpaint(g.score_fn(SDE), SDE, data, mask, steps=300, corrector=None, generator=gen(3))
    assert torch.equal(x[mask], data[mask])
    for i in range(6):
        u = x[~mask[:, i], i]
        # about 3000 draws per entry: 5 SE = 0.09 sqrt(var) (mean), 0.13 var (variance);
        # the 300-step discretization moves the variance by < 1%.
        check_moments(u, mean[i].item(), var[i].item())


@pytest.mark.parametrize("method", INPAINT_ODE_METHODS)
def test_inpainting_ode_is_deterministic_and_keeps_known_entries(method):
    g = toy.correlated_gaussian(dim=4)
    data = g.sample(8, generator=gen(1), dtype=F64)
    mask = torch.tensor([1, 0, 1, 0])
    a = scoresde.inpaint(g.score_fn(SDE), SDE, data, mask, pc=False, method=method, steps=20, generator=gen(5))
    b = scoresde.inpaint(g.score_fn(SDE), SDE, data, mask, pc=False, method=method, steps=20, generator=gen(5))
    assert torch.equal(a, b) and torch.equal(a[:, [0, 2]], data[:, [0, 2]])
    assert torch.isfinite(a).all() and a.dtype == F64


def test_inpainting_ve_and_float32():
    sde = scoresde.VESDE()
    g = toy.Gaussian(torch.zeros(3), 1.0)
    data = torch.randn(4, 3, generator=gen())
    mask = torch.tensor([[1.0, 0.0, 0.0]])  # broadcasts over the batch
    x = scoresde.inpaint(g.score_fn(sde), sde, data, mask, steps=50, predictor="reverse_diffusion",
                         generator=gen())
    assert x.dtype == torch.float32 and torch.equal(x[:, 0], data[:, 0])


@pytest.mark.parametrize("kwargs,message", [
    (dict(mask=torch.tensor([0.5, 1.0])), "mask must hold 0 / 1"),
    (dict(mask=torch.ones(3)), "mask must have the shape of data"),
    (dict(mask=[1, 0]), "mask must be a tensor"),
    (dict(pc=False, method="rk45"), "must be one of 'euler', 'heun', 'ddim'; got method='rk45'"),
    (dict(predictor="adaptive", corrector=None), "has no constraint hook"),
    (dict(x_T=torch.zeros(2, 2)), "x_T is set by inpainting"),
    (dict(predictor="nope"), "unknown predictor='nope'"),
])
def test_inpainting_bad_input(kwargs, message):
    g = toy.Gaussian(torch.zeros(2), 1.0)
    kwargs = {"mask": torch.tensor([1, 0]), **kwargs}
    mask = kwargs.pop("mask")
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        scoresde.inpaint(g.score_fn(SDE), SDE, torch.zeros(2, 2), mask, steps=3, **kwargs)


@pytest.mark.parametrize("pc", [True, False], ids=["pc", "ode"])
def test_inpainting_accepts_dtype_and_device_that_agree_with_the_data(pc):
    g = toy.correlated_gaussian(dim=4)
    data = g.sample(6, generator=gen(1), dtype=F64)
    mask = torch.tensor([1, 0, 1, 0])
    kwargs = dict(corrector=None) if pc else dict(pc=False)
    plain = scoresde.inpaint(g.score_fn(SDE), SDE, data, mask, steps=10, generator=gen(5), **kwargs)
    for agreeing in (dict(dtype=F64), dict(device="cpu"), dict(device=torch.device("cpu"), dtype=F64),
                     dict(dtype=None, device=None)):
        same = scoresde.inpaint(g.score_fn(SDE), SDE, data, mask, steps=10, generator=gen(5), **kwargs, **agreeing)
        assert torch.equal(same, plain), agreeing


@pytest.mark.parametrize("kwargs,message", [
    (dict(dtype=torch.float32), "dtype=torch.float32 disagrees with the data (torch.float64)"),
    (dict(device="meta"), "device='meta' disagrees with the data (on cpu)"),
    (dict(device="cpu", dtype=torch.float16), "dtype=torch.float16 disagrees"),
    (dict(device="nowhere"), "device='nowhere' is not a torch device"),
    (dict(constraint=lambda x, t: x), "constraint is set by inpainting"),
])
def test_inpainting_refuses_dtype_and_device_that_conflict(kwargs, message):
    g = toy.Gaussian(torch.zeros(2), 1.0)
    data = torch.zeros(2, 2, dtype=F64)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        scoresde.inpaint(g.score_fn(SDE), SDE, data, torch.tensor([1, 0]), steps=3, **kwargs)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        scoresde.colorize(g.score_fn(SDE), SDE, torch.zeros(2, 1, 2, 2, dtype=F64), steps=3, **kwargs)


def test_colorize_accepts_dtype_and_device_that_agree_with_gray():
    g = toy.Gaussian(torch.zeros(12, dtype=F64), 1.0, event_shape=(3, 2, 2))
    gray = torch.zeros(2, 1, 2, 2, dtype=F64)
    a = scoresde.colorize(g.score_fn(SDE), SDE, gray, steps=5, corrector=None, generator=gen(1))
    b = scoresde.colorize(g.score_fn(SDE), SDE, gray, steps=5, corrector=None, generator=gen(1),
                          dtype=F64, device="cpu")
    assert torch.equal(a, b) and b.dtype == F64


# ---------------------------------------------------------------------------------------------
# Colorization.
def test_color_decoupling_is_orthogonal_with_the_gray_direction_first():
    M = COLOR_DECOUPLING
    assert torch.allclose(M @ M.T, torch.eye(3, dtype=F64), atol=1e-15)
    assert torch.allclose(M[0], torch.full((3,), 1 / math.sqrt(3), dtype=F64), atol=1e-15)


@pytest.mark.parametrize("pc", [True, False], ids=["pc", "ode"])
def test_colorization_preserves_the_gray_channel(pc):
    # A correlated Gaussian over (3, 4, 4) images: the colors depend on the gray values.
    D = 48
    base = toy.correlated_gaussian(dim=D, seed=3)
    g = toy.Gaussian(base.mean, base.cov, event_shape=(3, 4, 4))
    rgb = g.sample(16, generator=gen(1), dtype=F64)
    gray = rgb.mean(dim=1, keepdim=True)
    kwargs = dict(corrector=None) if pc else dict(pc=False, method="heun")
    x = scoresde.colorize(g.score_fn(SDE), SDE, gray, steps=50, generator=gen(2), **kwargs)
    assert x.shape == (16, 3, 4, 4) and x.dtype == F64
    assert (x.mean(dim=1, keepdim=True) - gray).abs().max() < 1e-12  # float64 rounding
    assert torch.isfinite(x).all() and not torch.allclose(x[:, 0], x[:, 1])


def test_colorization_of_independent_colors_draws_the_color_marginal():
    # Isotropic data: in u = M x the color coordinates are independent of gray, so the
    # colorized u_1, u_2 follow N(M mu, var) exactly (up to discretization).
    mean = torch.tensor([0.4, -0.1, 0.2], dtype=F64).repeat_interleave(4)  # (3, 2, 2) images
    var = 0.25
    g = toy.Gaussian(mean, var, event_shape=(3, 2, 2))
    n = 4000
    gray = g.sample(n, generator=gen(1), dtype=F64).mean(dim=1, keepdim=True)
    x = scoresde.colorize(g.score_fn(SDE), SDE, gray, steps=300, corrector=None, generator=gen(2))
    u = torch.einsum("ij,bj...->bi...", COLOR_DECOUPLING, x)
    mu_u = COLOR_DECOUPLING @ torch.tensor([0.4, -0.1, 0.2], dtype=F64)
    for c in (1, 2):
        # 4 independent pixels x 4000 images: 5 SE = 5 sqrt(0.25 / 16000) = 0.02 (mean)
        check_moments(u[:, c].reshape(-1), mu_u[c].item(), var)


def test_colorize_bad_input():
    g = toy.Gaussian(torch.zeros(12), 1.0, event_shape=(3, 2, 2))
    with pytest.raises(ValueError, match="gray must have one channel"):
        scoresde.colorize(g.score_fn(SDE), SDE, torch.zeros(2, 3, 2, 2), steps=3)
    with pytest.raises(ValueError, match="floating-point"):
        scoresde.colorize(g.score_fn(SDE), SDE, torch.zeros(2, 1, 2, 2, dtype=torch.long), steps=3)


# ---------------------------------------------------------------------------------------------
# Class-conditional sampling on a two-component mixture in 2-D: means (-d/2, 0), (d/2, 0),
# std s, weights (0.3, 0.7). The components overlap (d / 2s = 1), so the fraction of samples
# nearest to component 0 is Phi(1) = 0.841 for exact samples of component 0 and
# 0.3 Phi(1) + 0.7 (1 - Phi(1)) = 0.364 for the mixture.
D_SEP, S = 1.0, 0.5
MIX = toy.GaussianMixture(torch.tensor([[-D_SEP / 2, 0.0], [D_SEP / 2, 0.0]]), S, torch.tensor([0.3, 0.7]))
P_COND = normal_cdf(D_SEP / (2 * S))
P_MIX = 0.3 * P_COND + 0.7 * (1 - P_COND)


def component_score(y, x, t):
    """Exact score of component y (an int or (B,) labels) of MIX under the VP SDE."""
    alpha, sigma = (v[:, None] for v in SDE.marginal_coeffs(t))
    means = MIX.means.to(x)[y if isinstance(y, torch.Tensor) else torch.full((x.shape[0],), y)]
    return -(x - alpha * means) / (alpha**2 * S**2 + sigma**2)


def cond_score_fn(x, t, y):
    return MIX.score(x, t, SDE) if y is None else component_score(y, x, t)


def frac_nearest(x, k=0):
    return (MIX.nearest_component(x) == k).double().mean().item()


def draw(score_fn, n=6000, seed=0):
    return scoresde.sample(score_fn, SDE, (n, 2), corrector=None, steps=300, generator=gen(seed), dtype=F64)


def test_classifier_guidance_with_the_exact_classifier():
    score = MIX.score_fn(SDE)
    log_prob = lambda x, t: MIX.log_posterior(x, t, SDE)  # noqa: E731
    fracs = [frac_nearest(draw(scoresde.classifier_guidance(score, log_prob, 0, w))) for w in (0, 1, 4)]
    # n = 6000: SE = sqrt(p (1 - p) / n) <= 0.0065, so 5 SE <= 0.033.
    se = lambda p: math.sqrt(p * (1 - p) / 6000)  # noqa: E731
    assert abs(fracs[0] - P_MIX) < 5 * se(P_MIX)  # w = 0: the mixture
    assert abs(fracs[1] - P_COND) < 5 * se(P_COND)  # w = 1: exactly p(x | y = 0), Eq. 14
    assert fracs[0] < fracs[1] < fracs[2]  # sharper with w
    assert fracs[2] > P_COND + 5 * se(P_COND)


def test_classifier_guidance_per_example_labels_and_gradient():
    score = MIX.score_fn(SDE)
    log_prob = lambda x, t: MIX.log_posterior(x, t, SDE)  # noqa: E731
    x = torch.randn(5, 2, generator=gen(), dtype=F64)
    t = torch.full((5,), 0.3, dtype=F64)
    y = torch.tensor([0, 1, 1, 0, 1])
    guided = scoresde.classifier_guidance(score, log_prob, y, 2.0)(x, t)
    # w = 1 gives the component's score exactly; w = 2 adds one more classifier gradient.
    cond = component_score(y, x, t)
    assert torch.allclose(guided, cond + (cond - score(x, t)), atol=1e-12)
    with torch.no_grad():  # works inside the samplers' no_grad
        assert torch.allclose(scoresde.classifier_guidance(score, log_prob, y, 2.0)(x, t), guided)


def test_classifier_free_guidance_w0_is_conditional_sampling():
    guided = scoresde.classifier_free_guidance(cond_score_fn, 0, 0.0)
    a = draw(guided, n=500)
    b = draw(lambda x, t: component_score(0, x, t), n=500)
    assert torch.equal(a, b)  # same generator: identical samples
    y = torch.arange(500) % 2
    a = draw(scoresde.classifier_free_guidance(cond_score_fn, y, 0.0), n=500)
    b = draw(lambda x, t: component_score(y, x, t), n=500)
    assert torch.equal(a, b)


def test_classifier_free_guidance_concentrates_and_equals_classifier_guidance():
    # (1 + w) s(x|y) - w s(x) = s(x) + (1 + w) grad log p_t(y | x): classifier guidance at 1 + w.
    x = torch.randn(7, 2, generator=gen(), dtype=F64)
    t = torch.rand(7, generator=gen(1), dtype=F64) * 0.9 + 0.05
    log_prob = lambda x, t: MIX.log_posterior(x, t, SDE)  # noqa: E731
    cfg = scoresde.classifier_free_guidance(cond_score_fn, 1, 3.0)(x, t)
    cg = scoresde.classifier_guidance(MIX.score_fn(SDE), log_prob, 1, 4.0)(x, t)
    assert torch.allclose(cfg, cg, atol=1e-10)
    frac = frac_nearest(draw(scoresde.classifier_free_guidance(cond_score_fn, 0, 3.0)))
    assert frac > P_COND + 5 * math.sqrt(P_COND * (1 - P_COND) / 6000)


@pytest.mark.parametrize("y,scale,message", [
    (0.5, 1.0, "y must be an int"),
    (torch.tensor([0.0, 1.0]), 1.0, "integer tensor of shape"),
    (torch.tensor([0, 1, 0]), 1.0, r"shape \(B,\) = \(2,\)"),
    (0, float("nan"), "scale must be a finite number"),
    (0, "big", "scale must be a finite number"),
])
def test_guidance_bad_input(y, scale, message):
    x, t = torch.zeros(2, 2, dtype=F64), torch.full((2,), 0.5, dtype=F64)
    log_prob = lambda x, t: MIX.log_posterior(x, t, SDE)  # noqa: E731
    with pytest.raises(ValueError, match=message):
        scoresde.classifier_guidance(MIX.score_fn(SDE), log_prob, y, scale)(x, t)
    with pytest.raises(ValueError, match=message):
        scoresde.classifier_free_guidance(cond_score_fn, y, scale)(x, t)


# ---------------------------------------------------------------------------------------------
# Training a noise-conditional classifier and a conditional score model.
def test_classifier_loss_decreases_on_a_tiny_problem():
    from scoresde.losses import classifier_loss_terms
    from scoresde.models import NoiseConditionalClassifier, get_log_prob_fn

    torch.manual_seed(0)
    net = NoiseConditionalClassifier(num_classes=2, image_size=4, in_channels=1, nf=8, ch_mult=(1,),
                                     num_res_blocks=1)
    log_prob_fn = get_log_prob_fn(net, SDE, train=True)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    g = gen(0)
    y = torch.arange(64) % 2
    x0 = (2.0 * y - 1).float()[:, None, None, None].expand(64, 1, 4, 4)  # class = sign of the image
    t = torch.full((64,), 0.2)  # little noise: the classes are separable
    z = torch.randn(x0.shape, generator=g)

    def loss():
        return classifier_loss_terms(log_prob_fn, SDE, x0, y, t, z).mean()

    first = loss().item()
    for _ in range(30):
        opt.zero_grad()
        loss().backward()
        opt.step()
    assert abs(first - math.log(2)) < 0.1  # starts near chance
    assert loss().item() < 0.1 * first


def test_classifier_loss_at_the_exact_posterior():
    # With the exact noisy classifier the expected loss is the conditional entropy H(y | x_t):
    # at t = T nothing is left of x_0, so it is the entropy of the weights (0.3, 0.7).
    from scoresde.losses import classifier_loss_terms

    n = 20000
    x0, y = MIX.sample(n, generator=gen(1), dtype=F64, return_labels=True)
    t = torch.full((n,), 1.0, dtype=F64)
    z = torch.randn(x0.shape, generator=gen(2), dtype=F64)
    terms = classifier_loss_terms(lambda x, t: MIX.log_posterior(x, t, SDE), SDE, x0, y, t, z)
    entropy = -(0.3 * math.log(0.3) + 0.7 * math.log(0.7))
    assert abs(terms.mean().item() - entropy) < 5 * terms.std().item() / math.sqrt(n)
