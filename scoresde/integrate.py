"""Adaptive Dormand-Prince 5(4) on the tensor's own device, used by the probability-flow ODE
sampler and the likelihood.

The method (Dormand & Prince 1980; Hairer, Norsett & Wanner, *Solving ODEs I*, II.4-5) is the
one behind ``scipy.integrate.solve_ivp(method="RK45")``, with the same controls: the error norm
is the RMS over all elements of ``err / (atol + rtol max(|y|, |y_new|))``, steps change by
``0.9 err^(-1/5)`` within ``[0.2, 10]`` and never grow right after a rejection, the first step
is chosen by Hairer's rule (two evaluations, capped by the interval), and the last step is
clipped so that ``func`` is never evaluated outside ``[t1, t0]``. The state stays on its device;
each step reads one scalar (the error norm) back to the host.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from .types import Tensor

__all__ = ["dopri5", "solve_ivp_host", "SolveStats"]

# Butcher tableau of Dormand-Prince 5(4) (FSAL: the last stage is f at the new point).
_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0)
_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
)
_B = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84)
# Fifth-order minus embedded fourth-order weights, over the 7 stages.
_E = (71 / 57600, 0.0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40)

_SAFETY, _MIN_FACTOR, _MAX_FACTOR = 0.9, 0.2, 10.0


@dataclass
class SolveStats:
    """What a solve cost: function evaluations, accepted and rejected steps."""

    nfe: int = 0
    n_accepted: int = 0
    n_rejected: int = 0


def _rms(x: Tensor) -> float:
    return float(torch.linalg.vector_norm(x) / math.sqrt(max(x.numel(), 1)))


def _max_rms(x: Tensor) -> float:
    return float(torch.linalg.vector_norm(x.reshape(x.shape[0], -1), dim=1).max() / math.sqrt(max(x[0].numel(), 1)))


def dopri5(
    func: Callable[[float, Tensor], Tensor],
    y0: Tensor,
    t0: float,
    t1: float,
    *,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    first_step: Optional[float] = None,
    max_steps: int = 100_000,
    callback: Optional[Callable[[float, int], None]] = None,
    per_sample: bool = False,
) -> tuple[Tensor, SolveStats]:
    """Solve ``dy/dt = func(t, y)`` from ``t0`` to ``t1`` (either direction).

    Args:
        func: ``func(t, y) -> dy/dt`` with ``t`` a Python float and ``y`` like ``y0``.
        y0: initial state (any shape; the error norm runs over all its elements).
        t0, t1: start and end times.
        rtol, atol: relative and absolute tolerances.
        first_step: initial step size (chosen automatically if ``None``).
        max_steps: give up (``RuntimeError``) after this many attempted steps.
        callback: called as ``callback(t, nfe)`` after each accepted step.
        per_sample: the error norm is the RMS of each ``y[b]``, the largest over ``b``, so that
            every sample of a batch meets the tolerance on its own (instead of the RMS over
            all elements, which lets a few samples with large errors through in a big batch).
    Returns:
        ``y(t1)`` and the :class:`SolveStats`.
    """
    stats = SolveStats()
    direction = 1.0 if t1 >= t0 else -1.0
    interval = abs(t1 - t0)
    if interval == 0:
        return y0, stats

    def f(t: float, y: Tensor) -> Tensor:
        stats.nfe += 1
        return func(t, y)

    y, t = y0, float(t0)
    k1 = f(t, y)
    if first_step is None:
        h = _initial_step(f, t, y, k1, direction, interval, rtol, atol)
    else:
        h = min(abs(first_step), interval)
    while direction * (t1 - t) > 0:
        if stats.n_accepted + stats.n_rejected >= max_steps:
            raise RuntimeError(f"dopri5: no convergence within {max_steps} steps (t = {t:.6g})")
        rejected_before = False
        while True:
            # Clip the step so that no stage lies beyond t1.
            h = min(h, abs(t1 - t))
            dt = direction * h
            ks = [k1]
            for c, a in zip(_C[1:], _A[1:]):
                yi = y + dt * sum(aij * kj for aij, kj in zip(a, ks) if aij != 0.0)
                ks.append(f(t + c * dt, yi))
            y_new = y + dt * sum(b * k for b, k in zip(_B, ks) if b != 0.0)
            k7 = f(t + dt, y_new)
            ks.append(k7)
            err = dt * sum(e * k for e, k in zip(_E, ks) if e != 0.0)
            scale = atol + rtol * torch.maximum(y.abs(), y_new.abs())
            err_norm = _max_rms(err / scale) if per_sample else _rms(err / scale)
            if err_norm <= 1.0:
                if err_norm == 0.0:
                    factor = _MAX_FACTOR
                else:
                    factor = min(_MAX_FACTOR, _SAFETY * err_norm ** -0.2)
                if rejected_before:
                    factor = min(1.0, factor)
                t_next = t + dt
                # Land exactly on t1 at the end.
                t = t1 if abs(t1 - t_next) <= 1e-12 * max(1.0, abs(t1)) else t_next
                y, k1 = y_new, k7
                h *= factor
                stats.n_accepted += 1
                break
            if not math.isfinite(err_norm):
                factor = _MIN_FACTOR
            else:
                factor = max(_MIN_FACTOR, _SAFETY * err_norm ** -0.2)
            h *= factor
            rejected_before = True
            stats.n_rejected += 1
            if h < 1e-14 * max(1.0, abs(t)):
                raise RuntimeError(f"dopri5: step size underflow at t = {t:.6g}")
        if callback is not None:
            callback(t, stats.nfe)
    return y, stats


def _initial_step(f, t0: float, y0: Tensor, f0: Tensor, direction: float, interval: float,
                  rtol: float, atol: float) -> float:
    """Hairer, Norsett & Wanner (1993), II.4, p. 169, for an error estimator of order 4."""
    scale = atol + y0.abs() * rtol
    d0, d1 = _rms(y0 / scale), _rms(f0 / scale)
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    h0 = min(h0, interval)
    f1 = f(t0 + direction * h0, y0 + direction * h0 * f0)
    d2 = _rms((f1 - f0) / scale) / h0
    if d1 <= 1e-15 and d2 <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / max(d1, d2)) ** (1 / 5)
    return min(100 * h0, h1, interval)


def solve_ivp_host(
    func: Callable[[float, Tensor], Tensor],
    y0: Tensor,
    t0: float,
    t1: float,
    *,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    method: str = "RK45",
) -> Tensor:
    """Solve ``dy/dt = func(t, y)`` with ``scipy.integrate.solve_ivp`` (the reference path).

    Same calling convention as :func:`dopri5`, but the state is flattened to float64 on the host
    and copied back to ``y0``'s device and dtype at every evaluation. Returns ``y(t1)`` like
    ``y0``; a failed solve raises ``RuntimeError``.
    """
    from scipy import integrate

    def fun(t: float, y):
        yt = torch.from_numpy(y).to(device=y0.device, dtype=y0.dtype).reshape(y0.shape)
        return func(float(t), yt).reshape(-1).double().cpu().numpy()

    sol = integrate.solve_ivp(fun, (t0, t1), y0.reshape(-1).double().cpu().numpy(),
                              rtol=rtol, atol=atol, method=method)
    if not sol.success:
        raise RuntimeError(f"solve_ivp failed: {sol.message}")
    y1 = torch.from_numpy(sol.y[:, -1].copy())
    return y1.to(device=y0.device, dtype=y0.dtype).reshape(y0.shape)
