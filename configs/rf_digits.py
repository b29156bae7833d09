"""scikit-learn's 8x8 digits (offline) with rectified flow: the small U-Net of ``vp_digits``
predicts the velocity ``dx_t/dt = z - x_0`` of the path ``x_t = (1 - t) x_0 + t z`` and is
trained with the conditional flow-matching loss ``||v_theta(x_t, t) - (z - x_0)||^2``.

That loss is the DSM loss of :mod:`scoresde.losses` with ``training.weighting =
"flow_matching"`` (``lambda(t) = g(t)^4 / 4 = t^2 / (1 - t)^2`` for rectified flow) and the
``"velocity"`` output parameterization of :func:`scoresde.get_score_fn`: the two are equal
term by term (derivation in the docstring of :mod:`scoresde.losses`). Samples come from the
probability-flow ODE (Heun, 50 steps), which for this SDE is the learned flow itself.
"""
from scoresde.configs.vp_digits import get_config as get_digits_config


def get_config():
    config = get_digits_config()  # the same data, U-Net, optimizer and schedule of runs
    config.training.sde = "rectified_flow"
    config.training.weighting = "flow_matching"  # sigma2 | g2 | flow_matching
    config.training.eps = 1e-3
    config.sampling.method = "ode"
    config.sampling.ode_method = "heun"
    config.sampling.steps = 50
    config.model.kwargs.parameterization = "velocity"
    config.model.kwargs.time_label = "999t"
    return config
