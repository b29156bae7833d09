"""``scoresde.sample`` at scale: sample ``i`` is seeded from ``(--seed, i)``, so the samples do
not depend on ``--batch-size`` or on the number of torchrun processes; ``--sampler-arg``
reaches the sampler."""
import os
import subprocess
import sys

import numpy as np
import pytest

from scoresde import train
from scoresde.cli import sample

TOY = [
    "--config", "vp_toy", "--config.training.n_iters=40", "--config.training.snapshot_freq=40",
    "--config.training.snapshot_sampling=false", "--config.data.n_train=2000",
    "--config.model.kwargs.hidden_dim=32", "--config.training.batch_size=64",
]
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
# Rows of a float32 matmul may round differently in batches of other sizes (a few float32 ulps).
ATOL = RTOL = 1e-5


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("toy")
    assert train.cli(TOY + ["--workdir", str(workdir)]) == 0
    return workdir


def draw(run, out, *args):
    assert sample.cli(["--workdir", str(run), "--out", str(out), "--device", "cpu", *args]) == 0
    return np.load(str(out)[:-4] + ".npz")["x"]


# Stochastic predictor and corrector (the "langevin" corrector's step size uses the batch's norms).
PC = ["--method", "pc", "--predictor", "euler_maruyama", "--corrector", "annealed_langevin", "--steps", "10"]


@pytest.mark.parametrize("sampler", [PC, ["--method", "ode", "--ode-method", "euler", "--steps", "10"]],
                         ids=["pc", "ode_euler"])
def test_samples_do_not_depend_on_the_batch_size(run, tmp_path, sampler):
    whole = draw(run, tmp_path / "whole.png", "-n", "7", *sampler)
    batched = draw(run, tmp_path / "batched.png", "-n", "7", "--batch-size", "3", *sampler)
    fewer = draw(run, tmp_path / "fewer.png", "-n", "4", "--batch-size", "2", *sampler)
    assert len(np.unique(whole.round(4), axis=0)) == 7  # every sample is its own
    np.testing.assert_allclose(batched, whole, atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(fewer, whole[:4], atol=ATOL, rtol=RTOL)
    other_seed = draw(run, tmp_path / "seed1.png", "-n", "7", "--seed", "1", *sampler)
    assert np.abs(other_seed - whole).min() > 1e-3


def test_two_processes_give_the_samples_of_one(run, tmp_path):
    one = draw(run, tmp_path / "one.png", "-n", "7", *PC)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "scoresde.sample", "--workdir", str(run), "-n", "7", "--batch-size", "2", "--device", "cpu",
           "--out", str(tmp_path / "two.png"), *PC]
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("7 samples with") == 1  # one process writes
    assert "4/4 samples of process 0" in done.stderr  # process 0 drew 4 of the 7
    two = np.load(tmp_path / "two.npz")["x"]
    np.testing.assert_allclose(two, one, atol=ATOL, rtol=RTOL)


def test_sampler_arg_reaches_the_sampler(run, tmp_path):
    unipc = ["-n", "5", "--method", "ode", "--ode-method", "unipc", "--steps", "4"]
    log_snr = draw(run, tmp_path / "a.png", *unipc, "--sampler-arg", "skip_type=logSNR")
    uniform = draw(run, tmp_path / "b.png", *unipc, "--sampler-arg", "skip_type=time_uniform")
    again = draw(run, tmp_path / "c.png", *unipc, "--sampler-arg", "skip_type=logSNR", "--sampler-arg", "order=3")
    assert np.abs(log_snr - uniform).max() > 1e-3
    np.testing.assert_array_equal(again, log_snr)  # order=3 is the default


@pytest.mark.parametrize("arg,message", [
    ("skip_typo=logSNR", "valid keys: denoise, eps, lower_order_final, order, prediction, skip_type"),
    ("skip_type", "must be KEY=VALUE"),
    ("generator=1", "valid keys"),
    ("skip_type=bogus", "unknown skip_type='bogus'; valid values are"),
])
def test_bad_sampler_arg_is_exit_2_and_one_line(run, tmp_path, capsys, arg, message):
    out = tmp_path / "x.png"
    status = sample.cli(["--workdir", str(run), "--out", str(out), "-n", "2", "--method", "ode",
                         "--ode-method", "unipc", "--steps", "4", "--sampler-arg", arg])
    err = capsys.readouterr().err
    assert status == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()
