"""One registry for every kind of choice a user names (detectors, embedders, ...).

A plug-in registers itself with a decorator where it is defined, so adding one is one new
file; the CLI's help and every "unknown name" error are read from here, with a suggestion
for a misspelt name.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Callable, Generic, Iterator, TypeVar

from facecnn.errors import FacecnnError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    value: T
    help: str


class Registry(Generic[T]):
    """`kind` names the choice in messages ("detector"); entries keep registration order."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, *, help: str = "") -> Callable[[T], T]:
        """Decorator: register the decorated class or function under `name`."""

        def wrap(value: T) -> T:
            self.add(name, value, help)
            return value

        return wrap

    def add(self, name: str, value: T, help: str = "") -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = Entry(name, value, help)

    def get(self, name: str) -> T:
        """The entry's value, or a one-line error naming the valid choices."""
        entry = self._entries.get(name)
        if entry is None:
            raise FacecnnError(self.unknown(name))
        return entry.value

    def unknown(self, name: str) -> str:
        close = difflib.get_close_matches(str(name), list(self._entries), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"unknown {self.kind} {name!r}; {hint}choose one of: {', '.join(self._entries)}"

    def names(self) -> list[str]:
        return list(self._entries)

    def entries(self) -> Iterator[Entry[T]]:
        return iter(self._entries.values())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def describe(self) -> str:
        """'a (what a is), b (what b is)': for --help."""
        return ", ".join(f"{e.name} ({e.help})" if e.help else e.name for e in self.entries())
