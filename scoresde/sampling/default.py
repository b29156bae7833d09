"""The fixed-budget default: which solver ``sample(score_fn, sde, shape, pc=False, steps=n)``
runs when no ``method`` is named (see ``docs/fast_samplers.md`` for the measurements)."""
from __future__ import annotations

from typing import Any, Dict, List, Tuple

#: ``(largest budget n, method, keyword arguments)``, by increasing budget: the first row whose
#: budget is at least ``n`` is used, with ``steps=n`` score evaluations before the final
#: denoising one (``n + 1`` in all).
BUDGET_DEFAULTS: List[Tuple[float, str, Dict[str, Any]]] = [
    # Each row is the setting whose worst ratio to the best peer sampler (diffusers 0.42.1 and
    # k-diffusion 0.1.1, ~70 settings) was the smallest over four problems (the 3072-D Gaussian,
    # the ring, trained digits and Fashion-MNIST networks) at 5, 10, 20 and 50 NFE;
    # `python benchmarks/samplers.py --peers` (docs/fast_samplers.md, "The fixed-budget default").
    # 5 NFE: iPNDM-3, DDIM's time-quadratic grid carried to any SDE.
    (6, "ipndm", dict(order=3, skip_type="vp_quadratic")),
    # 10 NFE: iPNDM-3 on Karras et al.'s rho = 7 noise levels.
    (14, "ipndm", dict(order=3, skip_type="edm_rho")),
    # 20 NFE: UniPC-3 (data prediction, B(h) = h) on the log-SNR grid.
    (34, "unipc", dict(order=3, variant="bh1", prediction="data", skip_type="logSNR")),
    # 50 NFE: tAB-DEIS-3 on the log-SNR grid.
    (float("inf"), "deis", dict(order=3, skip_type="logSNR")),
]


def budget_default(steps: int) -> Tuple[str, Dict[str, Any]]:
    """The method and its keyword arguments (``steps`` included) for a budget of ``steps``."""
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1; got {steps!r}")
    for largest, method, kwargs in BUDGET_DEFAULTS:
        if steps <= largest:
            return method, dict(kwargs, steps=steps)
    raise ValueError(f"no default for a budget of {steps} evaluations")
