"""Samplers: predictor-corrector, probability-flow ODE, DDIM, torchsde and the fast samplers
(DPM-Solver, DPM-Solver++, UniPC, EDM, adaptive SDE), behind one :func:`sample` (Song et al. 2021,
Sec. 4).

Every lower-level sampler is a function ``sampler(score_fn, sde, shape, *, ..., generator)``
returning ``(samples, nfe)``; :func:`sample` picks one by name and returns the samples.
"""
from __future__ import annotations

from typing import Optional

import torch

from ..sde import SDE
from ..types import ScoreFn, Shape, Tensor
from ..utils import check_choice
from .fast import (
    FAST_ODE_METHODS,
    SKIP_TYPES,
    adaptive_sde_sampler,
    dpm_solver_pp_sampler,
    dpm_solver_sampler,
    edm_heun_sampler,
    unipc_sampler,
)
from .grids import (
    edm_rho_grid,
    edm_sigmas,
    log_snr,
    log_snr_grid,
    step_pairs,
    time_from_log_snr,
    time_quadratic_grid,
    uniform_grid,
    vp_quadratic_grid,
)
from .ode import ODE_METHODS as _BASE_ODE_METHODS
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

__all__ = [
    "sample",
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
    "euler_maruyama_predictor",
    "reverse_diffusion_predictor",
    "ancestral_predictor",
    "langevin_corrector",
    "annealed_langevin_corrector",
]

#: Probability-flow ODE solvers by name: those of :mod:`.ode`, then the fast ones of
#: :mod:`.fast` (``"edm_heun"`` with ``S_churn > 0`` is stochastic, but listed here too).
ODE_METHODS = {**_BASE_ODE_METHODS, **FAST_ODE_METHODS}

_ADAPTIVE = {"rk45", "scipy_rk45"}


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
    method: str = "rk45",
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
            number of Heun steps for ``"edm_heun"`` (default 17).
        eps: smallest time; sampling runs from ``T`` to ``eps``, then one noise-free step to 0.
        denoise: end with one noise-free step (the mean of the last update).
        method: ODE solver when ``pc=False``: ``"rk45"`` (on-device adaptive Dormand-Prince),
            ``"scipy_rk45"`` (reference, on the host), ``"euler"``, ``"heun"``, ``"ddim"``,
            ``"dpm_solver"`` (``order``, ``multistep``, ``skip_type``), ``"dpm_solver++"``
            (2M), ``"unipc"`` (UniPC-3: ``order``, ``variant``, ``prediction``, ``skip_type``)
            or ``"edm_heun"`` (``rho``, ``S_churn``, ``S_min``, ``S_max``, ``S_noise``;
            stochastic when ``S_churn > 0``); see :mod:`scoresde.sampling.fast`.
        rtol, atol: tolerances of the adaptive solvers (``None``: 1e-5 each for ``"rk45"`` and
            ``"scipy_rk45"``, the paper's 0.05 and 0.0078 for ``predictor="adaptive"``).
        x_T: start from this prior sample (e.g. a latent to decode) instead of drawing one.
        generator: random number generator; fixes the result on a given device.
        device, dtype: of the samples (default: from ``x_T`` or the generator; float32).
        progress: show a tqdm progress bar with the current ``t`` and the NFE.
        **sampler_kwargs: passed to the selected sampler (e.g. ``eta`` and ``discrete`` for
            ``"ddim"``, ``order`` for ``"dpm_solver"``).
    Returns:
        samples ``(B, *D)``. The lower-level samplers (:func:`pc_sampler`, ...) also return
        the exact number of score evaluations.
    Raises:
        ValueError: for an unknown predictor, corrector or method (listing the valid names) or
            an invalid argument.
    """
    common = dict(eps=eps, denoise=denoise, x_T=x_T, generator=generator, device=device,
                  dtype=dtype, progress=progress)
    if pc:
        if predictor == "torchsde":
            if corrector is not None:
                raise ValueError("predictor='torchsde' integrates the reverse SDE without a "
                                 "corrector: pass corrector=None")
            method_name = sampler_kwargs.pop("sde_method", "srk")
            x, _ = sdeint_sampler(score_fn, sde, shape, method=method_name, steps=steps,
                                  **common, **sampler_kwargs)
            return x
        if predictor == "adaptive":
            if corrector is not None:
                raise ValueError("predictor='adaptive' integrates the reverse SDE without a "
                                 "corrector: pass corrector=None")
            if steps is not None:
                raise ValueError("predictor='adaptive' chooses its own steps: leave steps=None "
                                 "(set the first step with h_init)")
            tols = {k: v for k, v in (("rtol", rtol), ("atol", atol)) if v is not None}
            x, _ = adaptive_sde_sampler(score_fn, sde, shape, **tols, **common, **sampler_kwargs)
            return x
        check_choice("predictor", predictor, list(PREDICTORS) + ["torchsde", "adaptive"])
        x, _ = pc_sampler(score_fn, sde, shape, steps=steps, predictor=predictor,
                          corrector=corrector, snr=snr, n_corrector_steps=n_corrector_steps,
                          **common, **sampler_kwargs)
        return x
    check_choice("method", method, ODE_METHODS)
    if method in _ADAPTIVE:
        rtol = 1e-5 if rtol is None else rtol
        atol = 1e-5 if atol is None else atol
        x, _ = ODE_METHODS[method](score_fn, sde, shape, rtol=rtol, atol=atol, **common, **sampler_kwargs)
    else:
        x, _ = ODE_METHODS[method](score_fn, sde, shape, steps=steps, **common, **sampler_kwargs)
    return x
