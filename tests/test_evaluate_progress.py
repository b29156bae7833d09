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


def test_default_size_progress_bar_and_whole_split(tmp_path, capsys, monkeypatch):
    assert train.cli(TOY + ["--workdir", str(tmp_path)]) == 0
    capsys.readouterr()
    seen = []

    class Recording(evaluate.tqdm):
        def update(self, n=1):
            super().update(n)
            seen.append(self.n)

    monkeypatch.setattr(evaluate, "tqdm", Recording)
    fast = ["--workdir", str(tmp_path), "--rtol", "1e-3", "--atol", "1e-3", "--overwrite"]
    assert evaluate.cli(fast) == 0
    n = evaluate.DEFAULT_MAX_EXAMPLES
    err = capsys.readouterr().err
    assert f"{n}/{n} examples" in err and "<00:00" in err  # count and time left
    assert len({round(v) for v in seen if 0 < v < n}) >= 10  # it moves during the one ODE solve (batch 500)
    assert seen == sorted(seen)
    assert json.load(open(tmp_path / "eval" / "eval_20.json"))["n"] == n
    assert evaluate.cli(fast + ["--max-examples", "0", "--no-progress"]) == 0
    assert "examples [" not in capsys.readouterr().err
    assert json.load(open(tmp_path / "eval" / "eval_20.json"))["n"] == 150
