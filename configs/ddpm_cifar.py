"""DDPM (Ho et al. 2020) as the discrete VP special case: score_sde's vp/ddpm/cifar10
(L_simple over the 1000 discrete steps, ancestral sampling)."""
from scoresde.configs.default import get_default_config


def get_config():
    config = get_default_config()
    config.training.sde = "vpsde"
    config.training.continuous = False
    config.sampling.predictor = "ancestral"
    config.sampling.corrector = "none"
    config.data.centered = True
    config.model.name = "ddpm_cifar"
    config.model.ema_rate = 0.9999
    config.optim.lr = 2e-4
    return config
