"""Training and the command lines under faults and bad input (issue 15): usage errors before any
work, signals that stop within seconds, agreed DDP stops, no non-finite checkpoint, resumes
that change nothing they should not."""
import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from scoresde import train
from scoresde.checkpointing import list_checkpoints, load_checkpoint, save_checkpoint
from scoresde.cli import evaluate as evaluate_cli
from scoresde.cli import sample as sample_cli

TOY = [
    "--config", "vp_toy",
    "--config.training.n_iters=20", "--config.training.snapshot_freq=10", "--config.training.log_freq=5",
    "--config.sampling.steps=10", "--config.sampling.n_samples=20", "--config.data.n_train=500",
    "--config.model.kwargs.hidden_dim=16", "--config.training.batch_size=32",
]
NO_GRID = ["--config.training.snapshot_sampling=false"]
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")


def snapshot(directory):
    out = {}
    for root, _, files in os.walk(directory):
        for name in files:
            st = os.stat(os.path.join(root, name))
            out[os.path.join(root, name)] = (st.st_size, st.st_mtime_ns)
    return out


def losses(workdir):
    with open(os.path.join(workdir, "metrics.csv")) as f:
        return [(int(r["step"]), float(r["loss"])) for r in csv.DictReader(f)]


def finite(path):
    state = load_checkpoint(str(path))
    return all(torch.isfinite(v).all() for v in state["model"].values())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished 20-step toy run (checkpoints at 10 and 20)."""
    workdir = tmp_path_factory.mktemp("trained")
    assert train.cli(TOY + NO_GRID + ["--workdir", str(workdir)]) == 0
    return workdir


def one_line_error(capsys, code, expected):
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert expected in err, err


# ---------------------------------------------------------------------------------------------
# Items 2 and 5: every bad config value is a usage error before step 1, nothing written.
@pytest.mark.parametrize("overrides,expected", [
    (["--config.sampling.predictor=foo"], "predictor"),
    (["--config.sampling.method=ode", "--config.sampling.ode_method=foo"], "unknown sampling.ode_method 'foo'"),
    (["--config.sampling.method=sde"], "sampling.method must be 'pc' or 'ode'"),
    (["--config.sampling.eps=0"], "eps must lie in"),
    (["--config.sampling.n_samples=0"], "sampling.n_samples=0"),
    (["--config.training.batch_size=0"], "training.batch_size=0"),
    (["--config.training.batch_size=-4"], "training.batch_size=-4"),
    (["--config.training.batch_size=1000"], "larger than the 500 training examples"),
    (["--config.model.ema_rate=2"], "model.ema_rate=2"),
    (["--config.optim.lr=-1"], "optim.lr=-1"),
    (["--config.optim.lr=1e39"], "optim.lr=1e+39"),
    (["--config.optim.lr=1e38", "--config.optim.warmup=1"], "lr / (1 - optim.beta1) must fit in float32"),
    (["--config.data.dataset=toy:foo"], "unknown toy distribution 'foo'"),
    (["--config.model.num_scales=0"], "N must be a positive integer"),
    (["--config.training.snapshot_freq=0"], "training.snapshot_freq=0"),
    (["--config.training.log_freq=0"], "training.log_freq=0"),
    (["--device", "foo"], "is not a torch device"),
    (["--device", "cuda:99" if torch.cuda.is_available() else "cuda"], "CUDA"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_config_is_refused_before_step_1(tmp_path, capsys, overrides, expected):
    workdir = tmp_path / "run"
    one_line_error(capsys, train.cli(TOY + overrides + ["--workdir", str(workdir)]), expected)
    assert not workdir.exists()


def test_workdir_that_is_a_file(tmp_path, capsys):
    path = tmp_path / "file"
    path.write_text("x")
    one_line_error(capsys, train.cli(TOY + ["--workdir", str(path)]), "is a file, not a folder")
    assert path.read_text() == "x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_workdir_not_writable(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    one_line_error(capsys, train.cli(TOY + ["--workdir", str(locked / "run")]), "not a writable folder")


def test_interrupt_during_start_up_is_one_line(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "build", interrupted)
    assert train.cli(TOY + ["--workdir", str(tmp_path / "run")]) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip() == "interrupted"
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------------------------
# Item 1: a NaN never leaves only non-finite checkpoints.
def test_nan_never_writes_a_non_finite_checkpoint(tmp_path, capsys):
    """snapshot_freq not a multiple of log_freq: the divergence is found at the checkpoint."""
    args = TOY + NO_GRID + ["--config.optim.lr=1e20", "--config.optim.grad_clip=-1", "--config.optim.warmup=1",
                            "--config.training.log_freq=200", "--config.training.snapshot_freq=3",
                            "--config.training.n_iters=30", "--workdir", str(tmp_path)]
    assert train.cli(args) == 3
    assert "non-finite" in capsys.readouterr().out
    assert all(finite(path) for _, path in list_checkpoints(tmp_path / "checkpoints"))


def test_nan_keeps_the_last_finite_checkpoint(trained, tmp_path, capsys):
    import shutil

    workdir = tmp_path / "run"
    shutil.copytree(trained, workdir)
    before = snapshot(workdir / "checkpoints")
    assert train.cli(TOY + NO_GRID + ["--config.optim.lr=1e20", "--config.optim.grad_clip=-1",
                                      "--config.training.n_iters=60", "--config.training.keep_last=1",
                                      "--workdir", str(workdir)]) == 3
    assert snapshot(workdir / "checkpoints") == before


def test_non_finite_checkpoint_is_refused_by_sample_and_resume(trained, tmp_path, capsys):
    import shutil

    workdir = tmp_path / "run"
    shutil.copytree(trained, workdir)
    path = workdir / "checkpoints" / "checkpoint_20.pt"
    state = load_checkpoint(str(path))
    for value in state["model"].values():
        value.fill_(float("nan"))
    save_checkpoint(str(path), state)
    capsys.readouterr()
    one_line_error(capsys, sample_cli.cli(["--workdir", str(workdir), "-n", "2", "--steps", "2"]), "non-finite")
    assert not (workdir / "samples").exists()
    one_line_error(capsys, train.cli(TOY + ["--config.training.n_iters=30", "--workdir", str(workdir)]),
                   "non-finite weights")


# ---------------------------------------------------------------------------------------------
# Items 3 and 4: signals.
def _start(args, workdir, torchrun=False):
    prefix = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"] if torchrun \
        else [sys.executable]
    cmd = prefix + ["-m", "scoresde.train"] + list(args) + ["--workdir", str(workdir)]
    return subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path, proc, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if os.path.exists(path):
            return
        time.sleep(0.1)
    raise AssertionError(f"{path} did not appear")


def test_sigterm_during_snapshot_sampling_stops_within_seconds(tmp_path):
    """A sample grid of 20000 steps takes minutes; SIGTERM must not wait for it: the checkpoint
    is saved within 5 s, and the process has exited well within a scheduler's 30 s grace
    (interpreter teardown on this shared machine takes seconds of its own)."""
    proc = _start(TOY + ["--config.training.n_iters=1000", "--config.sampling.steps=20000"], tmp_path)
    _wait_for(tmp_path / "checkpoints" / "checkpoint_10.pt", proc)
    time.sleep(1.0)  # inside the grid's sampling
    sent = time.time()
    proc.send_signal(signal.SIGTERM)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "checkpoint saved" in line:
            saved = time.time() - sent
            break
    out, err = proc.communicate(timeout=120)
    exited = time.time() - sent
    assert proc.returncode == 0, err
    assert saved < 5.0 and exited < 30.0, (saved, exited)
    assert "sample grid abandoned" in "".join(lines)
    assert list_checkpoints(tmp_path / "checkpoints")[-1][0] >= 10


def test_second_sigint_aborts():
    with train._StopFlag() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.signal == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.parametrize("target", ["rank0", "agent"])
def test_ddp_sigterm_every_rank_stops_at_the_same_step(tmp_path, target):
    """SIGTERM to rank 0 alone (rank 1 may be inside a collective) or to the torchrun agent: both
    ranks stop at the same step, one checkpoint is written at it, the ranks exit 0."""
    proc = _start(TOY + NO_GRID + ["--config.training.n_iters=100000", "--config.training.snapshot_freq=10",
                                   "--device", "cpu"], tmp_path, torchrun=True)
    _wait_for(tmp_path / "checkpoints" / "checkpoint_10.pt", proc)
    pid = proc.pid
    if target == "rank0":
        children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(proc.pid)], capture_output=True,
                                  text=True).stdout.split()
        for child in children:
            with open(f"/proc/{child}/environ", "rb") as f:
                if b"RANK=0" in f.read().split(b"\0"):
                    pid = int(child)
        assert pid != proc.pid
    os.kill(pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    if target == "agent":  # torchrun forwards the signal, then re-raises it itself (exit 1)
        assert proc.returncode == 1 and "SignalException" in err, err[-3000:]
    else:
        assert proc.returncode == 0, err[-3000:]
    steps = {line.split("at step ")[1].split(";")[0] for line in out.splitlines() if "stopped by signal" in line}
    assert len(steps) == 1 and out.count("stopped by signal") == 2, out
    assert list_checkpoints(tmp_path / "checkpoints")[-1][0] == int(steps.pop())


# ---------------------------------------------------------------------------------------------
# Items 7 and 8: resumes.
def test_resume_refuses_changed_state_keys_and_records_accepted_ones(trained, tmp_path, capsys):
    import shutil

    workdir = tmp_path / "run"
    shutil.copytree(trained, workdir)
    before = snapshot(workdir)
    one_line_error(capsys, train.cli(TOY + NO_GRID + ["--config.seed=7", "--config.model.ema_rate=0.5",
                                                      "--config.training.n_iters=30", "--workdir", str(workdir)]),
                   "changed model.ema_rate, seed (only")
    one_line_error(capsys, train.cli(TOY + NO_GRID + ["--config.training.batch_size=16", "--workdir", str(workdir),
                                                      "--config.training.n_iters=30"]), "training.batch_size")
    assert snapshot(workdir) == before
    assert train.cli(TOY + NO_GRID + ["--config.training.n_iters=30", "--workdir", str(workdir)]) == 0
    with open(workdir / "config_changes.jsonl") as f:
        records = [json.loads(line) for line in f]
    assert [(r["step"], r["changes"]) for r in records] == [(20, {"training.n_iters": [20, 30]})]
    assert json.load(open(workdir / "config.json"))["training"]["n_iters"] == 30


@pytest.mark.parametrize("damage,expected", [
    (lambda s: s.pop("data"), "KeyError: 'data'"),
    (lambda s: s.pop("noise_rng"), "KeyError: 'noise_rng'"),
    (lambda s: s.update(step=-3), "step -3"),
    (lambda s: s.update(step="ten"), "step 'ten'"),
])
def test_incomplete_checkpoint_is_a_usage_error(trained, tmp_path, capsys, damage, expected):
    import shutil

    workdir = tmp_path / "run"
    shutil.copytree(trained, workdir)
    path = workdir / "checkpoints" / "checkpoint_20.pt"
    state = load_checkpoint(str(path))
    damage(state)
    save_checkpoint(str(path), state)
    before = snapshot(workdir)
    one_line_error(capsys, train.cli(TOY + NO_GRID + ["--config.training.n_iters=30", "--workdir", str(workdir)]),
                   expected)
    assert snapshot(workdir) == before


def test_stale_temporaries_and_replayed_metrics_rows_are_removed(trained, tmp_path):
    """A kill after the rows of steps 15 and 20 but before checkpoint 20, and during a write."""
    import shutil

    workdir = tmp_path / "run"
    shutil.copytree(trained, workdir)
    os.remove(workdir / "checkpoints" / "checkpoint_20.pt")
    (workdir / "checkpoints" / ".tmp_checkpoint_x1y2").write_bytes(b"half a checkpoint")
    assert train.cli(TOY + NO_GRID + ["--workdir", str(workdir)]) == 0
    assert sorted(os.listdir(workdir / "checkpoints")) == ["checkpoint_10.pt", "checkpoint_20.pt"]
    assert losses(workdir) == losses(trained)


def test_sigterm_mid_log_window_keeps_the_next_logged_loss(trained, tmp_path):
    """Stopped at a step that is not a multiple of log_freq, the resumed run logs what an
    uninterrupted one logs."""
    freqs = ["--config.training.snapshot_freq=3", "--config.training.log_freq=10", "--config.training.keep_last=100000"]
    # A run too long to end on its own before the signal (20 toy steps can finish between two
    # polls on an idle machine); the resumed and the straight run then stop two log windows on.
    proc = _start(TOY + NO_GRID + freqs + ["--config.training.n_iters=100000"], tmp_path)
    _wait_for(tmp_path / "checkpoints" / "checkpoint_3.pt", proc)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    stopped = int(out.split("at step ")[1].split(";")[0])
    n_iters = [f"--config.training.n_iters={10 * (stopped // 10 + 2)}"]
    assert train.cli(TOY + NO_GRID + freqs + n_iters + ["--workdir", str(tmp_path)]) == 0
    straight = tmp_path / "straight"
    assert train.cli(TOY + NO_GRID + freqs + n_iters + ["--workdir", str(straight)]) == 0
    assert losses(tmp_path) == losses(straight), stopped


def test_checkpoints_have_the_permissions_of_other_outputs(trained):
    mode = os.stat(trained / "checkpoints" / "checkpoint_20.pt").st_mode & 0o777
    assert mode == os.stat(trained / "config.json").st_mode & 0o777


# ---------------------------------------------------------------------------------------------
# Items 5, 6 and 9: sample and evaluate.
@pytest.mark.parametrize("args,expected", [
    (["--steps", "0"], "--steps must be at least 1"),
    (["--steps", "100000000"], "must lie in 1..100000"),
    (["--method", "ode", "--ode-method", "foo"], "unknown sampling.ode_method 'foo'"),
    (["--steps", "1e8"], "invalid int value"),
    (["-n", "0"], "--n-samples must be at least 1"),
    (["--device", "cuda:99" if torch.cuda.is_available() else "cuda"],
     "CUDA device(s)" if torch.cuda.is_available() else "CUDA is not available on this machine"),
])
def test_sample_usage_errors(trained, capsys, args, expected):
    before = snapshot(trained)
    one_line_error(capsys, sample_cli.cli(["--workdir", str(trained)] + args), expected)
    assert snapshot(trained) == before


def test_sample_refuses_an_existing_output_before_sampling(trained, tmp_path, capsys):
    out = tmp_path / "s.png"
    assert sample_cli.cli(["--workdir", str(trained), "-n", "2", "--steps", "2", "--out", str(out)]) == 0
    before = snapshot(tmp_path)
    start = time.perf_counter()
    code = sample_cli.cli(["--workdir", str(trained), "-n", "20000", "--steps", "20000", "--out", str(out)])
    one_line_error(capsys, code, "already exists")
    assert time.perf_counter() - start < 10 and snapshot(tmp_path) == before


@pytest.mark.parametrize("args,expected", [
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--batch-size", "-1"], "--batch-size must be at least 1"),
    (["--max-examples", "-19990"], "--max-examples must be at least 1"),
    (["--n-dequant", "-1"], "--n-dequant must be at least 1"),
    (["--rtol", "-1"], "--rtol must be a positive number"),
])
def test_evaluate_usage_errors(trained, capsys, args, expected):
    before = snapshot(trained)
    one_line_error(capsys, evaluate_cli.cli(["--workdir", str(trained)] + args), expected)
    assert snapshot(trained) == before


def test_evaluate_refuses_to_overwrite(trained, tmp_path, capsys):
    import shutil

    workdir = tmp_path / "run"
    shutil.copytree(trained, workdir)
    quick = ["--workdir", str(workdir), "--max-examples", "4", "--rtol", "1e-2", "--atol", "1e-2"]
    assert evaluate_cli.cli(quick) == 0
    capsys.readouterr()  # the progress bar on stderr
    before = snapshot(workdir)
    one_line_error(capsys, evaluate_cli.cli(quick), "already exists: pass --overwrite")
    assert snapshot(workdir) == before
    assert evaluate_cli.cli(quick + ["--overwrite"]) == 0


def test_corrupt_config_json(trained, tmp_path, capsys):
    import shutil

    workdir = tmp_path / "run"
    shutil.copytree(trained, workdir)
    (workdir / "config.json").write_text("{not json")
    one_line_error(capsys, sample_cli.cli(["--workdir", str(workdir)]), "is not a readable run config")
    one_line_error(capsys, train.cli(TOY + ["--config.training.n_iters=30", "--workdir", str(workdir)]),
                   "is not a readable run config")
