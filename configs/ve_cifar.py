"""NCSN++ (continuous) with the VE SDE: score_sde's ve/cifar10_ncsnpp_continuous (data in
[0, 1], reverse diffusion + Langevin at snr 0.16)."""
from scoresde.configs.default import get_default_config


def get_config():
    config = get_default_config()
    config.training.sde = "vesde"
    config.training.reduce_mean = False
    config.sampling.predictor = "reverse_diffusion"
    config.sampling.corrector = "langevin"
    config.data.centered = False
    config.model.name = "ncsnpp_cifar"
    return config
