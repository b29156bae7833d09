"""The reverse-time SDE (Song et al. 2021, Eq. 6) integrated with ``torchsde.sdeint``.

torchsde wants a 2-D state and increasing time, so the sampler flattens ``x`` to ``(B, D)``
and integrates in ``s = T - t`` from ``0`` to ``T - eps``:

    dx = -[f(x, T - s) - g(T - s)^2 score(x, T - s)] ds + g(T - s) dW_s.

The noise is additive (``g`` depends on time only), so the Ito and Stratonovich readings agree
and every torchsde method applies (declared as diagonal noise, which needs ``B x D`` rather
than ``B x D x D`` memory). Reversible Heun is not damped on stiff dissipative drift (an OU
process ``dx = -k x dt + dw`` diverges at ``k dt = 0.5`` where Euler-Maruyama converges), and
the reverse SDE near the data is such a problem: it needs many more steps than the others
(see ``docs/benchmarks.md``). A ``torchsde.BrownianInterval`` can be passed as ``bm`` and reused
across step counts, so that a comparison of step sizes uses one Brownian path.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from ..sde import SDE
from ..types import ScoreFn, Shape, Tensor
from ..utils import append_dims, check_choice
from ._common import StepCallback, StepReport, finish, start

__all__ = ["SDEINT_METHODS", "sdeint_sampler", "brownian_interval"]

#: torchsde methods offered, with the SDE type each is run as.
SDEINT_METHODS = {
    "euler": "ito",
    "milstein": "ito",
    "srk": "ito",
    "heun": "stratonovich",
    "midpoint": "stratonovich",
    "reversible_heun": "stratonovich",
}


class _ReverseTimeSDE(torch.nn.Module):
    """The reverse-time SDE in ``s = T - t`` in torchsde's ``f(s, y)``, ``g(s, y)`` form."""

    noise_type = "diagonal"

    def __init__(self, sde: SDE, score_fn: ScoreFn, shape: Tuple[int, ...], sde_type: str,
                 report: StepReport) -> None:
        super().__init__()
        self.sde_type = sde_type
        self.forward_sde = sde
        self.reverse = sde.reverse(score_fn)
        self.shape = shape
        self.report = report
        self.calls = 0

    def _t(self, s: Tensor, y: Tensor) -> Tensor:
        return (self.forward_sde.T - s).to(y.dtype).expand(y.shape[0])

    def f(self, s: Tensor, y: Tensor) -> Tensor:
        t = self._t(s, y)
        drift, _ = self.reverse.sde(y.reshape(self.shape), t)
        self.report(self.calls, float(t[0]), y.reshape(self.shape))
        self.calls += 1
        return -drift.reshape(y.shape)

    def g(self, s: Tensor, y: Tensor) -> Tensor:
        return append_dims(self.forward_sde.diffusion(self._t(s, y)), 2).expand_as(y)


def brownian_interval(
    sde: SDE,
    shape: Shape,
    *,
    eps: float = 1e-3,
    generator: Optional[torch.Generator] = None,
    device=None,
    dtype: torch.dtype = torch.float32,
    entropy: Optional[int] = None,
):
    """A ``torchsde.BrownianInterval`` on ``s in [0, T - eps]`` for a flattened ``shape``.

    Reuse it across calls of :func:`sdeint_sampler` (with the same ``x_T``) to compare step
    counts on one Brownian path. ``entropy`` defaults to a draw from ``generator``.
    """
    import torchsde

    if entropy is None:
        gen_device = generator.device if generator is not None else "cpu"
        entropy = int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=gen_device))
    B = int(shape[0])
    D = int(torch.Size(shape[1:]).numel())
    # The end point as the sampler's time grid holds it (rounded to dtype).
    t1 = float(torch.tensor(sde.T - eps, dtype=dtype))
    return torchsde.BrownianInterval(
        t0=0.0, t1=t1, size=(B, D), dtype=dtype, device=device,
        entropy=entropy, levy_area_approximation="space-time",
    )


@torch.no_grad()
def sdeint_sampler(
    score_fn: ScoreFn,
    sde: SDE,
    shape: Shape,
    *,
    method: str = "srk",
    steps: Optional[int] = None,
    adaptive: bool = False,
    rtol: float = 1e-3,
    atol: float = 1e-3,
    bm=None,
    eps: float = 1e-3,
    denoise: bool = True,
    x_T: Optional[Tensor] = None,
    generator: Optional[torch.Generator] = None,
    device=None,
    dtype: Optional[torch.dtype] = None,
    progress: bool = False,
    callback: Optional[StepCallback] = None,
) -> Tuple[Tensor, int]:
    """Sample by integrating the reverse-time SDE with ``torchsde.sdeint``.

    Args:
        method: a key of :data:`SDEINT_METHODS` (``"euler"``, ``"milstein"``, ``"srk"``,
            ``"heun"``, ``"midpoint"``, ``"reversible_heun"``).
        steps: number of fixed steps on ``[eps, T]`` (default ``sde.N``); with ``adaptive``,
            the initial step is ``(T - eps) / steps``.
        adaptive: error-controlled step sizes with ``rtol`` / ``atol`` (torchsde's
            step-doubling estimate).
        bm: a Brownian motion from :func:`brownian_interval` (made from ``generator`` if absent).
        eps, denoise, x_T, generator, device, dtype, progress: as in :func:`pc_sampler`.
        callback: ``callback(i, t, x, x0_hat)`` at each drift evaluation of torchsde (its
            steps are internal), with the state and time it was evaluated at.
    Returns:
        samples and the NFE (score evaluations, including the final denoising one).
    """
    import torchsde

    check_choice("method", method, SDEINT_METHODS)
    counted, x, steps, eps, _ = start(score_fn, sde, shape, steps, eps, x_T, generator, device, dtype)
    shape = tuple(x.shape)
    if bm is None:
        bm = brownian_interval(sde, shape, eps=eps, generator=generator, device=x.device, dtype=x.dtype)
    report = StepReport(counted, sde, None if adaptive else steps, progress, f"torchsde ({method})", callback)
    model = _ReverseTimeSDE(sde, counted, shape, SDEINT_METHODS[method], report)
    ts = torch.tensor([0.0, sde.T - eps], device=x.device, dtype=x.dtype)
    options = {"grad_free": True} if method == "milstein" else None
    y = torchsde.sdeint(
        model, x.reshape(shape[0], -1), ts, bm=bm, method=method, dt=(sde.T - eps) / steps,
        adaptive=adaptive, rtol=rtol, atol=atol, options=options,
    )[-1]
    report.close()
    return finish(counted, sde, y.reshape(shape), eps, denoise)
