"""scoresde's samplers side by side with diffusers' schedulers and k-diffusion's samplers on one
score function (``python benchmarks/samplers.py --peers``; docs/benchmarks.md).

Every sampler solves the probability-flow ODE of the same SDE from the same ``x_T`` at ``T`` to
``t = eps`` and ends with Tweedie's estimate there (our ``denoise_step``; k-diffusion's and
diffusers' last step to ``sigma = 0`` is the same estimate). The error is the RMS distance to
a tight solution of the same ``x_T`` relative to the RMS of that solution about the data mean.
NFE are counted at the score function and never exceed the budget.

How the peers see a scoresde score function (their own code runs unchanged):

* **k-diffusion 0.1.1** works on ``x_k = x / alpha_t`` at the noise level ``sigma = sigma_t /
  alpha_t``; its denoiser is Tweedie's estimate ``D(x_k, sigma) = (x + sigma_t^2 score(x, t)) /
  alpha_t`` at ``x = alpha_t x_k`` and ``t = sde.t_from_log_snr(-log sigma)`` (exact for every
  SDE). Its grids run from ``sigma(T)`` to ``sigma(eps)`` and then to 0. Only
  ``k_diffusion.sampling`` is loaded (the package imports torchvision, CLIP and others).
* **diffusers 0.42.1** schedulers get a 1000-entry table ``alphas_cumprod[k] = alpha(t_k)^2``
  at ``t_k`` equally spaced from ``eps`` (k = 0) to ``T`` (k = 999), passed as
  ``trained_betas``, so their first timestep is ``T`` and their last ``eps``. The model is
  evaluated at the time of the noise level the scheduler itself uses at that call
  (``scheduler.sigmas[step_index]``; from the table at the integer timestep for the
  schedulers without ``sigmas``), which is exact even where diffusers would round a Karras
  noise level to an integer timestep (in the peer's favour). A scheduler that stops at
  ``eps`` (DEIS, PNDM) gets the same denoising step as ours, counted.

Install the peers with ``pip install diffusers==0.42.1 && pip install --no-deps
k-diffusion==0.1.1 torchdiffeq==0.2.5`` (k-diffusion's own requirements pull torchvision and
CLIP, which its sampling module does not use).
"""
from __future__ import annotations

import importlib
import importlib.util
import math
import sys
import time
import types
from typing import Callable, Dict, List, Optional, Tuple

import torch

from scoresde import VPSDE
from scoresde.sampling import denoise_step
from scoresde.sampling._common import CountingScore

Runner = Callable[["Problem", int], Tuple[torch.Tensor, int]]  # (samples, NFE used)


class Problem:
    """One sampling problem: an SDE, its score, ``x_T`` ``(B, *D)`` and the tight solution ``ref``."""

    def __init__(self, name: str, sde, score_fn, x_T: torch.Tensor, ref: torch.Tensor, mean=0.0,
                 eps: float = 1e-3):
        self.name, self.sde, self.score_fn, self.x_T, self.ref, self.eps = name, sde, score_fn, x_T, ref, eps
        self.scale = (ref - mean).pow(2).mean().sqrt().item()

    def error(self, x: torch.Tensor) -> float:
        """Relative RMS distance to the tight solution (inf if not finite)."""
        err = (x.to(self.ref.dtype) - self.ref).pow(2).mean().sqrt().item() / self.scale
        return err if math.isfinite(err) else float("inf")


# ----------------------------------------------------------------------------------------------
# k-diffusion
def load_k_diffusion_sampling():
    """``k_diffusion.sampling`` without the package's ``__init__`` (which imports torchvision,
    CLIP, kornia, ...); ``None`` if k-diffusion is not installed. Its ``utils`` module is
    imported with an empty stand-in for torchvision, which only its image helpers use."""
    if "k_diffusion.sampling" in sys.modules:
        return sys.modules["k_diffusion.sampling"]
    spec = importlib.util.find_spec("k_diffusion")
    if spec is None or spec.submodule_search_locations is None:
        return None
    package = types.ModuleType("k_diffusion")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules["k_diffusion"] = package
    stubs = [name for name in ("torchvision", "torchvision.transforms", "torchvision.transforms.functional")
             if name not in sys.modules]
    for name in stubs:
        sys.modules[name] = types.ModuleType(name)
    sys.modules["torchvision.transforms"].functional = sys.modules["torchvision.transforms.functional"]
    try:
        importlib.import_module("k_diffusion.utils")
    finally:
        for name in stubs:
            del sys.modules[name]
    return importlib.import_module("k_diffusion.sampling")


def k_denoiser(score_fn, sde):
    """k-diffusion's ``model(x_k, sigma)``: Tweedie's estimate through the change of variables."""
    def model(x_k, sigma, **kwargs):
        t = sde.t_from_log_snr(-sigma.to(torch.float64).log()).to(x_k.dtype)
        alpha, s = sde.marginal_coeffs(t)
        shape = (-1,) + (1,) * (x_k.ndim - 1)
        alpha, s = alpha.reshape(shape), s.reshape(shape)
        x = alpha * x_k
        return (x + s ** 2 * score_fn(x, t)) / alpha
    return model


#: k-diffusion samplers: (function name, extra keyword arguments, NFE per step before the last).
K_SAMPLERS = {
    "euler": ("sample_euler", {}, 1),
    "heun": ("sample_heun", {}, 2),
    "dpm_2": ("sample_dpm_2", {}, 2),
    "lms": ("sample_lms", {}, 1),
    "dpmpp_2s (eta 0)": ("sample_dpmpp_2s_ancestral", {"eta": 0.0}, 2),
    "dpmpp_sde (eta 0)": ("sample_dpmpp_sde", {"eta": 0.0}, 2),
    "dpmpp_2m": ("sample_dpmpp_2m", {}, 1),
    "dpmpp_2m_sde (eta 0)": ("sample_dpmpp_2m_sde", {"eta": 0.0}, 1),
    "dpmpp_3m_sde (eta 0)": ("sample_dpmpp_3m_sde", {"eta": 0.0}, 1),
}


def k_sigmas(K, schedule: str, n: int, sde, eps: float) -> torch.Tensor:
    """``n`` noise levels from ``sigma(T)`` to ``sigma(eps)`` and a final 0 (k-diffusion's grids)."""
    lam = sde.log_snr(torch.tensor([sde.T, eps], dtype=torch.float64))
    sigma_max, sigma_min = math.exp(-lam[0].item()), math.exp(-lam[1].item())
    if schedule == "karras":
        return K.get_sigmas_karras(n, sigma_min, sigma_max, rho=7.0).to(torch.float64)
    if schedule == "exponential":
        return K.get_sigmas_exponential(n, sigma_min, sigma_max).to(torch.float64)
    if schedule == "vp":
        beta_d = sde.beta_max - sde.beta_min
        return K.get_sigmas_vp(n, beta_d=beta_d, beta_min=sde.beta_min, eps_s=eps).to(torch.float64)
    raise ValueError(schedule)


def k_runner(K, sampler: str, schedule: str) -> Runner:
    fn_name, kwargs, per_step = K_SAMPLERS[sampler]

    def run(p: Problem, nfe: int) -> Tuple[torch.Tensor, int]:
        counted = CountingScore(p.score_fn)
        n = (nfe + 1) // 2 if per_step == 2 else nfe  # a two-stage step ending at 0 takes one NFE
        sigmas = k_sigmas(K, schedule, n, p.sde, p.eps).to(p.x_T.dtype)
        x = p.x_T / p.sde.marginal_coeffs(torch.tensor(p.sde.T, dtype=torch.float64))[0].item()
        x = getattr(K, fn_name)(k_denoiser(counted, p.sde), x, sigmas, disable=True, **kwargs)
        return x, counted.nfe
    return run


# ----------------------------------------------------------------------------------------------
# diffusers
def diffusers_table(sde, eps: float, N: int = 1000) -> List[float]:
    """``trained_betas`` whose ``alphas_cumprod[k]`` is ``alpha(t_k)^2`` at ``t_k = eps + (T -
    eps) k / (N - 1)``."""
    t = torch.linspace(eps, float(sde.T), N, dtype=torch.float64)
    abar = sde.marginal_coeffs(t)[0] ** 2
    prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
    return (1 - abar / prev).tolist()


#: diffusers schedulers: (class name, constructor arguments).
D_SCHEDULERS = {
    # DDIM steps to ``timestep - 1000 // n``, its next timestep only with "trailing" spacing
    # (to within one table entry).
    "DDIM": ("DDIMScheduler", dict(clip_sample=False, timestep_spacing="trailing")),
    "PNDM (PLMS)": ("PNDMScheduler", dict(skip_prk_steps=True, timestep_spacing="linspace")),
    "Euler": ("EulerDiscreteScheduler", {}),
    "Heun": ("HeunDiscreteScheduler", {}),
    "LMS": ("LMSDiscreteScheduler", {}),
    "DPM++ 2M": ("DPMSolverMultistepScheduler", dict(solver_order=2)),
    "DPM++ 3M": ("DPMSolverMultistepScheduler", dict(solver_order=3)),
    "DPM++ 2M Karras": ("DPMSolverMultistepScheduler", dict(solver_order=2, use_karras_sigmas=True)),
    "DPM++ 3M Karras": ("DPMSolverMultistepScheduler", dict(solver_order=3, use_karras_sigmas=True)),
    "DPM++ 2M lu": ("DPMSolverMultistepScheduler", dict(solver_order=2, use_lu_lambdas=True)),
    "DPM++ 2S": ("DPMSolverSinglestepScheduler", dict(solver_order=2)),
    "DPM++ 3S": ("DPMSolverSinglestepScheduler", dict(solver_order=3)),
    "UniPC-2 bh2": ("UniPCMultistepScheduler", dict(solver_order=2)),
    "UniPC-3 bh2": ("UniPCMultistepScheduler", dict(solver_order=3)),
    # NaN in diffusers 0.42.1 whatever the model output (its default final step to sigma = 0).
    "UniPC-3 bh1": ("UniPCMultistepScheduler", dict(solver_order=3, solver_type="bh1")),
    "UniPC-3 bh2 Karras": ("UniPCMultistepScheduler", dict(solver_order=3, use_karras_sigmas=True)),
    "DEIS-2": ("DEISMultistepScheduler", dict(solver_order=2)),
    "DEIS-3": ("DEISMultistepScheduler", dict(solver_order=3)),
}


def d_runner(diffusers, name: str) -> Runner:
    cls_name, kwargs = D_SCHEDULERS[name]
    cls = getattr(diffusers, cls_name)

    def run(p: Problem, nfe: int) -> Tuple[torch.Tensor, int]:
        sde = p.sde
        sched = cls(num_train_timesteps=1000, trained_betas=diffusers_table(sde, p.eps), **kwargs)
        abar = sched.alphas_cumprod.to(torch.float64)
        table_sigma = ((1 - abar) / abar).sqrt()
        ends_at_eps = "DEIS" in cls_name or "PNDM" in cls_name
        # The most inference steps whose evaluations (one per timestep) fit the budget.
        steps = 1
        for n in range(1, nfe + 1):
            sched.set_timesteps(n)
            if len(sched.timesteps) + ends_at_eps > nfe:
                break
            steps = n
        sched.set_timesteps(steps)
        counted = CountingScore(p.score_fn)

        def current_sigma(tau) -> float:
            if getattr(sched, "sigmas", None) is not None and hasattr(sched, "step_index"):
                return float(sched.sigmas[sched.step_index or 0])
            return float(table_sigma[int(tau)])

        x = p.x_T * sched.init_noise_sigma
        for tau in sched.timesteps:
            inp = sched.scale_model_input(x, tau)
            t = sde.t_from_log_snr(torch.tensor([-math.log(current_sigma(tau))], dtype=torch.float64))
            t = t.to(p.x_T.dtype).expand(x.shape[0])
            eps_pred = -sde.marginal_coeffs(t)[1].reshape((-1,) + (1,) * (x.ndim - 1)) * counted(inp, t)
            x = sched.step(eps_pred, tau, x).prev_sample
        if ends_at_eps:
            x = denoise_step(counted, sde, x, p.eps)
        return x, counted.nfe
    return run


# ----------------------------------------------------------------------------------------------
def peer_runners(sde) -> Tuple[Dict[str, Runner], List[str]]:
    """Every peer sampler that applies to ``sde``, by display name, and notes on what is missing."""
    runners: Dict[str, Runner] = {}
    notes = []
    K = load_k_diffusion_sampling()
    if K is None:
        notes.append("k-diffusion is not installed (pip install --no-deps k-diffusion==0.1.1 torchdiffeq==0.2.5)")
    else:
        schedules = ["karras", "exponential"] + (["vp"] if type(sde) is VPSDE else [])
        for s in K_SAMPLERS:
            for g in schedules:
                runners[f"k-diffusion {s}, {g}"] = k_runner(K, s, g)
    try:
        import diffusers
    except ImportError:
        diffusers = None
        notes.append("diffusers is not installed (pip install diffusers==0.42.1)")
    if diffusers is not None and isinstance(sde, VPSDE):  # their tables are VP tables
        for name in D_SCHEDULERS:
            runners[f"diffusers {name}"] = d_runner(diffusers, name)
    return runners, notes


def evaluate(runners: Dict[str, Runner], problem: Problem, budgets: List[int],
             log: Optional[Callable[[str], None]] = None) -> Dict[str, Dict[int, float]]:
    """``errors[name][nfe]`` of every runner at every budget (``inf`` if it fails or diverges)."""
    errors: Dict[str, Dict[int, float]] = {}
    for name, run in runners.items():
        row = {}
        for nfe in budgets:
            try:
                with torch.no_grad():
                    x, used = run(problem, nfe)
                assert used <= nfe, f"{name} used {used} NFE for a budget of {nfe}"
                row[nfe] = problem.error(x)
            except (RuntimeError, ValueError, IndexError, ZeroDivisionError) as err:
                if log:
                    log(f"  {name} at {nfe} NFE failed: {type(err).__name__}: {err}")
                row[nfe] = float("inf")
        errors[name] = row
        if log:
            log(f"  {name:40s} " + " ".join(f"{row[n]:.4g}" for n in budgets))
    return errors


# ----------------------------------------------------------------------------------------------
# Problems
def _gaussian_problem(name: str, data, batch: int, seed: int) -> Problem:
    """``data`` (a ``toy.Gaussian``) under the VP SDE, float64; the tight solution is the exact
    probability-flow map of ``x_T`` to ``eps`` and the same final step."""
    sde = VPSDE()
    score_fn = data.score_fn(sde)
    x_T = sde.prior_sampling((batch,) + tuple(data.event_shape), generator=torch.Generator().manual_seed(seed),
                             dtype=torch.float64)
    ones = torch.ones(batch, dtype=torch.float64)
    exact = data.flow(x_T, sde, ones * sde.T, ones * 1e-3)
    return Problem(name, sde, score_fn, x_T, denoise_step(score_fn, sde, exact, 1e-3),
                   data.mean.reshape(data.event_shape))


def gaussian_problem(batch: int = 100, seed: int = 0) -> Problem:
    """``N(m, 0.25 I)`` in 3072 dims (``toy.high_dim_gaussian``)."""
    from scoresde import toy

    return _gaussian_problem("3072-D Gaussian (VP)", toy.high_dim_gaussian(), batch, seed)


def spectrum_gaussian_problem(batch: int = 100, seed: int = 0) -> Problem:
    """3072 dims, variances geometric in ``[1e-4, 1]`` (``toy.spectrum_gaussian``)."""
    from scoresde import toy

    return _gaussian_problem("3072-D Gaussian, variances 1e-4..1 (VP)", toy.spectrum_gaussian(), batch, seed)


def ring_problem(batch: int = 500, seed: int = 0) -> Problem:
    """The 8-mode ring under the VP SDE, float64; tight solution: RK45 at rtol = atol = 1e-9."""
    from scoresde import toy
    from scoresde.sampling import rk45_sampler

    sde, data = VPSDE(), toy.ring()
    score_fn = data.score_fn(sde)
    x_T = sde.prior_sampling((batch, 2), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    ref, _ = rk45_sampler(score_fn, sde, x_T.shape, x_T=x_T, rtol=1e-9, atol=1e-9)
    return Problem("2-D ring (VP)", sde, score_fn, x_T, ref)


def network_problem(workdir: str, batch: int = 32, seed: int = 0, tol: float = 1e-6) -> Problem:
    """A trained run's EMA network (float32); tight solution: RK45 at rtol = atol = ``tol``."""
    from scoresde.models import get_score_fn
    from scoresde.run import data_shape, load_run
    from scoresde.sampling import rk45_sampler

    config, model, sde, step = load_run(workdir, device="cpu")
    score_fn = get_score_fn(model, sde)
    shape = (batch,) + tuple(data_shape(config))
    x_T = sde.prior_sampling(shape, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        ref, _ = rk45_sampler(score_fn, sde, shape, x_T=x_T, rtol=tol, atol=tol)
    return Problem(f"{config.data.dataset} network ({step} steps)", sde, score_fn, x_T, ref)


# ----------------------------------------------------------------------------------------------
# The comparison
BUDGETS = [5, 10, 20, 50]


def default_runner(p: Problem, nfe: int) -> Tuple[torch.Tensor, int]:
    """What a user gets: ``sample(score_fn, sde, shape, pc=False, steps=nfe - 1)``."""
    from scoresde.sampling import sample

    counted = CountingScore(p.score_fn)
    x = sample(counted, p.sde, tuple(p.x_T.shape), pc=False, steps=nfe - 1, x_T=p.x_T, eps=p.eps)
    return x, counted.nfe


def parse_setting(text: str) -> Tuple[str, Optional[float], Dict]:
    """``"unipc:order=2,variant=bh2,prediction=data,skip_type=logSNR,stop_noise=0.03"`` ->
    ``("unipc", 0.03, {"order": 2, ...})``: a sampler of ``SAMPLERS``, where to stop
    (``sigma / alpha``; None: at ``eps``) and its keyword arguments."""
    method, _, rest = text.partition(":")
    kwargs: Dict = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"setting {text!r}: {item!r} is not key=value")
        for convert in (int, float):
            try:
                kwargs[key] = convert(value)
                break
            except ValueError:
                pass
        else:
            kwargs[key] = value
    stop = kwargs.pop("stop_noise", None)
    return method, (None if stop in (None, "none", "eps") else float(stop)), kwargs


def setting_runner(text: str) -> Runner:
    """A runner of our sampler described by ``text`` (see :func:`parse_setting`): ``nfe - 1``
    steps and the denoising step, at ``stop_noise`` if given."""
    from scoresde.sampling import SAMPLERS, stop_time

    method, stop, kwargs = parse_setting(text)
    if method not in SAMPLERS:
        raise ValueError(f"setting {text!r}: unknown sampler {method!r}; valid: {', '.join(SAMPLERS)}")

    def run(p: Problem, nfe: int) -> Tuple[torch.Tensor, int]:
        counted = CountingScore(p.score_fn)
        eps = p.eps if stop is None else stop_time(p.sde, stop, p.eps)
        x, _ = SAMPLERS[method].fn(counted, p.sde, tuple(p.x_T.shape), steps=nfe - 1, x_T=p.x_T, eps=eps,
                                   **kwargs)
        return x, counted.nfe
    return run


def compare(problem: Problem, budgets: List[int] = BUDGETS, log=print) -> List[Dict]:
    """The default and every peer on ``problem``; one row per budget with the default's error,
    the best peer (name and error) and their ratio (> 1: the default is more accurate)."""
    runners, notes = peer_runners(problem.sde)
    for note in notes:
        log(f"  note: {note}")
    log(f"\n## {problem.name}: {problem.x_T.shape[0]} samples, relative RMS error at {budgets} NFE")
    errors = evaluate({"scoresde default": default_runner, **runners}, problem, budgets, log)
    rows = []
    for nfe in budgets:
        ours = errors["scoresde default"][nfe]
        peer_err, peer = min((row[nfe], name) for name, row in errors.items() if name != "scoresde default") \
            if runners else (float("nan"), "(no peer installed)")
        rows.append({"problem": problem.name, "NFE": nfe, "scoresde default": ours, "best peer": peer,
                     "best peer error": peer_err, "peer / default": peer_err / ours if ours > 0 else float("inf")})
    return rows


def overhead(nfes: Tuple[int, ...] = (5, 10, 20, 50), repeats: int = 20, dim: int = 3072) -> List[Dict]:
    """Time per NFE outside the score function at batch 1 (``(1, dim)``, float32, the exact
    score of a standard normal): our default against k-diffusion's ``dpmpp_2m`` on its Karras
    grid, whose denoiser call (our change of variables included) counts as score time. The
    grid is built in every call, as a user's call does. Best of ``repeats``, alternating."""
    sde = VPSDE()
    x_T = torch.randn(1, dim)
    spent = [0.0]

    def timed(fn):
        def call(*args):
            start = time.perf_counter()
            out = fn(*args)
            spent[0] += time.perf_counter() - start
            return out
        return call

    score_fn = timed(lambda x, t: -x)
    p = Problem("overhead", sde, score_fn, x_T, x_T)
    runners = {"scoresde default": default_runner}
    K = load_k_diffusion_sampling()
    if K is not None:
        model = timed(k_denoiser(lambda x, t: -x, sde))
        alpha_T = sde.marginal_coeffs(torch.tensor(float(sde.T)))[0].item()

        def k_dpmpp_2m(p: Problem, n: int) -> Tuple[torch.Tensor, int]:
            sigmas = k_sigmas(K, "karras", n, sde, p.eps).to(x_T.dtype)
            return K.sample_dpmpp_2m(model, x_T / alpha_T, sigmas, disable=True), n
        runners["k-diffusion dpmpp_2m, karras"] = k_dpmpp_2m
    rows = []
    for nfe in nfes:
        for run in runners.values():
            for _ in range(3):  # warm-up
                run(p, nfe)
        best = {name: float("inf") for name in runners}
        for _ in range(repeats):  # the samplers alternate, so load changes reach all of them
            for name, run in runners.items():
                spent[0] = 0.0
                start = time.perf_counter()
                run(p, nfe)
                best[name] = min(best[name], (time.perf_counter() - start - spent[0]) / nfe)
        rows += [{"sampler": name, "NFE": nfe, "overhead per NFE (ms)": 1e3 * b} for name, b in best.items()]
    return rows
