"""``scoresde-train`` / ``python -m scoresde.train --config NAME [--workdir DIR]
[--config.KEY=VALUE ...]``: train, or resume, the run described by a config
(:func:`scoresde.train.main`)."""
from __future__ import annotations

import os
import sys
from typing import List, Optional

from ..config import apply_overrides, available_configs, load_config, split_overrides
from . import ArgumentParser, run_command


def cli(argv: Optional[List[str]] = None) -> int:
    """Parse the command line and train; returns the exit status (2 for usage errors)."""
    argv = sys.argv[1:] if argv is None else list(argv)

    def body() -> int:
        from ..train import main

        rest, overrides = split_overrides(argv)
        parser = ArgumentParser(prog="python -m scoresde.train", description=__doc__.split("\n\n")[0],
                                epilog="Override any config field with --config.KEY=VALUE "
                                "(e.g. --config.training.n_iters=1000 --config.sampling.steps=100); "
                                "the fields and their defaults are those of the config's file.")
        parser.add_argument("--config", required=True, help="a shipped config (" + ", ".join(available_configs())
                            + ") or the path of a config file")
        parser.add_argument("--workdir", help="run directory (default: runs/<config name>)")
        parser.add_argument("--data-dir", help="dataset folder (sets data.root; default: the config's, "
                                               "else the data set's usual place)")
        parser.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
        parser.add_argument("--bf16", action="store_true", help="the network in bf16 (CUDA, or a CPU with "
                            "AVX512-BF16 / AMX); loss, Adam and EMA stay in float32")
        parser.add_argument("--compile", action="store_true", help="torch.compile the network "
                            "(sets training.compile=true)")
        args = parser.parse_args(rest)
        config = load_config(args.config)
        apply_overrides(config, overrides)
        if args.data_dir:
            config.data.root = args.data_dir
        if args.compile:
            config.training.compile = True
        workdir = args.workdir or os.path.join("runs", os.path.splitext(os.path.basename(args.config))[0])
        return main(config, workdir, device=args.device, bf16=args.bf16)

    return run_command(body)
