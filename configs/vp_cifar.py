"""DDPM++ (continuous) with the VP SDE on CIFAR-10: score_sde's vp/cifar10_ddpmpp_continuous.

Reference: FID 2.55 (Song et al. 2021, Table 3, with the PC sampler) after 1.3M steps at
batch 128; expect days on 8 V100s."""
from scoresde.configs.default import get_default_config


def get_config():
    config = get_default_config()
    config.training.sde = "vpsde"
    config.sampling.predictor = "euler_maruyama"
    config.sampling.corrector = "none"
    config.data.centered = True
    config.model.name = "ddpmpp_cifar"
    return config
