"""How long work reports itself: a no-op base the API uses, a rich one the CLI passes in."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator


class Reporter:
    """Silent by default; the CLI subclasses it to print with rich."""

    def log(self, message: str) -> None:
        """A line worth keeping (also written to the run's log by the trainer)."""

    @contextmanager
    def task(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        """A progress bar: yields `advance(n)`."""
        yield lambda n: None
