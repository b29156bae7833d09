"""``scoresde-evaluate`` / ``python -m scoresde.evaluate --workdir DIR [options]``: evaluate a
trained run.

Computes the likelihood of the held-out split through the probability-flow ODE
(:func:`scoresde.bits_per_dim` for images, in bits per dimension of the 8-bit data;
:func:`scoresde.log_likelihood` for toy data, in nats per example) with the EMA weights, prints
the mean and its standard error, and writes ``DIR/eval/eval_<step>.json`` (an existing one is
refused unless ``--overwrite``).
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from typing import List, Optional

import torch

from ..config import UsageError
from . import ArgumentParser, run_command


def _parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m scoresde.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", required=True, help="run directory written by scoresde.train")
    parser.add_argument("--checkpoint", help="checkpoint file (default: the latest in the run)")
    parser.add_argument("--split", default="test", choices=["train", "test"], help="data split (default test)")
    parser.add_argument("--max-examples", type=int, help="evaluate at most this many examples "
                        "(default: eval.max_examples of the config; 0 there: the whole split)")
    parser.add_argument("--batch-size", type=int, help="default: eval.batch_size of the config")
    parser.add_argument("--n-dequant", type=int, help="dequantization draws (default: eval.n_dequant)")
    parser.add_argument("--exact", action="store_true", help="exact divergence instead of Hutchinson")
    parser.add_argument("--rtol", type=float, default=1e-5, help="ODE solver relative tolerance (default 1e-5)")
    parser.add_argument("--atol", type=float, default=1e-5, help="ODE solver absolute tolerance (default 1e-5)")
    parser.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--device", help="torch device (default: cuda when available)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing eval_<step>.json")
    return parser


def _check_args(args) -> None:
    for name in ("max_examples", "batch_size", "n_dequant"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1; got {value}")
    for name in ("rtol", "atol"):
        value = getattr(args, name)
        if not (math.isfinite(value) and value > 0):
            raise UsageError(f"--{name} must be a positive number (e.g. 1e-5); got {value}")


def cli(argv: Optional[List[str]] = None) -> int:
    """Parse the command line and evaluate; returns the exit status (2 for usage errors)."""
    argv = sys.argv[1:] if argv is None else list(argv)

    def body() -> int:
        from ..likelihood import bits_per_dim, log_likelihood
        from ..models import get_score_fn
        from ..run import load_run, make_dataset, objective

        args = _parser().parse_args(argv)
        _check_args(args)
        config, model, sde, step = load_run(args.workdir, checkpoint=args.checkpoint, ema=not args.no_ema,
                                            device=args.device)
        if objective(config) == "classifier":
            raise UsageError(f"{args.workdir} holds a noise-conditional classifier, not a score model: "
                             "evaluate a score model's run")
        out = os.path.join(args.workdir, "eval", f"eval_{step}.json")
        if os.path.exists(out) and not args.overwrite:
            raise UsageError(f"{out} already exists: pass --overwrite to replace it")
        data, _, is_images = make_dataset(config, args.split)
        data = data[: args.max_examples or config.eval.max_examples or len(data)]
        batch = args.batch_size or config.eval.batch_size
        n_dequant = args.n_dequant or config.eval.n_dequant
        if batch < 1 or n_dequant < 1:
            raise UsageError("eval.batch_size and eval.n_dequant of the run's config must be at least 1")
        device = next(model.parameters()).device
        score_fn = get_score_fn(model, sde)
        generator = torch.Generator(device=device).manual_seed(args.seed)
        kwargs = dict(exact=args.exact, rtol=args.rtol, atol=args.atol, generator=generator)
        values, start = [], time.perf_counter()
        for k in range(0, len(data), batch):
            chunk = data[k: k + batch].to(device).float()
            if is_images:
                v = bits_per_dim(score_fn, sde, chunk, data_range=(-1.0, 1.0) if config.data.centered else (0.0, 1.0),
                                 n_dequant=n_dequant, **kwargs)
            else:
                v = -log_likelihood(score_fn, sde, chunk, **kwargs)
            values.append(v.double().cpu())
            done = min(k + batch, len(data))
            print(f"  {done}/{len(data)} examples, running mean {torch.cat(values).mean():.4f}", flush=True)
        values = torch.cat(values)
        unit = "bits/dim" if is_images else "nats (negative log-likelihood per example)"
        mean, sem = values.mean().item(), values.std().item() / math.sqrt(max(len(values), 1))
        result = {"step": step, "split": args.split, "n": len(values), "metric": unit, "mean": mean,
                  "stderr": sem, "exact_divergence": args.exact, "seconds": time.perf_counter() - start}
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "w") as f:
            json.dump(result, f, indent=2)
        print(f"step {step}: {mean:.4f} +- {sem:.4f} {unit} on {len(values)} {args.split} examples -> {out}")
        return 0

    return run_command(body)
