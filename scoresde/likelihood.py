"""Exact likelihoods through the probability-flow ODE (Song et al. 2021, Sec. 4.3 and App. D.2).

With ``v(x, t) = f(x, t) - 1/2 g(t)^2 s(x, t)`` the drift of the probability-flow ODE
(Eq. 13), the instantaneous change of variables (Chen et al. 2018) gives (Eq. 39)

    log p_0(x(0)) = log p_T(x(T)) + int_0^T div_x v(x(t), t) dt,

solved from ``eps`` to ``T`` jointly for ``x`` and the integral. The divergence is either exact
(one vector-Jacobian product per dimension) or the Hutchinson-Skilling estimate
``E[u^T (dv/dx) u]`` with a probe ``u`` (Rademacher or Gaussian) drawn once for the whole solve.
Each ODE evaluation runs the score model once: the drift and the vector-Jacobian products come
from the same forward pass.

For 8-bit images, :func:`bits_per_dim` adds uniform dequantization and the change of variables
of the data scaling, so that the number reported is an upper bound on the bits per dimension of
the discrete data (see its docstring for the formula).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Tuple

import torch

from .integrate import dopri5, solve_ivp_host
from .sampling._common import CountingScore, full_time
from .sampling.ode import probability_flow_drift
from .sde import SDE
from .types import ScoreFn, Tensor
from .utils import batch_sum, check_choice, check_data

__all__ = ["LikelihoodResult", "log_likelihood", "likelihood", "bits_per_dim", "NOISE_TYPES"]

NOISE_TYPES = ("rademacher", "gaussian")
SOLVERS = ("rk45", "scipy_rk45")


@dataclass
class LikelihoodResult:
    """Everything a likelihood solve gives.

    Attributes:
        logp: ``log p_0(x)`` in nats, ``(B,)``.
        z: the latent ``x(T)``, like ``x``.
        prior_logp: ``log p_T(z)``, ``(B,)``.
        delta_logp: ``int_eps^T div v dt``, ``(B,)``.
        nfe: evaluations of the ODE's right-hand side (= forward passes of the score model).
        n_vjp: vector-Jacobian products per evaluation (probes, or ``D`` when exact).
    """

    logp: Tensor
    z: Tensor
    prior_logp: Tensor
    delta_logp: Tensor
    nfe: int
    n_vjp: int


def _probes(x: Tensor, noise: str, n_probes: int, generator: Optional[torch.Generator]) -> Tensor:
    """``n_probes`` probes like ``x``: ``(n_probes, B, *D)``."""
    shape = (n_probes,) + tuple(x.shape)
    if noise == "gaussian":
        return torch.randn(shape, generator=generator, device=x.device, dtype=x.dtype)
    bits = torch.randint(0, 2, shape, generator=generator, device=x.device)
    return bits.to(x.dtype) * 2 - 1


def _drift_and_divergence(drift, x: Tensor, t: Tensor, probes: Optional[Tensor],
                          chunk: int) -> Tuple[Tensor, Tensor]:
    """``v(x, t)`` and its divergence ``(B,)`` from one forward pass of the drift.

    With ``probes`` ``(P, B, *D)``: the Hutchinson estimate averaged over the P probes.
    Without: the exact trace, one batched vector-Jacobian product per dimension.
    """
    with torch.enable_grad():
        x_ = x.detach().requires_grad_(True)
        v = drift(x_, t)
        if probes is not None:
            total = torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
            for k, u in enumerate(probes):
                (vjp,) = torch.autograd.grad(v, x_, grad_outputs=u, retain_graph=k < len(probes) - 1)
                total = total + batch_sum(vjp * u)
            return v.detach(), total / len(probes)
        D = x[0].numel()
        B = x.shape[0]
        div = torch.zeros(B, device=x.device, dtype=x.dtype)
        eye = torch.eye(D, device=x.device, dtype=x.dtype)
        for start in range(0, D, chunk):
            stop = min(D, start + chunk)
            # Unit vectors e_i for i in [start, stop), for every example: (n, B, *D).
            basis = eye[start:stop, None, :].expand(stop - start, B, D).reshape((stop - start,) + tuple(x.shape))
            (vjps,) = torch.autograd.grad(v, x_, grad_outputs=basis, retain_graph=stop < D,
                                          is_grads_batched=True)
            # Diagonal of the Jacobian: component i of (e_i^T J).
            diag = vjps.reshape(stop - start, B, D)[torch.arange(stop - start), :, torch.arange(start, stop)]
            div = div + diag.sum(dim=0)
        return v.detach(), div


def likelihood(
    score_fn: ScoreFn,
    sde: SDE,
    x: Tensor,
    *,
    exact: bool = False,
    noise: str = "rademacher",
    n_probes: int = 1,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    eps: float = 1e-5,
    solver: str = "rk45",
    exact_chunk: int = 64,
    generator: Optional[torch.Generator] = None,
) -> LikelihoodResult:
    """Log-density of ``x`` ``(B, *D)`` under the probability-flow ODE, with all its parts.

    Args:
        score_fn: ``score_fn(x, t)``.
        sde: the forward SDE (its prior is ``p_T``).
        x: continuous data ``(B, *D)``, read as samples at ``t = eps``.
        exact: exact divergence (``D`` vector-Jacobian products per evaluation, batched in chunks
            of ``exact_chunk``) instead of the Hutchinson estimate.
        noise: Hutchinson probe, ``"rademacher"`` or ``"gaussian"``.
        n_probes: probes averaged per evaluation (all drawn once, fixed for the solve).
        rtol, atol: ODE tolerances (applied to the joint state ``[x, delta_logp]``).
        eps: starting time of the ODE.
        solver: ``"rk45"`` (Dormand-Prince on the data's device) or ``"scipy_rk45"``
            (``scipy.integrate.solve_ivp`` on the host, the reference).
        generator: for the probes.
    Returns:
        a :class:`LikelihoodResult`.
    """
    check_data("x", x, min_ndim=2)
    check_choice("noise", noise, NOISE_TYPES)
    check_choice("solver", solver, SOLVERS)
    if not isinstance(n_probes, int) or n_probes < 1:
        raise ValueError(f"n_probes must be a positive integer; got {n_probes!r}")
    if not 0 < eps < sde.T:
        raise ValueError(f"eps must lie in (0, T) = (0, {sde.T}); got {eps}")
    shape = tuple(x.shape)
    B, D = shape[0], x[0].numel()
    counted = CountingScore(score_fn)
    drift = probability_flow_drift(counted, sde)
    probes = None if exact else _probes(x, noise, n_probes, generator)

    # Joint state (B, D + 1): the data, then the running divergence integral.
    def rhs(t: float, y: Tensor) -> Tensor:
        xt = y[:, :D].reshape(shape)
        v, div = _drift_and_divergence(drift, xt, full_time(t, xt), probes, exact_chunk)
        return torch.cat([v.reshape(B, D), div[:, None]], dim=1)

    y0 = torch.cat([x.detach().reshape(B, D), torch.zeros(B, 1, device=x.device, dtype=x.dtype)], dim=1)
    if solver == "rk45":
        y1, _ = dopri5(rhs, y0, eps, sde.T, rtol=rtol, atol=atol)
    else:
        y1 = solve_ivp_host(rhs, y0, eps, sde.T, rtol=rtol, atol=atol)
    z = y1[:, :D].reshape(shape)
    delta = y1[:, D]
    prior = sde.prior_logp(z)
    n_vjp = D if exact else n_probes
    return LikelihoodResult(prior + delta, z, prior, delta, counted.nfe, n_vjp)


def log_likelihood(
    score_fn: ScoreFn,
    sde: SDE,
    x: Tensor,
    *,
    exact: bool = False,
    noise: str = "rademacher",
    rtol: float = 1e-5,
    atol: float = 1e-5,
    eps: float = 1e-5,
    generator: Optional[torch.Generator] = None,
    **kwargs,
) -> Tensor:
    """``log p_0(x)`` in nats, ``(B,)``, of continuous data ``x`` ``(B, *D)`` (Eq. 39).

    See :func:`likelihood` for the arguments (``n_probes``, ``solver``, ``exact_chunk``) and
    for the latent, the prior term, the divergence integral and the NFE.
    """
    return likelihood(score_fn, sde, x, exact=exact, noise=noise, rtol=rtol, atol=atol, eps=eps,
                      generator=generator, **kwargs).logp


def bits_per_dim(
    score_fn: ScoreFn,
    sde: SDE,
    images: Tensor,
    *,
    data_range: Tuple[float, float] = (-1.0, 1.0),
    n_bins: int = 256,
    n_dequant: int = 1,
    generator: Optional[torch.Generator] = None,
    **likelihood_kwargs,
) -> Tensor:
    """Bits per dimension of discrete images ``(B, *D)`` (integers in ``[0, n_bins)``), ``(B,)``.

    Each pixel value ``k`` is dequantized to ``u = (k + U) / n_bins`` with ``U ~ U[0, 1)``, and
    the model sees ``y = lo + (hi - lo) u`` for ``data_range = (lo, hi)`` (score_sde's data:
    ``(-1, 1)`` for centered VP models, ``(0, 1)`` for VE). Since the probability of the bin
    ``k`` is ``P(k) = int p_y(y(k + U)) |dy/dU| dU`` with ``|dy/dU| = ((hi - lo)/n_bins)^D``,
    Jensen's inequality gives the variational bound

        bpd = -log2 P(k) / D <= -E_U[log p_y(y)] / (D ln 2) - log2(hi - lo) + log2(n_bins),

    which is what is returned, with the expectation averaged over ``n_dequant`` draws of ``U``
    (and of the Hutchinson probe). For ``n_bins = 256`` the offset is 7 bits for data in
    ``(-1, 1)`` and 8 bits for ``(0, 1)``.

    Args:
        score_fn, sde: the model.
        images: integer-valued tensor (``uint8`` or any dtype) with values in ``[0, n_bins)``.
        data_range: ``(lo, hi)``, the range the model's data occupy.
        n_bins: number of discrete values per dimension.
        n_dequant: dequantization draws averaged per image.
        generator: for the dequantization noise and the probes.
        **likelihood_kwargs: passed to :func:`likelihood` (``exact``, ``noise``, ``rtol``, ...).
    """
    if not isinstance(images, torch.Tensor) or images.ndim < 2:
        raise ValueError("images must be a tensor of shape (B, *D) with integer pixel values")
    lo, hi = (float(v) for v in data_range)
    if not hi > lo:
        raise ValueError(f"data_range must be (lo, hi) with hi > lo; got {data_range}")
    if not isinstance(n_dequant, int) or n_dequant < 1:
        raise ValueError(f"n_dequant must be a positive integer; got {n_dequant!r}")
    k = images.double() if images.is_floating_point() else images.to(torch.float64)
    if bool((k != k.round()).any()) or bool((k < 0).any()) or bool((k > n_bins - 1).any()):
        raise ValueError(
            f"images must hold integers in [0, {n_bins - 1}] (e.g. uint8 pixels); got values in "
            f"[{float(k.min()):.4g}, {float(k.max()):.4g}]. Pass raw pixel values, not data "
            "already scaled to data_range"
        )
    dtype = images.dtype if images.is_floating_point() else torch.get_default_dtype()
    device = images.device
    D = images[0].numel()
    total = torch.zeros(images.shape[0], dtype=torch.float64, device=device)
    for _ in range(n_dequant):
        U = torch.rand(images.shape, generator=generator, device=device, dtype=torch.float64)
        y = (lo + (hi - lo) * (k + U) / n_bins).to(dtype)
        total = total + likelihood(score_fn, sde, y, generator=generator, **likelihood_kwargs).logp.double()
    mean_logp = total / n_dequant
    bpd = -mean_logp / (D * math.log(2)) - math.log2(hi - lo) + math.log2(n_bins)
    return bpd.to(dtype)
