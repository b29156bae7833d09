"""Forward and reverse-time SDEs of Song et al. (2021), "Score-Based Generative Modeling through
Stochastic Differential Equations" (ICLR 2021), Sec. 3 and App. B.

Every SDE here is linear with scalar coefficients,

    dx = f(t) x dt + g(t) dw,                                              (Eq. 5)

so its perturbation kernel is Gaussian, ``p_0t(x_t | x_0) = N(alpha(t) x_0, sigma(t)^2 I)``
(Eq. 29 for VP, Eq. 31 for VE, Eq. 34 for sub-VP), and so is the transition over any step.
Each class gives these in closed form; the generic pieces (reverse SDE, probability-flow ODE,
exact discrete transitions, ancestral and Langevin step coefficients) live on the base class,
so a sampler never needs to know which SDE it drives.

**The schedule layer.** Samplers, losses, the likelihood and the model adapter see an SDE only
through ``drift_coeff(t) = f(t)``, ``diffusion(t) = g(t)``, the kernel ``marginal_coeffs(t) =
(alpha, sigma)`` and its time derivative, the half log-SNR ``log_snr(t) = log(alpha / sigma)``
(Lu et al. 2022, Sec. 3.1) and its inverse ``t_from_log_snr``. The kernel determines the SDE:
``f = d log alpha / dt`` and ``g^2 = d sigma^2 / dt - 2 f sigma^2`` (App. B). Every class gives
``lambda`` and its inverse in closed form; the base class falls back on ``log(alpha / sigma)``
and bisection for an SDE that has none.

Conventions: data ``x`` has shape ``(B, *D)``, times ``t`` shape ``(B,)``. All computations run
on the device and in the dtype of the inputs.
"""
from __future__ import annotations

import abc
import math
from typing import Dict, Optional, Tuple

import torch

from .types import Device, ScoreFn, Shape, Tensor
from .utils import append_dims, batch_sum

__all__ = ["SDE", "VPSDE", "SubVPSDE", "VESDE", "RectifiedFlow", "ReverseSDE"]


class SDE(abc.ABC):
    """Base class of a forward SDE ``dx = f(x, t) dt + g(t) dw`` on ``t in [0, T]``.

    Subclasses give the closed forms: :meth:`drift_coeff`, :meth:`diffusion`,
    :meth:`marginal_coeffs`, :meth:`transition` and :meth:`discrete_transition`, and the prior
    standard deviation :attr:`prior_std`; closed forms of :meth:`log_snr`,
    :meth:`t_from_log_snr` and :meth:`marginal_coeffs_derivative` where the generic ones would
    lose precision or bisect.

    Args:
        N: number of steps of the default discretization (the discrete chain of DDPM / SMLD).
    """

    T: float = 1.0
    #: noise of the ancestral step: ``"beta"`` (the forward step's variance, DDPM's
    #: ``sigma_t^2 = beta_t``) or ``"posterior"`` (``tilde beta``, SMLD's ancestral sampler).
    ancestral_variance: str = "posterior"

    def __init__(self, N: int) -> None:
        if not isinstance(N, int) or N < 1:
            raise ValueError(f"N must be a positive integer number of steps; got {N!r}")
        self.N = N
        self._cache: Dict[Tuple[str, torch.device, torch.dtype], Tensor] = {}

    # ----------------------------------------------------------------------------------------
    # Closed forms each SDE provides.
    @abc.abstractmethod
    def drift_coeff(self, t: Tensor) -> Tensor:
        """``f(t)`` of the linear drift ``f(x, t) = f(t) x`` (Eq. 5), shape of ``t``."""

    @abc.abstractmethod
    def diffusion(self, t: Tensor) -> Tensor:
        """Diffusion coefficient ``g(t)``, shape of ``t``."""

    @abc.abstractmethod
    def marginal_coeffs(self, t: Tensor) -> Tuple[Tensor, Tensor]:
        """Scale ``alpha(t)`` and standard deviation ``sigma(t)`` of the perturbation kernel.

        ``p_0t(x_t | x_0) = N(alpha(t) x_0, sigma(t)^2 I)``; both outputs have shape ``(B,)``.
        """

    @abc.abstractmethod
    def transition(self, t: Tensor, dt: Tensor | float) -> Tuple[Tensor, Tensor]:
        """Exact transition of the SDE over ``[t - dt, t]``.

        ``x_t = m x_{t - dt} + sqrt(v) z`` with ``z ~ N(0, I)``. Returns ``(m, v)``, each
        ``(B,)``, computed in a cancellation-free form (``v`` stays accurate for tiny ``dt``).
        """

    @abc.abstractmethod
    def discrete_transition(self, t: Tensor) -> Tuple[Tensor, Tensor]:
        """Transition ``(m, v)`` of step ``i = discrete_index(t)`` of the ``N``-step chain."""

    @property
    @abc.abstractmethod
    def prior_std(self) -> float:
        """Standard deviation of the isotropic Gaussian prior ``p_T = N(0, prior_std^2 I)``."""

    # ----------------------------------------------------------------------------------------
    # Generic members built from the closed forms.
    def sde(self, x: Tensor, t: Tensor) -> Tuple[Tensor, Tensor]:
        """Drift ``f(x, t) = f(t) x`` (shape of ``x``) and diffusion ``g(t)`` (shape ``(B,)``)."""
        return append_dims(self.drift_coeff(t), x.ndim) * x, self.diffusion(t)

    def marginal_coeffs_derivative(self, t: Tensor) -> Tuple[Tensor, Tensor]:
        """Time derivatives ``(alpha'(t), sigma'(t))`` of the kernel coefficients, each ``(B,)``.

        From the moment equations of Eq. 5 (App. B): ``alpha' = f alpha`` and
        ``(sigma^2)' = 2 f sigma^2 + g^2``, i.e. ``sigma' = f sigma + g^2 / (2 sigma)``.
        """
        alpha, sigma = self.marginal_coeffs(t)
        f, g = self.drift_coeff(t), self.diffusion(t)
        return f * alpha, f * sigma + g * g / (2 * sigma)

    def log_snr(self, t: Tensor) -> Tensor:
        """Half log-SNR ``lambda(t) = log(alpha(t) / sigma(t))`` (Lu et al. 2022, Sec. 3.1).

        It is ``-log sigma_edm(t)`` with Karras et al.'s (2022) noise level ``sigma / alpha``,
        and strictly decreasing in ``t``. Shape and dtype of ``t``.
        """
        alpha, sigma = self.marginal_coeffs(t)
        return alpha.log() - sigma.log()

    def t_from_log_snr(self, lam: Tensor) -> Tensor:
        """Inverse of :meth:`log_snr`: the time ``t`` with ``lambda(t) = lam``, any shape.

        Closed forms (VP, sub-VP, VE, rectified flow) hold for every ``lam``, giving times
        outside ``[0, T]`` for ``lam`` outside ``[lambda(T), lambda(0)]``. This generic
        fallback bisects in float64 on ``[0, T]`` (100 halvings, to the last bit; ``lambda``
        decreases, so each step keeps the half holding the root) and clamps to ``[0, T]``.
        """
        target = lam.to(torch.float64)
        lo = torch.zeros_like(target)
        hi = torch.full_like(target, float(self.T))
        for _ in range(100):
            mid = 0.5 * (lo + hi)
            later = self.log_snr(mid.reshape(-1)).reshape(mid.shape) > target
            lo = torch.where(later, mid, lo)
            hi = torch.where(later, hi, mid)
        return (0.5 * (lo + hi)).to(lam.dtype)

    def marginal_prob(self, x0: Tensor, t: Tensor) -> Tuple[Tensor, Tensor]:
        """Mean ``(B, *D)`` and std ``(B,)`` of the perturbation kernel ``p_0t(x_t | x_0)``."""
        alpha, sigma = self.marginal_coeffs(t)
        return append_dims(alpha, x0.ndim) * x0, sigma

    def prior_sampling(
        self,
        shape: Shape,
        generator: Optional[torch.Generator] = None,
        device: Device = None,
        dtype: Optional[torch.dtype] = None,
    ) -> Tensor:
        """Draw ``shape = (B, *D)`` samples from the prior ``p_T``.

        ``device`` defaults to the generator's device (or the CPU without one).
        """
        if device is None and generator is not None:
            device = generator.device
        z = torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype)
        return z * self.prior_std

    def prior_logp(self, z: Tensor) -> Tensor:
        """Log-density of ``p_T`` at ``z`` ``(B, *D)`` in nats, summed over non-batch dims."""
        D = z[0].numel()
        s2 = self.prior_std**2
        return -0.5 * D * math.log(2 * math.pi * s2) - batch_sum(z * z) / (2 * s2)

    def discrete_index(self, t: Tensor) -> Tensor:
        """Index ``i`` of the ``N``-step chain for continuous time ``t``: ``floor(t (N-1) / T)``.

        A margin of ``1e-4`` index units absorbs float32 rounding of grid times, so that the grid
        ``linspace(T, eps, N)`` maps to indices ``N-1, ..., 0`` for any ``eps < 1/(N-1)``.
        Returns a ``long`` tensor of shape ``(B,)`` clamped to ``[0, N-1]``.
        """
        i = torch.floor(t.double() * ((self.N - 1) / self.T) + 1e-4)
        return i.long().clamp_(0, self.N - 1)

    def discrete_marginal_coeffs(self, t: Tensor) -> Tuple[Tensor, Tensor]:
        """``(alpha_i, sigma_i)`` of the ``N``-step chain's marginal at ``i = discrete_index(t)``.

        The default evaluates the continuous kernel at the grid time ``i T / (N-1)``.
        """
        i = self.discrete_index(t)
        return self.marginal_coeffs(i.to(t.dtype) * (self.T / max(self.N - 1, 1)))

    def discretize(
        self, x: Tensor, t: Tensor, dt: Tensor | float | None = None
    ) -> Tuple[Tensor, Tensor]:
        """One step of a discrete forward chain ending at ``t``: ``x_t = x + f + G z``.

        With ``dt=None`` this is step ``discrete_index(t)`` of the SDE's own ``N``-step chain
        (DDPM for VP, SMLD for VE, Euler-Maruyama for sub-VP). With a step size ``dt`` it is
        the exact transition of the SDE over ``[t - dt, t]``, which stays a valid Gaussian step
        for any ``dt`` (``m > 0``, ``0 <= v``): this is what samplers use on grids other
        than the ``N``-step one.

        Returns:
            ``f`` with the shape of ``x`` and ``G`` of shape ``(B,)``.
        """
        m, v = self._step(t, dt)
        return (append_dims(m, x.ndim) - 1) * x, v.sqrt()

    def _step(self, t: Tensor, dt: Tensor | float | None) -> Tuple[Tensor, Tensor]:
        return self.discrete_transition(t) if dt is None else self.transition(t, dt)

    def _step_sigma2(self, t: Tensor, dt: Tensor | float | None) -> Tensor:
        """Marginal variance at ``t`` consistent with the step chosen by ``dt``."""
        _, sigma = self.marginal_coeffs(t) if dt is not None else self.discrete_marginal_coeffs(t)
        return sigma * sigma

    def ancestral_step(
        self,
        x: Tensor,
        t: Tensor,
        score: Tensor,
        dt: Tensor | float | None = None,
        variance: Optional[str] = None,
    ) -> Tuple[Tensor, Tensor]:
        """Mean and std of the ancestral (posterior) step from ``t`` back to ``t - dt``.

        With the forward step ``x_t = m x_s + sqrt(v) z`` and Tweedie's estimate
        ``x0 = (x_t + sigma_t^2 score) / alpha_t``, the posterior mean of ``x_s`` is exactly
        ``(x_t + v score) / m`` (Ho et al. 2020, Eq. 11; Song et al. 2021, Eq. 47 and 48).
        Its variance is ``v`` for ``variance="beta"`` (DDPM's ``sigma_t^2 = beta_t``) or the
        posterior ``v sigma_s^2 / sigma_t^2`` for ``variance="posterior"``; ``None`` takes the
        SDE's :attr:`ancestral_variance`.

        Returns:
            ``x_mean`` with the shape of ``x`` and the noise std of shape ``(B,)``.
        """
        variance = self.ancestral_variance if variance is None else variance
        m, v = self._step(t, dt)
        x_mean = (x + append_dims(v, x.ndim) * score) / append_dims(m, x.ndim)
        if variance == "beta":
            return x_mean, v.sqrt()
        if variance == "posterior":
            sigma2_t = self._step_sigma2(t, dt)
            sigma2_s = ((sigma2_t - v) / (m * m)).clamp(min=0)
            return x_mean, (v * sigma2_s / sigma2_t).sqrt()
        raise ValueError(f"unknown variance={variance!r}; valid values are: 'beta', 'posterior'")

    def langevin_alpha(self, t: Tensor, dt: Tensor | float | None = None) -> Tensor:
        """Scale ``alpha_i`` of the Langevin corrector's step (Song et al. 2021, Alg. 5).

        This is ``m^2`` of the step chosen by ``dt``: ``1 - beta_i`` for VP and sub-VP, ``1``
        for VE. Shape ``(B,)``.
        """
        m, _ = self._step(t, dt)
        return m * m

    def reverse(self, score_fn: ScoreFn, probability_flow: bool = False) -> "ReverseSDE":
        """The reverse-time SDE (Eq. 6) or, with ``probability_flow=True``, the ODE (Eq. 13)."""
        return ReverseSDE(self, score_fn, probability_flow)

    # ----------------------------------------------------------------------------------------
    def _table(self, name: str, ref: Tensor) -> Tensor:
        """A float64 table of the discrete chain, cached on ``ref``'s device in its dtype."""
        key = (name, ref.device, ref.dtype)
        table = self._cache.get(key)
        if table is None:
            table = getattr(self, "_" + name + "64").to(device=ref.device, dtype=ref.dtype)
            self._cache[key] = table
        return table

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._repr_args().items())
        return f"{type(self).__name__}({args})"

    def _repr_args(self) -> Dict[str, object]:
        return {"N": self.N}


def _as_tensor(dt: Tensor | float, ref: Tensor) -> Tensor:
    return torch.as_tensor(dt, device=ref.device, dtype=ref.dtype)


class _LinearBetaSDE(SDE):
    """Shared pieces of VP and sub-VP: ``beta(t) = beta_min + t (beta_max - beta_min)``."""

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, N: int = 1000) -> None:
        super().__init__(N)
        if not 0 <= beta_min <= beta_max:
            raise ValueError(
                f"need 0 <= beta_min <= beta_max; got beta_min={beta_min}, beta_max={beta_max}"
            )
        self.beta_min = float(beta_min)
        self.beta_max = float(beta_max)

    def beta(self, t: Tensor) -> Tensor:
        """``beta(t) = beta_min + t (beta_max - beta_min)``, shape ``(B,)``."""
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def integrated_beta(self, t: Tensor) -> Tensor:
        """``B(t) = int_0^t beta(s) ds = beta_min t + (beta_max - beta_min) t^2 / 2``."""
        return t * (self.beta_min + 0.5 * t * (self.beta_max - self.beta_min))

    def t_from_integrated_beta(self, B: Tensor) -> Tensor:
        """Inverse of :meth:`integrated_beta`, the positive root of the quadratic:
        ``t = 2 B / (beta_min + sqrt(beta_min^2 + 2 (beta_max - beta_min) B))``."""
        b0, db = self.beta_min, self.beta_max - self.beta_min
        return 2 * B / (b0 + (b0 * b0 + 2 * db * B).sqrt())

    def drift_coeff(self, t: Tensor) -> Tensor:
        return -0.5 * self.beta(t)

    def _integrated_beta_step(self, t: Tensor, dt: Tensor) -> Tensor:
        """``B(t) - B(t - dt)`` without cancellation: ``dt (beta_min + (b1 - b0)(2t - dt)/2)``."""
        return dt * (self.beta_min + 0.5 * (self.beta_max - self.beta_min) * (2 * t - dt))

    @property
    def prior_std(self) -> float:
        return 1.0

    def _repr_args(self) -> Dict[str, object]:
        return {"beta_min": self.beta_min, "beta_max": self.beta_max, "N": self.N}


class VPSDE(_LinearBetaSDE):
    """Variance-preserving SDE (Song et al. 2021, Eq. 11), the continuous limit of DDPM.

    ``dx = -1/2 beta(t) x dt + sqrt(beta(t)) dw``, ``beta(t) = beta_min + t (beta_max - beta_min)``.
    Kernel (Eq. 29): ``alpha(t) = exp(-B(t)/2)``, ``sigma(t)^2 = 1 - exp(-B(t))`` with
    ``B(t) = int_0^t beta``. Prior ``N(0, I)``.

    The ``N``-step chain is DDPM's (Ho et al. 2020): ``discrete_betas = linspace(beta_min/N,
    beta_max/N, N)`` (``linspace(1e-4, 0.02, 1000)`` for the defaults), and
    ``discretize(x, t)`` is the DDPM forward step ``x_i = sqrt(1 - beta_i) x_{i-1} +
    sqrt(beta_i) z``.

    Args:
        beta_min: ``beta(0)``; the DDPM table starts at ``beta_min / N``.
        beta_max: ``beta(1)``; the DDPM table ends at ``beta_max / N``.
        N: number of discrete steps.
    """

    ancestral_variance = "beta"

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, N: int = 1000) -> None:
        super().__init__(beta_min, beta_max, N)
        self._betas64 = torch.linspace(beta_min / N, beta_max / N, N, dtype=torch.float64)
        self._alphas64 = 1.0 - self._betas64
        self._alphas_cumprod64 = torch.cumprod(self._alphas64, dim=0)

    @property
    def discrete_betas(self) -> Tensor:
        """DDPM's ``beta_i``, ``(N,)``, default dtype: ``linspace(beta_min/N, beta_max/N, N)``."""
        return torch.linspace(self.beta_min / self.N, self.beta_max / self.N, self.N)

    @property
    def alphas(self) -> Tensor:
        """``alpha_i = 1 - beta_i``, ``(N,)``."""
        return 1.0 - self.discrete_betas

    @property
    def alphas_cumprod(self) -> Tensor:
        """``bar alpha_i = prod_{j <= i} alpha_j``, ``(N,)`` (accumulated in float64)."""
        return self._alphas_cumprod64.to(torch.get_default_dtype())

    def diffusion(self, t: Tensor) -> Tensor:
        return self.beta(t).sqrt()

    def marginal_coeffs(self, t: Tensor) -> Tuple[Tensor, Tensor]:
        B = self.integrated_beta(t)
        return torch.exp(-0.5 * B), (-torch.expm1(-B)).sqrt()

    def marginal_coeffs_derivative(self, t: Tensor) -> Tuple[Tensor, Tensor]:
        # alpha' = -beta alpha / 2 and (sigma^2)' = -(alpha^2)' = beta alpha^2.
        alpha, sigma = self.marginal_coeffs(t)
        beta_t = self.beta(t)
        return -0.5 * beta_t * alpha, 0.5 * beta_t * alpha * alpha / sigma

    def log_snr(self, t: Tensor) -> Tensor:
        # e^{-2 lambda} = sigma^2 / alpha^2 = e^B - 1.
        return -0.5 * torch.log(torch.expm1(self.integrated_beta(t)))

    def t_from_log_snr(self, lam: Tensor) -> Tensor:
        # B = log(1 + e^{-2 lambda}), then the quadratic B(t) = B.
        return self.t_from_integrated_beta(torch.nn.functional.softplus(-2 * lam))

    def transition(self, t: Tensor, dt: Tensor | float) -> Tuple[Tensor, Tensor]:
        # x_t = sqrt(abar_t / abar_s) x_s + sqrt(1 - abar_t / abar_s) z.
        dB = self._integrated_beta_step(t, _as_tensor(dt, t))
        return torch.exp(-0.5 * dB), -torch.expm1(-dB)

    def discrete_transition(self, t: Tensor) -> Tuple[Tensor, Tensor]:
        i = self.discrete_index(t)
        return self._table("alphas", t)[i].sqrt(), self._table("betas", t)[i]

    def discrete_marginal_coeffs(self, t: Tensor) -> Tuple[Tensor, Tensor]:
        abar = self._table("alphas_cumprod", t)[self.discrete_index(t)]
        return abar.sqrt(), (1.0 - abar).sqrt()


class SubVPSDE(_LinearBetaSDE):
    """Sub-VP SDE (Song et al. 2021, Eq. 12): VP's drift with less diffusion.

    ``dx = -1/2 beta(t) x dt + sqrt(beta(t) (1 - exp(-2 B(t)))) dw``.
    Kernel (Eq. 34): ``alpha(t) = exp(-B(t)/2)``, ``sigma(t) = 1 - exp(-B(t))``, so its
    variance is bounded by VP's at every ``t``. Prior ``N(0, I)``. The ``N``-step chain is the
    Euler-Maruyama discretization with step ``1/N`` (the paper gives it no discrete model).

    Args:
        beta_min: ``beta(0)``.
        beta_max: ``beta(1)``.
        N: number of discrete steps.
    """

    def diffusion(self, t: Tensor) -> Tensor:
        return (self.beta(t) * -torch.expm1(-2.0 * self.integrated_beta(t))).sqrt()

    def marginal_coeffs(self, t: Tensor) -> Tuple[Tensor, Tensor]:
        B = self.integrated_beta(t)
        return torch.exp(-0.5 * B), -torch.expm1(-B)

    def marginal_coeffs_derivative(self, t: Tensor) -> Tuple[Tensor, Tensor]:
        # alpha' = -beta alpha / 2 and sigma' = beta e^{-B} = beta alpha^2.
        alpha, _ = self.marginal_coeffs(t)
        beta_t = self.beta(t)
        return -0.5 * beta_t * alpha, beta_t * alpha * alpha

    def log_snr(self, t: Tensor) -> Tensor:
        B = self.integrated_beta(t)
        return -0.5 * B - torch.log(-torch.expm1(-B))

    def t_from_log_snr(self, lam: Tensor) -> Tensor:
        # With u = e^{-B/2}: u / (1 - u^2) = e^lambda, so 1/u = y + sqrt(y^2 + 1) with
        # y = e^{-lambda} / 2, i.e. B = 2 asinh(e^{-lambda} / 2).
        return self.t_from_integrated_beta(2 * torch.asinh(0.5 * torch.exp(-lam)))

    def transition(self, t: Tensor, dt: Tensor | float) -> Tuple[Tensor, Tensor]:
        # With a = e^{-B(t)}, b = e^{-B(s)}: v = sigma_t^2 - m^2 sigma_s^2 = (1 - a/b)(1 - a b).
        dt = _as_tensor(dt, t)
        dB = self._integrated_beta_step(t, dt)
        sum_B = self.integrated_beta(t) + self.integrated_beta(t - dt)
        return torch.exp(-0.5 * dB), torch.expm1(-dB) * torch.expm1(-sum_B)

    def discrete_transition(self, t: Tensor) -> Tuple[Tensor, Tensor]:
        # Euler-Maruyama with dt = 1/N: x + f(t) x dt + g(t) sqrt(dt) z.
        beta_t = self.beta(t)
        g2 = beta_t * -torch.expm1(-2.0 * self.integrated_beta(t))
        return 1.0 - 0.5 * beta_t / self.N, g2 / self.N


class VESDE(SDE):
    """Variance-exploding SDE (Song et al. 2021, Eq. 9), the continuous limit of SMLD / NCSN.

    ``dx = sqrt(d sigma^2(t) / dt) dw`` with ``sigma(t) = sigma_min (sigma_max/sigma_min)^t``.
    Kernel (Eq. 31, as in the paper's code): ``alpha = 1``, ``sigma(t)``. Prior
    ``N(0, sigma_max^2 I)``. The ``N``-step chain is SMLD's: ``discrete_sigmas`` geometric
    from ``sigma_min`` to ``sigma_max`` and ``x_i = x_{i-1} + sqrt(sigma_i^2 - sigma_{i-1}^2) z``
    with ``sigma_{-1} = 0``.

    Args:
        sigma_min: smallest noise level ``sigma(0)``.
        sigma_max: largest noise level ``sigma(1)``; should be about the largest pairwise
            distance in the data (Song & Ermon 2020, Technique 1).
        N: number of discrete noise levels.
    """

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0, N: int = 1000) -> None:
        super().__init__(N)
        if not 0 < sigma_min < sigma_max:
            raise ValueError(
                f"need 0 < sigma_min < sigma_max; got sigma_min={sigma_min}, sigma_max={sigma_max}"
            )
        self.sigma_min = float(sigma_min)
        self.sigma_max = float(sigma_max)
        self._log_ratio = math.log(self.sigma_max / self.sigma_min)
        self._sigmas64 = torch.exp(
            torch.linspace(math.log(sigma_min), math.log(sigma_max), N, dtype=torch.float64)
        )

    @property
    def discrete_sigmas(self) -> Tensor:
        """SMLD's noise levels ``sigma_i``, ``(N,)``, geometric from ``sigma_min`` to ``sigma_max``."""
        return self._sigmas64.to(torch.get_default_dtype())

    @property
    def prior_std(self) -> float:
        return self.sigma_max

    def sigma(self, t: Tensor) -> Tensor:
        """``sigma(t) = sigma_min (sigma_max / sigma_min)^t``, shape ``(B,)``."""
        return self.sigma_min * torch.exp(t * self._log_ratio)

    def drift_coeff(self, t: Tensor) -> Tensor:
        return torch.zeros_like(t)

    def diffusion(self, t: Tensor) -> Tensor:
        return self.sigma(t) * math.sqrt(2 * self._log_ratio)

    def marginal_coeffs(self, t: Tensor) -> Tuple[Tensor, Tensor]:
        return torch.ones_like(t), self.sigma(t)

    def marginal_coeffs_derivative(self, t: Tensor) -> Tuple[Tensor, Tensor]:
        return torch.zeros_like(t), self.sigma(t) * self._log_ratio

    def log_snr(self, t: Tensor) -> Tensor:
        return -(math.log(self.sigma_min) + t * self._log_ratio)

    def t_from_log_snr(self, lam: Tensor) -> Tensor:
        return (-lam - math.log(self.sigma_min)) / self._log_ratio

    def transition(self, t: Tensor, dt: Tensor | float) -> Tuple[Tensor, Tensor]:
        # v = sigma_t^2 - sigma_s^2 = sigma_t^2 (1 - (sigma_max/sigma_min)^(-2 dt)).
        dt = _as_tensor(dt, t)
        sigma_t = self.sigma(t)
        return torch.ones_like(t), -(sigma_t * sigma_t) * torch.expm1(-2 * self._log_ratio * dt)

    def discrete_transition(self, t: Tensor) -> Tuple[Tensor, Tensor]:
        i = self.discrete_index(t)
        sigmas = self._table("sigmas", t)
        prev = torch.where(i > 0, sigmas[(i - 1).clamp(min=0)], torch.zeros_like(sigmas[i]))
        return torch.ones_like(t), sigmas[i] ** 2 - prev**2

    def discrete_marginal_coeffs(self, t: Tensor) -> Tuple[Tensor, Tensor]:
        return torch.ones_like(t), self._table("sigmas", t)[self.discrete_index(t)]

    def _repr_args(self) -> Dict[str, object]:
        return {"sigma_min": self.sigma_min, "sigma_max": self.sigma_max, "N": self.N}


class RectifiedFlow(SDE):
    """The linear path of rectified flow / flow matching as an SDE (Liu et al. 2023; Lipman et
    al. 2023): ``x_t = (1 - t) x_0 + t z``, ``z ~ N(0, I)``.

    Its kernel ``alpha(t) = 1 - t``, ``sigma(t) = t`` fixes the SDE (moment equations of Eq. 5):
    ``f(t) = d log alpha / dt = -1 / (1 - t)`` and
    ``g(t)^2 = d sigma^2 / dt - 2 f sigma^2 = 2t + 2t^2 / (1 - t) = 2t / (1 - t)``.
    The half log-SNR is ``lambda(t) = log((1 - t) / t)``, so ``t(lambda) = sigmoid(-lambda)``.
    Prior ``N(0, I)``.

    **The end point.** At ``t = 1`` the signal vanishes (``alpha = 0``, ``lambda = -inf``) and
    ``f``, ``g`` are infinite, so the SDE stops at ``T = 1 - delta`` (default ``delta = 1e-3``):
    every member is finite on ``[0, T]`` and every sampler starts there from the prior, as it
    does for VP, whose ``alpha(1) = e^{-5.0} = 6.7e-3`` is a weaker signal than ``delta``. The
    mismatch between ``p_T = N(delta mean, delta^2 cov + (1 - delta)^2 I)`` and the prior costs
    about ``delta`` per dimension in the prior term of the likelihood.
    The probability-flow drift ``f x - g^2 score / 2`` is a difference of two terms of size
    ``1 / (1 - t)`` whose sum stays bounded (for ``N(0, I)`` data it is ``(2t - 1) x /
    (t^2 + (1 - t)^2)``); samplers that step in ``t`` with the reverse SDE's drift directly
    (Euler-Maruyama, torchsde, the adaptive solver) take their first steps where
    ``|f| dt ~ 1``; their error there decays like ``dt / (1 - t)`` as they move away from ``T``.

    The ``N``-step chain is the exact transition between the times ``t_i = (i + 1) T / N``
    (step ``i`` goes from ``t_{i-1}`` to ``t_i``, with ``t_{-1} = 0``).

    Args:
        T: end time ``1 - delta``, in ``(0, 1)``.
        N: number of discrete steps.
    """

    def __init__(self, T: float = 0.999, N: int = 1000) -> None:
        super().__init__(N)
        if not 0 < T < 1:
            raise ValueError(f"T must lie in (0, 1) (the path ends at alpha(1) = 0); got T={T}")
        self.T = float(T)

    @property
    def prior_std(self) -> float:
        return 1.0

    def drift_coeff(self, t: Tensor) -> Tensor:
        return -1 / (1 - t)

    def diffusion(self, t: Tensor) -> Tensor:
        return (2 * t / (1 - t)).sqrt()

    def marginal_coeffs(self, t: Tensor) -> Tuple[Tensor, Tensor]:
        return 1 - t, t.clone()

    def marginal_coeffs_derivative(self, t: Tensor) -> Tuple[Tensor, Tensor]:
        return -torch.ones_like(t), torch.ones_like(t)

    def log_snr(self, t: Tensor) -> Tensor:
        return torch.log1p(-t) - t.log()

    def t_from_log_snr(self, lam: Tensor) -> Tensor:
        return torch.sigmoid(-lam)

    def transition(self, t: Tensor, dt: Tensor | float) -> Tuple[Tensor, Tensor]:
        # From s = t - dt, with u = 1 - t and 1 - s = u + dt (no rounding of s enters):
        # m = u / (u + dt) and v = t^2 - m^2 s^2 = dt (2 t u + dt (2t - 1)) / (u + dt)^2.
        dt = _as_tensor(dt, t)
        u = 1 - t
        w = u + dt
        return u / w, dt * (2 * t * u + dt * (2 * t - 1)) / (w * w)

    def discrete_transition(self, t: Tensor) -> Tuple[Tensor, Tensor]:
        i = self.discrete_index(t)
        t_i = (i + 1).to(t.dtype) * (self.T / self.N)
        return self.transition(t_i, self.T / self.N)

    def discrete_marginal_coeffs(self, t: Tensor) -> Tuple[Tensor, Tensor]:
        i = self.discrete_index(t)
        return self.marginal_coeffs((i + 1).to(t.dtype) * (self.T / self.N))

    def _repr_args(self) -> Dict[str, object]:
        return {"T": self.T, "N": self.N}


class ReverseSDE:
    """Reverse-time SDE (Song et al. 2021, Eq. 6) or probability-flow ODE (Eq. 13).

    ``dx = [f(x, t) - c g(t)^2 score(x, t)] dt + g_rev(t) dw_bar`` with ``c = 1``,
    ``g_rev = g`` for the SDE and ``c = 1/2``, ``g_rev = 0`` for the ODE. The drift is given in
    forward-time units: a sampler stepping from ``t`` to ``t - dt`` moves by ``-drift * dt``.

    Args:
        sde: the forward SDE.
        score_fn: ``score_fn(x, t)`` approximating ``grad_x log p_t(x)``.
        probability_flow: build the probability-flow ODE instead of the reverse SDE.
    """

    def __init__(self, sde: SDE, score_fn: ScoreFn, probability_flow: bool = False) -> None:
        self.forward_sde = sde
        self.score_fn = score_fn
        self.probability_flow = probability_flow
        self._c = 0.5 if probability_flow else 1.0

    @property
    def T(self) -> float:
        return self.forward_sde.T

    @property
    def N(self) -> int:
        return self.forward_sde.N

    def sde(self, x: Tensor, t: Tensor) -> Tuple[Tensor, Tensor]:
        """Reverse drift (shape of ``x``) and diffusion ``(B,)`` at ``(x, t)``."""
        f, g = self.forward_sde.sde(x, t)
        score = self.score_fn(x, t)
        drift = torch.addcmul(f, append_dims(self._c * g * g, x.ndim), score, value=-1)
        return drift, torch.zeros_like(g) if self.probability_flow else g

    def discretize(
        self, x: Tensor, t: Tensor, dt: Tensor | float | None = None
    ) -> Tuple[Tensor, Tensor]:
        """Reverse of :meth:`SDE.discretize`: ``x_{t-dt} = x - rev_f + rev_G z`` (Eq. 46)."""
        f, G = self.forward_sde.discretize(x, t, dt)
        score = self.score_fn(x, t)
        rev_f = torch.addcmul(f, append_dims(self._c * G * G, x.ndim), score, value=-1)
        return rev_f, torch.zeros_like(G) if self.probability_flow else G
