"""``scoresde-evaluate`` / ``python -m scoresde.evaluate --workdir DIR [options]``: evaluate a
trained run.

Computes the likelihood of the held-out split through the probability-flow ODE
(:func:`scoresde.bits_per_dim` for images, in bits per dimension of the 8-bit data;
:func:`scoresde.log_likelihood` for toy data, in nats per example) with the EMA weights, prints
the mean and its standard error, and writes ``DIR/eval/eval_<step>.json`` (an existing one is
refused unless ``--overwrite``). By default it evaluates the first 100 examples (about a
minute of one CPU core for ``vp_digits``, seconds for ``vp_toy``); ``--max-examples 0``
evaluates the whole split. A progress bar with the running mean and the time left goes to
stderr.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from typing import List, Optional

import torch
from tqdm import tqdm

from ..config import UsageError
from . import ArgumentParser, run_command

#: Examples evaluated when neither --max-examples nor the config's eval.max_examples says.
DEFAULT_MAX_EXAMPLES = 100


def _parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m scoresde.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", required=True, help="run directory written by scoresde.train")
    parser.add_argument("--checkpoint", help="checkpoint file (default: the latest in the run)")
    parser.add_argument("--split", default="test", choices=["train", "test"], help="data split (default %(default)s)")
    parser.add_argument("--max-examples", type=int, help="evaluate the first N examples; 0: the whole "
                        "split (default: eval.max_examples of the config when it is set, else "
                        f"{DEFAULT_MAX_EXAMPLES}: about a minute on a CPU for vp_digits)")
    parser.add_argument("--batch-size", type=int, help="examples per ODE solve (default: eval.batch_size "
                        "of the config)")
    parser.add_argument("--n-dequant", type=int, help="dequantization draws (default: eval.n_dequant)")
    parser.add_argument("--exact", action="store_true", help="exact divergence instead of Hutchinson's estimate "
                        "(default: Hutchinson)")
    parser.add_argument("--rtol", type=float, default=1e-5, help="ODE solver relative tolerance (default %(default)s)")
    parser.add_argument("--atol", type=float, default=1e-5, help="ODE solver absolute tolerance (default %(default)s)")
    parser.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the dequantization and Hutchinson noise "
                        "(default %(default)s)")
    parser.add_argument("--device", help="torch device (default: cuda when available)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing eval_<step>.json")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (it goes to stderr)")
    return parser


def _check_args(args) -> None:
    if args.max_examples is not None and args.max_examples < 0:
        raise UsageError(f"--max-examples must be at least 1, or 0 for the whole split; got {args.max_examples}")
    for name in ("batch_size", "n_dequant"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1; got {value}")
    for name in ("rtol", "atol"):
        value = getattr(args, name)
        if not (math.isfinite(value) and value > 0):
            raise UsageError(f"--{name} must be a positive number (e.g. 1e-5); got {value}")


def _moving_bar(score_fn, bar, start: int, size: int, solves: int, T: float):
    """``score_fn`` that moves ``bar`` along the ODE time of the ``solves`` solves (``eps`` to
    ``T`` each) of the batch of ``size`` examples that starts at example ``start``."""
    state = {"solve": 0, "t0": None, "t": 0.0}

    def score(x, t):
        now = float(t.reshape(-1)[0])
        if state["t0"] is None:
            state["t0"] = now
        elif now <= state["t0"] < state["t"]:  # back at eps: the next solve
            state["solve"] += 1
        state["t"] = now
        done = start + size * min((state["solve"] + now / T) / solves, 1.0)
        bar.update(max(done - bar.n, 0.0))
        return score_fn(x, t)

    return score


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
        limit = (config.eval.max_examples or DEFAULT_MAX_EXAMPLES) if args.max_examples is None else args.max_examples
        data = data[: limit or len(data)]
        batch = args.batch_size or config.eval.batch_size
        n_dequant = args.n_dequant or config.eval.n_dequant
        if batch < 1 or n_dequant < 1:
            raise UsageError("eval.batch_size and eval.n_dequant of the run's config must be at least 1")
        device = next(model.parameters()).device
        score_fn = get_score_fn(model, sde)
        generator = torch.Generator(device=device).manual_seed(args.seed)
        kwargs = dict(exact=args.exact, rtol=args.rtol, atol=args.atol, generator=generator)
        values, start = [], time.perf_counter()
        bar = tqdm(total=len(data), desc=f"evaluate {args.split}", file=sys.stderr, disable=args.no_progress,
                   dynamic_ncols=True,
                   bar_format="{l_bar}{bar}| {n:.0f}/{total} examples [{elapsed}<{remaining}{postfix}]")
        for k in range(0, len(data), batch):
            chunk = data[k: k + batch].to(device).float()
            moving = _moving_bar(score_fn, bar, k, len(chunk), n_dequant if is_images else 1, sde.T)
            if is_images:
                v = bits_per_dim(moving, sde, chunk, data_range=(-1.0, 1.0) if config.data.centered else (0.0, 1.0),
                                 n_dequant=n_dequant, **kwargs)
            else:
                v = -log_likelihood(moving, sde, chunk, **kwargs)
            values.append(v.double().cpu())
            bar.update(k + len(chunk) - bar.n)
            bar.set_postfix(mean=f"{torch.cat(values).mean():.4f}")
        bar.close()
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
