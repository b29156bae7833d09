"""Samplers: predictor-corrector, probability-flow ODE, DDIM and torchsde, behind one
:func:`sample` (Song et al. 2021, Sec. 4).

Every lower-level sampler is a function ``sampler(score_fn, sde, shape, *, ..., generator)``
returning ``(samples, nfe)``; :func:`sample` picks one by name and returns the samples.
"""
from __future__ import annotations

from typing import Optional

import torch

from ..sde import SDE
from ..types import ScoreFn, Shape, Tensor
from ..utils import check_choice
from .grids import step_pairs, uniform_grid
from .ode import (
    ODE_METHODS,
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
    "uniform_grid",
    "step_pairs",
    "euler_maruyama_predictor",
    "reverse_diffusion_predictor",
    "ancestral_predictor",
    "langevin_corrector",
    "annealed_langevin_corrector",
]

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
    rtol: float = 1e-5,
    atol: float = 1e-5,
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
            ``adaptive``, ``bm``; requires ``corrector=None``).
        corrector: ``"langevin"``, ``"annealed_langevin"``, ``None``.
        snr: corrector signal-to-noise ratio.
        n_corrector_steps: corrector iterations per time step.
        steps: number of time steps (default ``sde.N``) for the PC and fixed-step ODE samplers.
        eps: smallest time; sampling runs from ``T`` to ``eps``, then one noise-free step to 0.
        denoise: end with one noise-free step (the mean of the last update).
        method: ODE solver when ``pc=False``: ``"rk45"`` (on-device adaptive Dormand-Prince),
            ``"scipy_rk45"`` (reference, on the host), ``"euler"``, ``"heun"``, ``"ddim"``.
        rtol, atol: tolerances of the adaptive solvers.
        x_T: start from this prior sample (e.g. a latent to decode) instead of drawing one.
        generator: random number generator; fixes the result on a given device.
        device, dtype: of the samples (default: from ``x_T`` or the generator; float32).
        progress: show a tqdm progress bar with the current ``t`` and the NFE.
        **sampler_kwargs: passed to the selected sampler (e.g. ``eta`` and ``discrete`` for
            ``"ddim"``).
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
        check_choice("predictor", predictor, list(PREDICTORS) + ["torchsde"])
        x, _ = pc_sampler(score_fn, sde, shape, steps=steps, predictor=predictor,
                          corrector=corrector, snr=snr, n_corrector_steps=n_corrector_steps,
                          **common, **sampler_kwargs)
        return x
    check_choice("method", method, ODE_METHODS)
    if method in _ADAPTIVE:
        x, _ = ODE_METHODS[method](score_fn, sde, shape, rtol=rtol, atol=atol, **common, **sampler_kwargs)
    else:
        x, _ = ODE_METHODS[method](score_fn, sde, shape, steps=steps, **common, **sampler_kwargs)
    return x
