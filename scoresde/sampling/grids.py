"""Time grids for the samplers. Grids live on the host (lists of Python floats), so sampling
loops never read a device tensor to decide what to do next."""
from __future__ import annotations

import math
from typing import Callable, Dict, List, Sequence, Tuple

import torch

from ..sde import SDE, VPSDE


def uniform_grid(T: float, eps: float, steps: int) -> List[float]:
    """``linspace(T, eps, steps)`` as floats: the times at which a sampler evaluates the score."""
    if steps == 1:
        return [float(T)]
    h = (T - eps) / (steps - 1)
    return [float(T - i * h) if i < steps - 1 else float(eps) for i in range(steps)]


def step_pairs(grid: List[float], t_end: float = 0.0) -> List[Tuple[float, float]]:
    """``(t_i, t_{i+1})`` for each grid time, the last one ending at ``t_end``."""
    return list(zip(grid, grid[1:] + [float(t_end)]))


# ----------------------------------------------------------------------------------------------
# Grids of the fast samplers. Each SDE enters only through its half log-SNR ``sde.log_snr`` and
# its inverse ``sde.t_from_log_snr`` (closed forms for every SDE of scoresde.sde), evaluated
# here in float64 on the host.
def log_snr(sde: SDE, t: Sequence[float]) -> List[float]:
    """Half log-SNR ``lambda(t) = log(alpha_t / sigma_t)`` (Lu et al. 2022, Sec. 3.1), in float64.

    It is ``-log sigma_edm(t)`` with Karras et al.'s (2022) noise level ``sigma_t / alpha_t``.
    """
    return sde.log_snr(torch.as_tensor(list(t), dtype=torch.float64)).tolist()


def time_from_log_snr(sde: SDE, lam: Sequence[float]) -> List[float]:
    """Inverse of :func:`log_snr` on ``[0, T]``: the times ``t`` with ``lambda(t) = lam``, from
    the SDE's closed form :meth:`~scoresde.SDE.t_from_log_snr` (``lambda`` is strictly
    decreasing for every diffusion). Values beyond ``lambda(T)`` or ``lambda(0)`` give ``T``
    or ``0``."""
    t = sde.t_from_log_snr(torch.as_tensor(list(lam), dtype=torch.float64))
    return t.clamp(0.0, float(sde.T)).tolist()


def _check_decreasing(grid: List[float], what: str) -> List[float]:
    if any(not b < a for a, b in zip(grid, grid[1:])):
        raise ValueError(f"the {what} grid is not strictly decreasing in t: is the SDE's "
                         f"log-SNR log(alpha/sigma) decreasing in t? got {grid}")
    return grid


def log_snr_grid(sde: SDE, eps: float, n: int) -> List[float]:
    """``n`` times from ``T`` to ``eps`` equally spaced in ``lambda`` (DPM-Solver's ``logSNR``
    skip type, Lu et al. 2022, Sec. 3.3)."""
    if n == 1:
        return [float(sde.T)]
    return _grid_of_log_snr(sde, eps, _log_snr_uniform(_log_snr_ends(sde, eps), n), "log-SNR")


def _log_snr_ends(sde: SDE, eps: float) -> Tuple[float, float]:
    """``lambda(T)`` and ``lambda(eps)``."""
    lam_T, lam_eps = log_snr(sde, [sde.T, eps])
    return lam_T, lam_eps


def _log_snr_uniform(ends: Tuple[float, float], n: int) -> List[float]:
    """The ``n - 2`` interior ``lambda`` values of :func:`log_snr_grid` (``n >= 2``) between
    ``ends = (lambda(T), lambda(eps))``."""
    lam_T, lam_eps = ends
    return [lam_T + (lam_eps - lam_T) * i / (n - 1) for i in range(1, n - 1)]


def _grid_of_log_snr(sde: SDE, eps: float, lam: List[float], what: str) -> List[float]:
    """``T``, the times of the interior ``lambda`` values ``lam``, and ``eps``."""
    return _check_decreasing([float(sde.T)] + time_from_log_snr(sde, lam) + [float(eps)], what)


def time_quadratic_grid(T: float, eps: float, n: int) -> List[float]:
    """``n`` times from ``T`` to ``eps`` equally spaced in ``sqrt(t)`` (DDIM's quadratic
    spacing, Song, Meng & Ermon 2021, App. D.2; DPM-Solver's ``time_quadratic``)."""
    if n == 1:
        return [float(T)]
    a, b = math.sqrt(T), math.sqrt(eps)
    return [float(T)] + [(a + (b - a) * i / (n - 1)) ** 2 for i in range(1, n - 1)] + [float(eps)]


def edm_sigmas(sigma_min: float, sigma_max: float, n: int, rho: float = 7.0) -> List[float]:
    """Karras et al. (2022), Eq. 5: ``n`` noise levels from ``sigma_max`` to ``sigma_min``,
    equally spaced in ``sigma^(1/rho)``."""
    if n == 1:
        return [float(sigma_max)]
    a, b = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    return [float(sigma_max)] + [(a + (b - a) * i / (n - 1)) ** rho for i in range(1, n - 1)] + [float(sigma_min)]


def edm_rho_grid(sde: SDE, eps: float, n: int, rho: float = 7.0) -> List[float]:
    """``n`` times from ``T`` to ``eps`` whose noise levels ``sigma_edm(t) = sigma_t / alpha_t``
    follow :func:`edm_sigmas` between ``sigma_edm(eps)`` and ``sigma_edm(T)``."""
    if n == 1:
        return [float(sde.T)]
    lam_T, lam_eps = _log_snr_ends(sde, eps)
    sigmas = edm_sigmas(math.exp(-lam_eps), math.exp(-lam_T), n, rho)
    return _grid_of_log_snr(sde, eps, [-math.log(s) for s in sigmas[1:-1]], "EDM rho")


#: ``(beta_min, beta_max)`` of the reference VP SDE of :func:`vp_quadratic_grid`: the linear
#: schedule of DDPM and of Song et al. (2021), whose DDIM time-quadratic grid it carries over.
REFERENCE_VP_BETAS = (0.1, 20.0)
_REFERENCE_VP = VPSDE(*REFERENCE_VP_BETAS)


def vp_quadratic_grid(sde: SDE, eps: float, n: int) -> List[float]:
    """DDIM's time-quadratic spacing of the reference VP SDE, carried to ``sde`` through ``lambda``.

    The probability-flow ODE of ``x / alpha`` in ``lambda`` is the same for every SDE (Lu et al.
    2022, Sec. 3.1; Karras et al. 2022, Sec. 4), so a grid of ``lambda`` values is a
    discretization of the same ODE whichever SDE is sampled. This one takes the ``lambda``
    values of the reference VP SDE (``beta`` from 0.1 to 20, :data:`REFERENCE_VP_BETAS`) at
    times ``tau`` equally spaced in ``sqrt(tau)`` between the ``tau`` whose ``lambda`` equal
    ``lambda(T)`` and ``lambda(eps)`` of ``sde``, and returns the times of ``sde`` with those
    ``lambda``. For the default :class:`~scoresde.VPSDE` it equals :func:`time_quadratic_grid`;
    for VE it keeps the VP grid's step sizes in ``lambda`` (short near ``lambda ~ 0``, longer at
    both ends), where VE's own time-quadratic grid, ``lambda`` being linear in VE's ``t``,
    crowds the small-noise end.
    """
    if n == 1:
        return [float(sde.T)]
    return _grid_of_log_snr(sde, eps, _vp_quadratic_log_snr(_log_snr_ends(sde, eps), n), "VP time-quadratic")


def _vp_quadratic_log_snr(ends: Tuple[float, float], n: int) -> List[float]:
    """The ``n - 2`` interior ``lambda`` values of :func:`vp_quadratic_grid` (``n >= 2``)
    between ``ends = (lambda(T), lambda(eps))``."""
    lam_T, lam_eps = ends
    # The reference VP's times of lambda(T) and lambda(eps), unclamped: a VE SDE with
    # sigma_max > e^5 reaches beyond the reference's T = 1.
    tau_T, tau_eps = _REFERENCE_VP.t_from_log_snr(torch.tensor([lam_T, lam_eps], dtype=torch.float64)).tolist()
    a, b = math.sqrt(tau_T), math.sqrt(tau_eps)
    return log_snr(_REFERENCE_VP, [(a + (b - a) * i / (n - 1)) ** 2 for i in range(1, n - 1)])


def log_snr_quadratic_grid(sde: SDE, eps: float, n: int, weight: float = 0.4) -> List[float]:
    """``n`` times from ``T`` to ``eps`` whose ``lambda`` values lie ``weight`` of the way from
    the :func:`log_snr_grid`'s to the :func:`vp_quadratic_grid`'s (``lambda_i = (1 - weight)
    lambda_i^logSNR + weight lambda_i^quadratic``).

    The log-SNR grid's steps are equal in ``lambda``; DDIM's quadratic grid takes short steps
    at middle noise levels and long ones at both ends. Between the two, the steps are a little
    longer at both ends than in the middle: on trained networks the quadratic grid is the more
    accurate, on Gaussian data (whose data prediction changes fastest at high noise) the
    log-SNR grid; this one beat both at 50 NFE on both kinds of problem
    (docs/fast_samplers.md, "The fixed-budget default").
    """
    if n == 1:
        return [float(sde.T)]
    ends = _log_snr_ends(sde, eps)
    lam = [(1 - weight) * a + weight * b for a, b in zip(_log_snr_uniform(ends, n), _vp_quadratic_log_snr(ends, n))]
    return _grid_of_log_snr(sde, eps, lam, "log-SNR / quadratic")


#: Time grids of the fast samplers by ``skip_type``: ``grid(sde, eps, n) -> n times from T to eps``.
SKIP_TYPES: Dict[str, Callable[[SDE, float, int], List[float]]] = {
    "logSNR": log_snr_grid,
    "time_uniform": lambda sde, eps, n: uniform_grid(sde.T, eps, n),
    "time_quadratic": lambda sde, eps, n: time_quadratic_grid(sde.T, eps, n),
    "edm_rho": lambda sde, eps, n: edm_rho_grid(sde, eps, n),
    "vp_quadratic": vp_quadratic_grid,
    "logSNR_quadratic": log_snr_quadratic_grid,
}


class Schedule:
    """``alpha``, ``sigma`` and ``lambda = log(alpha / sigma)`` at host times, in float64
    (Python lists indexed like ``t``)."""

    def __init__(self, sde: SDE, times: Sequence[float]) -> None:
        self.t = [float(t) for t in times]
        t = torch.as_tensor(self.t, dtype=torch.float64)
        alpha, sigma = sde.marginal_coeffs(t)
        self.alpha = alpha.tolist()
        self.sigma = sigma.tolist()
        self.lam = sde.log_snr(t).tolist()
