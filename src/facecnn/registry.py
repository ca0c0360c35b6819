"""One registry for every kind of choice a user names (detectors, embedders, ...).

A plug-in registers itself with a decorator where it is defined, so adding one is one new
file; the CLI's help and every "unknown name" error are read from here, with a suggestion
for a misspelt name.

Registries stay torch-free, so `--help` lists them instantly: a module that registers choices
imports torch only where a choice is built, and an entry whose code needs torch at import (an
objective's nn.Module) registers a `Lazy` reference to it instead.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from importlib import import_module
from typing import Any, Callable, Generic, Iterable, Iterator, TypeVar

from facecnn.errors import FacecnnError

T = TypeVar("T")


def suggest(name: str, choices: Iterable[str]) -> str:
    """The hint "did you mean 'x'? " for the closest of `choices`, or nothing."""
    close = difflib.get_close_matches(str(name), list(choices), n=1)
    return f"did you mean {close[0]!r}? " if close else ""


@dataclass(frozen=True)
class Lazy:
    """A value named 'module:attribute', imported when the entry is first used."""

    target: str

    def load(self) -> Any:
        module, _, attribute = self.target.partition(":")
        return getattr(import_module(module), attribute)


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    value: T | Lazy
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

    def add(self, name: str, value: T | Lazy, help: str = "") -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = Entry(name, value, help)

    def get(self, name: str) -> T:
        """The entry's value, or a one-line error naming the valid choices."""
        entry = self._entries.get(name)
        if entry is None:
            raise FacecnnError(self.unknown(name))
        return entry.value.load() if isinstance(entry.value, Lazy) else entry.value

    __getitem__ = get

    def unknown(self, name: str) -> str:
        return (f"unknown {self.kind} {name!r}; {suggest(name, self._entries)}choose one of: "
                f"{', '.join(self._entries)}")

    def names(self) -> list[str]:
        return list(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def entries(self) -> Iterator[Entry[T]]:
        return iter(self._entries.values())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def describe(self) -> str:
        """'a (what a is), b (what b is)': for --help."""
        return ", ".join(f"{e.name} ({e.help})" if e.help else e.name for e in self.entries())
