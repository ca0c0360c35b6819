"""The flags commands share read and behave the same in every command (cli/options.py)."""

from __future__ import annotations

import ast
import inspect
import textwrap
from typing import Any

import pytest
import typer

from facecnn import cli
from facecnn.cli import options

SHARED = {"upsample": options.UPSAMPLE, "min_size": options.MIN_SIZE,
          "workers": options.WORKERS, "flip": options.FLIP, "jitter": options.JITTER,
          "device": options.DEVICE, "as_json": options.JSON, "quiet": options.QUIET,
          "landmarks": options.LANDMARKS}
# The same word for another thing: serve's --workers are server processes.
OTHER_MEANING = {("serve", "workers")}


def commands(group: Any, prefix: str = "") -> dict[str, Any]:
    """Every command of the app by its full name ('gallery list'), sub-groups walked."""
    found = {}
    for name, command in group.commands.items():
        if hasattr(command, "commands"):  # a group (Typer vendors its own click)
            found.update(commands(command, f"{prefix}{name} "))
        else:
            found[prefix + name] = command
    return found


ALL = commands(typer.main.get_command(cli.app))


def test_every_command_is_listed() -> None:
    assert {"train", "recognize", "serve", "gallery list", "visualize gradcam",
            "detectors"} <= set(ALL)


@pytest.mark.parametrize("name", sorted(ALL))
def test_shared_flags_read_the_same_everywhere(name: str) -> None:
    for param in ALL[name].params:
        shared = SHARED.get(param.name)
        if shared is not None and (name, param.name) not in OTHER_MEANING:
            assert param.help == shared.help, f"{name} --{param.name}"
            assert param.default == shared.default, f"{name} --{param.name}"
        if param.name == "detector":
            assert "`facecnn detectors`" in param.help, name


def reads(function: object, flag: str) -> bool:
    """Whether the function's body reads `flag` (as a name or as settings["flag"])."""
    body = ast.parse(textwrap.dedent(inspect.getsource(function))).body[0].body
    return any((isinstance(node, ast.Name) and node.id == flag)
               or (isinstance(node, ast.Constant) and node.value == flag)
               for statement in body for node in ast.walk(statement))


@pytest.mark.parametrize("name", sorted(n for n, c in ALL.items()
                                        if any(p.name == "quiet" for p in c.params)))
def test_commands_that_take_quiet_use_it(name: str) -> None:
    assert reads(inspect.unwrap(ALL[name].callback), "quiet"), f"{name} ignores --quiet"
