"""DDPM++ with the VP SDE trained with likelihood weighting lambda = g^2 and importance
sampling of t (Song, Durkan, Murray & Ermon 2021)."""
from scoresde.configs.vp_cifar import get_config as get_vp_config


def get_config():
    config = get_vp_config()
    config.training.likelihood_weighting = True
    config.training.importance_sampling = True
    config.training.reduce_mean = False
    return config
