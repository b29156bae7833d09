"""The sampler benchmark's "model" problem runs end to end on a tiny trained run."""
import pytest

from scoresde import train

pytest.importorskip("sklearn")


def test_model_problem(tmp_path, capsys, load_benchmark):
    run = tmp_path / "run"
    assert train.cli(["--config", "vp_digits", "--config.training.n_iters=2", "--config.training.snapshot_freq=2",
                      "--config.training.log_freq=2", "--config.training.batch_size=4",
                      "--config.training.snapshot_sampling=false", "--config.model.kwargs.nf=8",
                      "--workdir", str(run)]) == 0
    bench = load_benchmark("samplers")
    rows = bench.model_problem(str(run), ["UniPC-3 noise bh2 vpq", "DPM-Solver++(2M)"], [4, 6], batch=3)
    assert {r["sampler"] for r in rows} == {"UniPC-3 noise bh2 vpq", "DPM-Solver++(2M)",
                                            "DPM-Solver++(2M) tq", "DPM-Solver++(2M) edm_rho"}
    assert sorted({r["nfe"] for r in rows}) == [4, 6]
    assert all(0 < r["rel. RMSE vs 200 NFE"] < float("inf") for r in rows)
    # Every sampler starts from the reference's x_T: UniPC-3 at the reference's own budget
    # reproduces it exactly.
    rows = bench.model_problem(str(run), ["UniPC-3"], [200], batch=3)
    same = [r for r in rows if r["sampler"] == "UniPC-3"]
    assert len(same) == 1 and same[0]["nfe"] == 200 and same[0]["rel. RMSE vs 200 NFE"] == 0.0
    with pytest.raises(SystemExit):
        bench.main(["--problems", "model"])  # needs --workdir
    assert "--problems model needs --workdir" in capsys.readouterr().err
