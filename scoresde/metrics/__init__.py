"""Sample-quality metrics: FID, KID and the Inception Score on the FID Inception-v3 network.

- FID (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local
  Nash Equilibrium", eq. 6): the Frechet distance between Gaussians fitted to the pool3
  features of two image sets, :func:`frechet_distance`.
- KID (Binkowski et al. 2018, "Demystifying MMD GANs", sec. 5): the unbiased estimator of the
  squared MMD with the cubic polynomial kernel ``k(x, y) = (x . y / d + 1)^3``, averaged over
  random subsets, :func:`kid`.
- IS (Salimans et al. 2016, "Improved Techniques for Training GANs", sec. 4):
  ``exp(E_x KL(p(y|x) || p(y)))`` over splits, :func:`inception_score`.

Features come from :class:`InceptionV3Features`, a PyTorch port of TensorFlow's 2015-12-05
Inception graph that reads its weights from a local file only (see
:mod:`scoresde.metrics.inception`). The command line ``python -m scoresde.metrics`` computes
reference statistics and scores sample folders; see ``docs/metrics.md`` for the FID-50k
protocol of score_sde.
"""
from __future__ import annotations

from typing import Iterable, Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from .inception import (
    FIDInceptionV3,
    InceptionV3Features,
    fid_helper_weights_path,
    load_inception_weights,
    tf_resize_bilinear,
)

__all__ = [
    "frechet_distance",
    "feature_statistics",
    "kid",
    "kid_and_std",
    "inception_score",
    "inception_score_and_std",
    "compute_features",
    "InceptionV3Features",
    "FIDInceptionV3",
    "load_inception_weights",
    "fid_helper_weights_path",
    "tf_resize_bilinear",
]

ArrayLike = Union[np.ndarray, Tensor]


def _float64(name: str, value: ArrayLike, ndim: int) -> np.ndarray:
    """``value`` as a float64 numpy array of rank ``ndim``, or a ValueError naming ``name``."""
    if isinstance(value, Tensor):
        value = value.detach().cpu().double().numpy()
    array = np.asarray(value, dtype=np.float64)
    if array.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s); got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


# ---------------------------------------------------------------------------------------------
# FID
# ---------------------------------------------------------------------------------------------


def _clip_rounding(eigenvalues: np.ndarray) -> np.ndarray:
    """Eigenvalues of a PSD matrix with those below its rounding floor (``D * eps * max``,
    the accuracy of a symmetric eigensolver) set to zero: they are zero up to rounding, and
    their square roots (~1e-8 relative each) would otherwise add up."""
    floor = eigenvalues.shape[0] * np.finfo(np.float64).eps * max(np.abs(eigenvalues).max(), 0.0)
    return np.where(eigenvalues > floor, eigenvalues, 0.0)


def _psd_sqrt(sigma: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix."""
    w, v = np.linalg.eigh(sigma)
    return (v * np.sqrt(_clip_rounding(w))) @ v.T


def frechet_distance(mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike) -> float:
    """Frechet (2-Wasserstein) distance squared between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)``.

    ``d^2 = |mu1 - mu2|^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^(1/2))``
    (Heusel et al. 2017, eq. 6; Dowson & Landau 1982). Computed in float64.

    The standard code (TTUR, pytorch-fid, tf-gan's numpy port) takes ``scipy.linalg.sqrtm`` of
    the non-symmetric product ``sigma1 sigma2``, drops tiny imaginary parts, and retries with
    ``1e-6 I`` added to both covariances when the result is not finite. Here the trace term is
    taken from the symmetric matrix ``A^T sigma2 A`` for a factor ``sigma1 = A A^T`` (Cholesky,
    or the symmetric square root when sigma1 is singular), which is similar to
    ``sigma1 sigma2`` and positive semi-definite, so
    ``tr((sigma1 sigma2)^(1/2)) = sum_i sqrt(lambda_i)`` over its eigenvalues: real by
    construction, several times faster than ``sqrtm``, and well defined for singular covariances (e.g.
    fewer than 2049 samples), where it equals the limit of the offset formula as the offset goes
    to zero. Eigenvalues below the rounding floor ``D * eps * max eigenvalue`` (negative or tiny
    positive values that are zero up to rounding) are set to zero. The result agrees with the
    ``sqrtm`` formula to rounding error wherever that one is well conditioned.

    Args:
        mu1, mu2: means ``(D,)``.
        sigma1, sigma2: covariances ``(D, D)``, symmetric positive semi-definite.
    Returns:
        the squared distance as a Python float (FID when the inputs are Inception statistics).
    """
    mu1, mu2 = _float64("mu1", mu1, 1), _float64("mu2", mu2, 1)
    sigma1, sigma2 = _float64("sigma1", sigma1, 2), _float64("sigma2", sigma2, 2)
    d = mu1.shape[0]
    for name, value in (("mu2", mu2), ("sigma1", sigma1), ("sigma2", sigma2)):
        if value.shape != (d,) * value.ndim:
            raise ValueError(f"{name} has shape {value.shape}, which does not match mu1 of shape {mu1.shape}")
    sigma1 = (sigma1 + sigma1.T) / 2
    sigma2 = (sigma2 + sigma2.T) / 2
    # Any factor sigma1 = A A^T gives A^T sigma2 A, similar to sigma1 sigma2: Cholesky (cheap) when
    # sigma1 is numerically positive definite, else the symmetric square root.
    try:
        factor = np.linalg.cholesky(sigma1)
    except np.linalg.LinAlgError:
        factor = _psd_sqrt(sigma1)
    inner = factor.T @ sigma2 @ factor
    eigenvalues = np.linalg.eigvalsh((inner + inner.T) / 2)
    trace_sqrt = np.sqrt(_clip_rounding(eigenvalues)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)


def feature_statistics(features: ArrayLike, chunk_size: int = 10000) -> Tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and covariance ``(D, D)`` (unbiased, divisor ``N - 1``) of features ``(N, D)``.

    float64 throughout, accumulated in chunks of rows so that 50k x 2048 float32 features are
    never copied to float64 at once (two passes: the mean, then the centred products).
    """
    if isinstance(features, Tensor):
        features = features.detach().cpu().numpy()
    features = np.asarray(features)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"features must have shape (N, D) with N >= 2; got {features.shape}")
    n, d = features.shape
    mu = np.zeros(d)
    for k in range(0, n, chunk_size):
        mu += features[k : k + chunk_size].astype(np.float64).sum(0)
    mu /= n
    sigma = np.zeros((d, d))
    for k in range(0, n, chunk_size):
        centred = features[k : k + chunk_size].astype(np.float64) - mu
        sigma += centred.T @ centred
    return mu, sigma / (n - 1)


# ---------------------------------------------------------------------------------------------
# KID
# ---------------------------------------------------------------------------------------------


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 of two equal-size samples ``(m, d)`` with ``k(a, b) = (a . b / d + 1)^3``.

    ``[sum_{i!=j} k(x_i, x_j) + sum_{i!=j} k(y_i, y_j)] / (m (m - 1)) - 2 / m^2 sum_{i,j} k(x_i, y_j)``
    (Gretton et al. 2012, eq. 3; the form of Binkowski et al. 2018).
    """
    m, d = x.shape
    k_xx = (x @ x.T / d + 1) ** 3
    k_yy = (y @ y.T / d + 1) ** 3
    k_xy = (x @ y.T / d + 1) ** 3
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2 * k_xy.mean())


def kid_and_std(
    features1: ArrayLike,
    features2: ArrayLike,
    *,
    num_subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> Tuple[float, float]:
    """KID and the standard deviation of its per-subset estimates.

    Each of ``num_subsets`` rounds draws ``m = min(subset_size, N1, N2)`` rows of each feature
    set without replacement (numpy's ``default_rng(seed)``) and computes the unbiased MMD^2 with
    the cubic polynomial kernel; KID is their mean (the defaults, 100 subsets of 1000, are those
    of Binkowski et al. and of the StyleGAN/EDM metrics). The spread across subsets is returned
    as the standard deviation (divisor ``num_subsets``), as tf-gan's ``kernel_inception_distance_and_std``.
    KID is unbiased, so it can be slightly negative when the two sets come from one distribution.

    Args:
        features1, features2: ``(N1, D)`` and ``(N2, D)``, e.g. pool3 features.
    Returns:
        ``(kid, std)`` as Python floats.
    """
    x, y = _float64("features1", features1, 2), _float64("features2", features2, 2)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"features1 and features2 must have the same width; got {x.shape} and {y.shape}")
    m = min(subset_size, x.shape[0], y.shape[0])
    if m < 2:
        raise ValueError(f"KID needs at least 2 rows in each feature set and subset_size >= 2; got m = {m}")
    if num_subsets < 1:
        raise ValueError(f"num_subsets must be at least 1; got {num_subsets}")
    rng = np.random.default_rng(seed)
    values = np.array([
        _mmd2_unbiased(x[rng.choice(x.shape[0], m, replace=False)], y[rng.choice(y.shape[0], m, replace=False)])
        for _ in range(num_subsets)
    ])
    return float(values.mean()), float(values.std())


def kid(features1: ArrayLike, features2: ArrayLike, *, num_subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> float:
    """Kernel Inception Distance of two feature sets ``(N1, D)``, ``(N2, D)``: see :func:`kid_and_std`."""
    return kid_and_std(features1, features2, num_subsets=num_subsets, subset_size=subset_size, seed=seed)[0]


# ---------------------------------------------------------------------------------------------
# Inception Score
# ---------------------------------------------------------------------------------------------


def inception_score_and_std(logits: ArrayLike, splits: int = 10) -> Tuple[float, float]:
    """Inception Score ``exp(E_x KL(p(y|x) || p(y)))`` per split: mean and standard deviation.

    ``p(y|x) = softmax(logits)``; ``p(y)`` is the mean of ``p(y|x)`` within a split. The ``N``
    rows are cut, in order, into ``splits`` contiguous parts (10 in the standard protocol of
    Salimans et al., on 50k samples). float64, log-probabilities from ``log_softmax``.

    Args:
        logits: ``(N, C)``; for the standard score, the 1008-way logits of the FID Inception
            (:meth:`InceptionV3Features.features_and_logits`), which need weights that include the
            classifier.
    """
    logits = _float64("logits", logits, 2)
    if not 1 <= splits <= logits.shape[0]:
        raise ValueError(f"splits must be between 1 and the number of rows ({logits.shape[0]}); got {splits}")
    log_p = torch.log_softmax(torch.from_numpy(logits), dim=1).numpy()
    scores = []
    for part in np.array_split(log_p, splits):
        log_py = np.log(np.exp(part).mean(0))
        kl = (np.exp(part) * (part - log_py)).sum(1).mean()
        scores.append(np.exp(kl))
    return float(np.mean(scores)), float(np.std(scores))


def inception_score(logits: ArrayLike, splits: int = 10) -> float:
    """Inception Score of ``(N, C)`` logits, the mean over ``splits``: see :func:`inception_score_and_std`."""
    return inception_score_and_std(logits, splits)[0]


# ---------------------------------------------------------------------------------------------
# Features of many images
# ---------------------------------------------------------------------------------------------


def _batches(images: Union[Tensor, np.ndarray, Iterable[Tensor]], batch_size: int) -> Tuple[Iterable, Optional[int]]:
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if isinstance(images, Tensor):
        return (images[k : k + batch_size] for k in range(0, images.shape[0], batch_size)), images.shape[0]
    return images, getattr(images, "n_images", None)


def compute_features(
    extractor: InceptionV3Features,
    images: Union[Tensor, np.ndarray, Iterable[Tensor]],
    *,
    batch_size: int = 100,
    with_logits: bool = False,
    progress: bool = False,
) -> Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
    """pool3 features of many images, batch by batch, with an optional tqdm bar.

    Args:
        extractor: an :class:`InceptionV3Features` (or anything with the same ``__call__`` and
            ``features_and_logits``).
        images: ``(N, C, H, W)`` (tensor or array; uint8 in 0..255 or floating in [0, 1]), or an
            iterable of such batches (its ``n_images`` attribute, if any, sizes the bar).
        batch_size: images per forward pass when ``images`` is one array.
        with_logits: also return the ``(N, 1008)`` logits (needs the classifier weights).
        progress: show a tqdm bar counting images.
    Returns:
        float32 features ``(N, 2048)``, and float32 logits ``(N, 1008)`` if ``with_logits``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1; got {batch_size}")
    if with_logits and not extractor.has_logits:
        raise ValueError("with_logits=True needs Inception weights that include the classifier")
    batches, total = _batches(images, batch_size)
    from tqdm.auto import tqdm

    features, logits = [], []
    with tqdm(total=total, desc="inception features", unit="img", disable=not progress, dynamic_ncols=True) as bar:
        for batch in batches:
            if with_logits:
                f, logit = extractor.features_and_logits(batch)
                logits.append(logit.float().cpu().numpy())
            else:
                f = extractor(batch)
            features.append(f.float().cpu().numpy())
            bar.update(len(batch))
    if not features:
        raise ValueError("no images to compute features of")
    features = np.concatenate(features)
    return (features, np.concatenate(logits)) if with_logits else features
