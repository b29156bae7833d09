"""``scoresde.evaluate`` at its defaults: the first DEFAULT_MAX_EXAMPLES examples with a
progress bar on stderr, the whole split with ``--max-examples 0``."""
import json

from scoresde import train
from scoresde.cli import evaluate

TOY = [
    "--config", "vp_toy", "--config.training.n_iters=20", "--config.training.snapshot_freq=20",
    "--config.training.snapshot_sampling=false", "--config.data.n_train=150",
    "--config.model.kwargs.hidden_dim=16", "--config.training.batch_size=50",
]


def test_default_size_progress_bar_and_whole_split(tmp_path, capsys):
    assert train.cli(TOY + ["--workdir", str(tmp_path)]) == 0
    capsys.readouterr()
    fast = ["--workdir", str(tmp_path), "--rtol", "1e-3", "--atol", "1e-3", "--overwrite"]
    assert evaluate.cli(fast) == 0
    n = evaluate.DEFAULT_MAX_EXAMPLES
    err = capsys.readouterr().err
    assert f"{n}/{n}" in err and "ex/s" in err  # tqdm: count, rate (and the time left)
    assert err.count("mean=") >= 10  # at least ten updates: batches of at most a tenth
    assert json.load(open(tmp_path / "eval" / "eval_20.json"))["n"] == n
    assert evaluate.cli(fast + ["--max-examples", "0", "--no-progress"]) == 0
    assert "ex/s" not in capsys.readouterr().err
    assert json.load(open(tmp_path / "eval" / "eval_20.json"))["n"] == 150
