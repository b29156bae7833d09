"""End-to-end tests of controllable generation on tiny runs: training a class-conditional
score model and a noise-conditional classifier, and the sampling options --class-label,
--guidance-scale, --classifier-workdir, --inpaint and --colorize."""
import json
import os

import numpy as np
import pytest
import torch

from scoresde import train
from scoresde.checkpointing import list_checkpoints, load_checkpoint
from scoresde.cli import sample as sample_module

pytest.importorskip("sklearn")

TINY = ["--config.training.n_iters=4", "--config.training.snapshot_freq=2", "--config.training.log_freq=2",
        "--config.training.batch_size=8", "--config.sampling.steps=4", "--config.sampling.n_samples=4",
        "--config.model.kwargs.nf=8"]
SYNTHETIC_RGB = ["--config", "vp_digits", "--config.data.dataset=synthetic", "--config.data.num_channels=3",
                 "--config.model.kwargs.in_channels=3", "--config.data.n_train=64"] + TINY


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for name, args in (("cond", ["--config", "vp_digits_cond"] + TINY),
                       ("classifier", ["--config", "classifier_digits"] + TINY),
                       ("rgb", SYNTHETIC_RGB + ["--config.training.snapshot_sampling=false"])):
        assert train.cli(args + ["--workdir", str(root / name)]) == 0, name
    return root


def sample(*args):
    return sample_module.cli([str(a) for a in args] + ["-n", "4", "--steps", "3"])


def test_conditional_and_classifier_runs(runs):
    cond = json.load(open(runs / "cond" / "config.json"))
    assert cond["model"]["num_classes"] == 10 and cond["training"]["label_dropout"] == 0.2
    assert (runs / "cond" / "samples" / "samples_4.png").exists()  # a class-conditional grid
    # The classifier keeps checkpoints with model, EMA and optimizer like a score model, and
    # draws no sample grids.
    assert [s for s, _ in list_checkpoints(runs / "classifier" / "checkpoints")] == [2, 4]
    state = load_checkpoint(str(runs / "classifier" / "checkpoints" / "checkpoint_4.pt"))
    assert {"model", "ema", "optimizer"} <= set(state)
    assert not (runs / "classifier" / "samples").exists()


def test_classifier_training_resumes(runs, tmp_path):
    args = ["--config", "classifier_digits"] + TINY + ["--workdir", str(tmp_path)]
    assert train.cli(args[:-2] + ["--config.training.n_iters=2", "--workdir", str(tmp_path)]) == 0
    assert train.cli(args) == 0
    a = load_checkpoint(str(runs / "classifier" / "checkpoints" / "checkpoint_4.pt"))
    b = load_checkpoint(str(tmp_path / "checkpoints" / "checkpoint_4.pt"))
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key


def test_class_label_with_classifier_free_guidance(runs):
    assert sample("--workdir", runs / "cond", "--class-label", 3, "--guidance-scale", 2) == 0
    arrays = np.load(runs / "cond" / "samples" / "sample_4_0_y3_cfg2.npz")
    assert arrays["images"].shape == (4, 1, 8, 8)
    assert sample("--workdir", runs / "cond", "--class-label", 3) == 0  # plain conditional (w = 0)
    assert (runs / "cond" / "samples" / "sample_4_0_y3_cfg0.png").exists()


def test_classifier_guidance(runs):
    assert sample("--workdir", runs / "cond", "--class-label", 7, "--classifier-workdir", runs / "classifier",
                  "--guidance-scale", 1.5) == 0
    arrays = np.load(runs / "cond" / "samples" / "sample_4_0_y7_cg1.5.npz")
    assert np.isfinite(arrays["x"]).all()


@pytest.mark.parametrize("mask,method", [("right_half", "pc"), ("center", "ode"), ("random:0.5", "pc")])
def test_inpaint(runs, mask, method):
    extra = ["--method", "ode", "--ode-method", "euler"] if method == "ode" else []
    assert sample("--workdir", runs / "cond", "--inpaint", "--mask", mask, *extra) == 0
    arrays = np.load(runs / "cond" / "samples" / f"inpaint_4_0_{mask.replace(':', '')}.npz")
    known = arrays["mask"]
    assert known.shape == (4, 1, 8, 8) and 0 < known.mean() < 1
    assert np.array_equal(arrays["images"][known], arrays["original"][known])  # known pixels kept
    if mask == "right_half":
        assert known[..., :4].all() and not known[..., 4:].any()


def test_colorize(runs):
    assert sample("--workdir", runs / "rgb", "--colorize") == 0
    arrays = np.load(runs / "rgb" / "samples" / "colorize_4_0.npz")
    assert arrays["x"].shape == (4, 3, 8, 8)
    assert np.abs(arrays["x"].mean(axis=1, keepdims=True) - arrays["gray"]).max() < 1e-5


@pytest.mark.parametrize("args,message", [
    (["--colorize"], "--colorize needs 3-channel (RGB) data"),
    (["--inpaint", "--colorize"], "separate tasks"),
    (["--inpaint", "--mask", "top"], "unknown mask 'top'; valid: right_half"),
    (["--inpaint", "--mask", "random:2"], "must be a number in [0, 1]"),
    (["--mask", "center"], "--mask applies to --inpaint only"),
    (["--guidance-scale", "2"], "need --class-label"),
    (["--class-label", "10"], "not a class of the model (0..9)"),
    (["--class-label", "-1"], "class index >= 0"),
    (["--inpaint", "--method", "ode", "--ode-method", "rk45"], "fixed-step solver"),
    (["--inpaint", "--class-label", "1"], "sample unconditionally"),
])
def test_usage_errors(runs, capsys, args, message):
    before = sorted(os.listdir(runs / "cond" / "samples"))
    assert sample("--workdir", runs / "cond", *args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1
    assert sorted(os.listdir(runs / "cond" / "samples")) == before


def test_usage_errors_between_runs(runs, capsys):
    assert sample("--workdir", runs / "classifier") == 2
    assert "holds a noise-conditional classifier" in capsys.readouterr().err
    assert sample("--workdir", runs / "rgb", "--class-label", 1) == 2
    assert "is unconditional" in capsys.readouterr().err
    assert sample("--workdir", runs / "cond", "--class-label", 1, "--classifier-workdir", runs / "cond") == 2
    assert "is not a classifier run" in capsys.readouterr().err


def test_outputs_are_not_overwritten(runs, capsys):
    assert sample("--workdir", runs / "cond", "--class-label", 5) == 0
    out = runs / "cond" / "samples" / "sample_4_0_y5_cfg0.png"
    stamp = os.stat(out).st_mtime_ns
    assert sample("--workdir", runs / "cond", "--class-label", 5) == 2
    assert "already exists" in capsys.readouterr().err and os.stat(out).st_mtime_ns == stamp
    assert sample("--workdir", runs / "cond", "--class-label", 5, "--overwrite") == 0


@pytest.mark.parametrize("override,message", [
    ("--config.training.objective=gan", "unknown training.objective 'gan'"),
    ("--config.model.num_classes=0", "needs model.num_classes >= 2"),
    ("--config.training.continuous=false", "set training.continuous=true"),
])
def test_classifier_config_errors(tmp_path, capsys, override, message):
    assert train.cli(["--config", "classifier_digits", override, "--workdir", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_conditional_config_errors(tmp_path, capsys):
    args = ["--config", "vp_digits", "--config.training.label_dropout=0.1", "--workdir", str(tmp_path / "a")]
    assert train.cli(args) == 2 and "needs a class-conditional score model" in capsys.readouterr().err
    args = ["--config", "vp_digits_cond", "--config.model.num_classes=5", "--workdir", str(tmp_path / "b")]
    assert train.cli(args) == 2 and "set model.num_classes to at least 10" in capsys.readouterr().err
    args = SYNTHETIC_RGB + ["--config.model.num_classes=10", "--workdir", str(tmp_path / "c")]
    assert train.cli(args) == 2 and "has no class labels" in capsys.readouterr().err
