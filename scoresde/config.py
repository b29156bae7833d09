"""Configs for the command-line tools: finding them by name or path, ``--config.KEY=VALUE``
overrides (the absl / ml-collections form used by score_sde), and usage errors.

Configs are ``ml_collections.ConfigDict`` objects returned by ``get_config()`` in a Python
file: the recipes in ``configs/`` (installed as :mod:`scoresde.configs`) or any file given by
path. Library code never takes a config; the factories in :mod:`scoresde.run` turn one
into objects.
"""
from __future__ import annotations

import ast
import importlib
import importlib.resources
import importlib.util
import json
import os
from typing import List, Sequence, Tuple

import ml_collections

__all__ = ["UsageError", "available_configs", "load_config", "apply_overrides", "split_overrides", "to_json"]


class UsageError(Exception):
    """A mistake in how a command was called: printed as one message, exit status 2."""


def available_configs() -> List[str]:
    """Names of the configs shipped in :mod:`scoresde.configs`."""
    files = importlib.resources.files("scoresde.configs")
    return sorted(
        p.name[:-3] for p in files.iterdir()
        if p.name.endswith(".py") and not p.name.startswith("_") and p.name != "default.py"
    )


def load_config(name_or_path: str) -> ml_collections.ConfigDict:
    """The config of a shipped recipe (``"vp_cifar"``) or of a file (``"my/config.py"``)."""
    if name_or_path.endswith(".py") or os.sep in name_or_path:
        if not os.path.isfile(name_or_path):
            raise UsageError(f"config file {name_or_path!r} does not exist")
        spec = importlib.util.spec_from_file_location("scoresde_user_config", name_or_path)
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise UsageError(f"config file {name_or_path!r} failed to load: {exc}") from None
    else:
        if name_or_path not in available_configs():
            raise UsageError(
                f"unknown config {name_or_path!r}; valid names are: {', '.join(available_configs())} "
                "(or give the path of a config file)"
            )
        module = importlib.import_module(f"scoresde.configs.{name_or_path}")
    if not hasattr(module, "get_config"):
        raise UsageError(f"config {name_or_path!r} has no get_config() function")
    return module.get_config()


def split_overrides(argv: Sequence[str]) -> Tuple[List[str], List[Tuple[str, str]]]:
    """Separate ``--config.KEY=VALUE`` (or ``--config.KEY VALUE``) from the other arguments."""
    rest, overrides = [], []
    argv = list(argv)
    k = 0
    while k < len(argv):
        arg = argv[k]
        if arg.startswith("--config."):
            key, sep, value = arg[len("--config."):].partition("=")
            if not sep:
                if k + 1 >= len(argv):
                    raise UsageError(f"override {arg} has no value; write {arg}=VALUE")
                value = argv[k + 1]
                k += 1
            overrides.append((key, value))
        else:
            rest.append(arg)
        k += 1
    return rest, overrides


def _parse_value(key: str, text: str, current: object) -> object:
    """Parse ``text`` as the type of the current value."""
    if isinstance(current, bool):
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise UsageError(f"--config.{key} expects true or false; got {text!r}")
    if isinstance(current, int):
        try:
            return int(text.replace("_", ""))
        except ValueError:
            raise UsageError(f"--config.{key} expects an integer; got {text!r}") from None
    if isinstance(current, float):
        try:
            return float(text)
        except ValueError:
            raise UsageError(f"--config.{key} expects a number; got {text!r}") from None
    if isinstance(current, (tuple, list)):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise UsageError(f"--config.{key} expects a tuple such as (1, 2); got {text!r}") from None
        value = tuple(value) if isinstance(value, (tuple, list)) else (value,)
        return type(current)(value)
    if isinstance(current, str) or current is None:
        return text
    raise UsageError(f"--config.{key} cannot be set from the command line")


def apply_overrides(config: ml_collections.ConfigDict, overrides: Sequence[Tuple[str, str]]) -> None:
    """Set ``config.KEY = VALUE`` for each override, keeping each field's type."""
    for key, text in overrides:
        node = config
        parts = key.split(".")
        for depth, part in enumerate(parts):
            valid = list(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
            if part not in valid:
                where = ".".join(parts[:depth]) or "config"
                raise UsageError(
                    f"unknown config key --config.{key}: {where} has no field {part!r}; "
                    f"valid fields are: {', '.join(sorted(valid))}"
                )
            if depth < len(parts) - 1:
                node = node[part]
        current = node[parts[-1]]
        if isinstance(current, ml_collections.ConfigDict):
            raise UsageError(f"--config.{key} is a group; set one of its fields")
        with node.unlocked():
            node[parts[-1]] = _parse_value(key, text, current)


def to_json(config: ml_collections.ConfigDict) -> str:
    """The resolved config as JSON (tuples become lists)."""
    return json.dumps(config.to_dict(), indent=2, sort_keys=True, default=str)
