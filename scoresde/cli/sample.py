"""``scoresde-sample`` / ``python -m scoresde.sample --workdir DIR [options]``: draw samples from
a trained run.

Loads ``DIR/config.json`` and the latest checkpoint (EMA weights), samples with the config's
sampler or the one given on the command line, and writes a PNG grid (or a scatter plot for
2-D data; at most the first 256 samples) and an ``.npz`` with all the samples (``x``, in the
model's data range; ``images``, uint8, for image data: what ``python -m scoresde.metrics fid``
reads). ``--batch-size B`` draws many samples (e.g. 50k for FID) B at a time, and
``torchrun --nproc_per_node=K -m scoresde.sample`` splits them between K processes; sample
``i`` is seeded from ``(--seed, i)``, so the samples do not depend on either. Every option is
checked, and an existing output refused (unless ``--overwrite``), before sampling starts; a
checkpoint with non-finite weights is refused.

Controllable generation (Song et al. 2021, Sec. 5; :mod:`scoresde.guidance`):
``--class-label Y [--guidance-scale W]`` samples class ``Y`` from a class-conditional model
(classifier-free guidance), ``--classifier-workdir DIR --class-label Y [--guidance-scale W]``
guides a model with a trained noise-conditional classifier, ``--inpaint [--mask SPEC]`` fills
in masked images of the run's test split and ``--colorize`` colors the gray versions of RGB
test images (the ``.npz`` then also holds ``original`` and ``mask`` or ``gray``).
"""
from __future__ import annotations

import ast
import inspect
import os
import sys
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

from ..config import UsageError
from ..guidance import MASKS, make_mask
from ..sampling import ODE_METHODS
from . import ArgumentParser, run_command

#: Samples shown in the PNG grid (all of them go into the .npz).
GRID_MAX = 256


def _parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m scoresde.sample", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", required=True, help="run directory written by scoresde.train")
    parser.add_argument("--checkpoint", help="checkpoint file (default: the latest in the run)")
    parser.add_argument("-n", "--n-samples", type=int, default=64, help="number of samples, split between the torchrun "
                        "processes (default %(default)s)")
    parser.add_argument("--method", choices=["pc", "ode"], help="sampler family: pc (reverse SDE, "
                        "predictor-corrector) or ode (probability flow) (default: the config's)")
    parser.add_argument("--predictor", help="PC predictor: euler_maruyama, reverse_diffusion, ancestral, none "
                        "(default: the config's)")
    parser.add_argument("--corrector", help="PC corrector: langevin, annealed_langevin, none (default: the config's)")
    parser.add_argument("--snr", type=float, help="corrector signal-to-noise ratio (default: the config's)")
    parser.add_argument("--steps", type=int, help="number of steps (default: the config's)")
    parser.add_argument("--ode-method", help="probability-flow ODE solver: " + ", ".join(ODE_METHODS)
                        + " (default: the config's)")
    parser.add_argument("--sampler-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="any other keyword of the chosen sampler, repeatable (e.g. --ode-method unipc "
                        "--sampler-arg skip_type=time_uniform --sampler-arg variant=bh2; a wrong key "
                        "lists the valid ones); VALUE is a Python literal or a bare string (default: none)")
    parser.add_argument("--batch-size", type=int, help="draw the samples in batches of this many per "
                        "process (default: all at once); the samples do not depend on it")
    parser.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA")
    parser.add_argument("--seed", type=int, default=0,
                        help="random seed; sample i is seeded from (seed, i) (default %(default)s)")
    parser.add_argument("--device", help="torch device (default: cuda when available)")
    parser.add_argument("--out", help="output PNG (default: DIR/samples/<kind>_<step>_<seed>[_<options>].png)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    group = parser.add_argument_group("controllable generation (Song et al. 2021, Sec. 5)")
    group.add_argument("--class-label", type=int, help="sample class Y: a class-conditional model "
                       "(classifier-free guidance with --guidance-scale, default 0) or, with "
                       "--classifier-workdir, classifier guidance of an unconditional one "
                       "(default: unconditional samples)")
    group.add_argument("--guidance-scale", type=float, help="guidance scale w (default 0 for a "
                       "conditional model, 1 with --classifier-workdir)")
    group.add_argument("--classifier-workdir", help="run directory of a noise-conditional classifier "
                       "(training.objective=classifier) for classifier guidance (default: none)")
    group.add_argument("--inpaint", action="store_true", help="fill in masked test images")
    group.add_argument("--mask", help="region to fill in with --inpaint: " + ", ".join(MASKS) +
                       " (default right_half)")
    group.add_argument("--colorize", action="store_true", help="color the gray versions of RGB test images")
    return parser


def _check_args(args) -> None:
    """Usage errors found from the options alone, before anything is loaded."""
    if args.n_samples < 1:
        raise UsageError(f"--n-samples must be at least 1; got {args.n_samples}")
    if args.batch_size is not None and args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1; got {args.batch_size}")
    if args.steps is not None and args.steps < 1:
        raise UsageError(f"--steps must be at least 1; got {args.steps} (leave it out for the config's)")
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
    """The score to sample with (unconditional, classifier-free or classifier guided) and the
    suffix of the output name."""
    from .. import guidance
    from ..models import get_cond_score_fn, get_log_prob_fn, get_score_fn
    from ..run import load_run, num_classes, objective

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


def _outputs(args, name: str) -> List[str]:
    """The PNG and .npz paths; a :class:`UsageError` if one exists and ``--overwrite`` is not given."""
    out = args.out or os.path.join(args.workdir, "samples", name + ".png")
    paths = [out, os.path.splitext(out)[0] + ".npz"]
    for path in paths:
        if os.path.exists(path) and not args.overwrite:
            raise UsageError(f"{path} already exists: pass --out to write elsewhere, or --overwrite")
    return paths


def sample_seed(seed: int, index: int) -> int:
    """The seed of sample ``index`` under ``--seed seed`` (a 63-bit hash of the pair)."""
    return int(np.random.SeedSequence([seed % 2**64, index]).generate_state(1, np.uint64)[0] >> 1)


#: Sampler arguments the command sets itself.
_RESERVED = {"score_fn", "sde", "shape", "x_T", "generator", "device", "dtype", "progress", "callback"}


def _sampler_args(pairs: List[str], kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """``--sampler-arg KEY=VALUE`` as keyword arguments of the sampler chosen by ``kwargs``; a
    :class:`UsageError` listing the valid keys for a key the sampler does not take."""
    from ..sampling import ODE_METHODS, pc_sampler

    function = pc_sampler if kwargs["pc"] else ODE_METHODS[kwargs["method"]]
    keys = {name for name, p in inspect.signature(function).parameters.items()
            if p.default is not inspect.Parameter.empty} - _RESERVED
    out = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--sampler-arg {pair!r} must be KEY=VALUE (e.g. skip_type=time_uniform)")
        if key not in keys:
            raise UsageError(f"--sampler-arg {key}: {function.__name__} takes none such; valid keys: "
                             + ", ".join(sorted(keys)))
        try:
            out[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            out[key] = {"true": True, "false": False}.get(text.lower(), text)
    return out


def _sample_sharded(score_fn, sde, shape, kwargs: Dict[str, Any], args, device) -> Tuple[torch.Tensor, int]:
    """All ``N = shape[0]`` samples (on every process) and the largest NFE of a batch.

    Under ``torchrun`` process ``r`` of ``W`` draws samples ``r * ceil(N / W)`` onwards, in
    batches of ``--batch-size``, and the processes gather them. Sample ``i`` has its own
    generator, seeded by :func:`sample_seed`, which draws its prior ``x_T`` and (through
    :class:`~scoresde.sampling._common.SampleGenerators`) its row of every noise draw, so the
    samples do not depend on the batch size or the number of processes (up to rounding), except
    with the adaptive ODE solvers (rk45, scipy_rk45), which choose their steps from a whole
    batch's error, and the ``langevin`` corrector, whose step size uses the batch's mean norms
    (as in score_sde)."""
    from ..sampling import sample
    from ..sampling._common import CountingScore, SampleGenerators

    world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    rank = torch.distributed.get_rank() if world > 1 else 0
    n, per = shape[0], -(-shape[0] // world)
    mine = range(min(rank * per, n), min((rank + 1) * per, n))
    batch = args.batch_size or n
    chunks, nfe = [torch.zeros((0,) + shape[1:], device=device)], 0
    for start in range(mine.start, mine.stop, batch):
        indices = range(start, min(start + batch, mine.stop))
        generators = [torch.Generator(device=device).manual_seed(sample_seed(args.seed, i)) for i in indices]
        x_T = torch.cat([sde.prior_sampling((1,) + shape[1:], generator=g) for g in generators])
        counted = CountingScore(score_fn)
        chunks.append(sample(counted, sde, x_T.shape, x_T=x_T, generator=SampleGenerators(generators), **kwargs))
        nfe = max(nfe, counted.nfe)  # per batch (adaptive solvers differ between batches)
        if rank == 0 and batch < n:
            print(f"{indices.stop - mine.start}/{len(mine)} samples" + (" of process 0" if world > 1 else ""),
                  file=sys.stderr)
    x = torch.cat(chunks)
    if world == 1:
        return x, nfe
    padded = torch.cat([x, x.new_zeros((per - len(x),) + shape[1:])])
    parts = [torch.empty_like(padded) for _ in range(world)]
    torch.distributed.all_gather(parts, padded)
    return torch.cat(parts)[:n], nfe


def _sample(args, config, model, sde, step, shape, generator, arrays):
    """Samples (and the extra arrays of --inpaint / --colorize), the NFE and the output paths."""
    from .. import data as data_lib
    from .. import guidance
    from ..models import get_score_fn
    from ..run import check_arguments, check_sampler, make_dataset, sample_kwargs
    from ..sampling import sample
    from ..sampling._common import CountingScore

    device = generator.device
    check_sampler(config, sde, shape[1:])
    if not (args.inpaint or args.colorize):
        score_fn, suffix = _guided_score_fn(args, config, model, sde, device)
        kwargs = {**sample_kwargs(config), **_sampler_args(args.sampler_arg, sample_kwargs(config))}
        check_arguments(lambda score: sample(score, sde, (1,) + shape[1:], device=device, **kwargs),
                        "--sampler-arg")
        paths = _outputs(args, f"sample_{step}_{args.seed}{suffix}")
        x, nfe = _sample_sharded(score_fn, sde, shape, kwargs, args, device)
        return x, nfe, paths
    if args.colorize and config.data.num_channels != 3:
        raise UsageError(f"--colorize needs 3-channel (RGB) data; the data of this run "
                         f"({config.data.dataset}) has {config.data.num_channels} channel(s)")
    spec = args.mask or "right_half"
    if args.inpaint:
        try:
            mask = make_mask(spec, shape, torch.Generator().manual_seed(args.seed)).to(device)
        except ValueError as exc:
            raise UsageError(f"--mask: {exc}") from None
    one = torch.zeros((1,) + shape[1:], device=device)
    check_arguments(lambda score: guidance.inpaint(score, sde, one, mask[:1], **sample_kwargs(config))
                    if args.inpaint else guidance.colorize(score, sde, one[:, :1], **sample_kwargs(config)),
                    "the sampler of --inpaint / --colorize")
    paths = _outputs(args, f"inpaint_{step}_{args.seed}_{spec.replace(':', '')}" if args.inpaint
                     else f"colorize_{step}_{args.seed}")
    images, _, _ = make_dataset(config, "test")
    if len(images) < args.n_samples:
        raise UsageError(f"the test split has {len(images)} images; ask for at most that many with -n")
    images = images[: args.n_samples]
    data = data_lib.to_model_range(images, centered=config.data.centered).to(device)
    arrays["original"] = images.numpy()
    counted = CountingScore(get_score_fn(model, sde))
    if args.inpaint:
        x = guidance.inpaint(counted, sde, data, mask, generator=generator, **sample_kwargs(config))
        arrays["mask"] = mask.cpu().numpy()
    else:
        gray = data.mean(dim=1, keepdim=True)
        x = guidance.colorize(counted, sde, gray, generator=generator, **sample_kwargs(config))
        arrays["gray"] = gray.cpu().numpy()
    return x, counted.nfe, paths


def cli(argv: Optional[List[str]] = None) -> int:
    """Parse the command line and sample; returns the exit status (2 for usage errors)."""
    argv = sys.argv[1:] if argv is None else list(argv)

    def body() -> int:
        from .. import data as data_lib
        from ..run import data_shape, load_run, objective, save_samples
        from ..train import _process_group

        args = _parser().parse_args(argv)
        _check_args(args)
        with _process_group(args.device) as (rank, world, device):
            if world > 1 and (args.inpaint or args.colorize):
                raise UsageError("--inpaint and --colorize run in one process: start them without torchrun")
            config, model, sde, step = load_run(args.workdir, checkpoint=args.checkpoint, ema=not args.no_ema,
                                                device=str(device))
            if objective(config) == "classifier":
                raise UsageError(f"{args.workdir} holds a noise-conditional classifier, not a score model: "
                                 "pass it as --classifier-workdir when sampling from a score model's run")
            with config.sampling.unlocked():
                for key in ("method", "predictor", "corrector", "snr", "steps", "ode_method"):
                    if getattr(args, key) is not None:
                        config.sampling[key] = getattr(args, key)
            is_images = len(data_shape(config)) == 3
            if (args.inpaint or args.colorize) and not is_images:
                raise UsageError("--inpaint and --colorize work on image data; this run has toy data")
            shape = (args.n_samples,) + data_shape(config)
            generator = torch.Generator(device=next(model.parameters()).device).manual_seed(args.seed)
            arrays = {}
            try:
                x, nfe, (out, npz) = _sample(args, config, model, sde, step, shape, generator, arrays)
            except ValueError as exc:
                raise UsageError(str(exc).splitlines()[0]) from None
            except (MemoryError, torch.OutOfMemoryError):
                raise UsageError("out of memory while sampling: lower --batch-size or --steps") from None
        if rank > 0:  # process 0 writes the gathered samples
            return 0
        if not torch.isfinite(x).all():
            print(f"warning: {int((~torch.isfinite(x)).flatten(1).any(1).sum())} of {len(x)} samples are "
                  "not finite", file=sys.stderr)
        save_samples(x[:GRID_MAX].cpu(), is_images, config, out)  # the .npz keeps them all
        arrays["x"] = x.cpu().numpy()
        if is_images:
            arrays["images"] = data_lib.from_model_range(x.cpu(), centered=config.data.centered).numpy()
        np.savez(npz, **arrays)
        print(f"step {step}: {args.n_samples} samples with {nfe} score evaluations -> {out}, {npz}")
        return 0

    return run_command(body)
