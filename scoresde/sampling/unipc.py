"""UniPC for any SDE of :mod:`scoresde.sde`.

**UniPC** (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector Framework for Fast
Sampling of Diffusion Models"). The multistep update (*) or (**) with the derivatives
replaced by differences of model values, weighted to match as many Taylor terms as there
are differences (UniP, Eq. 8); after the model is evaluated at the predicted point (the NFE
the next step needs anyway) the same update with that new value as one more difference
(UniC, Eq. 7) corrects the step, raising its order by one at no extra NFE.

The update (*) / (**) is that of :mod:`scoresde.sampling.dpm_solver`; the coefficients are
computed on the host in float64. Sampling stops at ``eps``; ``denoise=True`` adds
:func:`~scoresde.sampling.denoise_step` (one NFE).
"""
from __future__ import annotations

import math
from typing import Callable, Dict, List, Optional, Tuple, Union

import torch

from ..sde import SDE
from ..types import ScoreFn, Shape, Tensor
from ..utils import check_choice
from ._common import StepCallback, StepReport, finish, start
from .dpm_solver import DEFAULT_DPM_STEPS, model_value
from .grids import SKIP_TYPES, Schedule

__all__ = ["unipc_sampler", "UNIPC_VARIANTS", "phi"]


# UniPC (Zhao et al. 2023).
def phi(k: int, z: float) -> float:
    """``phi_k(z) = int_0^1 e^((1 - u) z) u^(k-1) / (k-1)! du`` (``k >= 1``) in float64.

    ``phi_1(z) = (e^z - 1) / z`` and ``phi_(k+1)(z) = (phi_k(z) - 1/k!) / z``; for small ``|z|``
    the series ``sum_j z^j / (j + k)!`` avoids the cancellation of that recursion.
    """
    if abs(z) < 0.5:
        term, total = 1.0 / math.factorial(k), 0.0
        for j in range(1, 30):  # |z|^30 / 30! < 1e-40
            total += term
            term *= z / (j + k)
            if abs(term) < 1e-17 * total:  # total > 0: the rest is below float64 rounding
                break
        return total
    value = math.expm1(z) / z
    for j in range(1, k):
        value = (value - 1.0 / math.factorial(j)) / z
    return value


#: UniPC's ``B(h)`` (Zhao et al. 2023, Sec. 3.2): ``"bh1"`` is ``h``, ``"bh2"`` is
#: ``h phi_1(z) = e^h - 1`` (noise prediction, ``z = h``) or ``1 - e^-h`` (data, ``z = -h``).
UNIPC_VARIANTS: Dict[str, Callable[[float, float], float]] = {
    "bh1": lambda h, z: h,
    "bh2": lambda h, z: h * phi(1, z),
}


def _difference_weights(h: float, rs: List[float], prediction: str, variant: str) -> List[float]:
    """Weights ``c_m`` of the differences ``D_m = m(lambda_s + r_m h) - m(lambda_s)`` in the
    update (*) / (**) written as ``... + sum_m c_m D_m`` (see :func:`_coefficients`).

    The exact solution integrates the ``k``-th derivative of the model value ``m`` with the
    weight ``h^(k+1) phi_(k+1)(z)`` (``z = h`` for the noise, ``-h`` for the data prediction;
    Zhao et al. 2023, Eq. 6 / App. C), and ``D_m = sum_k (r_m h)^k / k! m^(k)``. Matching the
    first ``K = len(rs)`` derivatives gives the Vandermonde system
    ``sum_m c_m r_m^k = k! h phi_(k+1)(z)``, ``k = 1..K`` (UniPC's ``R_K(h) a = phi_K(h) / B(h)``
    with ``c_m = B(h) a_m / r_m``, Eq. 9-11). For ``K = 1`` the paper instead fixes
    ``a_1 = 1/2``, i.e. ``c_1 = B(h) / (2 r_1)``, which matches the first derivative to
    leading order only; ``B(h)`` matters for that case alone.
    """
    if not rs:
        return []
    z = -h if prediction == "data" else h
    if len(rs) == 1:
        return [UNIPC_VARIANTS[variant](h, z) / (2 * rs[0])]
    K = len(rs)
    vander = [[r ** k for r in rs] for k in range(1, K + 1)]
    rhs = [math.factorial(k) * h * phi(k + 1, z) for k in range(1, K + 1)]
    return _solve(vander, rhs)


def _solve(a: List[List[float]], b: List[float]) -> List[float]:
    """``a^-1 b`` for a small dense system, by Gaussian elimination with partial pivoting on
    host floats (a 2x2 or 3x3 Vandermonde system per step: a torch solve would cost more
    than the step's tensor arithmetic at small batches)."""
    n = len(b)
    m = [row[:] + [v] for row, v in zip(a, b)]
    for c in range(n):
        pivot = max(range(c, n), key=lambda r: abs(m[r][c]))
        m[c], m[pivot] = m[pivot], m[c]
        for r in range(c + 1, n):
            f = m[r][c] / m[c][c]
            m[r] = [x - f * y for x, y in zip(m[r], m[c])]
    out = [0.0] * n
    for r in range(n - 1, -1, -1):
        out[r] = (m[r][n] - sum(m[r][k] * out[k] for k in range(r + 1, n))) / m[r][r]
    return out


def _coefficients(sch: Schedule, s: int, t: int, rs: List[float], prediction: str,
                  variant: str) -> Tuple[float, float, List[float]]:
    """The step ``s -> t`` of (*) (``prediction="noise"``) or (**) (``"data"``) as ``a x + b m_s
    + sum_m c_m others[m]``: ``(alpha_t/alpha_s) x - sigma_t [h phi_1(h) m_s + sum_m w_m D_m]``
    or ``(sigma_t/sigma_s) x + alpha_t [h phi_1(-h) m_s + sum_m w_m D_m]``, with the
    differences ``D_m = others[m] - m_s`` of the model values at ``r_m = rs[m]`` folded into
    the coefficients (at small batches each tensor operation costs more than the arithmetic).
    Returns ``(a, b, [c_m])``."""
    h = sch.lam[t] - sch.lam[s]
    weights = _difference_weights(h, rs, prediction, variant)
    if prediction == "noise":
        a, scale, first = sch.alpha[t] / sch.alpha[s], -sch.sigma[t], math.expm1(h)
    else:
        a, scale, first = sch.sigma[t] / sch.sigma[s], sch.alpha[t], -math.expm1(-h)
    return a, scale * (first - sum(weights)), [scale * w for w in weights]


@torch.no_grad()
def unipc_sampler(
    score_fn: ScoreFn,
    sde: SDE,
    shape: Shape,
    *,
    steps: Optional[int] = None,
    order: int = 3,
    variant: str = "bh1",
    prediction: str = "data",
    skip_type: str = "logSNR",
    lower_order_final: Union[bool, float] = True,
    eps: float = 1e-3,
    denoise: bool = True,
    x_T: Optional[Tensor] = None,
    generator: Optional[torch.Generator] = None,
    device=None,
    dtype: Optional[torch.dtype] = None,
    progress: bool = False,
    timesteps=None,
    callback: Optional[StepCallback] = None,
) -> Tuple[Tensor, int]:
    """UniPC (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector Framework for Fast
    Sampling of Diffusion Models"): a multistep predictor (UniP) and a corrector (UniC) that
    reuses the model evaluation of the next step, so it raises the order by one at no NFE.

    Step ``s -> t`` with the history of model values ``m`` (data prediction ``x0`` or noise
    prediction ``eps``) at the last ``p`` grid points (``p`` = the step's order):

    * UniP-``p`` (Alg. 2 / Eq. 8): (*) or (**) with the differences ``D_m`` of the ``p - 1``
      previous model values (``r_m < 0``) gives ``x~_t`` (order ``p``);
    * the model is evaluated at ``x~_t`` (the NFE of the next step);
    * UniC-``p`` (Alg. 1 / Eq. 7): the same update from ``x_s`` with one more difference,
      ``D_p = m(x~_t, t) - m_s`` at ``r_p = 1``, gives ``x_t`` (order ``p + 1``). The next step
      starts from ``x_t`` with the model value at ``x~_t``.

    The last step has no next evaluation to reuse, so it is a plain UniP step (as in the
    paper). Weights: :func:`_difference_weights`.

    Args:
        steps: steps from ``T`` to ``eps``, one NFE each (default 20).
        order: predictor order ``p`` (1, 2 or 3): UniPC-``p``, of order ``p + 1`` with UniC.
            The first steps warm up with lower orders.
        variant: ``B(h)`` for the steps with a single difference: ``"bh1"`` (``B = h``) or
            ``"bh2"`` (``B = e^h - 1`` resp. ``1 - e^-h``). With ``order=2`` and ``"bh2"`` the
            predictor is DPM-Solver++(2M) / DPM-Solver-2M.
        prediction: ``"data"`` (``x0``, the paper's choice for unconditional sampling too) or
            ``"noise"`` (``eps = -sigma_t score``).
        skip_type: time grid, as in :func:`dpm_solver_sampler`.
        lower_order_final: in runs of fewer than this many steps the order drops to the
            number of steps left at the end: ``True`` is 10 (DPM-Solver's rule, default),
            ``float("inf")`` always (UniPC's reference code), ``False`` or 0 never.
        eps, denoise, x_T, generator, device, dtype, progress: as in the other samplers;
            ``denoise`` adds :func:`~scoresde.sampling.denoise_step` (one NFE).
        timesteps, callback: as in :func:`~scoresde.sampling.dpm_solver_sampler`.
    Returns:
        samples ``(B, *D)`` and the NFE (``steps + denoise``).
    """
    check_choice("order", order, (1, 2, 3))
    check_choice("variant", variant, UNIPC_VARIANTS)
    check_choice("prediction", prediction, ("data", "noise"))
    check_choice("skip_type", skip_type, SKIP_TYPES)
    if isinstance(lower_order_final, bool):
        lower_order_final = 10 if lower_order_final else 0
    if not lower_order_final >= 0:
        raise ValueError(f"lower_order_final must be a bool or a number of steps >= 0; got {lower_order_final!r}")
    counted, x, steps, eps, grid = start(score_fn, sde, shape, steps, eps, x_T, generator, device, dtype,
                                         timesteps=timesteps, default_steps=DEFAULT_DPM_STEPS)
    sch = Schedule(sde, grid or SKIP_TYPES[skip_type](sde, eps, steps + 1))
    report = StepReport(counted, sde, steps, progress, f"UniPC-{order}", callback)
    lams, models = [sch.lam[0]], [model_value(counted, x, sch, 0, prediction)]  # history, newest first
    for i in range(steps):
        s, t = i, i + 1
        p = min(order, i + 1)
        if steps < lower_order_final:
            p = min(p, steps - i)
        h = sch.lam[t] - sch.lam[s]
        rs = [(lam - sch.lam[s]) / h for lam in lams[1:p]]
        # Predictor UniP-p.
        a, b, cs = _coefficients(sch, s, t, rs, prediction, variant)
        x_pred = x * a
        for c, m in zip([b] + cs, models[:p]):
            x_pred.add_(m, alpha=c)
        if t == steps:
            x = x_pred
        else:
            # Model at the predicted point (the next step's NFE), then corrector UniC-p: the
            # same update with one more model value, written as a change of the predictor's.
            m_t = model_value(counted, x_pred, sch, t, prediction)
            _, b_c, cs_c = _coefficients(sch, s, t, rs + [1.0], prediction, variant)
            x = torch.add(x_pred, models[0], alpha=b_c - b)
            for c_c, c, m in zip(cs_c, cs + [0.0], models[1:p] + [m_t]):
                x.add_(m, alpha=c_c - c)
            lams = [sch.lam[t]] + lams[:order - 1]
            models = [m_t] + models[:order - 1]
        report(i, sch.t[t], x)
    report.close()
    return finish(counted, sde, x, eps, denoise)

