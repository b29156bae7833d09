"""The one adapter between a network and everything else (Song et al. 2021, Sec. 3.3, App. C).

Samplers, losses and the likelihood only ever call ``score_fn(x, t)`` with ``x`` ``(B, *D)``
and continuous ``t`` ``(B,)`` in ``[0, T]``. :func:`get_score_fn` builds that function from a
network ``model(x, label[, y])`` and an SDE, and owns the two conventions that differ between
models:

* the **time label** fed to the network (:data:`TIME_LABELS`): ``t`` itself, score_sde's
  ``999 t`` (VP / sub-VP continuous models), the noise level ``sigma(t)`` (VE continuous
  models), or a position on the SDE's ``N``-step chain for DDPM / SMLD-trained models, whose
  outputs are then scaled with the chain's noise levels rather than the continuous ones;
* the **parameterization** of the output (:data:`PARAMETERIZATIONS`), below.

With the kernel ``x = alpha x0 + sigma eps`` (``eps ~ N(0, I)``) and Tweedie's formula
``score = -E[eps | x] / sigma = (alpha E[x0 | x] - x) / sigma^2``, every output is the posterior
mean of a linear combination of ``x0`` and ``eps``, and maps to the score as:

| name | the network predicts | score |
| --- | --- | --- |
| ``eps`` | ``eps`` (DDPM) | ``-out / sigma`` |
| ``score`` | ``grad log p_t(x)`` | ``out`` |
| ``sigma_score`` | ``sigma score`` (score_sde's ``scale_by_sigma``) | ``out / sigma`` |
| ``x0`` | ``x0``, the denoised data | ``(alpha out - x) / sigma^2`` |
| ``v`` | ``alpha eps - sigma x0`` (Salimans & Ho 2022) | ``-(sigma x + alpha out) / (sigma D_v)`` |
| ``velocity`` | ``dx_t/dt = alpha' x0 + sigma' eps`` (flow matching) | ``-(alpha out - alpha' x) / (sigma D_u)`` |

For ``v`` and ``velocity``, ``eps`` is solved from the 2x2 system they form with ``x``; the
determinants are ``D_v = alpha^2 + sigma^2`` (1 for VP) and
``D_u = alpha sigma' - alpha' sigma = alpha g^2 / (2 sigma)`` (1 for rectified flow).
``alpha'``, ``sigma'`` come from :meth:`~scoresde.SDE.marginal_coeffs_derivative`. The
expected velocity is the probability-flow drift, ``E[dx_t/dt | x] = f x - g^2 score / 2``
(Eq. 13).

The two conventions are read from the model's ``parameterization`` and ``time_label``
attributes when not given, so ``get_score_fn(model, sde)`` is right for every network of :mod:`scoresde.models`,
including the score_sde checkpoints. Only the SDE's generic members are used
(``marginal_coeffs``, ``marginal_coeffs_derivative``, ``discrete_marginal_coeffs``, ``T``,
``N``): no SDE type checks.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Dict, Iterator, Mapping, Optional, Tuple

import torch
from torch import nn

from ..sde import SDE
from ..types import ScoreFn, Tensor
from ..utils import append_dims, check_choice

__all__ = [
    "PARAMETERIZATIONS",
    "TIME_LABELS",
    "CondScoreFn",
    "get_score_fn",
    "get_cond_score_fn",
    "get_log_prob_fn",
]

CondScoreFn = Callable[[Tensor, Tensor, Optional[Tensor]], Tensor]
"""``cond_score_fn(x, t, y) -> Tensor``; ``y=None`` gives the unconditional score."""

OutputToScore = Callable[[Tensor, Tensor, Tensor, Tensor, SDE, Tensor], Tensor]
TimeLabel = Callable[[SDE, Tensor], Tuple[Tensor, Tensor, Tensor]]


# ---------------------------------------------------------------------------------------------
# Output parameterizations: (output, x, alpha, sigma, sde, t) -> score, with alpha, sigma of
# shape (B,) from the kernel p_0t(x_t | x_0) = N(alpha x_0, sigma^2 I); the table in the module
# docstring gives each formula.
def _from_eps(out: Tensor, x: Tensor, alpha: Tensor, sigma: Tensor, sde: SDE, t: Tensor) -> Tensor:
    # x = alpha x0 + sigma eps  =>  score = -eps / sigma.
    return -out / append_dims(sigma, x.ndim)


def _from_score(out: Tensor, x: Tensor, alpha: Tensor, sigma: Tensor, sde: SDE, t: Tensor) -> Tensor:
    return out


def _from_sigma_score(out: Tensor, x: Tensor, alpha: Tensor, sigma: Tensor, sde: SDE,
                      t: Tensor) -> Tensor:
    # NCSN's output scaling: the network predicts sigma * score (score_sde's scale_by_sigma).
    return out / append_dims(sigma, x.ndim)


def _from_x0(out: Tensor, x: Tensor, alpha: Tensor, sigma: Tensor, sde: SDE, t: Tensor) -> Tensor:
    # Tweedie: E[x0 | x] = (x + sigma^2 score) / alpha  =>  score = (alpha x0 - x) / sigma^2.
    return (append_dims(alpha, x.ndim) * out - x) / append_dims(sigma * sigma, x.ndim)


def _from_v(out: Tensor, x: Tensor, alpha: Tensor, sigma: Tensor, sde: SDE, t: Tensor) -> Tensor:
    # x = alpha x0 + sigma eps, v = alpha eps - sigma x0  =>  eps = (sigma x + alpha v) / (alpha^2 + sigma^2).
    a, s = append_dims(alpha, x.ndim), append_dims(sigma, x.ndim)
    return -(s * x + a * out) / (s * (a * a + s * s))


def _from_velocity(out: Tensor, x: Tensor, alpha: Tensor, sigma: Tensor, sde: SDE,
                   t: Tensor) -> Tensor:
    # x = alpha x0 + sigma eps, u = alpha' x0 + sigma' eps  =>
    # eps = (alpha u - alpha' x) / (alpha sigma' - alpha' sigma).
    d_alpha, d_sigma = sde.marginal_coeffs_derivative(t)
    a, s = append_dims(alpha, x.ndim), append_dims(sigma, x.ndim)
    da, ds = append_dims(d_alpha, x.ndim), append_dims(d_sigma, x.ndim)
    return -(a * out - da * x) / (s * (a * ds - da * s))


#: What a network's output means, by name.
PARAMETERIZATIONS: Dict[str, OutputToScore] = {
    "eps": _from_eps,
    "score": _from_score,
    "sigma_score": _from_sigma_score,
    "x0": _from_x0,
    "v": _from_v,
    "velocity": _from_velocity,
}


# ---------------------------------------------------------------------------------------------
# Time labels: (sde, t) -> (label (B,), alpha (B,), sigma (B,)); alpha and sigma are the kernel
# coefficients the output is scaled with.
def _label_t(sde: SDE, t: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    alpha, sigma = sde.marginal_coeffs(t)
    return t, alpha, sigma


def _label_999t(sde: SDE, t: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    # score_sde's continuous VP / sub-VP models: the DDPM embedding range, 999 t, for any N.
    alpha, sigma = sde.marginal_coeffs(t)
    return t * 999, alpha, sigma


def _label_sigma(sde: SDE, t: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    # score_sde's continuous VE models are conditioned on the noise level sigma(t).
    alpha, sigma = sde.marginal_coeffs(t)
    return sigma, alpha, sigma


def _label_index(sde: SDE, t: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    # DDPM-trained models (score_sde, continuous=False): label t (N-1) / T, not rounded, and the
    # noise level of the chain's step floor(t (N-1) / T), e.g. sqrt(1 - abar_i) for VP.
    alpha, sigma = sde.discrete_marginal_coeffs(t)
    return t * ((sde.N - 1) / sde.T), alpha, sigma


def _label_reversed_index(sde: SDE, t: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    # SMLD-trained models (score_sde's VE, continuous=False): label j = round((T - t)(N-1) / T)
    # counts noise levels from the largest; the noise level is that of step i = N - 1 - j.
    steps = max(sde.N - 1, 1)
    j = torch.round((sde.T - t) * (steps / sde.T))
    alpha, sigma = sde.discrete_marginal_coeffs((steps - j) * (sde.T / steps))
    return j, alpha, sigma


#: How a network's time input is computed from ``t``, by name.
TIME_LABELS: Dict[str, TimeLabel] = {
    "t": _label_t,
    "999t": _label_999t,
    "sigma": _label_sigma,
    "index": _label_index,
    "reversed_index": _label_reversed_index,
}


# ---------------------------------------------------------------------------------------------
def _model_attr(model: Callable, name: str, given: Optional[str], table: Mapping[str, object]) -> str:
    if given is None:
        # Wrappers (DataParallel / DDP) keep the network in `.module`.
        given = getattr(model, name, None) or getattr(getattr(model, "module", None), name, None)
        if given is None:
            raise ValueError(
                f"the model has no `{name}` attribute; pass {name}=... (valid values are: "
                + ", ".join(repr(k) for k in table)
                + ")"
            )
    check_choice(name, given, table)
    return given


@contextmanager
def _mode(model: Callable, train: bool) -> Iterator[None]:
    """Run a module in train / eval mode, restoring every submodule's mode afterwards."""
    if not isinstance(model, nn.Module) or model.training == train:
        yield
        return
    modes = [(m, m.training) for m in model.modules()]
    model.train(train)
    try:
        yield
    finally:
        for m, mode in modes:
            m.training = mode


def get_cond_score_fn(
    model: Callable,
    sde: SDE,
    *,
    parameterization: Optional[str] = None,
    time_label: Optional[str] = None,
    train: bool = False,
) -> CondScoreFn:
    """A class-conditional score function ``cond_score_fn(x, t, y)`` of a network.

    ``y`` ``(B,)`` holds class labels; ``y=None`` calls the network without labels, which a
    class-conditional network of :mod:`scoresde.models` answers with its null label (the
    unconditional score of classifier-free guidance). Arguments as :func:`get_score_fn`.
    """
    to_score = PARAMETERIZATIONS[_model_attr(model, "parameterization", parameterization, PARAMETERIZATIONS)]
    to_label = TIME_LABELS[_model_attr(model, "time_label", time_label, TIME_LABELS)]

    def cond_score_fn(x: Tensor, t: Tensor, y: Optional[Tensor] = None) -> Tensor:
        label, alpha, sigma = to_label(sde, t)
        with _mode(model, train):
            out = model(x, label) if y is None else model(x, label, y)
        return to_score(out, x, alpha, sigma, sde, t)

    return cond_score_fn


def get_log_prob_fn(
    model: Callable,
    sde: SDE,
    *,
    time_label: Optional[str] = None,
    train: bool = False,
) -> Callable[[Tensor, Tensor], Tensor]:
    """The class log-probabilities ``log_prob_fn(x, t) -> (B, C)`` of a noise-conditional
    classifier ``model(x, label) -> logits`` (:class:`~scoresde.models.NoiseConditionalClassifier`),
    for :func:`scoresde.classifier_guidance`.

    The time label is computed exactly as for score networks (:data:`TIME_LABELS`, default
    ``model.time_label``); ``train`` as in :func:`get_score_fn`.
    """
    to_label = TIME_LABELS[_model_attr(model, "time_label", time_label, TIME_LABELS)]

    def log_prob_fn(x: Tensor, t: Tensor) -> Tensor:
        label, _, _ = to_label(sde, t)
        with _mode(model, train):
            logits = model(x, label)
        return torch.log_softmax(logits, dim=-1)

    return log_prob_fn


def get_score_fn(
    model: Callable,
    sde: SDE,
    *,
    parameterization: Optional[str] = None,
    time_label: Optional[str] = None,
    train: bool = False,
    y: Optional[Tensor] = None,
) -> ScoreFn:
    """The score function ``score_fn(x, t)`` of a network (score_sde's ``get_score_fn``).

    For the networks of :mod:`scoresde.models` and :func:`load_score_sde_checkpoint`,
    ``get_score_fn(model, sde)`` gives the score of score_sde's
    ``get_score_fn(sde, model, continuous=True)`` (for DDPM-trained models: of
    ``continuous=False``, the convention they were trained with).

    Args:
        model: a network ``model(x, label)`` (or ``model(x, label, y)``) returning the
            shape of ``x``; usually an ``nn.Module``.
        sde: the forward SDE; its ``marginal_coeffs`` (and, for the chain-based time
            labels, ``discrete_marginal_coeffs``) scale the output.
        parameterization: meaning of the output, a key of :data:`PARAMETERIZATIONS`:
            ``"eps"`` (noise; score ``= -out / sigma``), ``"score"``, ``"sigma_score"``
            (score ``= out / sigma``), ``"x0"`` (score ``= (alpha out - x) / sigma^2``),
            ``"v"`` (``alpha eps - sigma x0``) or ``"velocity"`` (``dx_t / dt``); the
            module docstring tabulates the formulas. Default: ``model.parameterization``.
        time_label: the network's time input, a key of :data:`TIME_LABELS`: ``"t"``,
            ``"999t"``, ``"sigma"`` (``sigma(t)``), ``"index"`` (``t (N-1) / T``, DDPM
            chain, unrounded as in score_sde) or ``"reversed_index"``
            (``round((T - t)(N-1) / T)``, SMLD chain). Default: ``model.time_label``.
        train: evaluate the network in training mode (dropout on), as score_sde's
            ``train=True`` does for the loss. The default ``False`` evaluates it in eval mode.
            An ``nn.Module`` whose mode differs is switched only for the duration of each
            call and restored afterwards (submodule by submodule): the function never leaves
            the module in another mode than it found it, so there is no hidden ``.eval()``.
        y: class labels ``(B,)`` passed to a class-conditional network on every call
            (``None``: unconditional / null label).
    Returns:
        ``score_fn(x, t)`` with ``x`` ``(B, *D)`` and ``t`` ``(B,)``, returning the shape of ``x``.
    Raises:
        ValueError: for an unknown parameterization or time label (listing the valid ones),
            or when neither the argument nor the model attribute gives one.
    """
    cond_score_fn = get_cond_score_fn(
        model, sde, parameterization=parameterization, time_label=time_label, train=train
    )

    def score_fn(x: Tensor, t: Tensor) -> Tensor:
        return cond_score_fn(x, t, y)

    return score_fn
