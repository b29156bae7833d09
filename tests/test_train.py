"""End-to-end tests of the training, sampling and evaluation command lines on tiny configs."""
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
from scoresde.checkpointing import list_checkpoints, load_checkpoint
from scoresde.cli import evaluate
from scoresde.cli import sample as sample_module

TOY = [
    "--config", "vp_toy",
    "--config.training.n_iters=40", "--config.training.snapshot_freq=20", "--config.training.log_freq=10",
    "--config.sampling.steps=20", "--config.sampling.n_samples=50", "--config.data.n_train=2000",
    "--config.model.kwargs.hidden_dim=32", "--config.training.batch_size=64",
]
DIGITS = [
    "--config", "vp_digits",
    "--config.training.n_iters=4", "--config.training.snapshot_freq=2", "--config.training.log_freq=2",
    "--config.training.batch_size=8", "--config.sampling.steps=5", "--config.sampling.n_samples=4",
    "--config.model.kwargs.nf=8", "--config.eval.batch_size=10",
]
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")


def run_cli(args, workdir):
    return train.cli(list(args) + ["--workdir", str(workdir)])


def losses(workdir):
    with open(os.path.join(workdir, "metrics.csv")) as f:
        return {int(r["step"]): float(r["loss"]) for r in csv.DictReader(f)}


def snapshot(directory):
    """Names, sizes and modification times of every file below ``directory``."""
    out = {}
    for root, _, files in os.walk(directory):
        for name in files:
            p = os.path.join(root, name)
            st = os.stat(p)
            out[p] = (st.st_size, st.st_mtime_ns)
    return out


def test_toy_run_writes_the_workdir_and_already_done(tmp_path, capsys):
    assert run_cli(TOY, tmp_path) == 0
    config = json.load(open(tmp_path / "config.json"))
    assert config["training"]["n_iters"] == 40 and config["model"]["kwargs"]["hidden_dim"] == 32
    assert [s for s, _ in list_checkpoints(tmp_path / "checkpoints")] == [20, 40]
    assert (tmp_path / "samples" / "samples_40.png").exists()
    assert sorted(losses(tmp_path)) == [10, 20, 30, 40]
    state = load_checkpoint(str(tmp_path / "checkpoints" / "checkpoint_40.pt"))
    assert state["step"] == 40 and json.loads(state["config"])["training"]["n_iters"] == 40
    before = snapshot(tmp_path)
    capsys.readouterr()
    assert run_cli(TOY, tmp_path) == 0
    assert "training already done" in capsys.readouterr().out
    assert snapshot(tmp_path) == before


def test_resumed_training_equals_an_uninterrupted_run(tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert run_cli(TOY, straight) == 0
    assert run_cli(TOY + ["--config.training.n_iters=20"], resumed) == 0
    assert run_cli(TOY, resumed) == 0
    assert losses(straight) == losses(resumed)
    a = load_checkpoint(str(straight / "checkpoints" / "checkpoint_40.pt"))
    b = load_checkpoint(str(resumed / "checkpoints" / "checkpoint_40.pt"))
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key


def test_keep_last_checkpoints(tmp_path):
    args = TOY + ["--config.training.snapshot_freq=5", "--config.training.keep_last=2",
                  "--config.training.keep_every=20", "--config.training.snapshot_sampling=false"]
    assert run_cli(args, tmp_path) == 0
    assert [s for s, _ in list_checkpoints(tmp_path / "checkpoints")] == [20, 35, 40]


def _start(args, workdir):
    cmd = [sys.executable, "-m", "scoresde.train"] + list(args) + ["--workdir", str(workdir)]
    return subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_checkpoint(workdir, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if list_checkpoints(workdir / "checkpoints"):
            return
        time.sleep(0.2)
    raise AssertionError("no checkpoint appeared")


def test_sigkill_loses_at_most_snapshot_freq_steps(tmp_path):
    long_run = TOY + ["--config.training.n_iters=100000", "--config.training.snapshot_freq=10",
                      "--config.training.log_freq=10", "--config.training.snapshot_sampling=false"]
    proc = _start(long_run, tmp_path)
    _wait_for_checkpoint(tmp_path)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    logged = max(losses(tmp_path))
    saved = list_checkpoints(tmp_path / "checkpoints")[-1][0]
    assert saved >= logged - 10
    # Resume to a finite end from the surviving checkpoint.
    assert run_cli(long_run[:-4] + ["--config.training.n_iters=%d" % (saved + 10),
                                    "--config.training.snapshot_sampling=false"], tmp_path) == 0
    assert list_checkpoints(tmp_path / "checkpoints")[-1][0] == saved + 10


def test_sigterm_saves_a_checkpoint_and_exits_0(tmp_path):
    proc = _start(TOY + ["--config.training.n_iters=100000", "--config.training.snapshot_freq=50",
                         "--config.training.snapshot_sampling=false"], tmp_path)
    _wait_for_checkpoint(tmp_path)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "checkpoint saved" in out
    assert "stopped by signal 15" in out
    state = load_checkpoint(str(list_checkpoints(tmp_path / "checkpoints")[-1][1]))
    assert state["step"] >= max(losses(tmp_path), default=0)  # nothing logged is lost


def test_ddp_two_processes_follow_the_single_process_losses(tmp_path):
    """gloo on CPU: 2 processes with half the batch each = 1 process with the whole batch."""
    args = TOY + ["--config.training.snapshot_sampling=false"]
    assert run_cli(args, tmp_path / "one") == 0
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "scoresde.train"] + args + ["--workdir", str(tmp_path / "two"), "--device", "cpu"]
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    one, two = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert sorted(one) == sorted(two)
    for step in one:
        assert abs(one[step] - two[step]) <= 1e-4 * abs(one[step]), (step, one[step], two[step])


def test_ddp_main_joins_the_threads_of_its_collectives_before_returning(tmp_path):
    """A gloo worker thread that drops a finished collective's Python tensors while the
    interpreter shuts down aborts the rank (SIGABRT, "terminate called without an active
    exception"; seen in CI). main destroys the process group of its own collectives, which joins
    that group's worker threads; DDP's group (kept alive by its reducer) may remain."""
    args = TOY + ["--config.training.n_iters=10", "--config.training.snapshot_sampling=false", "--device", "cpu"]
    script = tmp_path / "run.py"
    script.write_text(
        "import os, sys, torch\n"
        "from scoresde import train\n"
        "def workers():\n"
        "    names = [open(f'/proc/self/task/{t}/comm').read().strip() for t in os.listdir('/proc/self/task')]\n"
        "    return names.count('pt_gloo_runloop')\n"
        "seen, all_reduce = [], torch.distributed.all_reduce\n"
        "def counted(*args, **kwargs):\n"
        "    seen.append(workers())\n"
        "    return all_reduce(*args, **kwargs)\n"
        "torch.distributed.all_reduce = counted\n"
        f"assert train.cli({args!r} + ['--workdir', sys.argv[1]]) == 0\n"
        "with open(sys.argv[1] + '_rank' + os.environ['RANK'], 'w') as f:\n"
        "    print(torch.distributed.is_initialized(), max(seen), workers(), file=f)\n")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script),
           str(tmp_path / "w")]
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    for rank in (0, 1):  # initialized?, gloo workers while training, after main
        initialized, during, after = (tmp_path / f"w_rank{rank}").read_text().split()
        assert initialized == "False" and int(after) < int(during), (rank, initialized, during, after)


def test_image_config_train_sample_evaluate(tmp_path, capsys):
    pytest.importorskip("sklearn")
    assert run_cli(DIGITS, tmp_path) == 0
    assert (tmp_path / "samples" / "samples_4.png").exists()
    assert sample_module.cli(["--workdir", str(tmp_path), "-n", "4", "--steps", "5", "--seed", "1"]) == 0
    npz = tmp_path / "samples" / "sample_4_1.npz"
    import numpy as np

    arrays = np.load(npz)
    assert arrays["images"].shape == (4, 1, 8, 8) and arrays["images"].dtype == np.uint8
    assert sample_module.cli(["--workdir", str(tmp_path), "-n", "4", "--method", "ode",
                              "--ode-method", "euler", "--steps", "4"]) == 0
    assert evaluate.cli(["--workdir", str(tmp_path), "--max-examples", "10", "--rtol", "1e-3",
                         "--atol", "1e-3"]) == 0
    result = json.load(open(tmp_path / "eval" / "eval_4.json"))
    assert result["metric"] == "bits/dim" and result["n"] == 10 and 0 < result["mean"] < 20


# ---------------------------------------------------------------------------------------------
# Bad input: one clear message, exit status 2, nothing touched.
@pytest.mark.parametrize("args,message", [
    (["--config", "vp_nope"], "unknown config 'vp_nope'; valid names are: "),
    (TOY + ["--config.training.n_iterz=5"], "training has no field 'n_iterz'"),
    (TOY + ["--config.training.n_iters=many"], "expects an integer; got 'many'"),
    (TOY + ["--config.training.continuous=maybe"], "expects true or false"),
    (["--config", "vp_cifar", "--config.data.root=/nonexistent/cifar"], "cifar-10"),
    (["--config", "missing/file.py"], "does not exist"),
])
def test_usage_errors(tmp_path, capsys, args, message):
    assert run_cli(args, tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_corrupt_or_mismatched_checkpoint(tmp_path, capsys):
    assert run_cli(TOY + ["--config.training.snapshot_sampling=false"], tmp_path) == 0
    before = snapshot(tmp_path)
    # A model of another size cannot resume from these checkpoints.
    assert run_cli(TOY + ["--config.model.kwargs.hidden_dim=16", "--config.training.n_iters=60"], tmp_path) == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err and "with changed model.kwargs.hidden_dim (only" in err
    assert snapshot(tmp_path) == before
    # A damaged checkpoint: clear message, file left as it is.
    bad = tmp_path / "checkpoints" / "checkpoint_60.pt"
    bad.write_bytes(b"not a checkpoint")
    before = snapshot(tmp_path)
    assert run_cli(TOY + ["--config.training.n_iters=80"], tmp_path) == 2
    err = capsys.readouterr().err
    assert "cannot read checkpoint" in err and "checkpoint_60.pt" in err and "Traceback" not in err
    assert snapshot(tmp_path) == before
    assert sample_module.cli(["--workdir", str(tmp_path)]) == 2


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    assert run_cli(TOY + ["--config.training.n_iters=20", "--config.training.snapshot_sampling=false"], tmp_path) == 0
    before = snapshot(tmp_path / "checkpoints")
    code = run_cli(TOY + ["--config.optim.lr=1e30", "--config.optim.grad_clip=-1.0", "--config.optim.warmup=1",
                          "--config.training.snapshot_sampling=false"], tmp_path)
    assert code == 3
    assert "the loss became" in capsys.readouterr().out
    assert snapshot(tmp_path / "checkpoints") == before


def test_sample_cli_batches(tmp_path):
    """--batch-size draws n samples in chunks; the .npz holds all of them."""
    import numpy as np

    assert run_cli(TOY, tmp_path) == 0
    out = tmp_path / "b.png"
    assert sample_module.cli(["--workdir", str(tmp_path), "-n", "5", "--batch-size", "2",
                              "--steps", "3", "--out", str(out)]) == 0
    with np.load(tmp_path / "b.npz") as f:
        assert f["x"].shape == (5, 2) and np.isfinite(f["x"]).all()
    assert sample_module.cli(["--workdir", str(tmp_path), "--batch-size", "0"]) == 2


def test_last_steps_gradients_are_freed_before_the_forward_pass(tmp_path, monkeypatch):
    """The peak of a step holds the activations, not also the previous step's gradients."""
    from scoresde import run as run_module

    seen = []
    make_model = run_module.make_model

    def watched(config):
        model = make_model(config)
        model.register_forward_pre_hook(
            lambda m, args: seen.append(any(p.grad is not None for p in m.parameters())))
        return model

    monkeypatch.setattr(run_module, "make_model", watched)
    assert run_cli(TOY[:2] + ["--config.training.n_iters=3", "--config.training.snapshot_sampling=false"],
                   tmp_path) == 0
    assert len(seen) >= 3 and not any(seen)
