"""optimize_schedule: the dynamic program finds the cheapest path exactly, and the grid it
returns is a valid grid that beats the solver's own grid on samples it was not fitted to."""
import itertools

import pytest
import torch

from scoresde import VPSDE, toy
from scoresde.sampling import SCHEDULE_METHODS, denoise_step, optimize_schedule, sample, unipc_sampler
from scoresde.sampling.optimize import _shortest_path

F64 = torch.float64


def test_shortest_path_is_the_brute_force_optimum():
    g = torch.Generator().manual_seed(0)
    M, steps = 9, 4
    cost = torch.rand(M + 1, M + 1, generator=g, dtype=F64)
    cost = torch.where(torch.ones_like(cost).triu(1).bool(), cost, torch.full_like(cost, float("inf")))
    path = _shortest_path(cost, steps)
    assert path[0] == 0 and path[-1] == M and len(path) == steps + 1
    best = min(sum(cost[a, b] for a, b in zip((0,) + c, c + (M,)))
               for c in itertools.combinations(range(1, M), steps - 1))
    assert sum(cost[a, b] for a, b in zip(path, path[1:])).item() == pytest.approx(best.item())


def _error(x, target, mean):
    return ((x - target).pow(2).mean() / (target - mean).pow(2).mean()).sqrt().item()


def test_optimized_grid_beats_the_default_grid_on_held_out_samples():
    sde, data = VPSDE(), toy.correlated_gaussian(dim=6)
    f = data.score_fn(sde)
    grid = optimize_schedule(f, sde, (32, 6), 6, "unipc", generator=torch.Generator().manual_seed(1), dtype=F64)
    assert grid.dtype == F64 and grid.shape == (6,)
    assert grid[0].item() == sde.T and grid[-1].item() == pytest.approx(1e-3)
    assert (grid[1:] < grid[:-1]).all()
    # Held-out x_T: the exact flow and the same final step.
    z = sde.prior_sampling((256, 6), generator=torch.Generator().manual_seed(2), dtype=F64)
    ones = torch.ones(256, dtype=F64)
    target = denoise_step(f, sde, data.flow(z, sde, ones, ones * 1e-3), 1e-3)
    ours, nfe = unipc_sampler(f, sde, z.shape, x_T=z, timesteps=grid)
    own, own_nfe = unipc_sampler(f, sde, z.shape, x_T=z, steps=5)
    assert nfe == own_nfe == 6
    assert _error(ours, target, data.mean) < 0.7 * _error(own, target, data.mean)
    # The grid goes through sample() as timesteps=.
    x = sample(f, sde, z.shape, pc=False, method="unipc", timesteps=grid, x_T=z)
    assert torch.equal(x, ours)


def test_without_refinement_the_grid_is_on_the_fine_log_snr_grid():
    sde, data = VPSDE(), toy.correlated_gaussian(dim=3)
    grid = optimize_schedule(data.score_fn(sde), sde, (8, 3), 4, "ipndm", refine=False, fine_steps=20,
                             generator=torch.Generator().manual_seed(0), dtype=F64)
    from scoresde.sampling import log_snr_grid
    fine = log_snr_grid(sde, 1e-3, 4 * 20 + 1)[::4]
    assert all(any(abs(t - u) < 1e-12 for u in fine) for t in grid.tolist())


def test_bad_arguments():
    sde, data = VPSDE(), toy.correlated_gaussian(dim=3)
    f = data.score_fn(sde)
    with pytest.raises(ValueError, match="unknown method='rk45'; valid values are: 'unipc'"):
        optimize_schedule(f, sde, (4, 3), 5, "rk45")
    with pytest.raises(ValueError, match="nfe must be an integer >= 2"):
        optimize_schedule(f, sde, (4, 3), 1)
    with pytest.raises(ValueError, match="steps is set by optimize_schedule"):
        optimize_schedule(f, sde, (4, 3), 5, steps=3)
    assert set(SCHEDULE_METHODS) == {"unipc", "dpm_solver++", "ipndm", "deis"}
