"""Train a score model: ``python -m scoresde.train --config NAME [--workdir DIR] [--config.KEY=VALUE]``.

:func:`main` reads top to bottom: processes and device, the run's objects (built and checked by
:func:`scoresde.run.build` before step 1), resume, then steps of denoising score matching
(Song et al. 2021, Eq. 7; :func:`scoresde.run.make_objective`) with Adam, warm-up, gradient
clipping and EMA, writing into the workdir:

    workdir/config.json                  the resolved config
    workdir/config_changes.jsonl         keys changed on resume, with the step
    workdir/checkpoints/checkpoint_N.pt  state dicts + JSON (loads with weights_only=True)
    workdir/samples/samples_N.png        sample grid (EMA weights, the config's sampler)
    workdir/metrics.csv                  step, loss, learning rate, steps/s

With ``training.objective="classifier"`` the same loop trains a noise-conditional classifier
for classifier guidance; with ``model.num_classes > 0`` a class-conditional score model
(classifier-free guidance). See ``docs/guidance.md``.

Rerunning with the same workdir resumes from the latest checkpoint and continues exactly as an
uninterrupted run would (data order, noise, RNG states and the losses of the current log window
are saved). SIGINT / SIGTERM stop within seconds, also during snapshot sampling: the last
completed step is saved and the exit status is 0; a second SIGINT aborts at once. Under
``torchrun`` each process takes a slice of every global batch (DDP), and all processes agree on
the step to stop at. A checkpoint is written only when every weight is finite; a non-finite
loss or weight stops the run with exit status 3, keeping the last good checkpoint.
"""
from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import signal
import sys
import time
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import ml_collections
import torch

from . import data as data_lib
from . import precision
from .checkpointing import (
    checkpoint_path,
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    remove_stale_temporaries,
    save_checkpoint,
)
from .config import UsageError, to_json
from .run import (  # noqa: F401  (the factories, also importable from here as before)
    OBJECTIVES,
    RESUMABLE,
    Run,
    all_finite,
    build,
    config_changes,
    data_shape,
    draw_samples,
    load_run,
    make_dataset,
    make_model,
    make_objective,
    make_optimizer,
    make_sampler,
    make_sde,
    num_classes,
    objective,
    read_config,
    resolve_device,
    sample_kwargs,
    save_samples,
)
from .types import Tensor

__all__ = ["main", "cli", "load_run", "make_sde", "make_model", "make_optimizer", "make_dataset",
           "make_sampler", "data_shape", "draw_samples", "sample_kwargs", "num_classes", "objective",
           "OBJECTIVES", "save_samples", "STOP_SYNC_EVERY"]

#: Under DDP the processes agree every this many steps whether a signal asked them to stop.
STOP_SYNC_EVERY = 10


def main(config: ml_collections.ConfigDict, workdir: str, *, device: Optional[str] = None,
         bf16: bool = False, quiet: bool = False) -> int:
    """Train (or resume training) the model described by ``config`` in ``workdir``.

    Returns 0 when training reached ``n_iters`` or was stopped by a signal after saving, 3 when
    the loss or the weights became non-finite (nothing non-finite is saved). Raises
    :class:`UsageError` for a bad config, workdir, data or checkpoint, before writing anything.
    """
    with _process_group(device) as (rank, world, dev):
        return _train(config, workdir, rank, world, dev, bf16, quiet)


def _train(config: ml_collections.ConfigDict, workdir: str, rank: int, world: int, device: torch.device,
           bf16: bool, quiet: bool) -> int:
    is_main = rank == 0
    log = (lambda *a: print(*a, flush=True)) if (is_main and not quiet) else (lambda *a: None)
    tc = config.training
    ckpt_dir = os.path.join(workdir, "checkpoints")
    _check_workdir(workdir)
    latest = latest_checkpoint(ckpt_dir)
    changes = _check_resume_config(workdir, config, latest)
    if bf16 and precision.bf16_unsupported(device):
        raise UsageError(f"--bf16: {precision.bf16_unsupported(device)}; run without --bf16")

    # The run's objects, all checked before step 1; one global batch per step, the same order
    # on every rank; the randomness of each step (flips, t, z) drawn for the global batch.
    torch.manual_seed(config.seed + 2)  # the network's initialization
    run = build(config, device, world)
    data, labels = run.data.to(device), (run.labels.to(device) if run.labels is not None else None)
    batches = data_lib.InfiniteBatches((data, labels) if labels is not None else data,
                                       tc.batch_size, generator=torch.Generator().manual_seed(config.seed))
    noise_gen = torch.Generator(device=device).manual_seed(config.seed + 1)
    model, ema, optimizer = run.model, run.ema, run.optimizer
    # The fast path (scoresde.precision): channels_last and fused Adam (from build), the data on
    # the device (above), optionally a compiled network.
    train_model = precision.compile_model(model) if tc.get("compile", False) else model
    if world > 1:  # DDP gets a group of its own (see _process_group)
        train_model = torch.nn.parallel.DistributedDataParallel(
            train_model, device_ids=[device.index] if device.type == "cuda" else None,
            process_group=torch.distributed.new_group())
    step_loss = make_objective(config, run.sde, train_model, rank=rank, world=world)

    step, window = 0, []
    if latest is not None:
        step, window = _resume(latest[1], run, batches, noise_gen, device)
        log(f"resuming from {latest[1]} (step {step})")
    if step >= tc.n_iters:
        log(f"training already done: step {step} >= training.n_iters = {tc.n_iters}; nothing to do")
        return 0
    if is_main:
        _prepare_workdir(workdir, config, step, changes)

    def save(step: int) -> bool:
        """Write a checkpoint if every weight is finite (the same answer on every rank)."""
        if not all_finite(list(model.parameters()) + list(ema.shadow_params)):
            return False
        saved_window = _reduce_window(window, world)
        if is_main:
            save_checkpoint(checkpoint_path(ckpt_dir, step), {
                "step": step, "model": model.state_dict(), "ema": ema.state_dict(),
                "optimizer": optimizer.state_dict(), "data": batches.state_dict(),
                "noise_rng": noise_gen.get_state(), "rng": _rng_state(device), "config": to_json(config),
                "log_window": saved_window,
            })
            prune_checkpoints(ckpt_dir, tc.keep_last, tc.keep_every)
        return True

    metrics = _Metrics(workdir, enabled=is_main, quiet=quiet, step=step, total=tc.n_iters)
    autocast = precision.autocast(device, bf16)  # the network in bf16; loss, Adam and EMA in float32
    model.train()
    with _StopFlag() as stop:
        while step < tc.n_iters:
            x, y = _prepare(next(batches), config, run.is_images, device, noise_gen)
            # Free the last step's gradients before the forward pass, so that they do not sit
            # beside its activations (about 0.3 GiB less at the peak for DDPM++ at batch 8).
            optimizer.zero_grad(set_to_none=True)
            with autocast:
                loss = step_loss(x, y, noise_gen)
            loss.backward()
            # Learning-rate warm-up and gradient clipping (score_sde's optimization_manager).
            for group in optimizer.param_groups:
                group["lr"] = config.optim.lr * min((step + 1) / max(config.optim.warmup, 1), 1.0)
            if config.optim.grad_clip >= 0:
                precision.clip_grad_norm_(model.parameters(), max_norm=config.optim.grad_clip)
            optimizer.step()
            ema.update(model.parameters())
            step += 1
            window.append(loss.detach())

            if step % tc.log_freq == 0 or step == tc.n_iters:
                mean_loss = _reduce_window(window, world).mean().item()
                window.clear()
                if not math.isfinite(mean_loss):
                    return _diverged(log, metrics, ckpt_dir, f"the loss became {mean_loss} at step {step}")
                metrics.write(step, mean_loss, optimizer.param_groups[0]["lr"])
            stopping = _agreed_stop(stop, step, world, device)
            if step % tc.snapshot_freq == 0 or step == tc.n_iters or stopping:
                if not save(step):
                    return _diverged(log, metrics, ckpt_dir, f"the weights became non-finite by step {step}")
                if not stopping and is_main and run.sampler is not None and tc.snapshot_sampling:
                    _snapshot(run, config, workdir, step, device, stop, log)
            if stopping:
                metrics.close()
                if not quiet:
                    print(f"{f'rank {rank}: ' if world > 1 else ''}stopped by signal {stop.signal} at step "
                          f"{step}; checkpoint saved. Rerun the same command to resume", flush=True)
                return 0
    metrics.close()
    log(f"done: {step} steps; checkpoints in {ckpt_dir}, samples in {os.path.join(workdir, 'samples')}")
    return 0


# ---------------------------------------------------------------------------------------------
# The steps of main, in the order it takes them.
@contextlib.contextmanager
def _process_group(device: Optional[str]) -> Iterator[Tuple[int, int, torch.device]]:
    """Rank, world size and device. Under torchrun, starts the process group and destroys it on
    the way out, which joins its worker threads.

    A gloo worker thread drops its reference to a finished collective after the caller has
    returned from it; when that collective holds tensors made in Python, dropping them takes the
    GIL, and a thread that asks for the GIL while the interpreter shuts down aborts the process
    ("terminate called without an active exception"; seen in CI on a rank that had finished).
    The group of our own collectives (losses, the stop flag) is therefore destroyed before
    :func:`main` returns. DDP runs on a second group: its reducer keeps that group alive past
    ``destroy_process_group``, but it only reduces buckets made in C++.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    dev = resolve_device(device)
    if dev.type == "cuda" and world > 1:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(dev)
    started = world > 1 and not torch.distributed.is_initialized()
    if started:
        torch.distributed.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    try:
        yield rank, world, dev
    finally:
        if started:
            torch.distributed.destroy_process_group()


def _check_workdir(workdir: str) -> None:
    """A workdir that can be written: an existing folder, or a new one under a writable folder."""
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise UsageError(f"--workdir {workdir} is a file, not a folder: choose another --workdir")
    existing = os.path.abspath(workdir)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"--workdir {workdir}: {existing} is not a writable folder; choose another --workdir")


def _check_resume_config(workdir: str, config: ml_collections.ConfigDict,
                         latest: Optional[Tuple[int, str]]) -> Dict[str, List]:
    """The resumable keys changed since the run's last start; a :class:`UsageError` listing
    the others when any of them changed (see :data:`scoresde.run.RESUMABLE`)."""
    if latest is None:
        return {}
    if os.path.exists(os.path.join(workdir, "config.json")):
        saved = read_config(workdir).to_dict()
    else:
        saved = json.loads(load_checkpoint(latest[1], map_location="cpu").get("config", "{}"))
    allowed, refused = config_changes(saved, config)
    if refused:
        raise UsageError(f"cannot resume {workdir} with changed {', '.join(refused)} (only "
                         f"{', '.join(RESUMABLE)} may change): "
                         "drop those overrides, or use a new --workdir")
    return allowed


def _resume(path: str, run: Run, batches, noise_gen: torch.Generator,
            device: torch.device) -> Tuple[int, List[Tensor]]:
    """Load a checkpoint into the run; returns its step and the losses of its open log window."""
    state = load_checkpoint(path, map_location=device)
    try:
        step = state["step"]
        if not isinstance(step, int) or step < 0:
            raise ValueError(f"its step {step!r} is not a count of steps")
        run.model.load_state_dict(state["model"])
        run.ema.load_state_dict(state["ema"])
        run.optimizer.load_state_dict(state["optimizer"])
        batches.load_state_dict(state["data"])
        noise_gen.set_state(state["noise_rng"].cpu())
        _set_rng_state(state["rng"], device)
    except (RuntimeError, KeyError, ValueError, TypeError, AttributeError) as exc:
        raise UsageError(f"checkpoint {path} is incomplete or does not match the config "
                         f"({type(exc).__name__}: {str(exc).splitlines()[0]}); train with the config it was "
                         "made with, move it out of the checkpoints folder, or use a new --workdir") from None
    if not all_finite(list(run.model.parameters()) + list(run.ema.shadow_params)):
        raise UsageError(f"checkpoint {path} has non-finite weights: move it out of the checkpoints "
                         "folder to resume from the one before it")
    return step, list(state.get("log_window", torch.zeros(0)).to(device))


def _prepare_workdir(workdir: str, config: ml_collections.ConfigDict, step: int, changes: Dict) -> None:
    """Remove stale temporaries and metrics rows past ``step``; record config changes."""
    remove_stale_temporaries(os.path.join(workdir, "checkpoints"))
    os.makedirs(workdir, exist_ok=True)
    metrics_path = os.path.join(workdir, "metrics.csv")
    if os.path.exists(metrics_path):
        with open(metrics_path, newline="") as f:
            rows = [r for r in csv.reader(f)]
        kept = rows[:1] + [r for r in rows[1:] if r and int(r[0]) <= step]
        if len(kept) < len(rows):
            with open(metrics_path, "w", newline="") as f:
                csv.writer(f).writerows(kept)
    if changes:
        with open(os.path.join(workdir, "config_changes.jsonl"), "a") as f:
            f.write(json.dumps({"step": step, "time": round(time.time(), 3), "changes": changes}) + "\n")
    with open(os.path.join(workdir, "config.json"), "w") as f:
        f.write(to_json(config))


def _prepare(batch, config: ml_collections.ConfigDict, is_images: bool, device: torch.device,
             generator: torch.Generator) -> Tuple[Tensor, Optional[Tensor]]:
    """Images in the model's range (randomly flipped) or toy points, and labels or None."""
    x, y = batch if isinstance(batch, tuple) else (batch, None)
    x, y = x.to(device), (y.to(device) if y is not None else None)
    if not is_images:
        return x.float(), y
    x = data_lib.to_model_range(x, centered=config.data.centered)
    return (data_lib.random_flip(x, generator=generator) if config.data.random_flip else x), y


def _reduce_window(window: List[Tensor], world: int) -> Tensor:
    """The window's losses ``(n,)`` averaged over the processes (on the host)."""
    losses = torch.stack(window).float() if window else torch.zeros(0)
    if world > 1 and window:
        torch.distributed.all_reduce(losses)
        losses /= world
    return losses.cpu()


def _agreed_stop(stop: "_StopFlag", step: int, world: int, device: torch.device) -> bool:
    """Whether to stop after ``step``: the signal flag, agreed by all processes under DDP
    (every :data:`STOP_SYNC_EVERY` steps)."""
    if world == 1:
        return stop.signal is not None
    if step % STOP_SYNC_EVERY:
        return False
    flag = torch.tensor([0 if stop.signal is None else stop.signal], device=device)
    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
    if flag.item() and stop.signal is None:
        stop.signal = int(flag.item())
    return bool(flag.item())


def _snapshot(run: Run, config, workdir: str, step: int, device, stop: "_StopFlag", log) -> None:
    """A sample grid with the EMA weights; a signal stops it at the next score evaluation."""
    run.ema.store(run.model.parameters())
    run.ema.copy_to(run.model.parameters())
    try:
        n, classes = config.sampling.n_samples, num_classes(config)
        y = torch.arange(n, device=device) % classes if classes else None  # cycle the classes
        x, nfe = draw_samples(run.model, run.sde, config, (n,) + run.shape, seed=config.seed, device=device,
                              y=y, wrap=stop.guard)
        path = os.path.join(workdir, "samples", f"samples_{step}.png")
        save_samples(x.cpu(), run.is_images, config, path)
        log(f"step {step}: wrote {path} ({nfe} score evaluations)")
    except _Stopped:
        log(f"step {step}: sample grid abandoned (signal {stop.signal})")
    finally:
        run.ema.restore(run.model.parameters())


def _diverged(log: Callable, metrics: "_Metrics", ckpt_dir: str, what: str) -> int:
    metrics.close()
    latest = latest_checkpoint(ckpt_dir)
    kept = f"the last checkpoint, {latest[1]}, is finite" if latest else "no checkpoint was written"
    log(f"error: {what}; stopping without saving it ({kept}): lower optim.lr or raise optim.warmup and rerun")
    return 3


# ---------------------------------------------------------------------------------------------
def _rng_state(device: torch.device) -> Dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: Dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)


class _Stopped(Exception):
    """Raised inside snapshot sampling when a signal asked the run to stop."""


class _StopFlag:
    """Set by SIGINT / SIGTERM; the loop saves a checkpoint and returns. A second SIGINT raises
    KeyboardInterrupt (abort without saving)."""

    def __init__(self) -> None:
        self.signal: Optional[int] = None
        self._old: Dict = {}

    def __enter__(self) -> "_StopFlag":
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if signum == signal.SIGINT and self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signum

    def guard(self, score_fn: Callable) -> Callable:
        """``score_fn`` that raises :class:`_Stopped` once a signal arrived."""
        def guarded(x: Tensor, t: Tensor) -> Tensor:
            if self.signal is not None:
                raise _Stopped
            return score_fn(x, t)
        return guarded

    def __exit__(self, *exc) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


class _Metrics:
    """``metrics.csv`` rows, TensorBoard scalars and a tqdm bar (rank 0 only)."""

    def __init__(self, workdir: str, *, enabled: bool, quiet: bool, step: int, total: int) -> None:
        self.path, self.enabled, self.step = os.path.join(workdir, "metrics.csv"), enabled, step
        self.start_time, self.start_step = time.perf_counter(), step
        self.writer = _tensorboard(workdir) if enabled else None
        self.bar = None
        if enabled and not quiet:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=step, desc="training", dynamic_ncols=True)

    def write(self, step: int, loss: float, lr: float) -> None:
        rate = (step - self.start_step) / max(time.perf_counter() - self.start_time, 1e-9)
        if self.bar is not None:
            self.bar.update(step - self.step)
            self.bar.set_postfix(loss=f"{loss:.4g}", steps_per_s=f"{rate:.2f}")
        self.step = step
        if not self.enabled:
            return
        new = not os.path.exists(self.path)
        with open(self.path, "a", newline="") as f:
            w = csv.writer(f)
            if new:
                w.writerow(["step", "loss", "lr", "steps_per_s", "time"])
            w.writerow([step, f"{loss:.6g}", f"{lr:.6g}", f"{rate:.4g}", f"{time.time():.3f}"])
        if self.writer is not None:
            self.writer.add_scalar("loss", loss, step)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()


def _tensorboard(workdir: str):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard is an optional extra
        return None
    return SummaryWriter(os.path.join(workdir, "tensorboard"))


def cli(argv=None) -> int:
    """``python -m scoresde.train`` (:func:`scoresde.cli.train.cli`); returns the exit status."""
    from .cli.train import cli as train_cli

    return train_cli(argv)


if __name__ == "__main__":
    sys.exit(cli())
