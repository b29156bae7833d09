"""Draw samples from a trained run: ``python -m scoresde.sample --workdir DIR [options]``.

Loads ``DIR/config.json`` and the latest checkpoint (EMA weights), samples with the config's
sampler or the one given on the command line, and writes a PNG grid (or a scatter plot for
2-D data) and an ``.npz`` with the samples (``x``, in the model's data range; ``images``, uint8,
for image data).

This module shares its name with the function :func:`scoresde.sample`. Importing it would
normally rebind ``scoresde.sample`` to the module, so the module is made callable: calling it
calls the sampling function.
"""
from __future__ import annotations

import argparse
import os
import sys
import types

import numpy as np
import torch

from .config import UsageError
from .sampling import sample as _sample_fn


def cli(argv=None) -> int:
    from . import data as data_lib
    from .train import data_shape, draw_samples, load_run, save_samples

    parser = argparse.ArgumentParser(prog="python -m scoresde.sample", description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", required=True, help="run directory written by scoresde.train")
    parser.add_argument("--checkpoint", help="checkpoint file (default: the latest in the run)")
    parser.add_argument("-n", "--n-samples", type=int, default=64)
    parser.add_argument("--method", choices=["pc", "ode"], help="sampler family (default: the config's)")
    parser.add_argument("--predictor", help="PC predictor (e.g. euler_maruyama, reverse_diffusion, ancestral, none)")
    parser.add_argument("--corrector", help="PC corrector (langevin, annealed_langevin, none)")
    parser.add_argument("--snr", type=float)
    parser.add_argument("--steps", type=int, help="number of steps")
    parser.add_argument("--ode-method", help="ODE solver (rk45, scipy_rk45, euler, heun, ddim)")
    parser.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", help="torch device (default: cuda when available)")
    parser.add_argument("--out", help="output PNG (default: DIR/samples/sample_<step>_<seed>.png)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.n_samples < 1:
            raise UsageError("--n-samples must be at least 1")
        config, model, sde, step = load_run(args.workdir, checkpoint=args.checkpoint, ema=not args.no_ema,
                                            device=args.device)
        s = config.sampling
        with s.unlocked():
            for key, value in (("method", args.method), ("predictor", args.predictor),
                               ("corrector", args.corrector), ("snr", args.snr), ("steps", args.steps),
                               ("ode_method", args.ode_method)):
                if value is not None:
                    s[key] = value
        is_images = not config.data.dataset.startswith("toy:")
        shape = (args.n_samples,) + data_shape(config)
        device = next(model.parameters()).device
        try:
            x, nfe = draw_samples(model, sde, config, shape, seed=args.seed, device=device)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        out = args.out or os.path.join(args.workdir, "samples", f"sample_{step}_{args.seed}.png")
        save_samples(x.cpu(), is_images, config, out)
        arrays = {"x": x.cpu().numpy()}
        if is_images:
            arrays["images"] = data_lib.from_model_range(x.cpu(), centered=config.data.centered).numpy()
        npz = os.path.splitext(out)[0] + ".npz"
        np.savez(npz, **arrays)
        print(f"step {step}: {args.n_samples} samples with {nfe} score evaluations -> {out}, {npz}")
        return 0
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


class _CallableModule(types.ModuleType):
    """``scoresde.sample(...)`` works even after ``import scoresde.sample``."""

    def __call__(self, *args, **kwargs):
        return _sample_fn(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

if __name__ == "__main__":
    sys.exit(cli())
