"""Data of one's own: ``folder:PATH`` (PNG / JPEG images) and ``npz:PATH`` (arrays ``x``, ``y``),
read exactly, trained on through the same path as the built-in sets, and refused with one clear
line (exit status 2) when malformed."""
import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from scoresde import data, train
from scoresde.config import load_config
from scoresde.data import DataError

DIGITS = [
    "--config", "vp_digits",
    "--config.training.n_iters=2", "--config.training.snapshot_freq=2", "--config.training.log_freq=1",
    "--config.training.batch_size=8", "--config.sampling.steps=2", "--config.sampling.n_samples=4",
    "--config.model.kwargs.nf=8", "--config.model.kwargs.ch_mult=(1,)", "--config.model.kwargs.attn_resolutions=()",
]
TOY = [
    "--config", "vp_toy",
    "--config.training.n_iters=3", "--config.training.snapshot_freq=3", "--config.training.log_freq=1",
    "--config.training.batch_size=16", "--config.sampling.steps=3", "--config.sampling.n_samples=8",
    "--config.data.n_train=64", "--config.model.kwargs.hidden_dim=8",
]


def run_train(args, workdir):
    return train.cli(list(args) + ["--workdir", str(workdir)])


def losses(workdir):
    with open(workdir / "metrics.csv") as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def digits():
    pytest.importorskip("sklearn")
    return data.load_digits(split="train")


def write_pngs(folder, images, labels=None):
    """One PNG per image, named by index (so path order is index order), in a sub-folder per
    label when labels are given."""
    for i, image in enumerate(images):
        sub = folder / str(int(labels[i])) if labels is not None else folder
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[0].numpy(), mode="L").save(sub / f"{i:04d}.png")
    return folder


# ---------------------------------------------------------------------------------------------
# Reading


def test_folder_of_pngs_reads_exactly_with_labels_from_sub_folders(digits, tmp_path):
    n = 40
    write_pngs(tmp_path / "by_class", digits.images[:n], digits.labels[:n])
    ds = data.load_dataset(f"folder:{tmp_path / 'by_class'}", image_size=8, num_channels=1)
    # Sub-folders 0..9 sort as the digits do, so the class index is the digit; files are read
    # in path order (class, then name).
    order = sorted(range(n), key=lambda i: (int(digits.labels[i]), i))
    assert torch.equal(ds.images, digits.images[order])
    assert torch.equal(ds.labels, digits.labels[order])
    assert ds.class_names == tuple(sorted({str(int(c)) for c in digits.labels[:n]}))
    assert ds.num_classes == len(ds.class_names)
    # Flat: no classes, so training sees no labels.
    write_pngs(tmp_path / "flat", digits.images[:n])
    examples = data.load_examples(f"folder:{tmp_path / 'flat'}", image_size=8, num_channels=1)
    assert torch.equal(examples.x, digits.images[:n]) and examples.labels is None and examples.is_images
    assert data.example_shape(f"folder:{tmp_path / 'flat'}", image_size=8, num_channels=1) == (1, 8, 8)


def test_folder_converts_crops_and_resizes(tmp_path):
    g = torch.Generator().manual_seed(0)
    rgb = torch.randint(0, 256, (10, 6, 3), generator=g, dtype=torch.uint8)  # H=10, W=6
    Image.fromarray(rgb.numpy()).save(tmp_path / "a.PNG")
    Image.fromarray(rgb.numpy()).convert("RGBA").save(tmp_path / "b.png")  # alpha is dropped
    (tmp_path / "notes.txt").write_text("not an image: skipped")
    ds = data.load_folder(tmp_path, image_size=6, num_channels=3)
    # Center crop of the long side: rows 2..7, the odd pixel (none here) going bottom.
    expected = rgb[2:8].permute(2, 0, 1)
    assert torch.equal(ds.images, torch.stack([expected, expected])) and ds.num_classes == 0
    small = data.load_folder(tmp_path, image_size=3, num_channels=3).images
    assert torch.equal(small[0], data.resize(expected[None], 3)[0])
    # Gray from RGB is Pillow's ITU-R 601-2 luma, L = (299 R + 587 G + 114 B) / 1000.
    gray = data.load_folder(tmp_path, image_size=6, num_channels=1).images[0, 0]
    luma = (rgb[2:8].double() @ torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64))
    assert (gray.double() - luma).abs().max() <= 1
    # A gray image read as RGB repeats its one channel; JPEG is read too.
    Image.fromarray(rgb[:6, :, 0].numpy(), mode="L").save(tmp_path / "c.jpg", quality=100)
    c = data.load_folder(tmp_path, image_size=6, num_channels=3).images[2]
    assert torch.equal(c[0], c[1]) and torch.equal(c[0], c[2])
    assert (c[0].int() - rgb[:6, :, 0].int()).abs().float().mean() < 4  # lossy, but close


def test_npz_images_floats_and_labels(digits, tmp_path):
    path = tmp_path / "digits.npz"
    np.savez(path, x=digits.images.numpy(), y=digits.labels.numpy().astype(np.int32))
    examples = data.load_examples(f"npz:{path}", "train", image_size=8, num_channels=1)
    assert torch.equal(examples.x, digits.images) and torch.equal(examples.labels, digits.labels)
    assert data.load_dataset(f"npz:{path}").num_classes == 10
    # Resized like a built-in set whose images have another size.
    assert torch.equal(data.load_examples(f"npz:{path}", image_size=4).x, data.resize(digits.images, 4))
    # Float data (N, D) is taken as it is.
    points = torch.randn(50, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    np.savez(tmp_path / "points.npz", x=points.numpy())
    examples = data.load_examples(f"npz:{tmp_path / 'points.npz'}", "test")
    assert examples.x.dtype == torch.float32 and torch.equal(examples.x, points.float())
    assert examples.labels is None and not examples.is_images
    assert data.example_shape(f"npz:{tmp_path / 'points.npz'}", image_size=0, num_channels=0) == (3,)
    with pytest.raises(DataError, match="float data"):
        data.load_dataset(f"npz:{tmp_path / 'points.npz'}")


def test_unknown_name_lists_own_data_forms():
    with pytest.raises(ValueError, match="'digits', 'folder:PATH' .* or 'npz:PATH'"):
        data.load_dataset("imagenet")


# ---------------------------------------------------------------------------------------------
# Training: the same path as the built-in sets


def test_vp_digits_trains_from_a_folder_and_an_npz_as_from_digits(digits, tmp_path):
    """The whole digits training split as a flat folder of PNGs and as an .npz: the runs see the
    same batches as the built-in set, so their losses are equal, step for step."""
    folder = write_pngs(tmp_path / "pngs", digits.images)
    np.savez(tmp_path / "digits.npz", x=digits.images.numpy())
    assert run_train(DIGITS + ["--config.training.snapshot_sampling=false"], tmp_path / "builtin") == 0
    reference = losses(tmp_path / "builtin")
    assert len(reference) == 2 and all(np.isfinite(reference))
    for name, spec in [("folder", f"folder:{folder}"), ("npz", f"npz:{tmp_path / 'digits.npz'}")]:
        workdir = tmp_path / name
        assert run_train(DIGITS + [f"--config.data.dataset={spec}"], workdir) == 0
        assert losses(workdir) == reference, name
        assert (workdir / "checkpoints" / "checkpoint_2.pt").exists()
        assert (workdir / "samples" / "samples_2.png").exists()
        assert json.load(open(workdir / "config.json"))["data"]["dataset"] == spec


def test_vp_toy_trains_from_float_npz_as_from_toy(tmp_path):
    """Float data (N, D) from an .npz trains like the toy points it holds."""
    config = load_config("vp_toy")
    config.data.n_train = 64
    points, _, _ = train.make_dataset(config, "train")
    np.savez(tmp_path / "ring.npz", x=points.numpy())
    assert run_train(TOY, tmp_path / "toy") == 0
    assert run_train(TOY + [f"--config.data.dataset=npz:{tmp_path / 'ring.npz'}"], tmp_path / "npz") == 0
    assert losses(tmp_path / "npz") == losses(tmp_path / "toy")
    assert (tmp_path / "npz" / "samples" / "samples_3.png").exists()


# ---------------------------------------------------------------------------------------------
# Bad input: one line, exit status 2, nothing written


def _bad_inputs(tmp_path, digits):
    (tmp_path / "empty").mkdir()
    (tmp_path / "corrupt").mkdir()
    write_pngs(tmp_path / "corrupt", digits.images[:3])
    (tmp_path / "corrupt" / "0001.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    write_pngs(tmp_path / "gray", digits.images[:3])
    np.savez(tmp_path / "shape.npz", x=digits.images[:, 0].numpy())  # (N, H, W)
    np.savez(tmp_path / "nox.npz", images=digits.images.numpy())
    np.savez(tmp_path / "sizes.npz", x=digits.images.numpy(), y=digits.labels[:10].numpy())
    np.savez(tmp_path / "floaty.npz", x=digits.images.numpy(), y=digits.labels.numpy() + 0.5)
    np.savez(tmp_path / "negative.npz", x=digits.images.numpy(), y=digits.labels.numpy() - 1)
    np.savez(tmp_path / "rgb.npz", x=digits.images.repeat(1, 3, 1, 1).numpy())
    (tmp_path / "garbage.npz").write_bytes(b"not a zip file")
    return {
        "empty": ("folder:empty", "no PNG or JPEG images found"),
        "missing": ("folder:nothere", "does not exist"),
        "a_file": ("folder:shape.npz", "is not a folder"),
        "corrupt": ("folder:corrupt", "cannot read image"),
        "channels": ("folder:gray", "unknown num_channels=2"),
        "npz_missing": ("npz:nothere.npz", "does not exist"),
        "npz_garbage": ("npz:garbage.npz", "cannot read"),
        "shape": ("npz:shape.npz", "expected uint8 images (N, C, H, W) or floating-point data (N, D)"),
        "no_x": ("npz:nox.npz", "has no array 'x' (it has: images)"),
        "sizes": ("npz:sizes.npz", "expected 1500 non-negative integer labels"),
        "float_labels": ("npz:floaty.npz", "float64 array"),
        "negative": ("npz:negative.npz", "int64 array of shape (1500,); expected 1500 non-negative"),
        "rgb": ("npz:rgb.npz", "3 channels but data.num_channels=1"),
    }


@pytest.mark.parametrize("case", [
    "empty", "missing", "a_file", "corrupt", "channels", "npz_missing", "npz_garbage", "shape", "no_x",
    "sizes", "float_labels", "negative", "rgb",
])
def test_bad_own_data_exits_2_with_one_line(case, digits, tmp_path, capsys):
    spec, message = _bad_inputs(tmp_path, digits)[case]
    kind, path = spec.split(":", 1)
    args = DIGITS + [f"--config.data.dataset={kind}:{tmp_path / path}"]
    if case == "channels":
        args.append("--config.data.num_channels=2")
    capsys.readouterr()
    assert run_train(args, tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "run").exists()
