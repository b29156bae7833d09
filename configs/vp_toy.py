"""The 2-D ring of 8 Gaussians (scoresde.toy.ring) with a small MLP: trains on a CPU in
well under a minute."""
from scoresde.configs.default import get_default_config


def get_config():
    config = get_default_config()
    config.seed = 0
    config.training.sde = "vpsde"
    config.training.batch_size = 256
    config.training.n_iters = 2000
    config.training.snapshot_freq = 1000
    config.training.log_freq = 100
    config.sampling.predictor = "euler_maruyama"
    config.sampling.corrector = "none"
    config.sampling.steps = 250
    config.sampling.n_samples = 1000
    config.data.dataset = "toy:ring"
    config.data.n_train = 20000
    config.data.image_size = 0
    config.data.num_channels = 0
    config.data.random_flip = False
    config.model.name = "resmlp"
    config.model.ema_rate = 0.999
    config.model.kwargs.dim = 2
    config.model.kwargs.hidden_dim = 128
    config.model.kwargs.num_blocks = 3
    config.optim.lr = 2e-3
    config.optim.warmup = 100
    config.eval.batch_size = 500
    return config
