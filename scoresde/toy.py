"""Test distributions with closed-form scores under every SDE in :mod:`scoresde.sde`.

Gaussian and Gaussian-mixture data stay Gaussian (mixtures) when perturbed by a linear SDE:
if ``x_0 ~ N(mu, Sigma)`` then ``x_t ~ N(alpha(t) mu, alpha(t)^2 Sigma + sigma(t)^2 I)``
(Song et al. 2021, App. B). So ``grad log p_t`` is known exactly at every ``t``, and so is the
density that the probability-flow ODE (Eq. 13) assigns to data when driven by that exact
score. These distributions let samplers, losses and likelihoods be checked against the truth.

Everything is computed in float64 internally and returned in the dtype of the input.
Samples have shape ``(n, *event_shape)``.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, Literal, Optional, Sequence, Tuple, Union, overload

import torch

from .sde import SDE
from .types import Device, ScoreFn, Tensor

__all__ = [
    "Gaussian",
    "GaussianMixture",
    "ring",
    "checkerboard",
    "high_dim_gaussian",
    "spectrum_gaussian",
    "correlated_gaussian",
    "PRESETS",
    "get_toy",
]

_LOG_2PI = math.log(2 * math.pi)


def _coeffs(x: Tensor, t: Optional[Tensor], sde: Optional[SDE]) -> Tuple[Tensor, Tensor]:
    """``(alpha_t, sigma_t)`` as float64 ``(B, 1)``; the data distribution itself if no SDE."""
    if sde is None:
        ones = torch.ones(x.shape[0], 1, dtype=torch.float64, device=x.device)
        return ones, torch.zeros_like(ones)
    if t is None:
        raise ValueError("t is required together with sde")
    alpha, sigma = sde.marginal_coeffs(t.to(torch.float64))
    return alpha.reshape(-1, 1), sigma.reshape(-1, 1)


def _device_dtype(generator: Optional[torch.Generator], device: Device,
                  dtype: Optional[torch.dtype]) -> Tuple[torch.device, torch.dtype]:
    """Where samples are drawn: the given device, else the generator's, else the CPU."""
    if device is None:
        device = generator.device if generator is not None else "cpu"
    return torch.device(device), dtype or torch.get_default_dtype()


class _Toy:
    """Shared plumbing: event shape, flattening, dtype handling and device caches."""

    def __init__(self, event_shape: Sequence[int]) -> None:
        self.event_shape = tuple(int(d) for d in event_shape)
        self.dim = int(math.prod(self.event_shape))
        self._device_cache: Dict[Tuple[str, torch.device], Tensor] = {}

    def _param(self, name: str, device: torch.device) -> Tensor:
        key = (name, device)
        if key not in self._device_cache:
            self._device_cache[key] = getattr(self, name).to(device)
        return self._device_cache[key]

    def _flat(self, x: Tensor) -> Tensor:
        if tuple(x.shape[1:]) != self.event_shape:
            raise ValueError(
                f"x must have shape (B, *{self.event_shape}); got {tuple(x.shape)}"
            )
        return x.reshape(x.shape[0], self.dim).to(torch.float64)

    def _unflat(self, y: Tensor, like: Tensor) -> Tensor:
        return y.reshape((y.shape[0],) + self.event_shape).to(like.dtype)

    def sample(
        self,
        n: int,
        generator: Optional[torch.Generator] = None,
        device: Device = None,
        dtype: Optional[torch.dtype] = None,
    ) -> Tensor:
        """Draw ``n`` samples, shape ``(n, *event_shape)``."""
        raise NotImplementedError

    def score_fn(self, sde: Optional[SDE] = None) -> ScoreFn:
        """The exact score ``score_fn(x, t) = grad_x log p_t(x)`` of this data under ``sde``."""
        return lambda x, t: self.score(x, t, sde)

    def score(self, x: Tensor, t: Optional[Tensor] = None, sde: Optional[SDE] = None) -> Tensor:
        raise NotImplementedError

    def log_prob_t(self, x: Tensor, t: Optional[Tensor] = None, sde: Optional[SDE] = None) -> Tensor:
        raise NotImplementedError

    def log_prob(self, x: Tensor) -> Tensor:
        """Log-density of the data, ``(B,)`` in nats."""
        return self.log_prob_t(x)


class Gaussian(_Toy):
    """A Gaussian ``N(mean, cov)`` over ``event_shape`` with exact perturbed scores.

    Args:
        mean: ``(D,)`` or ``event_shape`` tensor, or a float broadcast to all dims.
        cov: a float (isotropic ``cov * I``), a ``(D,)`` vector (diagonal), or a ``(D, D)``
            symmetric positive-definite matrix (full covariance).
        event_shape: shape of one sample (default ``(D,)``).
    """

    def __init__(
        self,
        mean: Union[Tensor, float],
        cov: Union[Tensor, float],
        event_shape: Optional[Sequence[int]] = None,
    ) -> None:
        mean_t = torch.as_tensor(mean, dtype=torch.float64)
        cov_t = torch.as_tensor(cov, dtype=torch.float64)
        if event_shape is None:
            if mean_t.ndim >= 1:
                event_shape = tuple(mean_t.shape)
            elif cov_t.ndim >= 1:
                event_shape = (cov_t.shape[0],)
            else:
                raise ValueError("give event_shape when both mean and cov are scalars")
        super().__init__(event_shape)
        D = self.dim
        if mean_t.numel() not in (1, D):
            raise ValueError(f"mean must have {D} elements; got shape {tuple(mean_t.shape)}")
        self.mean = mean_t.reshape(-1).expand(D).clone()
        if cov_t.ndim == 2:
            if cov_t.shape != (D, D):
                raise ValueError(f"cov must be ({D}, {D}); got {tuple(cov_t.shape)}")
            if not torch.allclose(cov_t, cov_t.T):
                raise ValueError("cov must be symmetric")
            lam, U = torch.linalg.eigh(cov_t)
            self.eigvecs: Optional[Tensor] = U
        else:
            lam = cov_t.reshape(-1).expand(D).clone()
            self.eigvecs = None
        if not bool((lam > 0).all()):
            raise ValueError("cov must be positive definite")
        self.eigvals = lam

    @property
    def cov(self) -> Tensor:
        """The ``(D, D)`` covariance matrix (float64)."""
        U = self.eigvecs
        return torch.diag(self.eigvals) if U is None else (U * self.eigvals) @ U.T

    # Coordinates in the eigenbasis of cov, centred at the perturbed mean.
    def _to_eig(self, y: Tensor) -> Tensor:
        U = self.eigvecs
        return y if U is None else y @ self._param("eigvecs", y.device)

    def _from_eig(self, y: Tensor) -> Tensor:
        U = self.eigvecs
        return y if U is None else y @ self._param("eigvecs", y.device).T

    def _centred(self, x: Tensor, alpha: Tensor) -> Tensor:
        return self._to_eig(self._flat(x) - alpha * self._param("mean", x.device))

    def _var(self, alpha: Tensor, sigma: Tensor, device: torch.device) -> Tensor:
        return alpha**2 * self._param("eigvals", device) + sigma**2

    def sample(
        self,
        n: int,
        generator: Optional[torch.Generator] = None,
        device: Device = None,
        dtype: Optional[torch.dtype] = None,
    ) -> Tensor:
        """Draw ``n`` samples, shape ``(n, *event_shape)``."""
        device, dtype = _device_dtype(generator, device, dtype)
        z = torch.randn(n, self.dim, generator=generator, device=device, dtype=torch.float64)
        y = self._from_eig(z * self._param("eigvals", z.device).sqrt())
        return self._unflat(y + self._param("mean", z.device), torch.empty(0, dtype=dtype))

    def log_prob_t(self, x: Tensor, t: Optional[Tensor] = None, sde: Optional[SDE] = None) -> Tensor:
        """Exact ``log p_t(x)`` of the data perturbed by ``sde``'s kernel (``(B,)``, nats)."""
        alpha, sigma = _coeffs(x, t, sde)
        y = self._centred(x, alpha)
        V = self._var(alpha, sigma, x.device)
        return (-0.5 * (_LOG_2PI + V.log() + y * y / V).sum(dim=1)).to(x.dtype)

    def score(self, x: Tensor, t: Optional[Tensor] = None, sde: Optional[SDE] = None) -> Tensor:
        """Exact ``grad_x log p_t(x) = -(alpha^2 cov + sigma^2 I)^{-1} (x - alpha mean)``."""
        alpha, sigma = _coeffs(x, t, sde)
        y = self._centred(x, alpha)
        return self._unflat(self._from_eig(-y / self._var(alpha, sigma, x.device)), x)

    def flow(self, x: Tensor, sde: SDE, t_from: Tensor, t_to: Tensor) -> Tensor:
        """Exact solution of the probability-flow ODE from ``t_from`` to ``t_to`` (``(B,)`` each).

        With the exact score the ODE is linear: in the eigenbasis of ``cov``,
        ``x_t - alpha(t) mean`` scales as ``sqrt(alpha(t)^2 lambda_k + sigma(t)^2)``.
        """
        a0, s0 = _coeffs(x, t_from, sde)
        a1, s1 = _coeffs(x, t_to, sde)
        ratio = (self._var(a1, s1, x.device) / self._var(a0, s0, x.device)).sqrt()
        y1 = self._from_eig(self._centred(x, a0) * ratio) + a1 * self._param("mean", x.device)
        return self._unflat(y1, x)

    def flow_log_prob(self, x: Tensor, sde: SDE, eps: float = 1e-5) -> Tensor:
        """Exact log-density that the probability-flow ODE with the exact score assigns to ``x``.

        ``x`` is read as a sample at time ``eps``, mapped to ``z = x_T`` by the ODE, and
        ``log p(x) = log p_T^prior(z) + log |det dz/dx|`` (instantaneous change of variables,
        Song et al. 2021, Eq. 39), where the Jacobian is
        ``prod_k sqrt(V_k(T) / V_k(eps))`` with ``V_k(t) = alpha(t)^2 lambda_k + sigma(t)^2``.
        This is what :func:`scoresde.log_likelihood` computes with an exact solver.
        """
        B = x.shape[0]
        t0 = torch.full((B,), float(eps), dtype=torch.float64, device=x.device)
        t1 = torch.full((B,), float(sde.T), dtype=torch.float64, device=x.device)
        z = self.flow(x.to(torch.float64), sde, t0, t1)
        a0, s0 = _coeffs(x, t0, sde)
        a1, s1 = _coeffs(x, t1, sde)
        logdet = 0.5 * (self._var(a1, s1, x.device).log() - self._var(a0, s0, x.device).log())
        return (sde.prior_logp(z) + logdet.sum(dim=1)).to(x.dtype)


class GaussianMixture(_Toy):
    """A mixture of isotropic Gaussians ``sum_k w_k N(mu_k, s_k^2 I)`` with exact scores.

    Args:
        means: ``(K, *event_shape)`` (or ``(K, D)``) component means.
        stds: per-component standard deviations ``(K,)`` or one float.
        weights: mixture weights ``(K,)`` (normalized here); uniform if ``None``.
        event_shape: shape of one sample (default ``means.shape[1:]``).
    """

    def __init__(
        self,
        means: Tensor,
        stds: Union[Tensor, float],
        weights: Optional[Tensor] = None,
        event_shape: Optional[Sequence[int]] = None,
    ) -> None:
        means = torch.as_tensor(means, dtype=torch.float64)
        super().__init__(event_shape if event_shape is not None else means.shape[1:])
        K = means.shape[0]
        self.means = means.reshape(K, self.dim)
        self.stds = torch.as_tensor(stds, dtype=torch.float64).reshape(-1).expand(K).clone()
        w = torch.ones(K, dtype=torch.float64) if weights is None else torch.as_tensor(
            weights, dtype=torch.float64
        )
        if w.shape != (K,) or bool((w <= 0).any()) or bool((self.stds <= 0).any()):
            raise ValueError("weights must be K positive numbers and stds positive")
        self.weights = w / w.sum()
        self.log_weights = self.weights.log()

    @property
    def n_components(self) -> int:
        return self.means.shape[0]

    @overload
    def sample(
        self,
        n: int,
        generator: Optional[torch.Generator] = None,
        device: Device = None,
        dtype: Optional[torch.dtype] = None,
        return_labels: Literal[False] = False,
    ) -> Tensor: ...

    @overload
    def sample(
        self,
        n: int,
        generator: Optional[torch.Generator] = None,
        device: Device = None,
        dtype: Optional[torch.dtype] = None,
        *,
        return_labels: Literal[True],
    ) -> Tuple[Tensor, Tensor]: ...

    @overload
    def sample(
        self,
        n: int,
        generator: Optional[torch.Generator] = None,
        device: Device = None,
        dtype: Optional[torch.dtype] = None,
        return_labels: bool = False,
    ) -> Union[Tensor, Tuple[Tensor, Tensor]]: ...

    def sample(
        self,
        n: int,
        generator: Optional[torch.Generator] = None,
        device: Device = None,
        dtype: Optional[torch.dtype] = None,
        return_labels: bool = False,
    ) -> Union[Tensor, Tuple[Tensor, Tensor]]:
        """Draw ``n`` samples ``(n, *event_shape)`` (and their component labels ``(n,)``)."""
        device, dtype = _device_dtype(generator, device, dtype)
        w = self._param("weights", device)
        labels = torch.multinomial(w, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, device=device, dtype=torch.float64)
        mu = self._param("means", z.device)[labels]
        s = self._param("stds", z.device)[labels]
        x = self._unflat(mu + s[:, None] * z, torch.empty(0, dtype=dtype))
        return (x, labels) if return_labels else x

    def _component_terms(
        self, x: Tensor, t: Optional[Tensor], sde: Optional[SDE]
    ) -> Tuple[Tensor, Tensor, Tensor]:
        """Per-component ``log w_k + log N_k(x)`` ``(B, K)``, offsets ``(B, K, D)``, vars ``(B, K)``."""
        alpha, sigma = _coeffs(x, t, sde)
        y = self._flat(x)
        diff = y[:, None, :] - alpha[:, :, None] * self._param("means", x.device)[None]
        V = alpha**2 * self._param("stds", x.device) ** 2 + sigma**2
        sq = (diff * diff).sum(dim=2)
        logn = -0.5 * (self.dim * (_LOG_2PI + V.log()) + sq / V)
        return self._param("log_weights", x.device) + logn, diff, V

    def log_prob_t(self, x: Tensor, t: Optional[Tensor] = None, sde: Optional[SDE] = None) -> Tensor:
        """Exact ``log p_t(x)`` ``(B,)`` of the perturbed mixture (nats)."""
        logits, _, _ = self._component_terms(x, t, sde)
        return torch.logsumexp(logits, dim=1).to(x.dtype)

    def log_posterior(self, x: Tensor, t: Optional[Tensor] = None, sde: Optional[SDE] = None) -> Tensor:
        """Exact component log-posterior ``log p_t(k | x)`` ``(B, K)``: the ideal noisy classifier."""
        logits, _, _ = self._component_terms(x, t, sde)
        return (logits - torch.logsumexp(logits, dim=1, keepdim=True)).to(x.dtype)

    def score(self, x: Tensor, t: Optional[Tensor] = None, sde: Optional[SDE] = None) -> Tensor:
        """Exact ``grad log p_t(x) = -sum_k r_k(x) (x - alpha mu_k) / V_k``."""
        logits, diff, V = self._component_terms(x, t, sde)
        r = torch.softmax(logits, dim=1)
        s = -(r / V)[:, :, None] * diff
        return self._unflat(s.sum(dim=1), x)

    def nearest_component(self, x: Tensor) -> Tensor:
        """Index ``(B,)`` of the component mean nearest to each sample."""
        y = self._flat(x)
        return torch.cdist(y, self._param("means", x.device)).argmin(dim=1)


# ---------------------------------------------------------------------------------------------
# Presets.
def ring(n_modes: int = 8, radius: float = 2.0, std: float = 0.1) -> GaussianMixture:
    """2-D ring of ``n_modes`` equally weighted Gaussians on a circle of ``radius``."""
    angle = 2 * math.pi * torch.arange(n_modes, dtype=torch.float64) / n_modes
    means = radius * torch.stack([angle.cos(), angle.sin()], dim=1)
    return GaussianMixture(means, std)


def checkerboard(n: int = 4, std: float = 0.2, spacing: float = 1.0) -> GaussianMixture:
    """2-D checkerboard-like mixture: a Gaussian at the centre of each dark square of an
    ``n x n`` board of squares of side ``spacing`` centred at the origin (``n^2/2`` modes)."""
    centres = (torch.arange(n, dtype=torch.float64) + 0.5 - n / 2) * spacing
    means = [(centres[i], centres[j]) for i in range(n) for j in range(n) if (i + j) % 2 == 0]
    return GaussianMixture(torch.tensor(means, dtype=torch.float64), std)


def high_dim_gaussian(
    event_shape: Sequence[int] = (3, 32, 32), std: float = 0.5, mean_scale: float = 0.5
) -> Gaussian:
    """Isotropic Gaussian ``N(m, std^2 I)`` in ``prod(event_shape)`` dims (3072 by default),
    with the fixed mean ``m_k = mean_scale * sin(0.7 k)`` (image-like values in [-0.5, 0.5])."""
    D = int(math.prod(event_shape))
    return Gaussian(_sine_mean(D, mean_scale), std**2, event_shape=event_shape)


def _sine_mean(D: int, mean_scale: float) -> Tensor:
    """``m_k = mean_scale * sin(0.7 k)``, ``k < D``: the mean of the 3072-D Gaussians."""
    return mean_scale * torch.sin(0.7 * torch.arange(D, dtype=torch.float64))


def spectrum_gaussian(
    event_shape: Sequence[int] = (3, 32, 32), min_var: float = 1e-4, max_var: float = 1.0,
    mean_scale: float = 0.5, seed: int = 1,
) -> Gaussian:
    """Diagonal Gaussian in ``prod(event_shape)`` dims whose variances are geometric in
    ``[min_var, max_var]``, assigned to the coordinates in a random order fixed by ``seed``,
    with the mean of :func:`high_dim_gaussian`.

    Like natural images, whose power spectrum spans several decades, it has directions that
    carry almost no variance next to directions that carry most of it: a sampler that stops
    at a noise level above ``sqrt(min_var)`` and denoises there shrinks the first kind towards
    the mean, which an isotropic Gaussian does not show."""
    D = int(math.prod(event_shape))
    var = torch.logspace(math.log10(min_var), math.log10(max_var), D, dtype=torch.float64)
    var = var[torch.randperm(D, generator=torch.Generator().manual_seed(seed))]
    return Gaussian(_sine_mean(D, mean_scale), var, event_shape=event_shape)


def correlated_gaussian(
    dim: int = 8, min_var: float = 0.05, max_var: float = 1.0, seed: int = 0
) -> Gaussian:
    """Full-covariance Gaussian: eigenvalues geometric in ``[min_var, max_var]``, a random
    orthogonal eigenbasis and a random mean, both fixed by ``seed``."""
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=torch.float64))
    lam = torch.logspace(math.log10(min_var), math.log10(max_var), dim, dtype=torch.float64)
    cov = (Q * lam) @ Q.T
    mean = torch.randn(dim, generator=g, dtype=torch.float64) * 0.5
    return Gaussian(mean, 0.5 * (cov + cov.T))


PRESETS: Dict[str, Callable[..., _Toy]] = {
    "ring": ring,
    "checkerboard": checkerboard,
    "high_dim_gaussian": high_dim_gaussian,
    "spectrum_gaussian": spectrum_gaussian,
    "correlated_gaussian": correlated_gaussian,
}


def get_toy(name: str, **kwargs) -> _Toy:
    """Build a preset by name; an unknown name raises ``ValueError`` listing the valid ones."""
    if name not in PRESETS:
        raise ValueError(f"unknown toy distribution {name!r}; valid names are: {', '.join(PRESETS)}")
    return PRESETS[name](**kwargs)
