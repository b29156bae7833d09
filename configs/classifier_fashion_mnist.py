"""A noise-conditional classifier p_t(y | x_t) on Fashion-MNIST under vp_fashion_mnist's SDE,
for classifier guidance of a vp_fashion_mnist score model (``--classifier-workdir``)."""
import ml_collections
from scoresde.configs.vp_fashion_mnist import get_config as get_fashion_config


def get_config():
    config = get_fashion_config()
    config.training.objective = "classifier"
    config.training.n_iters = 10000
    config.model.name = "classifier"
    config.model.num_classes = 10
    config.model.kwargs = ml_collections.ConfigDict()  # the classifier's own arguments
    config.model.kwargs.image_size = 28
    config.model.kwargs.in_channels = 1
    config.model.kwargs.nf = 32
    config.model.kwargs.ch_mult = (1, 2, 2)
    config.model.kwargs.num_res_blocks = 2
    config.model.kwargs.dropout = 0.1
    config.model.kwargs.time_label = "999t"
    return config
