"""Denoising score matching (Song et al. 2021, Eq. 7) and its discrete special cases.

Continuous objective, for ``t ~ U(eps, T)``, ``x_0 ~ p_data``, ``x_t = alpha(t) x_0 + sigma(t) z``:

    L(theta) = E_t E_{x_0, z} [ lambda(t) || s_theta(x_t, t) - grad log p_0t(x_t | x_0) ||^2 ]

with ``grad log p_0t(x_t | x_0) = -z / sigma(t)``. Three weightings:

* ``"sigma2"``: ``lambda(t) = sigma(t)^2`` (Song et al. 2021, Sec. 3.3; the weighting of the
  paper's headline FIDs). The summand becomes ``|| sigma s_theta + z ||^2``, the epsilon
  regression loss of DDPM at continuous time.
* ``"g2"``: ``lambda(t) = g(t)^2``, the *likelihood weighting* of Song, Durkan, Murray & Ermon
  (2021b), "Maximum Likelihood Training of Score-Based Diffusion Models", Thm. 1: with it,
  ``T * E_t[ 1/2 * g^2 || s_theta - grad log p_t ||^2 ] + KL(p_T || pi)`` bounds
  ``KL(p_data || p_theta^SDE)``; denoising and exact score matching differ by a
  theta-independent constant, so ``dsm_loss(weighting="g2", reduce="sum")`` times ``T`` is the
  negative ELBO up to that constant.
* ``"flow_matching"``: ``lambda(t) = g(t)^4 / 4``, under which the DSM term of a network in the
  ``"velocity"`` parameterization (:data:`scoresde.models.PARAMETERIZATIONS`) *is* the
  conditional flow-matching loss (Lipman et al. 2023; Liu et al. 2023), exactly. Derivation:
  the network predicts ``u``, the target is the path's velocity ``u* = alpha' x_0 + sigma' z``,
  and the adapter's score is ``s = -eps_hat / sigma`` with
  ``eps_hat = (alpha u - alpha' x_t) / D``, ``D = alpha sigma' - alpha' sigma``. Then, with
  ``x_t = alpha x_0 + sigma z``,

      sigma s + z = (D z - alpha u + alpha' alpha x_0 + alpha' sigma z) / D
                  = alpha (alpha' x_0 + sigma' z - u) / D = (alpha / D) (u* - u),

  so ``||u - u*||^2 = (D / alpha)^2 ||sigma s + z||^2``: the weight is
  ``lambda / sigma^2 = (D / alpha)^2``. From the moment equations (``alpha' = f alpha``,
  ``sigma' = f sigma + g^2 / (2 sigma)``), ``D / alpha = g^2 / (2 sigma)``, so
  ``lambda(t) = g(t)^4 / 4`` for any SDE. For :class:`~scoresde.RectifiedFlow`
  (``alpha = 1 - t``, ``sigma = t``, ``u* = z - x_0``, ``D = 1``) the weight is
  ``1 / (1 - t)^2`` and ``lambda(t) = t^2 / (1 - t)^2 = e^{-2 lambda_snr(t)}``:
  ``||u_theta - (z - x_0)||^2 = ||sigma s_theta + z||^2 / (1 - t)^2``.

**Relation to DDPM's ELBO.** DDPM's term ``L_{i-1}`` (Ho et al. 2020, Eq. 12) with
``sigma_i^2 = beta_i`` is ``beta_i / (2 alpha_i (1 - bar alpha_i)) || eps - eps_theta ||^2``.
Writing ``eps_theta = -sigma s_theta``, ``sigma^2 = 1 - bar alpha`` and ``beta_i ~ beta(t) dt``
(``alpha_i -> 1``) as ``N -> infinity``, this becomes
``1/2 * beta(t) dt / sigma(t)^2 * || eps - eps_theta ||^2 = 1/2 * g(t)^2 || s_theta - grad log p_0t ||^2 dt``,
so the sum over ``i`` is ``1/2 int g^2 || . ||^2 dt``: the ``"g2"`` weighting is DDPM's true
ELBO weighting, while DDPM's ``L_simple`` (all weights set equal) is the ``"sigma2"`` weighting.

**Noise-conditional classifiers** (Song et al. 2021, App. I.1): :func:`classifier_loss_terms`
is the cross entropy ``-log p_t(y | x_t)`` at the same ``x_t``, the objective of the
classifier that :func:`scoresde.classifier_guidance` uses.

Losses see only a score function ``score_fn(x, t)``; :func:`scoresde.get_score_fn` turns a
network (any parameterization of :data:`scoresde.models.PARAMETERIZATIONS`) into one.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, Optional, Tuple

import torch

from .sde import SDE
from .types import ScoreFn, Tensor
from .utils import append_dims, batch_mean, batch_sum, check_choice, check_data, check_time

__all__ = [
    "WEIGHTINGS",
    "LAMBDA_OVER_SIGMA2",
    "REDUCTIONS",
    "dsm_loss",
    "dsm_loss_terms",
    "discrete_dsm_loss",
    "discrete_dsm_loss_terms",
    "ddpm_loss",
    "smld_loss",
    "importance_sample_time",
    "classifier_loss_terms",
]

REDUCTIONS = {
    "mean": batch_mean,  # mean over non-batch dims
    "sum": lambda v: 0.5 * batch_sum(v),  # one half of the sum, as score_sde
}

#: ``lambda(t) / sigma(t)^2`` of each weighting, ``(sde, t, sigma) -> (B,)`` (module docstring).
LAMBDA_OVER_SIGMA2: Dict[str, Callable[[SDE, Tensor, Tensor], Tensor]] = {
    "sigma2": lambda sde, t, sigma: torch.ones_like(sigma),
    "g2": lambda sde, t, sigma: (sde.diffusion(t) / sigma) ** 2,
    "flow_matching": lambda sde, t, sigma: (sde.diffusion(t) ** 2 / (2 * sigma)) ** 2,
}
WEIGHTINGS = tuple(LAMBDA_OVER_SIGMA2)


def dsm_loss_terms(
    score_fn: ScoreFn,
    sde: SDE,
    x0: Tensor,
    t: Tensor,
    z: Tensor,
    *,
    weighting: str = "sigma2",
    reduce: str = "mean",
) -> Tensor:
    """Per-example DSM loss for given times and noise (no randomness, no input checks).

    ``lambda(t) R(score_fn(x_t, t) + z / sigma)^2`` computed as
    ``lambda/sigma^2 * R((sigma score + z)^2)`` so that no ``z / sigma`` is formed.

    Args:
        score_fn: ``score_fn(x, t)``.
        sde: the forward SDE whose kernel perturbs the data.
        x0: clean data ``(B, *D)``.
        t: times ``(B,)``.
        z: standard normal noise like ``x0``.
        weighting: a key of :data:`WEIGHTINGS` (see :func:`dsm_loss`).
        reduce: ``"mean"`` (over non-batch dims) or ``"sum"`` (one half of the sum).
    Returns:
        ``(B,)`` losses.
    """
    mean, sigma = sde.marginal_prob(x0, t)
    x_t = mean + append_dims(sigma, x0.ndim) * z
    residual = append_dims(sigma, x0.ndim) * score_fn(x_t, t) + z
    return LAMBDA_OVER_SIGMA2[weighting](sde, t, sigma) * REDUCTIONS[reduce](residual**2)


def classifier_loss_terms(
    log_prob_fn: Callable[[Tensor, Tensor], Tensor],
    sde: SDE,
    x0: Tensor,
    y: Tensor,
    t: Tensor,
    z: Tensor,
) -> Tensor:
    """Per-example cross entropy ``-log p_t(y | x_t)`` of a noise-conditional classifier at
    ``x_t = alpha(t) x0 + sigma(t) z`` (Song et al. 2021, App. I.1).

    Args:
        log_prob_fn: ``log_prob_fn(x, t) -> (B, C)`` class log-probabilities
            (:func:`scoresde.models.get_log_prob_fn`).
        sde: the forward SDE whose kernel perturbs the data.
        x0: clean data ``(B, *D)``.
        y: class labels ``(B,)`` (long).
        t: times ``(B,)``.
        z: standard normal noise like ``x0``.
    Returns:
        ``(B,)`` losses in nats.
    """
    mean, sigma = sde.marginal_prob(x0, t)
    x_t = mean + append_dims(sigma, x0.ndim) * z
    return -log_prob_fn(x_t, t).gather(1, y.long()[:, None]).squeeze(1)


def importance_sample_time(
    sde: SDE,
    weighting: str,
    batch_size: int,
    *,
    eps: float = 1e-5,
    generator: Optional[torch.Generator] = None,
    device=None,
    dtype: Optional[torch.dtype] = None,
    n_grid: int = 2048,
) -> Tuple[Tensor, Tensor]:
    """Times ``t`` drawn with density ``q(t)`` proportional to ``lambda(t) / sigma(t)^2``.

    Song et al. (2021b), Sec. 5: for the likelihood weighting the DSM integrand is
    ``g^2 / sigma^2 * ||sigma s + z||^2``, whose weight ``g^2/sigma^2`` behaves like ``1/t``
    near 0 (VP); sampling ``t`` from it removes that factor from the estimator's variance.
    ``q`` is the piecewise-uniform density of a trapezoid integral of ``lambda/sigma^2`` on a
    log-spaced grid in ``[eps, T]``; the returned importance weights use that exact ``q``, so
    ``E_q[w(t) X(t)] = E_{t ~ U(eps, T)}[lambda(t)/sigma(t)^2 X(t)]`` holds exactly, whatever
    the grid.

    Returns:
        ``t`` ``(B,)`` and weights ``lambda(t) / (sigma(t)^2 q(t) (T - eps))`` ``(B,)``.
    """
    check_choice("weighting", weighting, WEIGHTINGS)
    device = device if device is not None else (generator.device if generator is not None else None)
    dtype = dtype or torch.get_default_dtype()
    # Tabulate the cumulative weight on the host in float64 (cheap, done once per call).
    grid = torch.logspace(math.log10(eps), math.log10(sde.T), n_grid, dtype=torch.float64)
    _, sigma = sde.marginal_coeffs(grid)
    w = LAMBDA_OVER_SIGMA2[weighting](sde, grid, sigma)
    cells = 0.5 * (w[1:] + w[:-1]) * (grid[1:] - grid[:-1])
    cum = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(cells, 0)])
    grid, cum, cells = (v.to(device) for v in (grid, cum, cells))
    # Inverse CDF, linear within each cell (so q is uniform within each cell).
    u = torch.rand(batch_size, generator=generator, device=device, dtype=torch.float64) * cum[-1]
    k = (torch.searchsorted(cum, u, right=True) - 1).clamp(0, n_grid - 2)
    width = grid[k + 1] - grid[k]
    t = grid[k] + (u - cum[k]) / cells[k] * width
    q = cells[k] / (cum[-1] * width)
    _, sigma_t = sde.marginal_coeffs(t)
    weight = LAMBDA_OVER_SIGMA2[weighting](sde, t, sigma_t) / (q * (sde.T - eps))
    return t.to(dtype), weight.to(dtype)


def dsm_loss(
    score_fn: ScoreFn,
    sde: SDE,
    x0: Tensor,
    *,
    weighting: str = "sigma2",
    reduce: str = "mean",
    eps: float = 1e-5,
    t: Optional[Tensor] = None,
    importance_sampling: bool = False,
    generator: Optional[torch.Generator] = None,
) -> Tensor:
    """Denoising score matching loss (Song et al. 2021, Eq. 7), averaged over the batch.

    Args:
        score_fn: ``score_fn(x, t)`` approximating ``grad log p_t``.
        sde: the forward SDE.
        x0: clean data, ``(B, *D)``.
        weighting: ``"sigma2"`` (``lambda = sigma(t)^2``), ``"g2"`` (``lambda = g(t)^2``,
            the likelihood weighting) or ``"flow_matching"`` (``lambda = g(t)^4 / 4``: with a
            ``"velocity"`` network, the conditional flow-matching loss; module docstring).
        reduce: ``"mean"`` over non-batch dims, or ``"sum"`` (one half of the sum).
        eps: smallest time; ``t ~ U(eps, T)``.
        t: optional times ``(B,)`` in ``[0, T]`` to use instead of drawing them.
        importance_sampling: draw ``t`` with density proportional to ``lambda / sigma^2`` and
            reweight (unbiased for the same objective; lower variance for ``"g2"``).
        generator: random number generator for ``t`` and the noise.
    Returns:
        scalar loss (0-dim tensor) in the dtype of ``x0``.
    """
    check_data("x0", x0)
    check_choice("weighting", weighting, WEIGHTINGS)
    check_choice("reduce", reduce, REDUCTIONS)
    if not 0 <= eps < sde.T:
        raise ValueError(f"eps must lie in [0, T) = [0, {sde.T}); got {eps}")
    B = x0.shape[0]
    weight = None
    if t is not None:
        if importance_sampling:
            raise ValueError("give either t or importance_sampling=True, not both")
        check_time(t, B, sde.T)
        t = t.to(dtype=x0.dtype, device=x0.device)
    elif importance_sampling:
        t, weight = importance_sample_time(
            sde, weighting, B, eps=eps, generator=generator, device=x0.device, dtype=x0.dtype
        )
    else:
        u = torch.rand(B, generator=generator, device=x0.device, dtype=x0.dtype)
        t = eps + (sde.T - eps) * u
    z = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    if weight is None:
        losses = dsm_loss_terms(score_fn, sde, x0, t, z, weighting=weighting, reduce=reduce)
    else:
        # The weight already carries lambda / sigma^2: use the plain sigma2 summand.
        losses = weight * dsm_loss_terms(score_fn, sde, x0, t, z, weighting="sigma2", reduce=reduce)
    return losses.mean()


def discrete_dsm_loss_terms(
    score_fn: ScoreFn, sde: SDE, x0: Tensor, i: Tensor, z: Tensor, *, reduce: str = "mean"
) -> Tensor:
    """Per-example discrete loss ``R((sigma_i s(x_i, t_i) + z)^2)`` for given indices ``i``
    ``(B,)`` and noise ``z`` (no randomness, no input checks); see :func:`discrete_dsm_loss`."""
    t = i.to(x0.dtype) * (sde.T / (sde.N - 1))
    alpha, sigma = sde.discrete_marginal_coeffs(t)
    x = append_dims(alpha, x0.ndim) * x0 + append_dims(sigma, x0.ndim) * z
    residual = append_dims(sigma, x0.ndim) * score_fn(x, t) + z
    return REDUCTIONS[reduce](residual**2)


def discrete_dsm_loss(
    score_fn: ScoreFn,
    sde: SDE,
    x0: Tensor,
    *,
    reduce: str = "mean",
    i: Optional[Tensor] = None,
    generator: Optional[torch.Generator] = None,
) -> Tensor:
    """Noise-conditional loss over the ``N`` discrete noise levels of the SDE's chain.

    Draws ``i ~ U{0, ..., N-1}`` (unless given, shape ``(B,)`` long), perturbs
    ``x_i = alpha_i x0 + sigma_i z`` with the chain's own marginal
    (:meth:`SDE.discrete_marginal_coeffs`), and returns the batch mean of
    ``R((sigma_i s(x_i, t_i) + z)^2)`` with ``t_i = i T / (N - 1)``, the time whose
    :meth:`SDE.discrete_index` is ``i``. For :class:`VPSDE` this is DDPM's ``L_simple``
    (``eps_theta = -sigma_i s``), for :class:`VESDE` SMLD's loss with ``lambda = sigma_i^2``.
    """
    check_data("x0", x0)
    check_choice("reduce", reduce, REDUCTIONS)
    if sde.N < 2:
        raise ValueError(f"discrete losses need an SDE with N >= 2 steps; got N={sde.N}")
    B = x0.shape[0]
    if i is None:
        i = torch.randint(0, sde.N, (B,), generator=generator, device=x0.device)
    elif not isinstance(i, torch.Tensor) or i.shape != (B,) or i.is_floating_point():
        raise ValueError(f"i must be an integer tensor of shape ({B},) with values in [0, N)")
    z = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    return discrete_dsm_loss_terms(score_fn, sde, x0, i, z, reduce=reduce).mean()


def ddpm_loss(
    score_fn: ScoreFn,
    sde: SDE,
    x0: Tensor,
    *,
    reduce: str = "mean",
    i: Optional[Tensor] = None,
    generator: Optional[torch.Generator] = None,
) -> Tensor:
    """DDPM's ``L_simple = E || eps - eps_theta(x_i, i) ||^2`` (Ho et al. 2020, Eq. 14).

    ``sde`` is a :class:`VPSDE` (its ``discrete_betas`` are the DDPM schedule); with
    ``eps_theta = -sigma_i s_theta`` this is :func:`discrete_dsm_loss`. ``reduce="mean"``
    averages over dims as in DDPM's implementation.
    """
    if not hasattr(sde, "discrete_betas"):
        raise ValueError(f"ddpm_loss needs a VPSDE (the DDPM chain); got {sde!r}")
    return discrete_dsm_loss(score_fn, sde, x0, reduce=reduce, i=i, generator=generator)


def smld_loss(
    score_fn: ScoreFn,
    sde: SDE,
    x0: Tensor,
    *,
    reduce: str = "sum",
    i: Optional[Tensor] = None,
    generator: Optional[torch.Generator] = None,
) -> Tensor:
    """SMLD / NCSN loss ``1/2 sigma_i^2 || s(x_i, sigma_i) + z / sigma_i ||^2`` (Song & Ermon 2019,
    Eq. 5 and 6) over the geometric noise levels of a :class:`VESDE`."""
    if not hasattr(sde, "discrete_sigmas"):
        raise ValueError(f"smld_loss needs a VESDE (the SMLD noise levels); got {sde!r}")
    return discrete_dsm_loss(score_fn, sde, x0, reduce=reduce, i=i, generator=generator)
