"""Train a score model: ``python -m scoresde.train --config NAME [--workdir DIR] [--config.KEY=VALUE]``.

The loop (:func:`main`) reads top to bottom: set-up, data, SDE / model / EMA / optimizer,
resume, then steps of denoising score matching (Song et al. 2021, Eq. 7) with Adam, warm-up,
gradient clipping and EMA, writing metrics, checkpoints and sample grids into the workdir:

    workdir/config.json                  the resolved config
    workdir/checkpoints/checkpoint_N.pt  state dicts + JSON (loads with weights_only=True)
    workdir/samples/samples_N.png        sample grid (EMA weights, the config's sampler)
    workdir/metrics.csv                  step, loss, learning rate, steps/s

With ``training.objective="classifier"`` the same loop trains a noise-conditional classifier
(the cross entropy at ``x_t ~ p_0t(x_t | x_0)``, App. I.1) for classifier guidance; with
``model.num_classes > 0`` a class-conditional score model, whose labels are replaced by the
null label with probability ``training.label_dropout`` (classifier-free guidance). See
``docs/guidance.md``.

Rerunning with the same workdir resumes from the latest checkpoint, and continues exactly as
an uninterrupted run would (data order, noise and RNG states are saved). Under ``torchrun``
each process takes a slice of every global batch (DDP); all randomness is drawn for the
global batch, so 1 or K processes follow the same loss trajectory.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import signal
import sys
import time
from contextlib import nullcontext
from typing import Callable, Dict, Optional, Tuple

import ml_collections
import torch

from . import data as data_lib
from . import toy
from .checkpointing import (
    checkpoint_path,
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
)
from .config import UsageError, apply_overrides, load_config, split_overrides, to_json
from .losses import (WEIGHTINGS, classifier_loss_terms, discrete_dsm_loss_terms, dsm_loss_terms,
                     importance_sample_time)
from .models import ExponentialMovingAverage, get_cond_score_fn, get_log_prob_fn, get_model, get_score_fn
from .plotting import save_image_grid, scatter_png
from .sampling import ODE_METHODS, pc_sampler
from .sde import SDE, RectifiedFlow, SubVPSDE, VESDE, VPSDE
from .types import Tensor

__all__ = ["main", "make_sde", "make_model", "make_optimizer", "make_dataset", "make_sampler", "data_shape",
           "draw_samples", "sample_kwargs", "load_run", "num_classes", "objective", "OBJECTIVES", "cli"]

SDES: Dict[str, Callable[[ml_collections.ConfigDict], SDE]] = {
    "vpsde": lambda m: VPSDE(beta_min=m.beta_min, beta_max=m.beta_max, N=m.num_scales),
    "subvpsde": lambda m: SubVPSDE(beta_min=m.beta_min, beta_max=m.beta_max, N=m.num_scales),
    "vesde": lambda m: VESDE(sigma_min=m.sigma_min, sigma_max=m.sigma_max, N=m.num_scales),
    "rectified_flow": lambda m: RectifiedFlow(N=m.num_scales),
}


# ---------------------------------------------------------------------------------------------
# Factories: the only place where a config becomes objects.
def make_sde(config: ml_collections.ConfigDict) -> SDE:
    if config.training.sde not in SDES:
        raise UsageError(f"unknown training.sde {config.training.sde!r}; valid: {', '.join(SDES)}")
    return SDES[config.training.sde](config.model)


def make_model(config: ml_collections.ConfigDict) -> torch.nn.Module:
    kwargs = config.model.kwargs.to_dict() if "kwargs" in config.model else {}
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
    if num_classes(config):
        kwargs["num_classes"] = num_classes(config)
    try:
        return get_model(config.model.name, **kwargs)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"cannot build model {config.model.name!r}: {exc}") from None


#: What a run trains: a score model (DSM) or a noise-conditional classifier (cross entropy).
OBJECTIVES = ("score", "classifier")


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


def make_optimizer(config: ml_collections.ConfigDict, params) -> torch.optim.Optimizer:
    if config.optim.optimizer != "Adam":
        raise UsageError(f"optim.optimizer must be 'Adam'; got {config.optim.optimizer!r}")
    return torch.optim.Adam(params, lr=config.optim.lr, betas=(config.optim.beta1, 0.999),
                            eps=config.optim.eps, weight_decay=config.optim.weight_decay)


def make_dataset(config: ml_collections.ConfigDict, split: str = "train") -> Tuple[Tensor, Optional[Tensor], bool]:
    """The whole split in memory: uint8 images ``(N, C, H, W)`` or float toy points ``(N, D)``.

    ``data.dataset`` is a name of :data:`scoresde.data.DATASETS`, ``"toy:<preset>"`` (a
    :mod:`scoresde.toy` distribution, ``data.n_train`` samples) or ``"synthetic"`` (random
    uint8 images of the configured shape, for benchmarks and smoke tests).

    Returns the tensor, the class labels ``(N,)`` (the component of a toy mixture; ``None``
    for data without classes) and whether it holds images.
    """
    name = config.data.dataset
    if name == "synthetic":  # random images of the config's shape: benchmarks and smoke tests
        g = torch.Generator().manual_seed(config.seed + (0 if split == "train" else 1))
        shape = (config.data.n_train or 1024, config.data.num_channels, config.data.image_size,
                 config.data.image_size)
        return torch.randint(0, 256, shape, generator=g, dtype=torch.uint8), None, True
    if name.startswith("toy:"):
        dist = toy.get_toy(name[4:])
        n = config.data.n_train or 20000
        generator = torch.Generator().manual_seed(config.seed + (0 if split == "train" else 1))
        if isinstance(dist, toy.GaussianMixture):
            x, labels = dist.sample(n, generator=generator, return_labels=True)
            return x, labels, False
        return dist.sample(n, generator=generator), None, False
    try:
        dataset = data_lib.load_dataset(name, root=config.data.root or None, split=split,
                                        download=config.data.download)
    except data_lib.DataError as exc:
        raise UsageError(str(exc)) from None
    except ValueError as exc:
        raise UsageError(f"data.dataset: {exc}") from None
    images = dataset.images
    size = config.data.image_size
    if size and tuple(images.shape[-2:]) != (size, size):
        images = data_lib.resize(images, size)
    return images, dataset.labels, True


def data_shape(config: ml_collections.ConfigDict) -> Tuple[int, ...]:
    """Shape of one example: ``(C, H, W)`` for images, the toy distribution's event shape."""
    if config.data.dataset.startswith("toy:"):
        return toy.get_toy(config.data.dataset[4:]).event_shape
    return (config.data.num_channels, config.data.image_size, config.data.image_size)


def make_sampler(config: ml_collections.ConfigDict) -> Callable:
    """``sampler(score_fn, sde, shape, generator) -> (x, nfe)`` from the sampling group."""
    s = config.sampling
    none = lambda v: None if v in ("none", "None", "") else v  # noqa: E731
    if s.method == "pc":
        return lambda score_fn, sde, shape, generator: pc_sampler(
            score_fn, sde, shape, steps=s.steps or None, predictor=none(s.predictor),
            corrector=none(s.corrector), snr=s.snr, n_corrector_steps=s.n_steps_each, eps=s.eps,
            denoise=s.noise_removal, generator=generator, device=generator.device)
    if s.method == "ode":
        method = ODE_METHODS[s.ode_method]
        extra = {} if s.ode_method in ("rk45", "scipy_rk45") else {"steps": s.steps or None}
        return lambda score_fn, sde, shape, generator: method(
            score_fn, sde, shape, eps=s.eps, denoise=s.noise_removal, generator=generator,
            device=generator.device, **extra)
    raise UsageError(f"sampling.method must be 'pc' or 'ode'; got {s.method!r}")


def draw_samples(model: torch.nn.Module, sde: SDE, config: ml_collections.ConfigDict, shape,
                 seed: int, device: torch.device, y: Optional[Tensor] = None) -> Tuple[Tensor, int]:
    """Samples from ``model`` with the config's sampler (a fixed seed gives comparable grids);
    ``y`` ``(B,)``: class labels of a class-conditional model."""
    generator = torch.Generator(device=device).manual_seed(seed)
    return make_sampler(config)(get_score_fn(model, sde, y=y), sde, shape, generator)


def sample_kwargs(config: ml_collections.ConfigDict) -> Dict[str, object]:
    """The config's sampler as keyword arguments of :func:`scoresde.sample` (and of
    :func:`scoresde.inpaint` / :func:`scoresde.colorize`), the same choice as :func:`make_sampler`."""
    s = config.sampling
    none = lambda v: None if v in ("none", "None", "") else v  # noqa: E731
    kwargs = dict(pc=s.method == "pc", steps=s.steps or None, eps=s.eps, denoise=s.noise_removal)
    if s.method == "pc":
        kwargs.update(predictor=none(s.predictor), corrector=none(s.corrector), snr=s.snr,
                      n_corrector_steps=s.n_steps_each)
    else:
        kwargs.update(method=s.ode_method)
    return kwargs


def load_run(workdir: str, *, checkpoint: Optional[str] = None, ema: bool = True,
             device: Optional[str] = None) -> Tuple[ml_collections.ConfigDict, torch.nn.Module, SDE, int]:
    """The config, network (EMA weights by default, in eval mode), SDE and step of a run."""
    config_path = os.path.join(workdir, "config.json")
    if not os.path.isfile(config_path):
        raise UsageError(f"{workdir} is not a training run: {config_path} is missing "
                         "(train first with python -m scoresde.train --config NAME --workdir DIR)")
    with open(config_path) as f:
        config = ml_collections.ConfigDict(json.load(f))
    if checkpoint is None:
        latest = latest_checkpoint(os.path.join(workdir, "checkpoints"))
        if latest is None:
            raise UsageError(f"no checkpoint in {os.path.join(workdir, 'checkpoints')}: train longer "
                             "than training.snapshot_freq steps, or pass --checkpoint")
        checkpoint = latest[1]
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    state = load_checkpoint(checkpoint, map_location=device)
    model = make_model(config).to(device)
    try:
        model.load_state_dict(state["model"])
        if ema:
            averaged = ExponentialMovingAverage(model.parameters(), decay=config.model.ema_rate)
            averaged.load_state_dict(state["ema"])
            averaged.copy_to(model.parameters())
    except (RuntimeError, KeyError, ValueError) as exc:
        raise UsageError(f"checkpoint {checkpoint} does not match {config_path}: {str(exc).splitlines()[0]}") from None
    return config, model.eval(), make_sde(config), int(state["step"])


def save_samples(x: Tensor, is_images: bool, config, path: str) -> None:
    if is_images:
        save_image_grid(x, path, value_range=(-1.0, 1.0) if config.data.centered else (0.0, 1.0))
    else:
        dist = toy.get_toy(config.data.dataset[4:])
        reference = dist.means if hasattr(dist, "means") else None
        scatter_png([("samples", x)], path, reference=reference)


# ---------------------------------------------------------------------------------------------
def _setup_distributed(device: Optional[str]) -> Tuple[int, int, torch.device]:
    """Rank, world size and device; starts a process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and world > 1:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(dev)
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return rank, world, dev


def _rng_state(device: torch.device) -> Dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: Dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)


class _StopFlag:
    """Set by SIGINT / SIGTERM; the loop saves a checkpoint and returns at the next step."""

    def __init__(self) -> None:
        self.signal: Optional[int] = None
        self._old = {}

    def __enter__(self) -> "_StopFlag":
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.signal = signum

    def __exit__(self, *exc) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def main(config: ml_collections.ConfigDict, workdir: str, *, device: Optional[str] = None,
         bf16: bool = False, quiet: bool = False) -> int:
    """Train (or resume training) the model described by ``config`` in ``workdir``.

    Returns 0 when training reached ``n_iters`` or was stopped by a signal after saving.
    Raises :class:`UsageError` for bad configs, missing data and unreadable checkpoints.
    """
    rank, world, device = _setup_distributed(device)
    is_main = rank == 0
    log = (lambda *a: print(*a, flush=True)) if (is_main and not quiet) else (lambda *a: None)
    tc = config.training
    task = objective(config)  # "score" or "classifier"
    weighting = tc.get("weighting") or ("g2" if tc.likelihood_weighting else "sigma2")
    if weighting not in WEIGHTINGS:
        raise UsageError(f"unknown training.weighting {weighting!r}; valid: {', '.join(WEIGHTINGS)}")
    classes = num_classes(config)
    if tc.batch_size % world:
        raise UsageError(f"training.batch_size={tc.batch_size} must be divisible by the {world} processes")
    ckpt_dir = os.path.join(workdir, "checkpoints")
    sample_dir = os.path.join(workdir, "samples")

    # Data: the whole split in memory, one global batch per step, the same order on every rank;
    # with the class labels for a classifier or a class-conditional score model.
    dataset, labels, is_images = make_dataset(config, "train")
    use_labels = task == "classifier" or classes > 0
    if use_labels and labels is None:
        raise UsageError(f"data.dataset={config.data.dataset!r} has no class labels; a classifier or a "
                         "class-conditional model (model.num_classes > 0) needs labelled data")
    if use_labels and int(labels.max()) >= classes:
        raise UsageError(f"the data has labels up to {int(labels.max())}: set model.num_classes to at "
                         f"least {int(labels.max()) + 1} (got {classes})")
    batches = data_lib.InfiniteBatches((dataset, labels) if use_labels else dataset, tc.batch_size,
                                       generator=torch.Generator().manual_seed(config.seed))
    # Randomness of each step (flips, t, z), drawn for the global batch on every rank.
    noise_gen = torch.Generator(device=device).manual_seed(config.seed + 1)
    torch.manual_seed(config.seed + 2)

    # SDE, model, EMA, optimizer.
    sde = make_sde(config)
    model = make_model(config).to(device)
    ema = ExponentialMovingAverage(model.parameters(), decay=config.model.ema_rate)
    optimizer = make_optimizer(config, model.parameters())
    train_model = model
    if world > 1:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)

    # Resume from the latest checkpoint.
    step = 0
    latest = latest_checkpoint(ckpt_dir)
    if latest is not None:
        state = load_checkpoint(latest[1], map_location=device)
        try:
            model.load_state_dict(state["model"])
            ema.load_state_dict(state["ema"])
            optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, KeyError, ValueError) as exc:
            raise UsageError(
                f"checkpoint {latest[1]} does not match the config ({str(exc).splitlines()[0]}); "
                "train with the config it was made with, or use a new --workdir"
            ) from None
        batches.load_state_dict(state["data"])
        noise_gen.set_state(state["noise_rng"].cpu())
        _set_rng_state(state["rng"], device)
        step = int(state["step"])
        log(f"resuming from {latest[1]} (step {step})")
    if step >= tc.n_iters:
        log(f"training already done: step {step} >= training.n_iters = {tc.n_iters}; nothing to do")
        return 0
    if is_main:
        os.makedirs(workdir, exist_ok=True)
        with open(os.path.join(workdir, "config.json"), "w") as f:
            f.write(to_json(config))

    # The loss: continuous DSM (training.weighting: sigma2, g2, flow_matching) or the discrete DDPM / SMLD loss of
    # a score model; the cross entropy of a noise-conditional classifier.
    reduce = "mean" if tc.reduce_mean else "sum"
    local = slice(rank * (tc.batch_size // world), (rank + 1) * (tc.batch_size // world))
    if task == "classifier":
        log_prob_fn = get_log_prob_fn(train_model, sde, train=True)
    else:
        cond_score_fn = get_cond_score_fn(train_model, sde, train=True)

    def step_loss(x: Tensor, y: Optional[Tensor]) -> Tensor:
        B = x.shape[0]
        z = torch.randn(x.shape, generator=noise_gen, device=device, dtype=x.dtype)
        if task == "classifier":
            # Cross entropy -log p_t(y | x_t) at x_t ~ p_0t(x_t | x_0), t ~ U(eps, T) (App. I.1).
            t = tc.eps + (sde.T - tc.eps) * torch.rand(B, generator=noise_gen, device=device, dtype=x.dtype)
            return classifier_loss_terms(log_prob_fn, sde, x[local], y[local], t[local], z[local]).mean()
        if y is not None:
            # Class-conditional model: each label becomes the null label (num_classes) with
            # probability training.label_dropout, so one network learns s(x, t, y) and s(x, t).
            dropped = torch.rand(B, generator=noise_gen, device=device) < tc.label_dropout
            y = torch.where(dropped, torch.full_like(y, classes), y)[local]
        score_fn = lambda x_t, t: cond_score_fn(x_t, t, y)  # noqa: E731  (y=None: unconditional)
        if not tc.continuous:
            i = torch.randint(0, sde.N, (B,), generator=noise_gen, device=device)
            return discrete_dsm_loss_terms(score_fn, sde, x[local], i[local], z[local], reduce=reduce).mean()
        if tc.importance_sampling:
            t, w = importance_sample_time(sde, weighting, B, eps=tc.eps, generator=noise_gen,
                                          device=device, dtype=x.dtype)
            terms = dsm_loss_terms(score_fn, sde, x[local], t[local], z[local], reduce=reduce)
            return (w[local] * terms).mean()
        t = tc.eps + (sde.T - tc.eps) * torch.rand(B, generator=noise_gen, device=device, dtype=x.dtype)
        return dsm_loss_terms(score_fn, sde, x[local], t[local], z[local], weighting=weighting,
                              reduce=reduce).mean()

    def prepare(batch) -> Tuple[Tensor, Optional[Tensor]]:
        """Images in the model's range (randomly flipped) or toy points, and labels or None."""
        x, y = batch if use_labels else (batch, None)
        x = x.to(device)
        y = y.to(device) if y is not None else None
        if not is_images:
            return x.float(), y
        x = data_lib.to_model_range(x, centered=config.data.centered)
        return (data_lib.random_flip(x, generator=noise_gen) if config.data.random_flip else x), y

    def save(step: int) -> None:
        if not is_main:
            return
        save_checkpoint(checkpoint_path(ckpt_dir, step), {
            "step": step, "model": model.state_dict(), "ema": ema.state_dict(),
            "optimizer": optimizer.state_dict(), "data": batches.state_dict(),
            "noise_rng": noise_gen.get_state(), "rng": _rng_state(device), "config": to_json(config),
        })
        prune_checkpoints(ckpt_dir, tc.keep_last, tc.keep_every)

    def snapshot_samples(step: int) -> None:
        if not (is_main and tc.snapshot_sampling) or task == "classifier":
            return
        ema.store(model.parameters())
        ema.copy_to(model.parameters())
        try:
            n = config.sampling.n_samples
            shape = (n,) + data_shape(config)
            y = torch.arange(n, device=device) % classes if classes else None  # cycle the classes
            x, nfe = draw_samples(model, sde, config, shape, seed=config.seed, device=device, y=y)
            path = os.path.join(sample_dir, f"samples_{step}.png")
            save_samples(x.cpu(), is_images, config, path)
            log(f"step {step}: wrote {path} ({nfe} score evaluations)")
        finally:
            ema.restore(model.parameters())

    metrics_path = os.path.join(workdir, "metrics.csv")
    writer = _tensorboard(workdir) if is_main else None
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if (bf16 and device.type == "cuda") else nullcontext()
    bar = _progress(step, tc.n_iters, enabled=is_main and not quiet)
    model.train()
    start_time, start_step, running = time.perf_counter(), step, []
    with _StopFlag() as stop:
        while step < tc.n_iters:
            # One step of denoising score matching (or classifier training) on this rank's
            # slice of the global batch.
            x, y = prepare(next(batches))
            with autocast:
                loss = step_loss(x, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            # Learning-rate warm-up and gradient clipping (score_sde's optimization_manager).
            for group in optimizer.param_groups:
                group["lr"] = config.optim.lr * min((step + 1) / max(config.optim.warmup, 1), 1.0)
            if config.optim.grad_clip >= 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=config.optim.grad_clip)
            optimizer.step()
            ema.update(model.parameters())
            step += 1
            running.append(loss.detach())

            if step % tc.log_freq == 0 or step == tc.n_iters:
                mean_loss = torch.stack(running).float().mean()
                if world > 1:
                    torch.distributed.all_reduce(mean_loss)
                    mean_loss /= world
                mean_loss = mean_loss.item()
                running.clear()
                if not math.isfinite(mean_loss):
                    log(f"error: the loss became {mean_loss} at step {step}; stopping without saving. "
                        "The last good checkpoint is kept: lower optim.lr or raise optim.warmup and rerun")
                    return 3
                rate = (step - start_step) / (time.perf_counter() - start_time)
                bar.update(step, mean_loss, rate)
                if is_main:
                    _append_metrics(metrics_path, step, mean_loss, optimizer.param_groups[0]["lr"], rate)
                    if writer is not None:
                        writer.add_scalar("loss", mean_loss, step)
            if step % tc.snapshot_freq == 0 or step == tc.n_iters or stop.signal is not None:
                save(step)
                if stop.signal is None:
                    snapshot_samples(step)
            if stop.signal is not None:
                bar.close()
                log(f"stopped by signal {stop.signal} at step {step}; checkpoint saved. "
                    "Rerun the same command to resume")
                return 0
    bar.close()
    if writer is not None:
        writer.close()
    log(f"done: {step} steps; checkpoints in {ckpt_dir}, samples in {sample_dir}")
    return 0


def _append_metrics(path: str, step: int, loss: float, lr: float, rate: float) -> None:
    new = not os.path.exists(path)
    with open(path, "a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(["step", "loss", "lr", "steps_per_s", "time"])
        w.writerow([step, f"{loss:.6g}", f"{lr:.6g}", f"{rate:.4g}", f"{time.time():.3f}"])


def _tensorboard(workdir: str):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard is an optional extra
        return None
    return SummaryWriter(os.path.join(workdir, "tensorboard"))


class _progress:
    """A tqdm bar showing the step, the loss and steps/s (or nothing when disabled)."""

    def __init__(self, step: int, total: int, enabled: bool) -> None:
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=step, desc="training", dynamic_ncols=True)
        self.step = step

    def update(self, step: int, loss: float, rate: float) -> None:
        if self.bar is not None:
            self.bar.update(step - self.step)
            self.bar.set_postfix(loss=f"{loss:.4g}", steps_per_s=f"{rate:.2f}")
        self.step = step

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ---------------------------------------------------------------------------------------------
def parse_args(prog: str, description: str, argv, *, need_config: bool = True):
    """Shared argument parsing of the CLIs: ``--config``, ``--workdir``, overrides."""
    rest, overrides = split_overrides(argv)
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", required=need_config, help="config name (e.g. vp_digits) or path")
    parser.add_argument("--workdir", help="run directory (default: runs/<config name>)")
    parser.add_argument("--data-dir", help="dataset folder (sets data.root)")
    parser.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    return parser, rest, overrides


def cli(argv=None) -> int:
    """``python -m scoresde.train``; returns the exit status (2 for usage errors)."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        parser, rest, overrides = parse_args("python -m scoresde.train", __doc__.split("\n")[0], argv)
        parser.add_argument("--bf16", action="store_true", help="bf16 autocast on CUDA")
        args = parser.parse_args(rest)
        config = load_config(args.config)
        apply_overrides(config, overrides)
        if args.data_dir:
            config.data.root = args.data_dir
        name = os.path.splitext(os.path.basename(args.config))[0]
        workdir = args.workdir or os.path.join("runs", name)
        return main(config, workdir, device=args.device, bf16=args.bf16)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(cli())
