"""The terminal: rich consoles and the progress reporter the CLI hands to the API."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from facecnn.progress import Reporter

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


class RichReporter(Reporter):
    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet

    def log(self, message: str) -> None:
        console.print(message, highlight=False)

    @contextmanager
    def task(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        if self.quiet:
            yield lambda n: None
            return
        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeRemainingColumn()]
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
