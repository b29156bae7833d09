"""scikit-learn's 8x8 digits (offline) with rectified flow: the small U-Net of ``vp_digits``
predicts the velocity ``dx_t/dt = z - x_0`` of the path ``x_t = (1 - t) x_0 + t z`` and is
trained with the conditional flow-matching loss ``||v_theta(x_t, t) - (z - x_0)||^2``.

That loss is the DSM loss of :mod:`scoresde.losses` with ``training.weighting =
"flow_matching"`` (``lambda(t) = g(t)^4 / 4 = t^2 / (1 - t)^2`` for rectified flow) and the
``"velocity"`` output parameterization of :func:`scoresde.get_score_fn`: the two are equal
term by term (derivation in the docstring of :mod:`scoresde.losses`). Samples come from the
probability-flow ODE (Heun, 50 steps), which for this SDE is the learned flow itself.
"""
from scoresde.configs.default import get_default_config


def get_config():
    config = get_default_config()
    config.seed = 0
    config.training.sde = "rectified_flow"
    config.training.weighting = "flow_matching"  # sigma2 | g2 | flow_matching
    config.training.eps = 1e-3
    config.training.batch_size = 64
    config.training.n_iters = 3000
    config.training.snapshot_freq = 1000
    config.training.log_freq = 100
    config.sampling.method = "ode"
    config.sampling.ode_method = "heun"
    config.sampling.steps = 50
    config.sampling.n_samples = 64
    config.data.dataset = "digits"
    config.data.image_size = 8
    config.data.num_channels = 1
    config.data.random_flip = False
    config.data.centered = True
    config.model.name = "ncsnpp"
    config.model.ema_rate = 0.999
    config.model.kwargs.parameterization = "velocity"
    config.model.kwargs.time_label = "999t"
    config.model.kwargs.image_size = 8
    config.model.kwargs.in_channels = 1
    config.model.kwargs.nf = 32
    config.model.kwargs.ch_mult = (1, 2)
    config.model.kwargs.num_res_blocks = 1
    config.model.kwargs.attn_resolutions = (4,)
    config.model.kwargs.dropout = 0.0
    config.optim.lr = 2e-3
    config.optim.warmup = 200
    config.eval.batch_size = 100
    return config
