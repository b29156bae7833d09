"""The fixed-budget default: which solver ``sample(score_fn, sde, shape, pc=False, steps=n)``
runs when no ``method`` is named (see ``docs/fast_samplers.md`` for the measurements)."""
from __future__ import annotations

from typing import Any, Dict, List, Tuple

#: ``(largest budget n, method, keyword arguments)``, by increasing budget: the first row whose
#: budget is at least ``n`` is used, with ``steps=n`` score evaluations before the final
#: denoising one (``n + 1`` in all).
BUDGET_DEFAULTS: List[Tuple[float, str, Dict[str, Any]]] = [
    # iPNDM-3: never diverges at 3-9 steps and is the most accurate there on most problems.
    (9, "ipndm", dict(order=3, skip_type="vp_quadratic")),
    # tAB-DEIS-3: fourth order; the most accurate at 19 steps on most problems.
    (float("inf"), "deis", dict(order=3, skip_type="vp_quadratic")),
]


def budget_default(steps: int) -> Tuple[str, Dict[str, Any]]:
    """The method and its keyword arguments (``steps`` included) for a budget of ``steps``."""
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1; got {steps!r}")
    for largest, method, kwargs in BUDGET_DEFAULTS:
        if steps <= largest:
            return method, dict(kwargs, steps=steps)
    raise ValueError(f"no default for a budget of {steps} evaluations")
