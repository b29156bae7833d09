"""Class-conditional vp_digits: the same U-Net with a class embedding (model.num_classes = 10)
trained with label dropout 0.2, so that one network gives s(x, t, y) and s(x, t) for
classifier-free guidance (``python -m scoresde.sample --class-label Y --guidance-scale W``)."""
from scoresde.configs.vp_digits import get_config as get_digits_config


def get_config():
    config = get_digits_config()
    config.model.num_classes = 10
    config.training.label_dropout = 0.2
    return config
