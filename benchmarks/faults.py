"""Rerun the fault cases of training and the command lines (issue 15) and print a table of counts.

    python benchmarks/faults.py [--kills 6] [--workdir DIR]

Cases, on tiny ``vp_toy`` runs:

* bad inputs of ``train`` / ``sample`` / ``evaluate``: each must give exit status 2, exactly one
  line on stderr starting with ``error:``, no traceback, and no file changed;
* SIGTERM during snapshot sampling (a grid of 20000 steps): seconds from the signal to the saved
  checkpoint and to the exit of the process;
* NaN runs (``optim.lr=1e20`` without clipping, checkpoint and log cadences that do not
  align): non-finite checkpoints written, and whether the last finite one survived;
* SIGKILL at random times during a run that writes a checkpoint every step: temporary files
  the kills left, whether the rerun resumed, and temporary files left after it;
* SIGTERM to rank 0 of a 2-process gloo run under torchrun: exit status, ranks that stopped at
  the same step, checkpoints written at that step.

Takes a few minutes on two CPU cores.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import torch

from scoresde import train
from scoresde.checkpointing import list_checkpoints, load_checkpoint, save_checkpoint
from scoresde.cli import evaluate as evaluate_cli
from scoresde.cli import sample as sample_cli

TOY = ["--config", "vp_toy", "--config.training.n_iters=20", "--config.training.snapshot_freq=10",
       "--config.training.log_freq=5", "--config.sampling.steps=10", "--config.sampling.n_samples=20",
       "--config.data.n_train=500", "--config.model.kwargs.hidden_dim=16", "--config.training.batch_size=32"]
NO_GRID = ["--config.training.snapshot_sampling=false"]
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")

TRAIN_BAD = [
    ["--config.sampling.predictor=foo"], ["--config.sampling.method=ode", "--config.sampling.ode_method=foo"],
    ["--config.sampling.method=sde"], ["--config.sampling.eps=0"], ["--config.sampling.n_samples=0"],
    ["--config.training.batch_size=0"], ["--config.training.batch_size=-4"], ["--config.training.batch_size=1000"],
    ["--config.model.ema_rate=2"], ["--config.optim.lr=-1"], ["--config.optim.lr=1e38", "--config.optim.warmup=1"],
    ["--config.data.dataset=toy:foo"], ["--config.model.num_scales=0"], ["--config.training.snapshot_freq=0"],
    ["--config.training.log_freq=0"], ["--config.training.n_iters=0"], ["--config.training.keep_last=0"],
    ["--device", "cuda:99" if torch.cuda.is_available() else "cuda"], ["--device", "foo"],
    ["--config.training.n_iterz=5"], ["--config.training.n_iters=many"], ["--config", "vp_nope"],
]
RESUME_BAD = [["--config.seed=7"], ["--config.model.ema_rate=0.5"], ["--config.training.batch_size=16"]]
SAMPLE_BAD = [["--steps", "0"], ["--steps", "100000000"], ["--steps", "1e8"],
              ["--method", "ode", "--ode-method", "foo"], ["-n", "0"], ["--batch-size", "0"], ["--device", "foo"],
              ["--snr", "x"], ["--inpaint", "--colorize"], ["--mask", "center"], ["--class-label", "-1"],
              ["--out", "EXISTING"]]
EVAL_BAD = [["--batch-size", "0"], ["--batch-size", "-1"], ["--max-examples", "-19990"], ["--n-dequant", "-1"],
            ["--rtol", "-1"], ["--atol", "0"], ["--split", "val"], ["EXISTING_EVAL"]]


def snapshot(directory):
    out = {}
    for root, _, files in os.walk(directory):
        for name in files:
            st = os.stat(os.path.join(root, name))
            out[os.path.join(root, name)] = (st.st_size, st.st_mtime_ns)
    return out


def quiet_call(fn, argv):
    """Exit status and stderr of an in-process CLI call (stdout discarded)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = fn(argv)
    return code, err.getvalue()


def usage_ok(code, err, before, after) -> bool:
    lines = [line for line in err.splitlines() if line.strip()]
    return code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and before == after


def bad_inputs(root):
    """(group, cases, as expected) for the bad-input groups."""
    trained = os.path.join(root, "trained")
    assert train.cli(TOY + NO_GRID + ["--workdir", trained, "--device", "cpu"]) == 0
    existing = os.path.join(root, "existing.png")
    assert quiet_call(sample_cli.cli, ["--workdir", trained, "-n", "2", "--steps", "2", "--out", existing])[0] == 0
    assert quiet_call(evaluate_cli.cli, ["--workdir", trained, "--max-examples", "2", "--rtol", "1e-2",
                                         "--atol", "1e-2"])[0] == 0
    rows = []
    ok = 0
    for extra in TRAIN_BAD:
        workdir = os.path.join(root, "bad")
        code, err = quiet_call(train.cli, TOY + extra + ["--workdir", workdir])
        ok += usage_ok(code, err, {}, snapshot(workdir))
    rows.append(("train: bad config / option", len(TRAIN_BAD), ok))
    ok = 0
    file_path = os.path.join(root, "a_file")
    open(file_path, "w").close()
    code, err = quiet_call(train.cli, TOY + ["--workdir", file_path])
    ok += usage_ok(code, err, 0, os.path.getsize(file_path))
    for extra in RESUME_BAD:
        before = snapshot(trained)
        code, err = quiet_call(train.cli,
                               TOY + NO_GRID + extra + ["--config.training.n_iters=30", "--workdir", trained])
        ok += usage_ok(code, err, before, snapshot(trained))
    for damage in ("data", "noise_rng", "step"):
        damaged = os.path.join(root, f"damaged_{damage}")
        shutil.copytree(trained, damaged)
        path = list_checkpoints(os.path.join(damaged, "checkpoints"))[-1][1]
        state = load_checkpoint(path)
        state.pop(damage) if damage != "step" else state.update(step=-3)
        save_checkpoint(path, state)
        before = snapshot(damaged)
        code, err = quiet_call(train.cli, TOY + NO_GRID + ["--config.training.n_iters=30", "--workdir", damaged])
        ok += usage_ok(code, err, before, snapshot(damaged))
    corrupt = os.path.join(root, "corrupt")
    shutil.copytree(trained, corrupt)
    with open(os.path.join(corrupt, "config.json"), "w") as f:
        f.write("{not json")
    before = snapshot(corrupt)
    code, err = quiet_call(sample_cli.cli, ["--workdir", corrupt])
    ok += usage_ok(code, err, before, snapshot(corrupt))
    rows.append(("train: workdir / resume / checkpoint", 1 + len(RESUME_BAD) + 3 + 1, ok))
    ok = 0
    for extra in SAMPLE_BAD:
        extra = ["--out", existing] if extra == ["--out", "EXISTING"] else extra
        before = snapshot(root)
        code, err = quiet_call(sample_cli.cli, ["--workdir", trained] + extra)
        ok += usage_ok(code, err, before, snapshot(root))
    rows.append(("sample: bad option", len(SAMPLE_BAD), ok))
    ok = 0
    for extra in EVAL_BAD:
        extra = [] if extra == ["EXISTING_EVAL"] else extra
        before = snapshot(root)
        code, err = quiet_call(evaluate_cli.cli, ["--workdir", trained, "--max-examples", "2"] + extra)
        ok += usage_ok(code, err, before, snapshot(root))
    rows.append(("evaluate: bad option", len(EVAL_BAD), ok))
    return rows, trained


def start(args, workdir, torchrun=False):
    prefix = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"] if torchrun \
        else [sys.executable]
    return subprocess.Popen(prefix + ["-m", "scoresde.train"] + args + ["--workdir", workdir], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(path, proc, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if os.path.exists(path):
            return True
        time.sleep(0.05)
    return False


def signal_during_sampling(root):
    workdir = os.path.join(root, "sigterm")
    proc = start(TOY + ["--config.training.n_iters=1000", "--config.sampling.steps=20000"], workdir)
    wait_for(os.path.join(workdir, "checkpoints", "checkpoint_10.pt"), proc)
    time.sleep(1.0)
    sent = time.time()
    proc.send_signal(signal.SIGTERM)
    saved = None
    for line in proc.stdout:
        if "checkpoint saved" in line:
            saved = time.time() - sent
            break
    proc.communicate()
    exited = time.time() - sent
    return saved, exited, proc.returncode


def nan_runs(root):
    """Non-finite checkpoints written / NaN runs, and runs whose last finite checkpoint was lost."""
    written, lost, runs = 0, 0, 0
    for snapshot_freq, log_freq in ((3, 200), (30, 200), (7, 5)):
        for resumed in (False, True):
            workdir = os.path.join(root, f"nan_{snapshot_freq}_{log_freq}_{resumed}")
            if resumed:
                quiet_call(train.cli, TOY + NO_GRID + ["--workdir", workdir])
            args = TOY + NO_GRID + ["--config.optim.lr=1e20", "--config.optim.grad_clip=-1",
                                    "--config.optim.warmup=1", f"--config.training.log_freq={log_freq}",
                                    f"--config.training.snapshot_freq={snapshot_freq}",
                                    "--config.training.n_iters=60", "--workdir", workdir]
            quiet_call(train.cli, args)
            runs += 1
            found = list_checkpoints(os.path.join(workdir, "checkpoints"))
            finite = [all(torch.isfinite(v).all() for v in load_checkpoint(p)["model"].values()) for _, p in found]
            written += finite.count(False)
            lost += resumed and not any(finite)
    return runs, written, lost


def kills_during_writes(root, n):
    """SIGKILL at random times while a checkpoint is written every step; then rerun to the end."""
    rng = random.Random(0)
    stray, resumed, left = 0, 0, 0
    args = TOY + NO_GRID + ["--config.training.snapshot_freq=1", "--config.training.keep_last=2",
                            "--config.model.kwargs.hidden_dim=512"]
    for k in range(n):
        workdir = os.path.join(root, f"kill_{k}")
        proc = start(args + ["--config.training.n_iters=100000"], workdir)
        wait_for(os.path.join(workdir, "checkpoints", "checkpoint_3.pt"), proc)
        time.sleep(rng.uniform(0.0, 1.0))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        step = list_checkpoints(os.path.join(workdir, "checkpoints"))[-1][0]
        left += sum(name.startswith(".tmp") for name in os.listdir(os.path.join(workdir, "checkpoints")))
        code, _ = quiet_call(train.cli, args + [f"--config.training.n_iters={step + 2}", "--workdir", workdir])
        resumed += code == 0 and list_checkpoints(os.path.join(workdir, "checkpoints"))[-1][0] == step + 2
        stray += sum(name.startswith(".tmp") for name in os.listdir(os.path.join(workdir, "checkpoints")))
    return left, stray, resumed


def ddp_sigterm(root):
    workdir = os.path.join(root, "ddp")
    proc = start(TOY + NO_GRID + ["--config.training.n_iters=100000", "--device", "cpu"], workdir, torchrun=True)
    wait_for(os.path.join(workdir, "checkpoints", "checkpoint_10.pt"), proc)
    children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(proc.pid)],
                              capture_output=True, text=True).stdout.split()
    for child in children:
        with open(f"/proc/{child}/environ", "rb") as f:
            if b"RANK=0" in f.read().split(b"\0"):
                os.kill(int(child), signal.SIGTERM)
    out, _ = proc.communicate(timeout=300)
    steps = [line.split("at step ")[1].split(";")[0] for line in out.splitlines() if "stopped by signal" in line]
    at = list_checkpoints(os.path.join(workdir, "checkpoints"))[-1][0]
    return proc.returncode, len(steps), len(set(steps)) == 1 and int(steps[0]) == at


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=6, help="SIGKILL trials (default 6)")
    parser.add_argument("--workdir", help="scratch folder (default: a temporary one, removed)")
    args = parser.parse_args(argv)
    root = args.workdir or tempfile.mkdtemp(prefix="scoresde_faults_")
    start_time = time.time()
    rows, _ = bad_inputs(root)
    print(f"{'case':44s} {'cases':>6s} {'as expected':>12s}")
    for name, cases, ok in rows:
        print(f"{name:44s} {cases:6d} {ok:12d}")
    total, good = sum(r[1] for r in rows), sum(r[2] for r in rows)
    print(f"{'all bad inputs (exit 2, one line, no change)':44s} {total:6d} {good:12d}")
    saved, exited, code = signal_during_sampling(root)
    print(f"{'SIGTERM in snapshot sampling':44s} saved after {saved:.2f} s, exited after {exited:.2f} s, "
          f"status {code}")
    runs, written, lost = nan_runs(root)
    print(f"{'NaN runs':44s} {runs:6d} runs, {written} non-finite checkpoints written, "
          f"{lost} lost their last finite one")
    left, stray, resumed = kills_during_writes(root, args.kills)
    print(f"{'SIGKILL during checkpoint writes':44s} {args.kills:6d} kills, {left} temporary files left by "
          f"them, {resumed} reruns resumed, {stray} temporary files after the reruns")
    code, ranks, agreed = ddp_sigterm(root)
    print(f"{'DDP (2 gloo ranks) SIGTERM to rank 0':44s} torchrun status {code}, {ranks} ranks stopped, "
          f"same step as the checkpoint: {agreed}")
    print(f"({time.time() - start_time:.0f} s; load: {os.getloadavg()[0]:.1f})")
    if not args.workdir:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
