"""Draw samples from a trained run: ``python -m scoresde.sample --workdir DIR [options]``.

Loads ``DIR/config.json`` and the latest checkpoint (EMA weights), samples with the config's
sampler or the one given on the command line, and writes a PNG grid (or a scatter plot for
2-D data; at most the first 256 samples) and an ``.npz`` with all the samples (``x``, in the
model's data range; ``images``, uint8, for image data: what ``python -m scoresde.metrics fid``
reads). ``--batch-size B`` draws many samples (e.g. 50k for FID) B at a time. Existing outputs are never replaced unless ``--overwrite`` is given.

Controllable generation (Song et al. 2021, Sec. 5; :mod:`scoresde.guidance`):
``--class-label Y [--guidance-scale W]`` samples class ``Y`` from a class-conditional model
(classifier-free guidance), ``--classifier-workdir DIR --class-label Y [--guidance-scale W]``
guides a model with a trained noise-conditional classifier, ``--inpaint [--mask SPEC]`` fills
in masked images of the run's test split and ``--colorize`` colors the gray versions of RGB
test images (the ``.npz`` then also holds ``original`` and ``mask`` or ``gray``).

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
from .sampling import ODE_METHODS
from .sampling import sample as _sample_fn


def make_mask(spec: str, shape, generator: torch.Generator) -> torch.Tensor:
    """Boolean mask of the known pixels, shape ``(B, C, H, W)``, for ``--mask SPEC``; ``SPEC``
    names the region to generate: ``right_half``, ``left_half``, ``center`` (the central
    half-size square) or ``random:P`` (each pixel, all channels together, with probability P)."""
    B, C, H, W = shape
    unknown = torch.zeros(B, 1, H, W, dtype=torch.bool)
    if spec == "right_half":
        unknown[..., W // 2:] = True
    elif spec == "left_half":
        unknown[..., : W // 2] = True
    elif spec == "center":
        unknown[..., H // 4: H - H // 4, W // 4: W - W // 4] = True
    elif spec.startswith("random:"):
        try:
            p = float(spec[len("random:"):])
        except ValueError:
            p = -1.0
        if not 0.0 <= p <= 1.0:
            raise UsageError(f"--mask {spec}: P in random:P must be a number in [0, 1], e.g. random:0.5")
        unknown = torch.rand(B, 1, H, W, generator=generator) < p
    else:
        raise UsageError(f"unknown --mask {spec!r}; valid: {', '.join(MASKS)}")
    return (~unknown).expand(B, C, H, W)


MASKS = ("right_half", "left_half", "center", "random:P")


def _check_combination(args) -> None:
    """Usage errors of the controllable-generation options, before anything is loaded."""
    if args.inpaint and args.colorize:
        raise UsageError("--inpaint and --colorize are separate tasks: give one of them")
    if (args.inpaint or args.colorize) and (args.class_label is not None or args.classifier_workdir):
        raise UsageError("--inpaint / --colorize sample unconditionally: drop --class-label and --classifier-workdir")
    if args.mask is not None and not args.inpaint:
        raise UsageError("--mask applies to --inpaint only")
    if args.class_label is None and (args.guidance_scale is not None or args.classifier_workdir):
        raise UsageError("--guidance-scale and --classifier-workdir need --class-label Y (the class to sample)")
    if args.class_label is not None and args.class_label < 0:
        raise UsageError(f"--class-label must be a class index >= 0; got {args.class_label}")


def _guided_score_fn(args, config, model, sde, device):
    """The score to sample with: unconditional, classifier-free guided or classifier guided."""
    from . import guidance
    from .models import get_cond_score_fn, get_log_prob_fn, get_score_fn
    from .train import load_run, num_classes, objective

    if args.class_label is None:
        return get_score_fn(model, sde), ""
    y = args.class_label
    if args.classifier_workdir:
        c_config, classifier, c_sde, _ = load_run(args.classifier_workdir, device=str(device))
        if objective(c_config) != "classifier":
            raise UsageError(f"--classifier-workdir {args.classifier_workdir} is not a classifier run "
                             "(train one with --config classifier_digits or classifier_fashion_mnist)")
        if repr(c_sde) != repr(sde):
            raise UsageError(f"the classifier was trained with {c_sde!r} but the score model with {sde!r}: "
                             "train the classifier under the score model's SDE")
        if y >= num_classes(c_config):
            raise UsageError(f"--class-label {y} is not a class of the classifier (0..{num_classes(c_config) - 1})")
        scale = 1.0 if args.guidance_scale is None else args.guidance_scale
        score_fn = guidance.classifier_guidance(get_score_fn(model, sde), get_log_prob_fn(classifier, c_sde), y, scale)
        return score_fn, f"_y{y}_cg{scale:g}"
    classes = num_classes(config)
    if classes == 0:
        raise UsageError(f"the model of {args.workdir} is unconditional: train a class-conditional one "
                         "(e.g. --config vp_digits_cond) or guide it with --classifier-workdir DIR")
    if y >= classes:
        raise UsageError(f"--class-label {y} is not a class of the model (0..{classes - 1})")
    scale = 0.0 if args.guidance_scale is None else args.guidance_scale
    return guidance.classifier_free_guidance(get_cond_score_fn(model, sde), y, scale), f"_y{y}_cfg{scale:g}"


def cli(argv=None) -> int:
    from . import data as data_lib
    from . import guidance
    from .models import get_score_fn
    from .sampling._common import CountingScore
    from .train import data_shape, load_run, make_dataset, make_sampler, objective, sample_kwargs, save_samples

    parser = argparse.ArgumentParser(prog="python -m scoresde.sample", description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", required=True, help="run directory written by scoresde.train")
    parser.add_argument("--checkpoint", help="checkpoint file (default: the latest in the run)")
    parser.add_argument("-n", "--n-samples", type=int, default=64)
    parser.add_argument("--method", choices=["pc", "ode"], help="sampler family (default: the config's)")
    parser.add_argument("--predictor", help="PC predictor (e.g. euler_maruyama, reverse_diffusion, ancestral, none)")
    parser.add_argument("--corrector", help="PC corrector (langevin, annealed_langevin, none)")
    parser.add_argument("--snr", type=float)
    parser.add_argument("--steps", type=int, help="number of steps")
    parser.add_argument("--ode-method", help="probability-flow ODE solver: " + ", ".join(ODE_METHODS))
    parser.add_argument("--batch-size", type=int, help="draw the samples in batches of this many "
                        "(default: all at once); the generator runs on, so results depend on it")
    parser.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", help="torch device (default: cuda when available)")
    parser.add_argument("--out", help="output PNG (default: DIR/samples/<kind>_<step>_<seed>[_<options>].png)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    group = parser.add_argument_group("controllable generation (Song et al. 2021, Sec. 5)")
    group.add_argument("--class-label", type=int, help="sample class Y: a class-conditional model "
                       "(classifier-free guidance with --guidance-scale, default 0) or, with "
                       "--classifier-workdir, classifier guidance of an unconditional one")
    group.add_argument("--guidance-scale", type=float, help="guidance scale w (default 0 for a "
                       "conditional model, 1 with --classifier-workdir)")
    group.add_argument("--classifier-workdir", help="run directory of a noise-conditional classifier "
                       "(training.objective=classifier) for classifier guidance")
    group.add_argument("--inpaint", action="store_true", help="fill in masked test images")
    group.add_argument("--mask", help="region to fill in with --inpaint: " + ", ".join(MASKS) +
                       " (default right_half)")
    group.add_argument("--colorize", action="store_true", help="color the gray versions of RGB test images")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.n_samples < 1:
            raise UsageError("--n-samples must be at least 1")
        if args.batch_size is not None and args.batch_size < 1:
            raise UsageError("--batch-size must be at least 1")
        _check_combination(args)
        config, model, sde, step = load_run(args.workdir, checkpoint=args.checkpoint, ema=not args.no_ema,
                                            device=args.device)
        if objective(config) == "classifier":
            raise UsageError(f"{args.workdir} holds a noise-conditional classifier, not a score model: "
                             "pass it as --classifier-workdir when sampling from a score model's run")
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
        generator = torch.Generator(device=device).manual_seed(args.seed)
        arrays = {}
        if args.inpaint or args.colorize:
            if not is_images:
                raise UsageError("--inpaint and --colorize work on image data; this run has toy data")
            if args.colorize and config.data.num_channels != 3:
                raise UsageError(f"--colorize needs 3-channel (RGB) data; the data of this run "
                                 f"({config.data.dataset}) has {config.data.num_channels} channel(s)")
            images, _, _ = make_dataset(config, "test")
            if len(images) < args.n_samples:
                raise UsageError(f"the test split has {len(images)} images; ask for at most that many with -n")
            images = images[: args.n_samples]
            data = data_lib.to_model_range(images, centered=config.data.centered).to(device)
            arrays["original"] = images.numpy()
            counted = CountingScore(get_score_fn(model, sde))
            try:
                if args.inpaint:
                    spec = args.mask or "right_half"
                    mask = make_mask(spec, shape, torch.Generator().manual_seed(args.seed)).to(device)
                    x = guidance.inpaint(counted, sde, data, mask, generator=generator, **sample_kwargs(config))
                    arrays["mask"] = mask.cpu().numpy()
                    name = f"inpaint_{step}_{args.seed}_{spec.replace(':', '')}"
                else:
                    gray = data.mean(dim=1, keepdim=True)
                    x = guidance.colorize(counted, sde, gray, generator=generator, **sample_kwargs(config))
                    arrays["gray"] = gray.cpu().numpy()
                    name = f"colorize_{step}_{args.seed}"
            except ValueError as exc:
                raise UsageError(str(exc)) from None
            nfe = counted.nfe
        else:
            score_fn, suffix = _guided_score_fn(args, config, model, sde, device)
            sampler = make_sampler(config)
            batch = args.batch_size or args.n_samples
            chunks, nfe = [], 0
            try:
                for start in range(0, args.n_samples, batch):
                    size = min(batch, args.n_samples - start)
                    x, n = sampler(score_fn, sde, (size,) + shape[1:], generator)
                    chunks.append(x.cpu())
                    nfe = max(nfe, n)  # per batch (adaptive solvers differ between batches)
                    if batch < args.n_samples:
                        print(f"{start + size}/{args.n_samples} samples", file=sys.stderr)
            except ValueError as exc:
                raise UsageError(str(exc)) from None
            x = torch.cat(chunks)
            name = f"sample_{step}_{args.seed}{suffix}"
        out = args.out or os.path.join(args.workdir, "samples", name + ".png")
        npz = os.path.splitext(out)[0] + ".npz"
        for path in (out, npz):
            if os.path.exists(path) and not args.overwrite:
                raise UsageError(f"{path} already exists: pass --out to write elsewhere, or --overwrite")
        save_samples(x[:GRID_MAX].cpu(), is_images, config, out)  # the .npz keeps them all
        arrays["x"] = x.cpu().numpy()
        if is_images:
            arrays["images"] = data_lib.from_model_range(x.cpu(), centered=config.data.centered).numpy()
        np.savez(npz, **arrays)
        print(f"step {step}: {args.n_samples} samples with {nfe} score evaluations -> {out}, {npz}")
        return 0
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


#: Samples shown in the PNG grid (all of them go into the .npz).
GRID_MAX = 256


class _CallableModule(types.ModuleType):
    """``scoresde.sample(...)`` works even after ``import scoresde.sample``."""

    def __call__(self, *args, **kwargs):
        return _sample_fn(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

if __name__ == "__main__":
    sys.exit(cli())
