"""benchmarks/time_smoothness.py measures what a quadratic in t cannot follow: nothing for an
exact score, the oscillation when one is added."""
import math

import torch

from scoresde import VPSDE, toy


def test_exact_score_is_smooth_and_an_oscillation_is_found(load_benchmark):
    bench = load_benchmark("time_smoothness")
    sde, data = VPSDE(), toy.ring()
    score = data.score_fn(sde)
    x_T = sde.prior_sampling((16, 2), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    smooth = bench.trajectory_roughness(score, sde, x_T, times=(0.5, 0.1))
    assert max(smooth) < 3e-3

    def oscillating(x, t):  # the noise prediction plus 5% of sin(999 t), as an embedding might leave
        sigma = sde.marginal_coeffs(t)[1].reshape(-1, 1)
        return score(x, t) - 0.05 * torch.sin(999 * t).reshape(-1, 1) / sigma

    rough = bench.trajectory_roughness(oscillating, sde, x_T, times=(0.5, 0.1))
    assert min(rough) > 0.03
    # A window shorter than the period sees a smooth curve again.
    x, _ = bench.rk45_sampler(oscillating, sde, x_T.shape, x_T=x_T, eps=0.5, denoise=False)
    assert bench.roughness(oscillating, sde, x, 0.5, width=2 * math.pi / 999 / 50) < 1e-3
