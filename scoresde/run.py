"""From a config to objects: the one place where a run's config becomes an SDE, a network, its
data, an optimizer, a sampler and a training objective.

:func:`build` resolves every config group and checks it before any work is done, so a bad
value is a :class:`~scoresde.config.UsageError` (one line, exit status 2 from the CLIs)
before step 1 rather than a traceback at the first snapshot. :func:`load_run` reads back a
trained run for sampling and evaluation; :func:`save_samples` writes a grid or scatter plot.

Keys that may change when a run is resumed are :data:`RESUMABLE`; :func:`config_changes`
lists the others that differ, which the trainer refuses.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import ml_collections
import torch

from . import data as data_lib
from . import precision, toy
from .checkpointing import latest_checkpoint, load_checkpoint
from .config import UsageError
from .losses import WEIGHTINGS, classifier_loss_terms, discrete_dsm_loss_terms, dsm_loss_terms, importance_sample_time
from .models import ExponentialMovingAverage, get_cond_score_fn, get_log_prob_fn, get_model, get_score_fn
from .plotting import save_image_grid, scatter_png
from .sampling import ODE_METHODS, pc_sampler
from .sde import SDE, VESDE, VPSDE, RectifiedFlow, SubVPSDE
from .types import Tensor

__all__ = ["SDES", "OBJECTIVES", "RESUMABLE", "Run", "build", "make_sde", "make_model", "make_optimizer",
           "make_dataset", "make_sampler", "make_objective", "loss_weighting", "check_sampler", "check_arguments",
           "data_shape", "is_toy", "num_classes", "objective", "sample_kwargs", "draw_samples", "resolve_device",
           "load_run", "save_samples", "config_changes", "all_finite"]

SDES: Dict[str, Callable[[ml_collections.ConfigDict], SDE]] = {
    "vpsde": lambda m: VPSDE(beta_min=m.beta_min, beta_max=m.beta_max, N=m.num_scales),
    "subvpsde": lambda m: SubVPSDE(beta_min=m.beta_min, beta_max=m.beta_max, N=m.num_scales),
    "vesde": lambda m: VESDE(sigma_min=m.sigma_min, sigma_max=m.sigma_max, N=m.num_scales),
    "rectified_flow": lambda m: RectifiedFlow(N=m.num_scales),
}

#: What a run trains: a score model (DSM) or a noise-conditional classifier (cross entropy).
OBJECTIVES = ("score", "classifier")

#: Config keys that may change when a run resumes (a trailing ``.*``: the whole group). They
#: set how long to train, what to log and write, how to sample, where the data lies, and the
#: learning-rate schedule and clipping (read afresh at every step, so a change truly applies);
#: any other change would continue a different run from this run's state, and is refused.
RESUMABLE = ("training.n_iters", "training.log_freq", "training.snapshot_freq", "training.keep_last",
             "training.keep_every", "training.snapshot_sampling", "sampling.*", "eval.*", "data.root",
             "data.download", "optim.lr", "optim.warmup", "optim.grad_clip", "training.compile")


def is_toy(config: ml_collections.ConfigDict) -> bool:
    """Whether the run's data is a :mod:`scoresde.toy` distribution (``data.dataset="toy:NAME"``)."""
    return config.data.dataset.startswith("toy:")


def _toy(config: ml_collections.ConfigDict) -> toy._Toy:
    try:
        return toy.get_toy(config.data.dataset[len("toy:"):])
    except ValueError as exc:
        raise UsageError(f"data.dataset={config.data.dataset!r}: {exc}") from None


def make_sde(config: ml_collections.ConfigDict) -> SDE:
    if config.training.sde not in SDES:
        raise UsageError(f"unknown training.sde {config.training.sde!r}; valid: {', '.join(SDES)}")
    try:
        return SDES[config.training.sde](config.model)
    except ValueError as exc:
        raise UsageError(f"training.sde={config.training.sde!r} with the model group's settings: {exc} "
                         "(model.num_scales is N)") from None


def num_classes(config: ml_collections.ConfigDict) -> int:
    """``model.num_classes`` (0: unconditional; runs written before the key existed have 0)."""
    return int(config.model.get("num_classes", 0))


def objective(config: ml_collections.ConfigDict) -> str:
    """``training.objective``, checked: ``"score"`` (the default) or ``"classifier"``."""
    name = config.training.get("objective", "score")
    if name not in OBJECTIVES:
        raise UsageError(f"unknown training.objective {name!r}; valid: {', '.join(OBJECTIVES)}")
    tc, classes = config.training, num_classes(config)
    if name == "classifier" and classes < 2:
        raise UsageError("training.objective='classifier' needs model.num_classes >= 2 (the classes to predict)")
    if name == "classifier" and (not tc.continuous or tc.importance_sampling):
        raise UsageError("training.objective='classifier' trains at t ~ U(eps, T): set "
                         "training.continuous=true and training.importance_sampling=false")
    dropout = tc.get("label_dropout", 0.0)
    if not 0.0 <= dropout < 1.0 or (dropout > 0 and (name != "score" or classes == 0)):
        raise UsageError(f"training.label_dropout={dropout} must lie in [0, 1) and needs a "
                         "class-conditional score model (model.num_classes > 0)")
    return name


def make_model(config: ml_collections.ConfigDict) -> torch.nn.Module:
    kwargs = config.model.kwargs.to_dict() if "kwargs" in config.model else {}
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
    if num_classes(config):
        kwargs["num_classes"] = num_classes(config)
    try:
        return get_model(config.model.name, **kwargs)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"cannot build model {config.model.name!r}: {exc}") from None


def make_optimizer(config: ml_collections.ConfigDict, params) -> torch.optim.Optimizer:
    o = config.optim
    if o.optimizer != "Adam":
        raise UsageError(f"optim.optimizer must be 'Adam'; got {o.optimizer!r}")
    if not (0 <= o.beta1 < 1 and 0 < o.eps and 0 <= o.weight_decay and o.warmup >= 0):
        raise UsageError(f"need 0 <= optim.beta1 < 1, optim.eps > 0, optim.weight_decay >= 0 and "
                         f"optim.warmup >= 0; got {o.beta1}, {o.eps}, {o.weight_decay}, {o.warmup}")
    # Adam's first step is lr / (1 - beta1): beyond float32's range it cannot even be taken.
    if not (0 < o.lr and o.lr / (1 - o.beta1) < torch.finfo(torch.float32).max):
        raise UsageError(f"optim.lr={o.lr} must be positive and lr / (1 - optim.beta1) must fit in "
                         "float32 (e.g. 2e-4)")
    params = list(params)
    fast = precision.adam_options(params[0].device) if params else {}  # fused Adam: the same update
    return torch.optim.Adam(params, lr=o.lr, betas=(o.beta1, 0.999), eps=o.eps, weight_decay=o.weight_decay, **fast)


def make_dataset(config: ml_collections.ConfigDict, split: str = "train") -> Tuple[Tensor, Optional[Tensor], bool]:
    """The whole split in memory: uint8 images ``(N, C, H, W)`` or float toy points ``(N, D)``.

    ``data.dataset`` is a name of :data:`scoresde.data.DATASETS`, ``"folder:PATH"`` or
    ``"npz:PATH"`` (one's own data, :func:`scoresde.data.load_examples`), ``"toy:<preset>"`` (a
    :mod:`scoresde.toy` distribution, ``data.n_train`` samples) or ``"synthetic"`` (random
    uint8 images of the configured shape, for benchmarks and smoke tests).

    Returns the tensor, the class labels ``(N,)`` (the component of a toy mixture; ``None``
    for data without classes) and whether it holds images.
    """
    name = config.data.dataset
    if config.data.n_train < 0:
        raise UsageError(f"data.n_train={config.data.n_train} must be >= 0 (0: the default size)")
    seed = config.seed + (0 if split == "train" else 1)
    if name == "synthetic":  # random images of the config's shape: benchmarks and smoke tests
        shape = (config.data.n_train or 1024, config.data.num_channels, config.data.image_size,
                 config.data.image_size)
        if min(shape[1:]) < 1:
            raise UsageError("synthetic data needs data.num_channels >= 1 and data.image_size >= 1")
        g = torch.Generator().manual_seed(seed)
        return torch.randint(0, 256, shape, generator=g, dtype=torch.uint8), None, True
    if is_toy(config):
        dist = _toy(config)
        n = config.data.n_train or 20000
        generator = torch.Generator().manual_seed(seed)
        if isinstance(dist, toy.GaussianMixture):
            x, labels = dist.sample(n, generator=generator, return_labels=True)
            return x, labels, False
        return dist.sample(n, generator=generator), None, False
    try:
        return data_lib.load_examples(name, split, root=config.data.root or None, download=config.data.download,
                                      image_size=config.data.image_size, num_channels=config.data.num_channels)
    except data_lib.DataError as exc:
        raise UsageError(str(exc)) from None
    except ValueError as exc:
        raise UsageError(f"data.dataset: {exc}") from None


def data_shape(config: ml_collections.ConfigDict) -> Tuple[int, ...]:
    """Shape of one example: ``(C, H, W)`` for images, the toy distribution's event shape."""
    if is_toy(config):
        return tuple(_toy(config).event_shape)
    return data_lib.example_shape(config.data.dataset, image_size=config.data.image_size,
                                  num_channels=config.data.num_channels)


def _none(value):
    return None if value in ("none", "None", "") else value


def make_sampler(config: ml_collections.ConfigDict) -> Callable:
    """``sampler(score_fn, sde, shape, generator) -> (x, nfe)`` from the sampling group
    (``sampling.steps = 0``: the SDE's ``N``); see :func:`check_sampler`."""
    s = config.sampling
    if s.method == "pc":
        return lambda score_fn, sde, shape, generator: pc_sampler(
            score_fn, sde, shape, steps=s.steps or None, predictor=_none(s.predictor),
            corrector=_none(s.corrector), snr=s.snr, n_corrector_steps=s.n_steps_each, eps=s.eps,
            denoise=s.noise_removal, generator=generator, device=generator.device)
    if s.method == "ode":
        if s.ode_method not in ODE_METHODS:
            raise UsageError(f"unknown sampling.ode_method {s.ode_method!r}; valid: {', '.join(ODE_METHODS)}")
        method = ODE_METHODS[s.ode_method]
        extra = {} if s.ode_method in ("rk45", "scipy_rk45") else {"steps": s.steps or None}
        return lambda score_fn, sde, shape, generator: method(
            score_fn, sde, shape, eps=s.eps, denoise=s.noise_removal, generator=generator,
            device=generator.device, **extra)
    raise UsageError(f"sampling.method must be 'pc' or 'ode'; got {s.method!r}")


#: More steps than this are refused (the time grid alone would take gigabytes).
MAX_STEPS = 100_000


class _Checked(Exception):
    """Raised by the stand-in score of :func:`check_arguments` once a sampler has started."""


def check_arguments(start: Callable[[Callable], object], what: str) -> None:
    """Let a sampler check its own arguments without sampling: ``start(score_fn)`` starts it
    with a stand-in score that stops it at its first evaluation; a ``ValueError`` (or
    ``TypeError``) raised before that becomes a :class:`UsageError` about ``what``."""
    def stand_in(x: Tensor, t: Tensor) -> Tensor:
        raise _Checked

    try:
        start(stand_in)
    except _Checked:
        return
    except (ValueError, TypeError, KeyError) as exc:
        raise UsageError(f"{what} is invalid: {str(exc).splitlines()[0]}") from None
    raise UsageError(f"{what} gives a sampler that never evaluates the score")


def check_sampler(config: ml_collections.ConfigDict, sde: SDE, shape: Tuple[int, ...]) -> Callable:
    """The config's sampler, after the sampler itself has checked its arguments on one example
    (:func:`check_arguments`), so every argument it checks (names, steps, eps, snr, ...) is
    checked here, before any training or sampling."""
    s = config.sampling
    if s.n_samples < 1:
        raise UsageError(f"sampling.n_samples={s.n_samples} must be at least 1")
    if not 0 <= s.steps <= MAX_STEPS:
        raise UsageError(f"sampling.steps={s.steps} must lie in 1..{MAX_STEPS} (0: the SDE's N)")
    sampler = make_sampler(config)
    check_arguments(lambda score: sampler(score, sde, (1,) + tuple(shape), torch.Generator().manual_seed(0)),
                    "the sampling group")
    return sampler


def sample_kwargs(config: ml_collections.ConfigDict) -> Dict[str, object]:
    """The config's sampler as keyword arguments of :func:`scoresde.sample` (and of
    :func:`scoresde.inpaint` / :func:`scoresde.colorize`), the same choice as :func:`make_sampler`."""
    s = config.sampling
    kwargs = dict(pc=s.method == "pc", steps=s.steps or None, eps=s.eps, denoise=s.noise_removal)
    if s.method == "pc":
        kwargs.update(predictor=_none(s.predictor), corrector=_none(s.corrector), snr=s.snr,
                      n_corrector_steps=s.n_steps_each)
    else:
        kwargs.update(method=s.ode_method)
    return kwargs


def draw_samples(model: torch.nn.Module, sde: SDE, config: ml_collections.ConfigDict, shape,
                 seed: int, device: torch.device, y: Optional[Tensor] = None,
                 wrap: Optional[Callable] = None) -> Tuple[Tensor, int]:
    """Samples from ``model`` with the config's sampler (a fixed seed gives comparable grids);
    ``y`` ``(B,)``: class labels of a class-conditional model; ``wrap(score_fn)``: a wrapper of
    the score (the trainer's stops sampling at a signal)."""
    generator = torch.Generator(device=device).manual_seed(seed)
    score_fn = get_score_fn(model, sde, y=y)
    return make_sampler(config)(wrap(score_fn) if wrap else score_fn, sde, shape, generator)


def loss_weighting(config: ml_collections.ConfigDict) -> str:
    """The DSM weighting: ``training.weighting`` (sigma2, g2, flow_matching) where a config sets it,
    else ``g2`` with ``training.likelihood_weighting`` and ``sigma2`` without (score_sde's key)."""
    tc = config.training
    weighting = tc.get("weighting") or ("g2" if tc.likelihood_weighting else "sigma2")
    if weighting not in WEIGHTINGS:
        raise UsageError(f"unknown training.weighting {weighting!r}; valid: {', '.join(WEIGHTINGS)}")
    return weighting


def make_objective(config: ml_collections.ConfigDict, sde: SDE, model: Callable, *, rank: int = 0,
                   world: int = 1) -> Callable[[Tensor, Optional[Tensor], torch.Generator], Tensor]:
    """The training loss ``loss(x, y, generator)`` of this rank's slice of a global batch ``x``
    ``(B, *D)`` (labels ``y`` ``(B,)`` or ``None``): the library's loss terms at times and noise
    drawn for the whole global batch, so 1 or ``world`` processes follow the same trajectory.

    A score model: continuous DSM (Eq. 7; weighting from :func:`loss_weighting`, optionally with
    importance-sampled times) or the discrete DDPM / SMLD loss, with class labels replaced by the
    null label with probability ``training.label_dropout``. A classifier: the cross entropy at
    ``x_t ~ p_0t(x_t | x_0)``, ``t ~ U(eps, T)`` (App. I.1).
    """
    tc, classes = config.training, num_classes(config)
    weighting = loss_weighting(config)
    reduce = "mean" if tc.reduce_mean else "sum"
    per_rank = tc.batch_size // world
    local = slice(rank * per_rank, (rank + 1) * per_rank)

    def uniform_time(x: Tensor, generator: torch.Generator) -> Tensor:
        u = torch.rand(x.shape[0], generator=generator, device=x.device, dtype=x.dtype)
        return tc.eps + (sde.T - tc.eps) * u

    if objective(config) == "classifier":
        log_prob_fn = get_log_prob_fn(model, sde, train=True)

        def classifier_loss(x: Tensor, y: Optional[Tensor], generator: torch.Generator) -> Tensor:
            z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            t = uniform_time(x, generator)
            assert y is not None, "a classifier is trained on labelled data (build() checks it)"
            return classifier_loss_terms(log_prob_fn, sde, x[local], y[local], t[local], z[local]).mean()

        return classifier_loss
    cond_score_fn = get_cond_score_fn(model, sde, train=True)

    def score_loss(x: Tensor, y: Optional[Tensor], generator: torch.Generator) -> Tensor:
        z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        if y is not None:  # classifier-free guidance: the null label with P = label_dropout
            dropped = torch.rand(x.shape[0], generator=generator, device=x.device) < tc.label_dropout
            y = torch.where(dropped, torch.full_like(y, classes), y)[local]
        score_fn = lambda x_t, t: cond_score_fn(x_t, t, y)  # noqa: E731  (y=None: unconditional)
        if not tc.continuous:
            i = torch.randint(0, sde.N, (x.shape[0],), generator=generator, device=x.device)
            return discrete_dsm_loss_terms(score_fn, sde, x[local], i[local], z[local], reduce=reduce).mean()
        if tc.importance_sampling:
            t, w = importance_sample_time(sde, weighting, x.shape[0], eps=tc.eps, generator=generator,
                                          device=x.device, dtype=x.dtype)
            return (w[local] * dsm_loss_terms(score_fn, sde, x[local], t[local], z[local], reduce=reduce)).mean()
        t = uniform_time(x, generator)
        return dsm_loss_terms(score_fn, sde, x[local], t[local], z[local], weighting=weighting,
                              reduce=reduce).mean()

    return score_loss


def _check_training(config: ml_collections.ConfigDict, world: int, n_examples: int) -> None:
    tc = config.training
    for key in ("n_iters", "log_freq", "snapshot_freq", "keep_last"):
        if tc[key] < 1:
            raise UsageError(f"training.{key}={tc[key]} must be at least 1")
    if tc.batch_size < 1 or tc.batch_size % world:
        raise UsageError(f"training.batch_size={tc.batch_size} must be a positive multiple of the "
                         f"{world} process(es)")
    if tc.batch_size > n_examples:
        raise UsageError(f"training.batch_size={tc.batch_size} is larger than the {n_examples} training "
                         "examples: lower it (or raise data.n_train for toy / synthetic data)")
    if tc.keep_every < 0:
        raise UsageError(f"training.keep_every={tc.keep_every} must be >= 0 (0: keep only the last ones)")
    if not 0 <= tc.eps < 1:
        raise UsageError(f"training.eps={tc.eps} must lie in [0, 1)")
    if not 0 <= config.model.ema_rate < 1:
        raise UsageError(f"model.ema_rate={config.model.ema_rate} must lie in [0, 1) (e.g. 0.999)")
    loss_weighting(config)


@dataclass
class Run:
    """Everything a training run is made of, resolved from its config and checked."""

    sde: SDE
    model: torch.nn.Module
    ema: ExponentialMovingAverage
    optimizer: torch.optim.Optimizer
    data: Tensor
    labels: Optional[Tensor]
    is_images: bool
    sampler: Optional[Callable]
    shape: Tuple[int, ...]


def build(config: ml_collections.ConfigDict, device: torch.device, world: int = 1) -> Run:
    """Resolve every config group of a training run into objects and check them, before step 1."""
    task, classes = objective(config), num_classes(config)
    sde = make_sde(config)
    data, labels, is_images = make_dataset(config, "train")
    _check_training(config, world, len(data))
    if task == "classifier" or classes > 0:
        if labels is None:
            raise UsageError(f"data.dataset={config.data.dataset!r} has no class labels; a classifier or a "
                             "class-conditional model (model.num_classes > 0) needs labelled data")
        if int(labels.max()) >= classes:
            raise UsageError(f"the data has labels up to {int(labels.max())}: set model.num_classes to at "
                             f"least {int(labels.max()) + 1} (got {classes})")
    else:
        labels = None
    shape = tuple(data.shape[1:])
    sampler = check_sampler(config, sde, shape) if task == "score" else None
    model = precision.to_channels_last(make_model(config).to(device))  # NHWC convolutions, same values
    ema = ExponentialMovingAverage(model.parameters(), decay=config.model.ema_rate)
    optimizer = make_optimizer(config, model.parameters())
    return Run(sde, model, ema, optimizer, data, labels, is_images, sampler, shape)


def resolve_device(name: Optional[str]) -> torch.device:
    """``--device``: a torch device that exists here (default: CUDA when available, else CPU)."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"--device {name!r} is not a torch device; use cpu or cuda (or cuda:K)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise UsageError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"--device {name!r}: only cpu and cuda are supported")
    return device


def all_finite(tensors) -> bool:
    """Whether every tensor holds only finite numbers (one host sync)."""
    tensors = [t for t in tensors if t.is_floating_point()]
    return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all()) if tensors else True


def read_config(workdir: str) -> ml_collections.ConfigDict:
    """``workdir/config.json`` of a training run."""
    path = os.path.join(workdir, "config.json")
    if not os.path.isfile(path):
        raise UsageError(f"{workdir} is not a training run: {path} is missing "
                         "(train first with python -m scoresde.train --config NAME --workdir DIR)")
    try:
        with open(path) as f:
            return ml_collections.ConfigDict(json.load(f))
    except (ValueError, OSError, TypeError) as exc:
        raise UsageError(f"{path} is not a readable run config ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0]}); restore it from a checkpoint's 'config' entry") from None


def load_run(workdir: str, *, checkpoint: Optional[str] = None, ema: bool = True,
             device: Optional[str] = None) -> Tuple[ml_collections.ConfigDict, torch.nn.Module, SDE, int]:
    """The config, network (EMA weights by default, in eval mode), SDE and step of a run.

    Raises :class:`UsageError` for a missing or unreadable run, and for a checkpoint whose
    weights are not all finite (sampling it would give NaN)."""
    config = read_config(workdir)
    dev = resolve_device(device)
    if checkpoint is None:
        latest = latest_checkpoint(os.path.join(workdir, "checkpoints"))
        if latest is None:
            raise UsageError(f"no checkpoint in {os.path.join(workdir, 'checkpoints')}: train longer "
                             "than training.snapshot_freq steps, or pass --checkpoint")
        checkpoint = latest[1]
    state = load_checkpoint(checkpoint, map_location=dev)
    model = make_model(config).to(dev)
    try:
        model.load_state_dict(state["model"])
        if ema:
            averaged = ExponentialMovingAverage(model.parameters(), decay=config.model.ema_rate)
            averaged.load_state_dict(state["ema"])
            averaged.copy_to(model.parameters())
        step = int(state["step"])
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise UsageError(f"checkpoint {checkpoint} does not match {os.path.join(workdir, 'config.json')}: "
                         f"{str(exc).splitlines()[0]}") from None
    if not all_finite(model.parameters()):
        raise UsageError(f"checkpoint {checkpoint} has non-finite weights (training diverged): "
                         "pass --checkpoint with an earlier one")
    return config, model.eval(), make_sde(config), step


def save_samples(x: Tensor, is_images: bool, config: ml_collections.ConfigDict, path: str) -> None:
    """A PNG grid of images (in the config's data range) or a scatter plot of toy samples."""
    if is_images:
        save_image_grid(x, path, value_range=(-1.0, 1.0) if config.data.centered else (0.0, 1.0))
    else:
        reference = getattr(_toy(config), "means", None) if is_toy(config) else None
        scatter_png([("samples", x)], path, reference=reference)


def _flatten(d: Dict, prefix: str = "") -> Dict[str, object]:
    out = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = list(value) if isinstance(value, tuple) else value
    return out


def config_changes(old: Dict, new: ml_collections.ConfigDict) -> Tuple[Dict[str, List], List[str]]:
    """The keys whose values differ between a run's saved config ``old`` (a dict from JSON) and
    ``new``: ``({key: [old, new]} of the resumable ones, [the others])`` (see :data:`RESUMABLE`)."""
    a, b = _flatten(old), _flatten(json.loads(json.dumps(new.to_dict(), default=str)))
    changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    allowed = lambda k: any(k == r or (r.endswith(".*") and k.startswith(r[:-1])) for r in RESUMABLE)  # noqa: E731
    return ({k: [a.get(k), b.get(k)] for k in changed if allowed(k)}, [k for k in changed if not allowed(k)])
