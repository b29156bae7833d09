"""``python -m scoresde.sample``: runs :func:`scoresde.cli.sample.cli`. Not for import (it would
rebind ``scoresde.sample``, the sampling function); import :mod:`scoresde.cli.sample`."""
import sys

from scoresde.cli.sample import cli

if __name__ == "__main__":
    sys.exit(cli())
