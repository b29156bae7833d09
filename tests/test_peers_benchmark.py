"""benchmarks/peers.py drives diffusers and k-diffusion on a scoresde score function: their
first-order samplers must reproduce our DDIM on the same grid (which checks the change of
variables, the time table, the start and the final step), and the comparison runs end to end."""
import math

import pytest
import torch

from scoresde import VPSDE, toy
from scoresde.sampling import dpm_solver_pp_sampler

F64 = torch.float64


def _problem(peers, batch=16):
    sde, data = VPSDE(), toy.correlated_gaussian(dim=4)
    x_T = sde.prior_sampling((batch, 4), generator=torch.Generator().manual_seed(0), dtype=F64)
    ones = torch.ones(batch, dtype=F64)
    exact = data.flow(x_T, sde, ones, ones * 1e-3)
    from scoresde.sampling import denoise_step
    return peers.Problem("gauss4", sde, data.score_fn(sde), x_T, denoise_step(data.score_fn(sde), sde, exact, 1e-3),
                         data.mean)


def _ddim(problem, times):
    x, nfe = dpm_solver_pp_sampler(problem.score_fn, problem.sde, problem.x_T.shape, order=1, x_T=problem.x_T,
                                   timesteps=times)
    return x, nfe


def test_diffusers_first_order_dpm_solver_through_the_table_is_our_ddim(load_benchmark):
    diffusers = pytest.importorskip("diffusers")
    peers = load_benchmark("peers")
    peers.D_SCHEDULERS["DPM-Solver++ 1"] = ("DPMSolverMultistepScheduler", dict(solver_order=1))
    p = _problem(peers)
    x, nfe = peers.d_runner(diffusers, "DPM-Solver++ 1")(p, 6)
    sched = diffusers.DPMSolverMultistepScheduler(num_train_timesteps=1000)
    sched.set_timesteps(6)
    times = [1e-3 + (1 - 1e-3) * int(k) / 999 for k in sched.timesteps]  # the table's times
    ours, our_nfe = _ddim(p, times)  # DDIM steps, then Tweedie at the last time (diffusers: to sigma = 0)
    assert nfe == our_nfe == 6
    assert (x - ours).abs().max().item() < 1e-5  # diffusers' scheduler arithmetic is float32
    assert p.error(x) > 1e-3  # six DDIM steps are far from the exact flow: the match is not trivial


def test_k_diffusion_euler_is_our_ddim(load_benchmark):
    peers = load_benchmark("peers")
    K = peers.load_k_diffusion_sampling()
    if K is None:
        pytest.skip("k-diffusion is not installed")
    p = _problem(peers)
    x, nfe = peers.k_runner(K, "euler", "karras")(p, 6)
    sigmas = peers.k_sigmas(K, "karras", 6, p.sde, 1e-3)[:-1]
    times = p.sde.t_from_log_snr(-sigmas.log()).clamp(max=1.0).tolist()
    ours, our_nfe = _ddim(p, times)
    assert nfe == our_nfe == 6
    assert (x - ours).abs().max().item() < 1e-6  # its grids are built in float32
    assert p.error(x) > 1e-3


def test_compare_and_overhead_run(load_benchmark):
    peers = load_benchmark("peers")
    p = _problem(peers, batch=4)
    rows = peers.compare(p, [5, 10], log=lambda line: None)
    assert [r["NFE"] for r in rows] == [5, 10]
    for r in rows:
        assert 0 < r["scoresde default"] < 1 and math.isfinite(r["best peer error"])
        assert r["peer / default"] == pytest.approx(r["best peer error"] / r["scoresde default"])
    table = peers.overhead(nfes=(5,), repeats=1, dim=8)
    assert table[0]["sampler"] == "scoresde default" and all(r["overhead per NFE (ms)"] > 0 for r in table)
