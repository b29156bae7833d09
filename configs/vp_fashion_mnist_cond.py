"""Class-conditional vp_fashion_mnist (model.num_classes = 10, label dropout 0.2) for
classifier-free guidance (``python -m scoresde.sample --class-label Y --guidance-scale W``)."""
from scoresde.configs.vp_fashion_mnist import get_config as get_fashion_config


def get_config():
    config = get_fashion_config()
    config.model.num_classes = 10
    config.training.label_dropout = 0.2
    return config
