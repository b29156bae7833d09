"""``python -m scoresde.evaluate``: runs :func:`scoresde.cli.evaluate.cli`."""
import sys

from scoresde.cli.evaluate import cli

if __name__ == "__main__":
    sys.exit(cli())
