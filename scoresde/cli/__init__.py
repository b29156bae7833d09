"""The command lines: ``scoresde-train`` / ``python -m scoresde.train``
(:mod:`scoresde.cli.train`), ``scoresde-sample`` / ``python -m scoresde.sample``
(:mod:`scoresde.cli.sample`) and ``scoresde-evaluate`` / ``python -m scoresde.evaluate``
(:mod:`scoresde.cli.evaluate`).

Each ``cli(argv)`` returns the exit status: 0 on success, 2 for a usage error (one line on
stderr saying what is wrong and what to do, no traceback, nothing written), 130 when
interrupted before any state could be saved.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable, NoReturn

from ..config import UsageError

__all__ = ["ArgumentParser", "run_command"]


class ArgumentParser(argparse.ArgumentParser):
    """An ``argparse`` parser whose errors are :class:`UsageError` (one line, exit status 2)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def run_command(body: Callable[[], int]) -> int:
    """Run a CLI body: a :class:`UsageError` is one line on stderr and exit status 2, an
    interrupt before the body could save anything is one line and 130."""
    try:
        return body()
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
