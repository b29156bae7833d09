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


def test_parse_setting_reads_numbers_names_and_the_stop(load_benchmark):
    peers = load_benchmark("peers")
    method, stop, kwargs = peers.parse_setting("unipc:order=2,variant=bh2,weight=0.4,stop_noise=0.03")
    assert (method, stop, kwargs) == ("unipc", 0.03, {"order": 2, "variant": "bh2", "weight": 0.4})
    assert peers.parse_setting("ipndm:order=3,stop_noise=eps")[1] is None
    assert peers.parse_setting("ipndm") == ("ipndm", None, {})
    with pytest.raises(ValueError, match="'order' is not key=value"):
        peers.parse_setting("ipndm:order")
    with pytest.raises(ValueError, match="unknown sampler 'nope'"):
        peers.setting_runner("nope:order=2")


def test_setting_runner_stops_where_asked_and_keeps_the_budget(load_benchmark):
    from scoresde.sampling import SAMPLERS, stop_time

    peers = load_benchmark("peers")
    p = _problem(peers)
    x, nfe = peers.setting_runner("ipndm:order=3,skip_type=logSNR,stop_noise=0.2")(p, 6)
    eps = stop_time(p.sde, 0.2, p.eps)
    ours, _ = SAMPLERS["ipndm"].fn(p.score_fn, p.sde, p.x_T.shape, steps=5, x_T=p.x_T, eps=eps, order=3,
                                   skip_type="logSNR")
    assert nfe == 6 and eps > 0.05 and torch.equal(x, ours)
    at_eps, _ = peers.setting_runner("ipndm:order=3,skip_type=logSNR")(p, 6)
    assert not torch.allclose(at_eps, x)


def test_frechet_distance_of_the_default_search(load_benchmark):
    search = load_benchmark("default_search")
    a = torch.randn(500, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    shift = torch.tensor([0.5, -1.0, 2.0], dtype=F64)
    assert abs(search.frechet_distance(a, a)) < 1e-9
    assert search.frechet_distance(a, a + shift) == pytest.approx(5.25, rel=1e-9)  # |shift|^2
    # one dimension: (m1 - m2)^2 + (s1 - s2)^2, exactly for the fitted moments
    b = 3 * a[:, :1] + 1
    assert search.frechet_distance(a[:, :1], b) == pytest.approx(
        (b.mean() - a[:, 0].mean()).item() ** 2 + (b.std() - a[:, 0].std()).item() ** 2, rel=1e-9)


def test_default_search_ranks_settings_against_the_best_peer(load_benchmark, capsys):
    search = load_benchmark("default_search")
    peers = load_benchmark("peers")
    search.PROBLEMS["gauss4"] = lambda: _problem(peers, batch=8)
    assert search.main(["--nfe", "5", "--problems", "gauss4", "--settings", "ipndm:order=3,skip_type=logSNR",
                        "--stops", "eps,0.2"]) == 0
    out = capsys.readouterr().out
    rows = [line.split(" | ") for line in out.splitlines() if line.startswith("| ipndm") or
            line.startswith("| the default")]
    assert sorted(r[0] for r in rows) == ["| ipndm:order=3,skip_type=logSNR,stop_noise=0.2",
                                          "| ipndm:order=3,skip_type=logSNR,stop_noise=eps", "| the default"]
    worst = [float(r[-1].strip(" |")) for r in rows]
    assert worst == sorted(worst) and all(w > 0 for w in worst)
    assert "each peer setting's error over the best of the other peer settings at 5 nfe" in out.lower()
    # the default's ratio is its error over the best peer's, as in peers.compare
    row = peers.compare(_problem(peers, batch=8), [5], log=lambda line: None)[0]
    default = next(float(r[1]) for r in rows if r[0] == "| the default")
    assert default == pytest.approx(row["scoresde default"] / row["best peer error"], abs=0.006)


def test_each_peer_setting_is_measured_against_the_best_of_the_others(load_benchmark):
    search = load_benchmark("default_search")
    ratios = search.peer_ratios_against_the_rest({"a": 1.0, "b": 2.0, "c": 4.0})
    # the best one against the second best (it is never compared with itself), the rest against the best
    assert ratios == {"a": 0.5, "b": 2.0, "c": 4.0}
    assert search.peer_ratios_against_the_rest({"a": 1.0}) == {}
