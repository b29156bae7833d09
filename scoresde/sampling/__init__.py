"""Samplers: predictor-corrector, probability-flow ODE, DDIM, torchsde and the fast samplers
(DPM-Solver, DPM-Solver++, UniPC, EDM, adaptive SDE), behind one :func:`sample` (Song et al. 2021,
Sec. 4).

Every lower-level sampler is a function ``sampler(score_fn, sde, shape, *, ..., generator)``
returning ``(samples, nfe)``; :func:`sample` picks one by name and returns the samples.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

import torch

from ..sde import SDE
from ..types import ScoreFn, Shape, Tensor
from ..utils import check_choice
from ._common import StepCallback
from .adaptive_sde import adaptive_sde_sampler
from .default import BUDGET_DEFAULTS, budget_default, stop_time
from .deis import deis_sampler, ipndm_sampler
from .dpm_solver import dpm_solver_pp_sampler, dpm_solver_sampler
from .edm import edm_heun_sampler
from .grids import (
    SKIP_TYPES,
    edm_rho_grid,
    edm_sigmas,
    log_snr,
    log_snr_grid,
    log_snr_quadratic_grid,
    step_pairs,
    time_from_log_snr,
    time_quadratic_grid,
    uniform_grid,
    vp_quadratic_grid,
)
from .ode import (
    ddim_sampler,
    decode,
    denoise_step,
    encode,
    euler_sampler,
    heun_sampler,
    probability_flow_drift,
    rk45_sampler,
    scipy_rk45_sampler,
)
from .optimize import SCHEDULE_METHODS, optimize_schedule
from .pc import (
    CORRECTORS,
    PREDICTORS,
    ancestral_predictor,
    annealed_langevin_corrector,
    euler_maruyama_predictor,
    langevin_corrector,
    pc_sampler,
    reverse_diffusion_predictor,
)
from .sdeint import SDEINT_METHODS, brownian_interval, sdeint_sampler
from .unipc import unipc_sampler

__all__ = [
    "sample",
    "SAMPLERS",
    "SamplerSpec",
    "StepCallback",
    "BUDGET_DEFAULTS",
    "budget_default",
    "pc_sampler",
    "rk45_sampler",
    "scipy_rk45_sampler",
    "euler_sampler",
    "heun_sampler",
    "ddim_sampler",
    "dpm_solver_sampler",
    "dpm_solver_pp_sampler",
    "edm_heun_sampler",
    "unipc_sampler",
    "ipndm_sampler",
    "deis_sampler",
    "adaptive_sde_sampler",
    "sdeint_sampler",
    "brownian_interval",
    "denoise_step",
    "encode",
    "decode",
    "probability_flow_drift",
    "PREDICTORS",
    "CORRECTORS",
    "ODE_METHODS",
    "SDEINT_METHODS",
    "SKIP_TYPES",
    "uniform_grid",
    "step_pairs",
    "log_snr",
    "time_from_log_snr",
    "log_snr_grid",
    "time_quadratic_grid",
    "edm_sigmas",
    "edm_rho_grid",
    "vp_quadratic_grid",
    "log_snr_quadratic_grid",
    "optimize_schedule",
    "SCHEDULE_METHODS",
    "euler_maruyama_predictor",
    "reverse_diffusion_predictor",
    "ancestral_predictor",
    "langevin_corrector",
    "annealed_langevin_corrector",
]

@dataclass(frozen=True)
class SamplerSpec:
    """What a sampler of :data:`SAMPLERS` accepts.

    Attributes:
        fn: the sampler, ``fn(score_fn, sde, shape, **kwargs) -> (x, nfe)``.
        steps: what its ``steps`` counts: ``"steps"`` (time steps), ``"nfe"`` (a budget of
            score evaluations before the final denoising one) or ``None`` (adaptive: it takes
            ``rtol`` / ``atol`` instead).
        constraint: it takes the ``constraint(x, t)`` hook of :func:`scoresde.inpaint`.
        stochastic: it draws noise after ``x_T`` (a reverse-SDE sampler).
        ode: a solver of the probability-flow ODE (``sample(pc=False, method=name)``).
    """

    fn: Callable[..., Tuple[Tensor, int]]
    steps: Optional[str] = "steps"
    constraint: bool = False
    stochastic: bool = False
    ode: bool = True


#: Every sampler by name, with its capabilities. ``"pc"``, ``"torchsde"`` and ``"adaptive"``
#: sample the reverse SDE (``sample(pc=True, predictor=...)``); the others solve the
#: probability-flow ODE (``sample(pc=False, method=...)``). Every fixed-step sampler also takes
#: ``timesteps=`` and every sampler ``callback=``.
SAMPLERS: Dict[str, SamplerSpec] = {
    "pc": SamplerSpec(pc_sampler, constraint=True, stochastic=True, ode=False),
    "torchsde": SamplerSpec(sdeint_sampler, stochastic=True, ode=False),
    "adaptive": SamplerSpec(adaptive_sde_sampler, steps=None, stochastic=True, ode=False),
    "rk45": SamplerSpec(rk45_sampler, steps=None),
    "scipy_rk45": SamplerSpec(scipy_rk45_sampler, steps=None),
    "euler": SamplerSpec(euler_sampler, constraint=True),
    "heun": SamplerSpec(heun_sampler, constraint=True),
    "ddim": SamplerSpec(ddim_sampler, constraint=True),
    "dpm_solver": SamplerSpec(dpm_solver_sampler, steps="nfe"),
    "dpm_solver++": SamplerSpec(dpm_solver_pp_sampler, steps="nfe"),
    "edm_heun": SamplerSpec(edm_heun_sampler),
    "unipc": SamplerSpec(unipc_sampler, steps="nfe"),
    "ipndm": SamplerSpec(ipndm_sampler, steps="nfe"),
    "deis": SamplerSpec(deis_sampler, steps="nfe"),
}

#: Probability-flow ODE solvers by name (``"edm_heun"`` with ``S_churn > 0`` is stochastic,
#: but listed here too).
ODE_METHODS = {name: spec.fn for name, spec in SAMPLERS.items() if spec.ode}


def sample(
    score_fn: ScoreFn,
    sde: SDE,
    shape: Shape,
    *,
    pc: bool = True,
    predictor: Optional[str] = "euler_maruyama",
    corrector: Optional[str] = "langevin",
    snr: float = 0.16,
    n_corrector_steps: int = 1,
    steps: Optional[int] = None,
    eps: float = 1e-3,
    denoise: bool = True,
    method: Optional[str] = None,
    rtol: Optional[float] = None,
    atol: Optional[float] = None,
    x_T: Optional[Tensor] = None,
    generator: Optional[torch.Generator] = None,
    device=None,
    dtype: Optional[torch.dtype] = None,
    progress: bool = False,
    **sampler_kwargs,
) -> Tensor:
    """Draw samples ``(B, *D)`` from the model defined by ``score_fn`` and ``sde``.

    Args:
        score_fn: ``score_fn(x, t)`` approximating ``grad log p_t`` (see
            :func:`scoresde.get_score_fn` for networks, :mod:`scoresde.toy` for exact scores).
        sde: the forward SDE (:class:`~scoresde.VPSDE`, :class:`~scoresde.SubVPSDE`,
            :class:`~scoresde.VESDE`).
        shape: ``(B, *D)``.
        pc: predictor-corrector sampling of the reverse SDE (``True``) or a deterministic solver
            of the probability-flow ODE (``False``).
        predictor: ``"euler_maruyama"``, ``"reverse_diffusion"``, ``"ancestral"``, ``None``,
            or ``"torchsde"`` (the reverse SDE solved by torchsde; give ``sde_method`` among
            ``euler``, ``milstein``, ``srk``, ``heun``, ``midpoint``, ``reversible_heun``,
            ``adaptive``, ``bm``; requires ``corrector=None``), or ``"adaptive"`` (the
            adaptive reverse-SDE solver of Jolicoeur-Martineau et al. 2021,
            :func:`adaptive_sde_sampler`, with ``rtol`` / ``atol``; requires
            ``corrector=None`` and no ``steps``).
        corrector: ``"langevin"``, ``"annealed_langevin"``, ``None``.
        snr: corrector signal-to-noise ratio.
        n_corrector_steps: corrector iterations per time step.
        steps: number of time steps (default ``sde.N``) for the PC and fixed-step ODE samplers;
            the NFE budget for ``"dpm_solver"`` / ``"dpm_solver++"`` / ``"unipc"`` (default 20) and the
            number of Heun steps for ``"edm_heun"`` (default 17) (see :data:`SAMPLERS`).
        eps: smallest time; sampling runs from ``T`` to ``eps``, then one noise-free step to 0.
        denoise: end with one noise-free step (the mean of the last update).
        method: ODE solver when ``pc=False``, a key of :data:`ODE_METHODS`: ``"rk45"``
            (on-device adaptive Dormand-Prince), ``"scipy_rk45"`` (reference, on the host),
            ``"euler"``, ``"heun"``, ``"ddim"``, ``"dpm_solver"`` (``order``, ``multistep``,
            ``skip_type``), ``"dpm_solver++"`` (2M), ``"unipc"`` (``order``, ``variant``,
            ``prediction``, ``skip_type``) or ``"edm_heun"`` (``rho``, ``S_churn``, ``S_min``,
            ``S_max``, ``S_noise``; stochastic when ``S_churn > 0``). ``None`` (default):
            ``"rk45"`` when ``steps`` is ``None``, else the fixed-budget default
            :data:`BUDGET_DEFAULTS` for ``steps`` score evaluations (plus the denoising one).
        rtol, atol: tolerances of the adaptive solvers (``None``: 1e-5 each for ``"rk45"`` and
            ``"scipy_rk45"``, the paper's 0.05 and 0.0078 for ``predictor="adaptive"``).
        x_T: start from this prior sample (e.g. a latent to decode) instead of drawing one.
        generator: random number generator; fixes the result on a given device.
        device, dtype: of the samples (default: from ``x_T`` or the generator; float32).
        progress: show a tqdm progress bar with the current ``t`` and the NFE.
        **sampler_kwargs: passed to the selected sampler (e.g. ``eta`` and ``discrete`` for
            ``"ddim"``, ``order`` for ``"dpm_solver"``, ``timesteps``, ``callback``,
            ``constraint`` where :data:`SAMPLERS` says so).
    Returns:
        samples ``(B, *D)``. The lower-level samplers (:func:`pc_sampler`, ...) also return
        the exact number of score evaluations.
    Raises:
        ValueError: for an unknown predictor, corrector or method (listing the valid names) or
            an invalid argument.
    """
    kwargs = dict(eps=eps, denoise=denoise, x_T=x_T, generator=generator, device=device,
                  dtype=dtype, progress=progress)
    if pc:
        check_choice("predictor", predictor, list(PREDICTORS) + ["torchsde", "adaptive"])
        name = predictor if predictor in ("torchsde", "adaptive") else "pc"
        if name == "pc":
            kwargs.update(predictor=predictor, corrector=corrector, snr=snr, n_corrector_steps=n_corrector_steps)
        elif corrector is not None:
            raise ValueError(f"predictor={predictor!r} integrates the reverse SDE without a "
                             "corrector: pass corrector=None")
        if name == "torchsde":
            kwargs["method"] = sampler_kwargs.pop("sde_method", "srk")
    elif method is None and steps is not None:
        name, budget_kwargs = budget_default(steps)
        if "stop_noise" in budget_kwargs:
            budget_kwargs["eps"] = stop_time(sde, budget_kwargs.pop("stop_noise"), eps)
        kwargs.update(budget_kwargs)
        steps = kwargs.pop("steps")
    else:
        name = "rk45" if method is None else method
        check_choice("method", name, ODE_METHODS)
    spec = SAMPLERS[name]
    if spec.steps is None:
        if steps is not None:
            raise ValueError(f"{name!r} chooses its own steps: leave steps=None and set rtol / atol")
        if name != "adaptive":
            rtol, atol = (1e-5 if rtol is None else rtol), (1e-5 if atol is None else atol)
        kwargs.update({k: v for k, v in (("rtol", rtol), ("atol", atol)) if v is not None})
    else:
        kwargs["steps"] = steps
    if "constraint" in sampler_kwargs and not spec.constraint:
        valid = [n for n, sp in SAMPLERS.items() if sp.constraint]
        raise ValueError(f"sampler {name!r} has no constraint hook; use one of: " + ", ".join(valid))
    x, _ = spec.fn(score_fn, sde, shape, **kwargs, **sampler_kwargs)
    return x
