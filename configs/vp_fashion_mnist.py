"""Fashion-MNIST (28x28, Debian package dataset-fashion-mnist) with a small U-Net (1.6M
parameters, DDPM residual blocks: half the cost of BigGAN blocks on a CPU) and the VP SDE.

On 2 CPU cores a step takes about 1 s (batch 64): 20000 steps are about 5.5 hours; the FID
measured in docs/benchmarks.md is from 3318 steps (1.6 hours under shared load)."""
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
    config.model.kwargs.resblock_type = "ddpm"
    config.model.kwargs.attn_resolutions = (7,)
    config.model.kwargs.dropout = 0.1
    config.optim.lr = 1e-3
    config.optim.warmup = 500
    return config
