"""Defaults shared by all configs, with score_sde's groups and key names
(``configs/default_cifar10_configs.py`` of the official code)."""
import ml_collections


def get_default_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 42

    config.training = training = ml_collections.ConfigDict()
    training.sde = "vpsde"  # vpsde | subvpsde | vesde
    training.continuous = True  # False: the discrete DDPM / SMLD loss
    training.likelihood_weighting = False  # True: lambda = g^2 (else sigma^2)
    training.importance_sampling = False  # t ~ lambda / sigma^2 (with likelihood weighting)
    training.reduce_mean = True  # mean over dims (else half the sum)
    training.batch_size = 128
    training.n_iters = 1_300_001
    training.snapshot_freq = 50_000  # checkpoint + sample grid every this many steps
    training.log_freq = 50
    training.keep_last = 3  # checkpoints kept, besides every keep_every multiple
    training.keep_every = 0  # 0: keep only the last keep_last checkpoints
    training.snapshot_sampling = True
    training.eps = 1e-5  # smallest training time
    training.compile = False  # torch.compile the network (minutes of compilation before step 1)
    training.objective = "score"  # score | classifier (noise-conditional, for classifier guidance)
    training.label_dropout = 0.0  # conditional score models: P(label -> null label), for CFG

    config.sampling = sampling = ml_collections.ConfigDict()
    sampling.method = "pc"  # pc | ode
    sampling.predictor = "euler_maruyama"
    sampling.corrector = "none"
    sampling.snr = 0.16
    sampling.n_steps_each = 1
    sampling.steps = 1000  # defaults to the SDE's N
    sampling.ode_method = "rk45"
    sampling.noise_removal = True
    sampling.eps = 1e-3
    sampling.n_samples = 64

    config.eval = evaluate = ml_collections.ConfigDict()
    evaluate.batch_size = 128
    evaluate.n_dequant = 1
    evaluate.max_examples = 0  # 0: the whole test split

    config.data = data = ml_collections.ConfigDict()
    data.dataset = "cifar10"
    data.root = ""  # "": the dataset's default location
    data.image_size = 32
    data.num_channels = 3
    data.random_flip = True
    data.centered = False  # True: [-1, 1], False: [0, 1]
    data.download = False
    data.n_train = 0  # toy / synthetic data only: examples drawn (0: 20000 toy, 1024 synthetic)

    config.model = model = ml_collections.ConfigDict()
    model.name = "ddpmpp_cifar"
    model.ema_rate = 0.9999
    model.num_classes = 0  # > 0: class-conditional score model, or the classifier's classes
    model.sigma_min = 0.01
    model.sigma_max = 50.0
    model.beta_min = 0.1
    model.beta_max = 20.0
    model.num_scales = 1000
    model.kwargs = ml_collections.ConfigDict()  # extra constructor arguments

    config.optim = optim = ml_collections.ConfigDict()
    optim.optimizer = "Adam"
    optim.lr = 2e-4
    optim.beta1 = 0.9
    optim.eps = 1e-8
    optim.weight_decay = 0.0
    optim.warmup = 5000
    optim.grad_clip = 1.0
    return config
