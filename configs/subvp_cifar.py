"""DDPM++ (continuous) with the sub-VP SDE: score_sde's subvp/cifar10_ddpmpp_continuous."""
from scoresde.configs.default import get_default_config


def get_config():
    config = get_default_config()
    config.training.sde = "subvpsde"
    config.sampling.predictor = "euler_maruyama"
    config.sampling.corrector = "none"
    config.data.centered = True
    config.model.name = "ddpmpp_cifar"
    return config
