"""The terminal: rich consoles and the progress reporter the CLI hands to the API."""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from typing import Callable, Iterator, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from facecnn.progress import Reporter

# Everything printed is data: names, paths and messages show as written ("[b]madonna" is
# not a bold "madonna", "photo [1].jpg" and "me :smile:" keep their brackets and colons), so
# the consoles read no markup or emoji codes; styled text is a rich Text.
OFF_TERMINAL_WIDTH = 120


def output_width(stream: TextIO) -> int | None:
    """Columns for what goes to `stream`: the terminal's (None: rich asks it), COLUMNS if set,
    else OFF_TERMINAL_WIDTH. Off a terminal (a pipe, a file, a CI log) rich would wrap at 80
    and cut the names in tables and --help short."""
    if os.environ.get("COLUMNS") or stream.isatty():
        return None
    return OFF_TERMINAL_WIDTH


console = Console(soft_wrap=True, markup=False, emoji=False, width=output_width(sys.stdout))
err_console = Console(stderr=True, soft_wrap=True, markup=False, emoji=False,
                      width=output_width(sys.stderr))


def debugging() -> bool:
    """FACECNN_DEBUG=1: every error comes with its traceback."""
    return os.environ.get("FACECNN_DEBUG") == "1"


def configure_logging() -> None:
    """The `facecnn` loggers' warnings and errors on stderr through rich (the server's
    failures among them); the lines a command prints as output go through the reporter."""
    from rich.logging import RichHandler

    root = logging.getLogger("facecnn")
    if not any(isinstance(h, RichHandler) for h in root.handlers):
        handler = RichHandler(console=err_console, show_time=False, show_path=False)
        handler.setLevel(logging.WARNING)
        root.addHandler(handler)


class RichReporter(Reporter):
    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet

    def log(self, message: str) -> None:
        console.print(message, highlight=False)

    @contextmanager
    def task(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        # Off a terminal (a pipe, nohup, TERM=dumb) a bar shows nothing, and rich's Progress
        # would still end each one with a blank line: piped logs came out double-spaced.
        if self.quiet or not console.is_interactive:
            yield lambda n: None
            return
        columns = [TextColumn("{task.description}", markup=False), BarColumn(),
                   MofNCompleteColumn(), TimeRemainingColumn()]
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task(description, total=total or None)

            def advance(n: int) -> None:
                progress.advance(task, n)

            yield advance


def reporter_for(quiet: bool) -> Reporter:
    """Rich progress for rank 0 (or a plain run); silence for the other torchrun ranks."""
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 talks
        return Reporter()
    return RichReporter(quiet)
