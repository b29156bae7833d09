"""The fixed-budget default: which solver ``sample(score_fn, sde, shape, pc=False, steps=n)``
runs when no ``method`` is named (see ``docs/fast_samplers.md`` for the measurements)."""
from __future__ import annotations

import math
from typing import Any, Dict, List, Tuple

import torch

from ..sde import SDE

#: ``(largest budget n, method, keyword arguments)``, by increasing budget: the first row whose
#: budget is at least ``n`` is used, with ``steps=n`` score evaluations before the final
#: denoising one (``n + 1`` in all). ``stop_noise`` (not a sampler argument) moves the end of
#: the solve, and the denoising step, to that noise level (:func:`stop_time`).
BUDGET_DEFAULTS: List[Tuple[float, str, Dict[str, Any]]] = [
    # Each row is the setting whose worst ratio to the best peer sampler (diffusers 0.42.1 and
    # k-diffusion 0.1.1, ~70 settings) was the smallest over two 3072-D Gaussians (isotropic,
    # and with variances spread over four decades), the ring and trained digits and
    # Fashion-MNIST networks (each after a short and a longer training) at 5, 10, 20 and 50
    # NFE, where the problems disagree (docs/fast_samplers.md, "The fixed-budget default" and
    # "Where to stop"). `python benchmarks/default_search.py` searches, `python
    # benchmarks/samplers.py --peers` tabulates.
    # 5 NFE: iPNDM-3 on the grid between the log-SNR and the quadratic one, stopping at the
    # noise level sigma / alpha = 0.045 (t = 0.01 of the default VP SDE) and denoising there:
    # with this budget, Tweedie's estimate at that noise beats spending steps below it.
    (6, "ipndm", dict(order=3, skip_type="logSNR_quadratic", stop_noise=0.045)),
    # 10 NFE: UniPC-2 (data prediction, B(h) = e^h - 1) on the log-SNR grid, stopping at
    # sigma / alpha = 0.03 (0.045 lost to the best peer on a Gaussian whose variances span
    # 1e-4..1, `toy.spectrum_gaussian`: denoising there shrinks its low-variance directions).
    (14, "unipc", dict(order=2, variant="bh2", prediction="data", skip_type="logSNR", stop_noise=0.03)),
    # 20 NFE: UniPC-3 (data prediction, B(h) = h) on the log-SNR grid, stopping at
    # sigma / alpha = 0.02 (ahead of stopping at `eps` on every problem but the Gaussian with
    # spread variances, which stopping at `eps` solves 10x better).
    (34, "unipc", dict(order=3, variant="bh1", prediction="data", skip_type="logSNR", stop_noise=0.02)),
    # 50 NFE: the same UniPC-3 on the grid between the log-SNR and the quadratic one
    # (`grids.log_snr_quadratic_grid`), ahead of the best peer on every problem but one
    # network, the Fashion-MNIST one retrained to 5000 steps (whose errors swing with the grid).
    (float("inf"), "unipc", dict(order=3, variant="bh1", prediction="data", skip_type="logSNR_quadratic")),
]


def stop_time(sde: SDE, noise: float, eps: float) -> float:
    """The time at which a budget row with ``stop_noise`` stops: where ``sigma_t / alpha_t``
    equals ``noise``, or ``eps`` if that is later."""
    t = float(sde.t_from_log_snr(torch.tensor([-math.log(noise)], dtype=torch.float64))[0])
    return max(float(eps), t)


def budget_default(steps: int) -> Tuple[str, Dict[str, Any]]:
    """The method and its keyword arguments (``steps`` included) for a budget of ``steps``."""
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1; got {steps!r}")
    for largest, method, kwargs in BUDGET_DEFAULTS:
        if steps <= largest:
            return method, dict(kwargs, steps=steps)
    raise ValueError(f"no default for a budget of {steps} evaluations")
