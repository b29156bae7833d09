"""``python -m scoresde.export``: a run's EMA weights and config in one safetensors file, loaded
back into the same network (identical scores), and bad input answered with exit status 2."""
import json
import struct

import pytest
import torch

from scoresde import export, get_score_fn, train
from scoresde.export import load_exported, load_safetensors, save_safetensors

TOY = [
    "--config", "vp_toy",
    "--config.training.n_iters=6", "--config.training.snapshot_freq=3", "--config.training.log_freq=3",
    "--config.sampling.steps=5", "--config.sampling.n_samples=20", "--config.data.n_train=200",
    "--config.model.kwargs.hidden_dim=16", "--config.training.batch_size=16",
]
DIGITS = [
    "--config", "vp_digits",
    "--config.training.n_iters=2", "--config.training.snapshot_freq=2", "--config.training.log_freq=2",
    "--config.training.batch_size=4", "--config.sampling.steps=2", "--config.sampling.n_samples=4",
    "--config.model.kwargs.nf=8",
]


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("toy_run")
    assert train.cli(TOY + ["--workdir", str(workdir)]) == 0
    return workdir


def _scores(model, sde, shape):
    gen = torch.Generator().manual_seed(0)
    x, t = torch.randn(shape, generator=gen), torch.rand(shape[0], generator=gen) * 0.9 + 0.05
    with torch.no_grad():
        return get_score_fn(model, sde)(x, t)


@pytest.mark.parametrize("args,shape", [(TOY, (16, 2)), (DIGITS, (3, 1, 8, 8))], ids=["toy", "digits"])
def test_export_then_load_gives_identical_scores(tmp_path, toy_run, args, shape):
    if args is DIGITS:
        pytest.importorskip("sklearn")
        workdir = tmp_path / "run"
        assert train.cli(DIGITS + ["--workdir", str(workdir)]) == 0
    else:
        workdir = toy_run
    out = tmp_path / "model.safetensors"
    assert export.cli(["--workdir", str(workdir), "--out", str(out)]) == 0
    config, model, sde, step = train.load_run(str(workdir), device="cpu")
    config2, model2, sde2 = load_exported(str(out))
    assert config2.to_dict() == config.to_dict()
    assert type(sde2) is type(sde) and sde2.N == sde.N and sde2.T == sde.T
    assert torch.equal(_scores(model2, sde2, shape), _scores(model, sde, shape))
    # The EMA weights, not the raw ones, and the step, in the file.
    tensors, metadata = load_safetensors(str(out))
    raw_config, raw_model, _, _ = train.load_run(str(workdir), device="cpu", ema=False)
    assert any(not torch.equal(tensors[k], v) for k, v in raw_model.state_dict().items())
    assert metadata["scoresde.step"] == str(step) and metadata["format"] == "pt"


def test_safetensors_layout_and_round_trip(tmp_path):
    """The file follows the format: little-endian u64 header size, JSON header whose byte
    ranges tile the data in order, 8-byte aligned data; every dtype comes back bit for bit."""
    tensors = {
        "a": torch.randn(3, 4, dtype=torch.float64), "b": torch.arange(5, dtype=torch.int64),
        "c": torch.randn(2, 2).to(torch.bfloat16), "d": torch.tensor([True, False]),
        "e": torch.zeros(0, 3), "f": torch.tensor(1.5, dtype=torch.float16),
    }
    path = save_safetensors(tensors, str(tmp_path / "t.safetensors"), {"k": "v"})
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    assert n % 8 == 0 and header.pop("__metadata__") == {"k": "v"}
    ends = [0] + [header[k]["data_offsets"][1] for k in tensors]
    assert [header[k]["data_offsets"][0] for k in tensors] == ends[:-1] and ends[-1] == len(raw) - 8 - n
    assert header["c"] == {"dtype": "BF16", "shape": [2, 2], "data_offsets": [136, 144]}
    back, metadata = load_safetensors(path)
    assert metadata == {"k": "v"} and list(back) == list(tensors)
    for k, v in tensors.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape and torch.equal(back[k], v), k


def test_readable_by_the_safetensors_package(tmp_path, toy_run):
    st = pytest.importorskip("safetensors.torch", reason="the safetensors package is not installed")
    out = tmp_path / "model.safetensors"
    assert export.cli(["--workdir", str(toy_run), "--out", str(out)]) == 0
    ours, _ = load_safetensors(str(out))
    theirs = st.load_file(str(out))
    assert list(theirs) == list(ours) and all(torch.equal(theirs[k], ours[k]) for k in ours)


@pytest.mark.parametrize("case,message", [
    ("not_a_run", "is not a training run"),
    ("no_folder", "does not exist: create it first"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, toy_run, capsys, case, message):
    workdir = tmp_path if case == "not_a_run" else toy_run
    out = tmp_path / ("missing/model.safetensors" if case == "no_folder" else "model.safetensors")
    assert export.cli(["--workdir", str(workdir), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("error: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ([] if case == "not_a_run" else [])


def test_load_exported_refuses_other_files(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="is not a safetensors file"):
        load_exported(str(bad))
    plain = save_safetensors({"w": torch.ones(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ValueError, match="no scoresde config"):
        load_exported(plain)
