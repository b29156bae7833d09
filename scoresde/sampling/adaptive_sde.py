"""Adaptive reverse-SDE solver for any SDE of :mod:`scoresde.sde`.

**Adaptive reverse-SDE solver** (Jolicoeur-Martineau et al. 2021, "Gotta Go Fast When
Generating Data with Score-Based Models", Alg. 1): an Euler-Maruyama step and an improved
Euler (stochastic Heun) step share one noise draw; their difference is the error estimate
that accepts or rejects the step and sets the next step size, for each sample separately;
accepted steps keep the improved Euler result (extrapolation).

Sampling stops at ``eps``; ``denoise=True`` adds :func:`~scoresde.sampling.denoise_step` (one NFE).
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch

from ..sde import SDE
from ..types import ScoreFn, Shape, Tensor
from ..utils import append_dims, check_choice
from ._common import StepCallback, StepReport, finish, noise_like, start

__all__ = ["adaptive_sde_sampler"]


# Adaptive reverse-SDE solver (Jolicoeur-Martineau et al. 2021, Alg. 1).
class _BrownianMemory:
    """Each sample's Brownian path at the points drawn so far, ahead of its current time.

    A rejected step must not throw its Brownian increment away: drawing a new one instead
    keeps only the increments that pass the error test, which biases the samples (Rackauckas &
    Nie 2017; on the 2-D ring it shifts mass between modes, at every tolerance).
    Here a drawn point ``(tau, W(tau))`` stays known until the sample moves past it; a new
    point between two known ones comes from the Brownian bridge, one beyond all of them from a
    fresh Gaussian increment ("rejection sampling with memory"). ``tau`` is the elapsed reverse
    time ``T - t``. At most ``capacity`` future points are kept per sample (when full, the
    farthest is forgotten). Per step this reads and writes single slots only.

    Shapes: ``tau`` ``(B, K)`` (``-inf``: free slot), ``w`` ``(B, K, *D)``; the current point
    ``s`` ``(B,)``, ``w_now`` ``(B, *D)``.
    """

    def __init__(self, x: Tensor, capacity: int) -> None:
        B, K = x.shape[0], capacity
        self.tau = torch.full((B, K), -math.inf, device=x.device, dtype=torch.float64)
        self.w = torch.zeros((B, K) + tuple(x.shape[1:]), device=x.device, dtype=x.dtype)
        self.s = torch.zeros(B, device=x.device, dtype=torch.float64)
        self.w_now = torch.zeros_like(x)

    def _slot(self, index: Tensor) -> Tensor:
        """``w[b, index[b]]``, shape ``(B, *D)``."""
        flat = self.w.reshape(self.w.shape[0], self.w.shape[1], -1)
        out = torch.gather(flat, 1, index[:, None, None].expand(-1, 1, flat.shape[2]))
        return out.reshape(self.w_now.shape)

    def increment(self, h: Tensor, z: Tensor) -> Tuple[Tensor, Tensor]:
        """``W(s + h) - W(s)`` for each sample (``h`` ``(B,)``), using ``z ~ N(0, I)`` where the
        path is still free. Returns the increment and ``W(s + h)``."""
        target = self.s + h
        ahead = self.tau > self.s[:, None]
        before = ahead & (self.tau < target[:, None])
        after = ahead & (self.tau >= target[:, None])
        # Nearest known points on either side (the current point if none lies before).
        i_l = torch.where(before, self.tau, -math.inf).argmax(dim=1)
        i_r = torch.where(after, self.tau, math.inf).argmin(dim=1)
        has_l, has_r = before.any(dim=1), after.any(dim=1)
        tau_l = torch.where(has_l, self.tau.gather(1, i_l[:, None])[:, 0], self.s)
        tau_r = torch.where(has_r, self.tau.gather(1, i_r[:, None])[:, 0], target + 1)
        w_l = torch.where(append_dims(has_l, z.ndim), self._slot(i_l), self.w_now)
        w_r = self._slot(i_r)
        # Brownian bridge between them, or a free increment beyond the last known point.
        span = tau_r - tau_l
        frac = torch.where(has_r, (target - tau_l) / span, torch.zeros_like(h))
        var = torch.where(has_r, (target - tau_l) * (tau_r - target) / span, target - tau_l)
        w_target = (w_l + append_dims(frac.to(z.dtype), z.ndim) * (w_r - w_l)
                    + append_dims(var.clamp(min=0).sqrt().to(z.dtype), z.ndim) * z)
        return w_target - self.w_now, w_target

    def update(self, h: Tensor, w_target: Tensor, accept: Tensor) -> None:
        """Accepted samples move to ``s + h``; rejected ones remember ``(s + h, W(s + h))``."""
        target = self.s + h
        # Slot to write: a free or passed one if any, else the farthest point.
        ahead = self.tau > self.s[:, None]
        i = torch.where(ahead, self.tau, math.inf).argmax(dim=1)
        keep = append_dims(accept, w_target.ndim)
        tau_i = torch.where(accept, self.tau.gather(1, i[:, None])[:, 0], target)
        w_i = torch.where(keep, self._slot(i), w_target)
        self.tau.scatter_(1, i[:, None], tau_i[:, None])
        flat = self.w.reshape(self.w.shape[0], self.w.shape[1], -1)
        flat.scatter_(1, i[:, None, None].expand(-1, 1, flat.shape[2]), w_i.reshape(flat.shape[0], 1, -1))
        self.s = torch.where(accept, target, self.s)
        self.w_now = torch.where(keep, w_target, self.w_now)


@torch.no_grad()
def adaptive_sde_sampler(
    score_fn: ScoreFn,
    sde: SDE,
    shape: Shape,
    *,
    rtol: float = 0.05,
    atol: float = 0.0078,
    h_init: float = 0.01,
    safety: float = 0.9,
    exponent: float = 0.9,
    extrapolate: bool = True,
    brownian: str = "memory",
    capacity: int = 8,
    max_iters: int = 100_000,
    eps: float = 1e-3,
    denoise: bool = True,
    x_T: Optional[Tensor] = None,
    generator: Optional[torch.Generator] = None,
    device=None,
    dtype: Optional[torch.dtype] = None,
    progress: bool = False,
    callback: Optional[StepCallback] = None,
) -> Tuple[Tensor, int]:
    """Adaptive-step solver of the reverse SDE (Jolicoeur-Martineau et al. 2021, Alg. 1).

    Each iteration, for every sample with its own time ``t`` and step ``h``, draws ``z`` and
    takes an Euler-Maruyama step ``x' = x - h F(x, t) + sqrt(h) g(t) z`` (with the reverse drift
    ``F = f - g^2 score``) and the improved Euler step ``x'' = (x' + x~) / 2`` with
    ``x~ = x - h F(x', t - h) + sqrt(h) g(t - h) z``. The scaled error
    ``E = ||(x' - x'') / delta||_2 / sqrt(n)``, ``delta = max(atol, rtol max(|x'|, |x'_prev|))``
    (``x'_prev``: the previous accepted ``x'``; ``n`` the sample's dimension) accepts the step
    when ``E <= 1`` and sets ``h <- min(t - eps, safety h E^(-exponent))`` either way.

    Args:
        rtol, atol: relative and absolute tolerances; the paper's ``eps_rel = 0.05`` and
            ``eps_abs = 0.0078`` (about one 8-bit level) are for data in ``[-1, 1]``: scale
            ``atol`` with the data's range.
        h_init: first step size (the paper's 0.01).
        safety, exponent: step-size controller ``theta`` and ``r`` (0.9 each in the paper).
        extrapolate: keep ``x''`` (``True``, the paper's choice) or ``x'`` on acceptance.
        brownian: what a rejected step does with its noise. ``"memory"`` (default) keeps it:
            the retried shorter step draws its increment from the Brownian bridge to it
            (rejection sampling with memory, Rackauckas & Nie 2017), so each sample follows
            one Brownian path and the rejections do not bias the result. ``"fresh"`` draws
            new noise, as Alg. 1 of the paper does; it biases low-dimensional samples (on the
            2-D ring the modes on the axes lose up to 4 points of their 12.5% share), less so
            images, whose error norm averages over thousands of dimensions.
        capacity: points of the Brownian path kept per sample for ``"memory"``.
        max_iters: give up (``RuntimeError``) after this many iterations.
        eps, denoise, x_T, generator, device, dtype, progress: as in the other samplers;
            ``denoise`` adds :func:`~scoresde.sampling.denoise_step` at ``eps``.
        callback: ``callback(i, t, x, x0_hat)`` after each iteration, ``t`` the latest time
            of any sample after it.
    Returns:
        samples ``(B, *D)`` and the NFE: two batched score evaluations per iteration
        (accepted or not; samples that have reached ``eps`` ride along with ``h = 0``), plus
        the denoising one. Each iteration reads one flag back from the device (are all samples
        done?), which an adaptive solver cannot avoid.
    """
    if not (rtol >= 0 and atol > 0 and 0 < h_init and 0 < safety <= 1 and exponent > 0):
        raise ValueError(f"need rtol >= 0, atol > 0, h_init > 0, 0 < safety <= 1 and exponent > 0; "
                         f"got rtol={rtol}, atol={atol}, h_init={h_init}, safety={safety}, "
                         f"exponent={exponent}")
    check_choice("brownian", brownian, ("memory", "fresh"))
    counted, x, _, eps, _ = start(score_fn, sde, shape, 1, eps, x_T, generator, device, dtype)
    reverse = sde.reverse(counted)
    B, n = x.shape[0], x[0].numel()
    # Times and step sizes per sample, in float64 so that many small steps add up exactly.
    t = torch.full((B,), float(sde.T), device=x.device, dtype=torch.float64)
    h = torch.full_like(t, min(float(h_init), sde.T - eps))
    x_prev = x
    path = _BrownianMemory(x, capacity) if brownian == "memory" else None
    report = StepReport(counted, sde, None, progress, "adaptive SDE", callback)
    t_max = float(sde.T)  # the latest time of any sample
    for i in range(max_iters):
        if not t_max > eps:
            break
        # The Brownian increment over the step (sqrt(h) z in Alg. 1).
        z = noise_like(x, generator)
        if path is None:
            dw = append_dims(h.sqrt().to(x.dtype), x.ndim) * z
        else:
            dw, w_target = path.increment(h, z)
        h_x = append_dims(h.to(x.dtype), x.ndim)
        # Euler-Maruyama step.
        drift, g = reverse.sde(x, t.to(x.dtype))
        k1 = -h_x * drift + append_dims(g, x.ndim) * dw
        x_em = x + k1
        # Improved Euler step with the same noise.
        drift, g = reverse.sde(x_em, (t - h).to(x.dtype))
        k2 = -h_x * drift + append_dims(g, x.ndim) * dw
        x_ie = x + 0.5 * (k1 + k2)
        # Scaled error of the Euler-Maruyama step, one norm per sample.
        delta = torch.clamp(rtol * torch.maximum(x_em.abs(), x_prev.abs()), min=atol)
        err = ((x_em - x_ie) / delta).reshape(B, -1).norm(dim=1).double() / math.sqrt(n)
        accept = err <= 1
        if path is not None:
            path.update(h, w_target, accept)
        keep = append_dims(accept, x.ndim)
        x = torch.where(keep, x_ie if extrapolate else x_em, x)
        x_prev = torch.where(keep, x_em, x_prev)
        t_new = torch.where(accept, t - h, t)
        t = torch.where(t_new <= eps + 1e-12, torch.full_like(t, eps), t_new)
        # New step size (also after a rejection), never beyond eps; samples at eps keep h = 0.
        proposed = torch.where(err > 0, safety * h * err.clamp(min=1e-300) ** (-exponent),
                               torch.full_like(h, math.inf))
        h = torch.minimum(t - eps, proposed)
        t_max = float(t.max())
        report(i, t_max, x)
    else:
        raise RuntimeError(f"adaptive_sde_sampler: not all samples reached eps within {max_iters} iterations")
    report.close()
    return finish(counted, sde, x, eps, denoise)

