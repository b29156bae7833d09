"""``scoresde.load_run`` at the top level, on a run written by an earlier version of scoresde
(``tests/fixtures/run_vp_digits_v0``, see ``tests/fixtures/README.md``)."""
import shutil
from pathlib import Path

import pytest
import torch

import scoresde
from scoresde import train
from scoresde.cli import sample as sample_cli

RUN = Path(__file__).parent / "fixtures" / "run_vp_digits_v0"


def files(directory):
    return {p: p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_load_run_reads_a_run_of_an_earlier_version_and_samples():
    before = files(RUN)
    config, model, sde, step = scoresde.load_run(str(RUN), device="cpu")
    assert step == 3 and isinstance(sde, scoresde.VPSDE) and not model.training
    assert config.data.dataset == "digits" and config.model.kwargs.nf == 8
    # The EMA network's score equals the one the earlier version computed, to float32 rounding.
    expected = torch.load(RUN / "expected_score.pt", weights_only=True)
    with torch.no_grad():
        score = scoresde.get_score_fn(model, sde)(expected["x"], expected["t"])
    torch.testing.assert_close(score, expected["score"], rtol=1e-5, atol=1e-6)
    # The raw (non-EMA) weights differ after three steps with ema_rate 0.5.
    _, raw, _, _ = scoresde.load_run(str(RUN), ema=False, device="cpu")
    with torch.no_grad():
        raw_score = scoresde.get_score_fn(raw, sde)(expected["x"], expected["t"])
    assert (raw_score - expected["score"]).abs().max() > 1e-3
    # It samples.
    x = scoresde.sample(scoresde.get_score_fn(model, sde), sde, (4, 1, 8, 8), pc=True, corrector=None, steps=5,
                        generator=torch.Generator().manual_seed(0))
    assert x.shape == (4, 1, 8, 8) and torch.isfinite(x).all()
    assert files(RUN) == before  # loading writes nothing


def test_train_load_run_keeps_working():
    config, model, sde, step = train.load_run(str(RUN), device="cpu")
    _, top_model, _, top_step = scoresde.load_run(str(RUN), device="cpu")
    assert step == top_step == 3
    for a, b in zip(model.state_dict().values(), top_model.state_dict().values()):
        assert torch.equal(a, b)


def test_sample_cli_on_a_run_of_an_earlier_version(tmp_path):
    run = shutil.copytree(RUN, tmp_path / "run")
    assert sample_cli.cli(["--workdir", str(run), "-n", "4", "--steps", "3", "--seed", "1"]) == 0
    assert any((run / "samples").glob("*.npz"))


def test_load_run_usage_errors(tmp_path):
    with pytest.raises(train.UsageError, match="is not a training run"):
        scoresde.load_run(str(tmp_path))
