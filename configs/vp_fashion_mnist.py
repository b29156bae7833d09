"""Fashion-MNIST (28x28, Debian package dataset-fashion-mnist) with a small U-Net and the VP
SDE."""
from scoresde.configs.default import get_default_config


def get_config():
    config = get_default_config()
    config.seed = 0
    config.training.sde = "vpsde"
    config.training.batch_size = 64
    config.training.n_iters = 20000
    config.training.snapshot_freq = 2000
    config.training.log_freq = 100
    config.sampling.predictor = "euler_maruyama"
    config.sampling.corrector = "none"
    config.sampling.steps = 500
    config.data.dataset = "fashion_mnist"
    config.data.image_size = 28
    config.data.num_channels = 1
    config.data.random_flip = True
    config.data.centered = True
    config.model.name = "ncsnpp"
    config.model.ema_rate = 0.999
    config.model.kwargs.image_size = 28
    config.model.kwargs.in_channels = 1
    config.model.kwargs.nf = 32
    config.model.kwargs.ch_mult = (1, 2, 2)
    config.model.kwargs.num_res_blocks = 2
    config.model.kwargs.attn_resolutions = (7,)
    config.model.kwargs.dropout = 0.1
    config.optim.lr = 1e-3
    config.optim.warmup = 500
    return config
