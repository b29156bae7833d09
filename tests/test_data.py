"""Data loading: CIFAR-10 archives and folders in the real format, IDX files, digits, transforms
and the resumable sharded batch iterator. Every file is built here in a tmp dir; nothing is
downloaded (urlopen is patched to refuse anything but file:// URLs)."""
import gzip
import hashlib
import io
import os
import pickle
import struct
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from scoresde import data
from scoresde.data import DataError, ImageData, InfiniteBatches


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    real_urlopen = urllib.request.urlopen

    def local_only(url, *args, **kwargs):
        if not str(getattr(url, "full_url", url)).startswith("file:"):
            raise AssertionError(f"test tried to reach the network: {url}")
        return real_urlopen(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", local_only)


# ---------------------------------------------------------------------------------------------
# Building CIFAR-10 files in the real format
# ---------------------------------------------------------------------------------------------


def _images(n, seed):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 32, 32), generator=gen, dtype=torch.uint8)


def _batch_pickle(images, labels, batch_label):
    """A batch as the CIFAR-10 page documents it, pickled with protocol 2 like the original."""
    n = images.shape[0]
    batch = {
        b"batch_label": batch_label.encode(),
        b"labels": [int(y) for y in labels],
        b"data": images.reshape(n, 3072).numpy(),  # rows: red plane, green, blue; each row-major
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }
    return pickle.dumps(batch, protocol=2)


def _py2_batch_pickle(rows, labels, batch_label, filenames):
    """A batch written opcode by opcode as Python 2's cPickle (protocol 2) wrote the real files:
    keys and strings are Python 2 ``str`` and the array is built by
    ``numpy.core.multiarray._reconstruct`` and ``BUILD`` with a Python 2 string of raw bytes."""

    def string(b):
        return b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + struct.pack("<I", len(b)) + b

    def integer(i):
        return b"K" + bytes([i]) if 0 <= i < 256 else b"J" + struct.pack("<i", i)

    n, d = rows.shape
    dtype = (
        b"cnumpy\ndtype\n" + string(b"u1") + integer(0) + integer(1) + b"\x87R"
        + b"(" + integer(3) + string(b"|") + b"NNN" + integer(-1) + integer(-1) + integer(0) + b"tb"
    )
    array = (
        b"cnumpy.core.multiarray\n_reconstruct\n"
        + b"cnumpy\nndarray\n" + integer(0) + b"\x85" + string(b"b") + b"\x87R"
        + b"(" + integer(1) + integer(n) + integer(d) + b"\x86" + dtype
        + b"\x89" + string(rows.tobytes()) + b"tb"
    )
    return (
        b"\x80\x02}("
        + string(b"data") + array
        + string(b"labels") + b"](" + b"".join(integer(y) for y in labels) + b"e"
        + string(b"batch_label") + string(batch_label)
        + string(b"filenames") + b"](" + b"".join(string(f) for f in filenames) + b"e"
        + b"u."
    )


def _cifar_files(n=3):
    """Contents of a small cifar-10-batches-py/ folder and the data it holds."""
    files, train_x, train_y = {}, [], []
    for i in range(1, 6):
        x, y = _images(n, seed=i), torch.arange(n) * i % 10
        files[f"data_batch_{i}"] = _batch_pickle(x, y, f"training batch {i} of 5")
        train_x.append(x)
        train_y.append(y)
    test_x, test_y = _images(n + 1, seed=99), torch.arange(n + 1) % 10
    files["test_batch"] = _batch_pickle(test_x, test_y, "testing batch 1 of 1")
    files["batches.meta"] = pickle.dumps(
        {b"label_names": [c.encode() for c in data.CIFAR10_CLASSES], b"num_vis": 3072}, protocol=2
    )
    expected = {
        "train": (torch.cat(train_x), torch.cat(train_y)),
        "test": (test_x, test_y),
    }
    return files, expected


def _write_archive(path, files):
    with tarfile.open(path, "w:gz") as tar:
        folder = tarfile.TarInfo(data.CIFAR10_FOLDER)
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        for name, blob in files.items():
            info = tarfile.TarInfo(f"{data.CIFAR10_FOLDER}/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path


def _write_folder(root, files):
    folder = Path(root) / data.CIFAR10_FOLDER
    folder.mkdir(parents=True)
    for name, blob in files.items():
        (folder / name).write_bytes(blob)
    return folder


@pytest.fixture
def cifar(tmp_path):
    files, expected = _cifar_files()
    archive = _write_archive(tmp_path / data.CIFAR10_ARCHIVE, files)
    return archive, files, expected


# ---------------------------------------------------------------------------------------------
# CIFAR-10
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "test"])
def test_cifar_archive_loads_both_splits(cifar, split):
    archive, _, expected = cifar
    ds = data.load_cifar10(archive.parent, split, check_md5=False)
    x, y = expected[split]
    assert isinstance(ds, ImageData)
    assert (ds.name, ds.split, ds.num_classes, len(ds)) == ("cifar10", split, 10, len(x))
    assert ds.images.dtype == torch.uint8 and ds.images.shape == (len(x), 3, 32, 32)
    assert ds.labels.dtype == torch.int64 and ds.image_shape == (3, 32, 32)
    assert torch.equal(ds.images, x) and torch.equal(ds.labels, y)
    assert ds.class_names[0] == "airplane"


def test_cifar_pixel_layout_is_chw_row_major(tmp_path):
    # One image whose three planes differ: R varies along rows, G along columns, B is constant.
    # The documented layout: 1024 red values, then 1024 green, then 1024 blue, each row-major.
    red = np.repeat(np.arange(32, dtype=np.uint8)[:, None] * 8, 32, axis=1)
    green = np.repeat(np.arange(32, dtype=np.uint8)[None, :] * 4 + 1, 32, axis=0)
    blue = np.full((32, 32), 200, np.uint8)
    row = np.concatenate([red.ravel(), green.ravel(), blue.ravel()])[None]
    blob = pickle.dumps({b"data": row, b"labels": [7], b"batch_label": b"b", b"filenames": [b"f"]}, protocol=2)
    (tmp_path / "test_batch").write_bytes(blob)
    ds = data.load_cifar10(tmp_path, "test")
    img = ds.images[0]
    assert torch.equal(img[0], torch.from_numpy(red))
    assert torch.equal(img[1], torch.from_numpy(green))
    assert torch.equal(img[2], torch.from_numpy(blue))
    assert img[0, 5, 0] == 40 and img[0, 0, 5] == 0  # red changes down the rows, not across
    assert ds.labels.tolist() == [7]


def test_cifar_reads_python2_pickles(tmp_path):
    rows = _images(2, seed=5).reshape(2, 3072).numpy()
    blob = _py2_batch_pickle(rows, [3, 9], b"testing batch 1 of 1", [b"a.png", b"b.png"])
    plain = pickle.loads(blob, encoding="latin1")  # the crafted bytes are a valid pickle
    assert np.array_equal(plain["data"], rows) and plain["labels"] == [3, 9]
    assert data.restricted_unpickle(blob)["batch_label"] == "testing batch 1 of 1"
    folder = _write_folder(tmp_path, {"test_batch": blob})
    ds = data.load_cifar10(folder.parent, "test")
    assert torch.equal(ds.images.reshape(2, 3072), torch.from_numpy(rows))
    assert ds.labels.tolist() == [3, 9]


def test_cifar_extracted_folder_needs_no_md5(tmp_path):
    files, expected = _cifar_files()
    folder = _write_folder(tmp_path, files)
    for root in (tmp_path, folder):  # the parent of cifar-10-batches-py/, or the folder itself
        ds = data.load_cifar10(root, "train")  # check_md5 left on: folders are not checked
        assert torch.equal(ds.images, expected["train"][0])
        assert torch.equal(ds.labels, expected["train"][1])


def test_cifar_md5_mismatch_is_reported(cifar, monkeypatch):
    archive, _, expected = cifar
    with pytest.raises(DataError, match="md5") as err:
        data.load_cifar10(archive.parent)
    message = str(err.value)
    assert str(archive) in message and data.CIFAR10_MD5 in message and "check_md5=False" in message
    # With the archive's own md5 as the official one, the check passes.
    monkeypatch.setattr(data, "CIFAR10_MD5", hashlib.md5(archive.read_bytes()).hexdigest())
    assert torch.equal(data.load_cifar10(archive.parent, "test").images, expected["test"][0])


def test_cifar_corrupt_archive(cifar, monkeypatch):
    archive, _, _ = cifar
    archive.write_bytes(archive.read_bytes()[:-200])  # truncated
    with pytest.raises(DataError, match="md5"):
        data.load_cifar10(archive.parent)
    with pytest.raises(DataError, match="corrupt or incomplete"):
        data.load_cifar10(archive.parent, check_md5=False)


def test_cifar_archive_missing_batch(tmp_path):
    files, _ = _cifar_files()
    del files["test_batch"]
    archive = _write_archive(tmp_path / data.CIFAR10_ARCHIVE, files)
    with pytest.raises(DataError, match="lacks cifar-10-batches-py/test_batch"):
        data.load_cifar10(archive.parent, "test", check_md5=False)


def test_cifar_missing_files_message(tmp_path):
    with pytest.raises(DataError) as err:
        data.load_cifar10(tmp_path)
    message = str(err.value)
    for part in (str(tmp_path / data.CIFAR10_ARCHIVE), str(tmp_path / data.CIFAR10_FOLDER), "data_batch_1",
                 "download=True", "root="):
        assert part in message
    # A partly extracted folder: the message names what it lacks.
    files, _ = _cifar_files()
    del files["test_batch"]
    _write_folder(tmp_path, files)
    assert torch.equal(data.load_cifar10(tmp_path, "train").images[:3], _images(3, seed=1))
    with pytest.raises(DataError, match="exists but lacks test_batch"):
        data.load_cifar10(tmp_path, "test")


class _RunsShell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Evaluates:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_restricted_unpickler_refuses_code(tmp_path, protocol):
    marker = tmp_path / "pwned"
    evil = {b"data": _RunsShell(marker), b"labels": [0]}
    blob = pickle.dumps(evil, protocol=protocol)
    with pytest.raises(DataError, match="system, which is not allowed"):
        data.restricted_unpickle(blob, "evil")
    with pytest.raises(DataError, match="eval, which is not allowed"):
        data.restricted_unpickle(pickle.dumps([_Evaluates()], protocol=protocol))
    # The same pickle as a batch file of a CIFAR-10 folder.
    (tmp_path / "test_batch").write_bytes(blob)
    with pytest.raises(DataError, match=f"{tmp_path / 'test_batch'} is not a valid data pickle"):
        data.load_cifar10(tmp_path, "test")
    assert not marker.exists()


def test_restricted_unpickler_rejects_other_content(tmp_path):
    with pytest.raises(DataError, match="not a valid data pickle"):
        data.restricted_unpickle(b"\x80\x02}q\x00(")  # truncated
    # A valid pickle of the wrong thing: clear messages, not a crash later.
    (tmp_path / "test_batch").write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    with pytest.raises(DataError, match="holds a list"):
        data.load_cifar10(tmp_path, "test")
    bad = {b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}
    (tmp_path / "test_batch").write_bytes(pickle.dumps(bad, protocol=2))
    with pytest.raises(DataError, match="uint8 array of shape"):
        data.load_cifar10(tmp_path, "test")
    bad = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}
    (tmp_path / "test_batch").write_bytes(pickle.dumps(bad, protocol=2))
    with pytest.raises(DataError, match="integers in 0..9"):
        data.load_cifar10(tmp_path, "test")


def test_restricted_unpickler_allowed_functions_are_read_only():
    # BUILD on an allowed global would set attributes on it (e.g. a Python function's
    # __defaults__) for every later load; the allowed functions refuse that.
    def utf8(s):
        return b"X" + struct.pack("<I", len(s)) + s

    state = b"}" + utf8(b"__defaults__") + utf8(b"a") + b"\x85s"
    for name in (b"_codecs\nencode", b"numpy.core.numeric\n_frombuffer", b"numpy._core.multiarray\n_reconstruct"):
        for build in (state, b"N" + state + b"\x86"):  # dict state, then (None, slot state)
            with pytest.raises(DataError):
                data.restricted_unpickle(b"\x80\x02c" + name + b"\n" + build + b"b.")
    rows = np.arange(3072, dtype=np.uint8)[None]
    assert np.array_equal(data.restricted_unpickle(pickle.dumps(rows, protocol=5)), rows)


def test_restricted_unpickler_reads_plain_data():
    value = {"a": [1, 2.5, None, True], b"b": (np.arange(6, dtype=np.int16).reshape(2, 3), np.float64(1.5))}
    for protocol in range(0, pickle.HIGHEST_PROTOCOL + 1):
        out = data.restricted_unpickle(pickle.dumps(value, protocol=protocol))
        assert out["a"] == [1, 2.5, None, True]
        assert np.array_equal(out[b"b"][0], value[b"b"][0]) and out[b"b"][1] == 1.5


def test_cifar_download_from_file_url(cifar, tmp_path, monkeypatch):
    archive, _, expected = cifar
    monkeypatch.setattr(data, "CIFAR10_URL", archive.as_uri())
    monkeypatch.setattr(data, "CIFAR10_MD5", hashlib.md5(archive.read_bytes()).hexdigest())
    root = tmp_path / "fresh" / "cifar"
    with pytest.raises(DataError, match="not found"):
        data.load_cifar10(root)
    ds = data.load_cifar10(root, "test", download=True)
    assert torch.equal(ds.images, expected["test"][0])
    assert sorted(p.name for p in root.iterdir()) == [data.CIFAR10_ARCHIVE]  # no temporary left
    assert (root / data.CIFAR10_ARCHIVE).read_bytes() == archive.read_bytes()


def test_cifar_download_failures_leave_nothing(cifar, tmp_path, monkeypatch):
    archive, _, _ = cifar
    monkeypatch.setattr(data, "CIFAR10_URL", archive.as_uri())
    root = tmp_path / "fresh"
    with pytest.raises(DataError, match="has md5 .* expected c58f30108f718f92721af3b95e74349a"):
        data.load_cifar10(root, download=True)
    assert list(root.iterdir()) == []

    def unreachable(url, *args, **kwargs):
        raise urllib.error.URLError("no network")

    (tmp_path / "a_file").write_bytes(b"")
    with pytest.raises(DataError, match="cannot write to"):
        data.load_cifar10(tmp_path / "a_file" / "cifar", download=True)

    monkeypatch.setattr(urllib.request, "urlopen", unreachable)
    with pytest.raises(DataError, match=f"could not download .*no network.*{data.CIFAR10_ARCHIVE}"):
        data.load_cifar10(root, download=True)
    assert list(root.iterdir()) == []


def test_cifar_official_facts():
    assert data.CIFAR10_URL == "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    assert data.CIFAR10_MD5 == "c58f30108f718f92721af3b95e74349a"


# ---------------------------------------------------------------------------------------------
# IDX, MNIST, Fashion-MNIST
# ---------------------------------------------------------------------------------------------


def _idx_bytes(array, code):
    dtype = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=dtype).tobytes()


def _write(path, blob, gz):
    path = Path(str(path) + ".gz") if gz else Path(path)
    path.write_bytes(gzip.compress(blob) if gz else blob)
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_roundtrip(tmp_path, gz):
    gen = np.random.default_rng(0)
    images = gen.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    path = _write(tmp_path / "images-idx3-ubyte", _idx_bytes(images, 0x08), gz)
    out = data.read_idx(path)
    assert out.dtype == torch.uint8 and out.shape == (5, 28, 28)
    assert torch.equal(out, torch.from_numpy(images))
    for code, values, dtype in [
        (0x09, np.array([-3, 0, 7]), torch.int8),
        (0x0B, np.array([[-300, 2], [3, 30000]]), torch.int16),
        (0x0C, np.array([1 << 20, -5]), torch.int32),
        (0x0D, np.array([0.5, -2.25]), torch.float32),
        (0x0E, np.array([[1e-300], [3.0]]), torch.float64),
    ]:
        out = data.read_idx(_write(tmp_path / f"x{code}", _idx_bytes(values, code), gz))
        assert out.dtype == dtype and torch.equal(out, torch.as_tensor(values, dtype=dtype))


def test_read_idx_errors(tmp_path):
    good = _idx_bytes(np.zeros((2, 3), np.uint8), 0x08)
    cases = {
        "magic": (b"\x01\x00" + good[2:], "not an IDX file"),
        "code": (good[:2] + b"\x42" + good[3:], "unknown IDX type code 0x42"),
        "short": (good[:-1], r"shape \(2, 3\) \(18 bytes\) but the file has 17 bytes"),
        "long": (good + b"\x00", "truncated or corrupt"),
        "header": (good[:6], "shorter than its header"),
    }
    for name, (blob, message) in cases.items():
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(DataError, match=message):
            data.read_idx(tmp_path / name)
    (tmp_path / "bad.gz").write_bytes(gzip.compress(good)[:-6])
    with pytest.raises(DataError, match="corrupt or truncated gzip"):
        data.read_idx(tmp_path / "bad.gz")
    with pytest.raises(DataError, match=f"nothere not found in {tmp_path}"):
        data.read_idx(tmp_path / "nothere")


def _write_mnist(root, n_train=6, n_test=4, gz_images=True, gz_labels=False):
    gen = np.random.default_rng(1)
    expected = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = gen.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = gen.integers(0, 10, n, dtype=np.uint8)
        stem_x, stem_y = data.MNIST_FILES[split]
        _write(root / stem_x, _idx_bytes(images, 0x08), gz_images)
        _write(root / stem_y, _idx_bytes(labels, 0x08), gz_labels)
        expected[split] = (torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels).long())
    return expected


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
@pytest.mark.parametrize("gz", [False, True])
def test_mnist_like_loaders(tmp_path, name, gz):
    expected = _write_mnist(tmp_path, gz_images=gz, gz_labels=not gz)
    for split in ("train", "test"):
        ds = data.load_dataset(name, root=tmp_path, split=split)
        x, y = expected[split]
        assert (ds.name, ds.split, ds.num_classes) == (name, split, 10)
        assert ds.images.dtype == torch.uint8 and ds.images.shape == (len(x), 1, 28, 28)
        assert torch.equal(ds.images, x) and torch.equal(ds.labels, y)
    assert data.load_dataset("fashion_mnist", root=tmp_path).class_names[9] == "Ankle boot"


def test_mnist_dotted_names(tmp_path):
    expected = _write_mnist(tmp_path, gz_images=False)
    for stem in data.MNIST_FILES["test"]:
        (tmp_path / stem).rename(tmp_path / stem.replace("-idx", ".idx"))
    assert torch.equal(data.load_mnist(tmp_path, "test").images, expected["test"][0])


def test_mnist_missing_and_inconsistent_files(tmp_path):
    with pytest.raises(DataError) as err:
        data.load_mnist(tmp_path)
    assert f"train-images-idx3-ubyte.gz not found in {tmp_path}" in str(err.value)
    with pytest.raises(DataError) as err:
        data.load_fashion_mnist(tmp_path, "test")
    message = str(err.value)
    assert f"t10k-images-idx3-ubyte.gz not found in {tmp_path}" in message
    assert "apt-get install dataset-fashion-mnist" in message and "root=" in message
    assert "/usr/share/datasets/fashion-mnist" in message
    _write_mnist(tmp_path)
    _write(tmp_path / "train-labels-idx1-ubyte", _idx_bytes(np.zeros(5, np.uint8), 0x08), False)
    with pytest.raises(DataError, match="expected 6 integer labels"):
        data.load_mnist(tmp_path)
    _write(tmp_path / "train-labels-idx1-ubyte", _idx_bytes(np.full(6, 10, np.uint8), 0x08), False)
    with pytest.raises(DataError, match="labels must lie in 0..9"):
        data.load_mnist(tmp_path)


def test_fashion_mnist_default_root(tmp_path, monkeypatch):
    assert data.default_root("fashion_mnist") == Path("/usr/share/datasets/fashion-mnist")
    expected = _write_mnist(tmp_path)
    monkeypatch.setattr(data, "FASHION_MNIST_DEBIAN_ROOT", tmp_path)
    assert torch.equal(data.load_dataset("fashion_mnist", split="test").images, expected["test"][0])
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert data.default_root("cifar10") == tmp_path / "cache" / "scoresde" / "cifar10"


# ---------------------------------------------------------------------------------------------
# digits, load_dataset
# ---------------------------------------------------------------------------------------------


def test_digits():
    datasets = pytest.importorskip("sklearn.datasets")
    raw = datasets.load_digits()
    train, test = data.load_dataset("digits"), data.load_dataset("digits", split="test")
    assert train.images.shape == (1500, 1, 8, 8) and test.images.shape == (297, 1, 8, 8)
    assert train.images.dtype == torch.uint8 and train.labels.dtype == torch.int64
    images = torch.cat([train.images, test.images])[:, 0]
    expected = [[[round(v * 255 / 16) for v in row] for row in img] for img in raw.images.tolist()]
    assert images.tolist() == expected  # round(v * 255 / 16): 0 -> 0, 8 -> 128, 16 -> 255
    assert torch.equal(torch.cat([train.labels, test.labels]), torch.as_tensor(raw.target))
    assert torch.equal(data.load_digits(split="test").images, test.images)  # deterministic


def test_load_dataset_names_and_errors(tmp_path):
    assert list(data.DATASETS) == ["cifar10", "mnist", "fashion_mnist", "digits"]
    with pytest.raises(ValueError, match="'cifar10', 'mnist', 'fashion_mnist', 'digits'"):
        data.load_dataset("imagenet")
    with pytest.raises(ValueError, match="'train', 'test'"):
        data.load_dataset("mnist", split="validation")
    assert issubclass(DataError, ValueError)
    files, expected = _cifar_files()
    _write_archive(tmp_path / data.CIFAR10_ARCHIVE, files)
    ds = data.load_dataset("CIFAR10", root=tmp_path, split="test", check_md5=False)  # score_sde's spelling
    assert torch.equal(ds.images, expected["test"][0])


def test_image_data_validates():
    with pytest.raises(ValueError, match="uint8"):
        ImageData(torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.long), "x", "train", 10)
    with pytest.raises(ValueError, match="labels"):
        ImageData(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(3, dtype=torch.long), "x", "train", 10)


# ---------------------------------------------------------------------------------------------
# Transforms
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("centered", [False, True])
def test_model_range_round_trip(centered):
    u = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16)
    for dtype in (torch.float32, torch.float64):
        x = data.to_model_range(u, centered, dtype=dtype)
        assert x.dtype == dtype
        low, high = (-1.0, 1.0) if centered else (0.0, 1.0)
        assert x.min() == low and x.max() == high
        expected = u.to(torch.float64) / 255
        expected = 2 * expected - 1 if centered else expected
        torch.testing.assert_close(x.double(), expected)
        back = data.from_model_range(x, centered)
        assert back.dtype == torch.uint8 and torch.equal(back, u)


def test_from_model_range_rounds_and_clamps():
    x = torch.tensor([-0.5, 0.0, 0.499 / 255, 0.501 / 255, 1.0, 3.0, float("nan"), float("inf")])
    assert data.from_model_range(x, centered=False).tolist() == [0, 0, 0, 1, 255, 255, 0, 255]
    assert data.from_model_range(torch.tensor([-2.0, -1.0, 0.0, 1.0]), centered=True).tolist() == [0, 0, 128, 255]
    with pytest.raises(ValueError, match="uint8"):
        data.to_model_range(torch.zeros(2), True)
    with pytest.raises(ValueError, match="floating-point"):
        data.from_model_range(torch.zeros(2, dtype=torch.uint8), True)


def test_random_flip():
    x = torch.arange(4000 * 2 * 3 * 5).reshape(4000, 2, 3, 5)
    out = data.random_flip(x, generator=torch.Generator().manual_seed(0))
    same = (out == x).flatten(1).all(1)
    flipped = (out == x.flip(-1)).flatten(1).all(1)
    assert bool((same ^ flipped).all())  # each example is either untouched or fully flipped
    # Binomial(4000, 1/2): the flipped fraction lies within 5 standard deviations of 1/2.
    assert abs(flipped.double().mean().item() - 0.5) < 5 * (0.25 / 4000) ** 0.5
    again = data.random_flip(x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    assert not torch.equal(out, data.random_flip(x, generator=torch.Generator().manual_seed(1)))
    u = torch.randint(0, 256, (8, 1, 4, 4), dtype=torch.uint8)
    assert data.random_flip(u).dtype == torch.uint8
    with pytest.raises(ValueError, match="shape"):
        data.random_flip(torch.zeros(3))


def test_resize():
    u = torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8)
    padded = data.resize(u, 32, method="pad")
    assert padded.shape == (2, 1, 32, 32) and padded.dtype == torch.uint8
    assert torch.equal(padded[:, :, 2:30, 2:30], u)
    assert padded.sum() == u.sum()
    odd = data.resize(u, (29, 31), method="pad", fill=7)
    assert torch.equal(odd[:, :, 0:28, 1:29], u) and (odd[:, :, 28] == 7).all() and (odd[..., 0] == 7).all()
    with pytest.raises(ValueError, match="only enlarge"):
        data.resize(u, 16, method="pad")
    assert data.resize(u, 28) is u
    flat = torch.full((1, 3, 8, 8), 77, dtype=torch.uint8)
    for size in (16, 4):
        out = data.resize(flat, size)
        assert out.dtype == torch.uint8 and out.shape == (1, 3, size, size) and (out == 77).all()
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    down = data.resize(x, 4)
    assert down.dtype == torch.float64
    # Antialiased 2x downsampling: a triangle filter two pixels wide, i.e. taps (1, 3, 3, 1) / 8
    # around each output pixel, renormalized where they fall off the image (as tf.image.resize).
    w = torch.zeros(4, 8, dtype=torch.float64)
    for j in range(4):
        for i, tap in zip(range(2 * j - 1, 2 * j + 3), (1, 3, 3, 1)):
            if 0 <= i < 8:
                w[j, i] = tap
    w = w / w.sum(1, keepdim=True)
    torch.testing.assert_close(down, w @ x @ w.T)
    with pytest.raises(ValueError, match="'pad', 'bilinear'"):
        data.resize(u, 32, method="nearest")


# ---------------------------------------------------------------------------------------------
# InfiniteBatches
# ---------------------------------------------------------------------------------------------


def _take(it, n):
    return [next(it) for _ in range(n)]


def test_batches_cover_each_epoch_once():
    it = InfiniteBatches(torch.arange(20), 6, generator=torch.Generator().manual_seed(0))
    assert it.batches_per_epoch == 3
    epochs = [torch.cat(_take(it, 3)) for _ in range(3)]
    for seen in epochs:
        assert seen.shape == (18,) and seen.unique().numel() == 18  # no repeats within an epoch
    assert not torch.equal(epochs[0], epochs[1])  # reshuffled every epoch
    assert it.epoch == 2 and it.position == 3
    it = InfiniteBatches(torch.arange(20), 6, generator=torch.Generator().manual_seed(0), drop_last=False)
    batches = _take(it, 4)
    assert [len(b) for b in batches] == [6, 6, 6, 2]
    assert sorted(torch.cat(batches).tolist()) == list(range(20))


@pytest.mark.parametrize("drop_last", [True, False])
def test_batches_shard_over_ranks(drop_last):
    n, b, world = 23, 3, 2
    single = InfiniteBatches(torch.arange(n), b * world, generator=torch.Generator().manual_seed(5),
                             drop_last=drop_last)
    ranks = [
        InfiniteBatches(torch.arange(n), b, generator=torch.Generator().manual_seed(5), rank=r,
                        world_size=world, drop_last=drop_last)
        for r in range(world)
    ]
    assert all(r.batches_per_epoch == single.batches_per_epoch for r in ranks)
    for _ in range(3 * single.batches_per_epoch):
        parts = [next(r) for r in ranks]
        assert set(parts[0].tolist()).isdisjoint(parts[1].tolist())
        assert torch.equal(torch.cat(parts), next(single))
        if drop_last:
            assert all(len(p) == b for p in parts)


def test_batches_tuple_data_and_generator_ownership():
    images = torch.arange(10).repeat_interleave(4).reshape(10, 1, 2, 2)
    labels = torch.arange(10)
    gen = torch.Generator().manual_seed(3)
    before = gen.get_state()
    it = InfiniteBatches((images, labels), 4, generator=gen)
    for x, y in _take(it, 7):
        assert x.shape == (4, 1, 2, 2) and torch.equal(x[:, 0, 0, 0], y)
    assert torch.equal(gen.get_state(), before)  # the iterator copied the generator


@pytest.mark.parametrize("stop", [0, 1, 2, 3, 5, 9])
def test_batches_resume_exactly(stop, tmp_path):
    def fresh(seed):
        return InfiniteBatches(torch.arange(11), 3, generator=torch.Generator().manual_seed(seed))

    uninterrupted = _take(fresh(0), stop + 10)
    first = fresh(0)
    _take(first, stop)
    torch.save(first.state_dict(), tmp_path / "state.pt")
    resumed = fresh(123)  # a different seed: everything must come from the saved state
    resumed.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    assert (resumed.epoch, resumed.position) == (first.epoch, first.position)
    assert all(torch.equal(a, b) for a, b in zip(_take(resumed, 10), uninterrupted[stop:]))
    assert all(torch.equal(a, b) for a, b in zip(_take(first, 10), uninterrupted[stop:]))


def test_batches_resume_with_other_world_size():
    single = InfiniteBatches(torch.arange(30), 8, generator=torch.Generator().manual_seed(2))
    _take(single, 5)
    state = single.state_dict()
    ranks = [InfiniteBatches(torch.arange(30), 4, rank=r, world_size=2) for r in range(2)]
    for r in ranks:
        r.load_state_dict(state)
    for _ in range(6):
        assert torch.equal(torch.cat([next(r) for r in ranks]), next(single))


def test_batches_validation():
    with pytest.raises(ValueError, match="do not fill one global batch of 8"):
        InfiniteBatches(torch.arange(7), 4, world_size=2)
    with pytest.raises(ValueError, match="rank"):
        InfiniteBatches(torch.arange(7), 1, rank=2, world_size=2)
    with pytest.raises(ValueError, match="same first dim"):
        InfiniteBatches((torch.arange(7), torch.arange(6)), 2)
    it = InfiniteBatches(torch.arange(12), 3)
    with pytest.raises(ValueError, match="num_examples=12, this one has 13"):
        InfiniteBatches(torch.arange(13), 3).load_state_dict(it.state_dict())
    with pytest.raises(ValueError, match="global_batch_size=3, this one has 4"):
        InfiniteBatches(torch.arange(12), 4).load_state_dict(it.state_dict())
