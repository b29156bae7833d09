"""Evaluate a trained run: ``python -m scoresde.evaluate --workdir DIR [options]``.

Computes the likelihood of the held-out split through the probability-flow ODE
(:func:`scoresde.bits_per_dim` for images, in bits per dimension of the 8-bit data;
:func:`scoresde.log_likelihood` for toy data, in nats per example) with the EMA weights, prints
the mean and its standard error, and writes ``DIR/eval/eval_<step>.json``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import torch

from .config import UsageError
from .likelihood import bits_per_dim, log_likelihood


def cli(argv=None) -> int:
    from .train import load_run, make_dataset, objective

    parser = argparse.ArgumentParser(prog="python -m scoresde.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", required=True, help="run directory written by scoresde.train")
    parser.add_argument("--checkpoint", help="checkpoint file (default: the latest in the run)")
    parser.add_argument("--split", default="test", choices=["train", "test"])
    parser.add_argument("--max-examples", type=int, help="evaluate at most this many examples")
    parser.add_argument("--batch-size", type=int, help="default: eval.batch_size of the config")
    parser.add_argument("--n-dequant", type=int, help="dequantization draws (default: eval.n_dequant)")
    parser.add_argument("--exact", action="store_true", help="exact divergence instead of Hutchinson")
    parser.add_argument("--rtol", type=float, default=1e-5)
    parser.add_argument("--atol", type=float, default=1e-5)
    parser.add_argument("--no-ema", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        config, model, sde, step = load_run(args.workdir, checkpoint=args.checkpoint, ema=not args.no_ema,
                                            device=args.device)
        from .models import get_score_fn

        if objective(config) == "classifier":
            raise UsageError(f"{args.workdir} holds a noise-conditional classifier, not a score model: "
                             "evaluate a score model's run")
        data, _, is_images = make_dataset(config, args.split)
        limit = args.max_examples or config.eval.max_examples or len(data)
        data = data[:limit]
        batch = args.batch_size or config.eval.batch_size
        device = next(model.parameters()).device
        score_fn = get_score_fn(model, sde)
        generator = torch.Generator(device=device).manual_seed(args.seed)
        kwargs = dict(exact=args.exact, rtol=args.rtol, atol=args.atol, generator=generator)
        values, start = [], time.perf_counter()
        for k in range(0, len(data), batch):
            chunk = data[k : k + batch].to(device)
            if is_images:
                v = bits_per_dim(score_fn, sde, chunk.float(),
                                 data_range=(-1.0, 1.0) if config.data.centered else (0.0, 1.0),
                                 n_dequant=args.n_dequant or config.eval.n_dequant, **kwargs)
            else:
                v = -log_likelihood(score_fn, sde, chunk.float(), **kwargs)
            values.append(v.double().cpu())
            done = min(k + batch, len(data))
            print(f"  {done}/{len(data)} examples, running mean {torch.cat(values).mean():.4f}", flush=True)
        values = torch.cat(values)
        unit = "bits/dim" if is_images else "nats (negative log-likelihood per example)"
        mean, sem = values.mean().item(), values.std().item() / math.sqrt(max(len(values), 1))
        result = {"step": step, "split": args.split, "n": len(values), "metric": unit, "mean": mean,
                  "stderr": sem, "exact_divergence": args.exact, "seconds": time.perf_counter() - start}
        out = os.path.join(args.workdir, "eval", f"eval_{step}.json")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "w") as f:
            json.dump(result, f, indent=2)
        print(f"step {step}: {mean:.4f} +- {sem:.4f} {unit} on {len(values)} {args.split} examples -> {out}")
        return 0
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(cli())
