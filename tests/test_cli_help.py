"""The command lines' --help stands alone: every option says what it does and its default, the
train help lists the shipped configs and the override syntax, and no reStructuredText markup
shows."""
import argparse
import re

import pytest

from scoresde.cli import evaluate, sample
from scoresde.cli import train as train_cli
from scoresde.config import available_configs
from scoresde.metrics.__main__ import build_parser as metrics_parser

RST = re.compile(r"``|:(func|class|mod|meth|attr|data|obj):`")


class _Stop(Exception):
    pass


def train_parser(monkeypatch):
    """The parser ``scoresde.train`` builds (caught at its parse_args)."""
    made = []

    class Recording(train_cli.ArgumentParser):
        def parse_args(self, *args, **kwargs):
            made.append(self)
            raise _Stop

    monkeypatch.setattr(train_cli, "ArgumentParser", Recording)
    with pytest.raises(_Stop):
        train_cli.cli(["--config", "vp_toy"])
    return made[0]


def all_parsers(monkeypatch):
    metrics = metrics_parser()
    subs = [a for a in metrics._actions if isinstance(a, argparse._SubParsersAction)][0]
    return {"train": train_parser(monkeypatch), "sample": sample._parser(), "evaluate": evaluate._parser(),
            "metrics": metrics, **{f"metrics {k}": p for k, p in subs.choices.items()}}


def test_every_option_has_help_with_its_default(monkeypatch):
    for name, parser in all_parsers(monkeypatch).items():
        formatter = parser._get_formatter()
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            option = f"{name} {'/'.join(action.option_strings)}"
            assert action.help, f"{option} has no help"
            if action.nargs != 0 and not action.required:  # a value with a default
                assert "default" in formatter._expand_help(action), f"{option} does not give its default"


def test_no_rst_markup_in_help(monkeypatch):
    for name, parser in all_parsers(monkeypatch).items():
        text = parser.format_help()
        assert not RST.search(text), f"{name} --help shows markup: {RST.search(text).group(0)}"


def test_train_help_lists_configs_and_the_override_syntax(monkeypatch):
    text = train_parser(monkeypatch).format_help()
    for config in available_configs():
        assert config in text
    assert "--config.KEY=VALUE" in text
