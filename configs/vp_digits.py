"""scikit-learn's 8x8 digits (offline) with a small DDPM++-style U-Net and the VP SDE: a few
minutes on 2 CPU cores give samples a person recognizes as digits."""
from scoresde.configs.default import get_default_config


def get_config():
    config = get_default_config()
    config.seed = 0
    config.training.sde = "vpsde"
    config.training.batch_size = 64
    config.training.n_iters = 3000
    config.training.snapshot_freq = 1000
    config.training.log_freq = 100
    config.sampling.predictor = "euler_maruyama"
    config.sampling.corrector = "none"
    config.sampling.steps = 200
    config.sampling.n_samples = 64
    config.data.dataset = "digits"
    config.data.image_size = 8
    config.data.num_channels = 1
    config.data.random_flip = False
    config.data.centered = True
    config.model.name = "ncsnpp"
    config.model.ema_rate = 0.999
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
