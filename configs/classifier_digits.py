"""A noise-conditional classifier p_t(y | x_t) on scikit-learn's digits under vp_digits' SDE,
for classifier guidance of a vp_digits score model
(``python -m scoresde.sample --workdir runs/vp_digits --classifier-workdir runs/classifier_digits
--class-label Y``). Trained with the cross entropy at x_t ~ p_0t(x_t | x_0), t ~ U(eps, T)."""
import ml_collections
from scoresde.configs.vp_digits import get_config as get_digits_config


def get_config():
    config = get_digits_config()
    config.training.objective = "classifier"
    config.training.n_iters = 2000
    config.model.name = "classifier"
    config.model.num_classes = 10
    config.model.kwargs = ml_collections.ConfigDict()  # the classifier's own arguments
    config.model.kwargs.image_size = 8
    config.model.kwargs.in_channels = 1
    config.model.kwargs.nf = 32
    config.model.kwargs.ch_mult = (1, 2)
    config.model.kwargs.num_res_blocks = 1
    config.model.kwargs.dropout = 0.0
    config.model.kwargs.time_label = "999t"  # as the vp_digits score model
    return config
