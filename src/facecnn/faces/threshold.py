"""One rule for the distance threshold, used by `recognize`, `verify`, the server and the
Python API alike: the caller's value, else the gallery's stored one, else the embedder's
default; the answer says which it was."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from facecnn.errors import FacecnnError

if TYPE_CHECKING:
    from facecnn.faces.embedders import Embedder


class StoresThreshold(Protocol):
    """What the rule reads of a gallery: its stored threshold and how it was set."""

    @property
    def threshold(self) -> float | None: ...

    @property
    def threshold_source(self) -> str: ...


@dataclass(frozen=True)
class Threshold:
    """A threshold and where it came from: `given` (by the caller), the gallery's stored
    `calibrated`, `manual` or `default` one, or `embedder` (its default, with no gallery)."""

    value: float
    source: str

    def describe(self) -> str:
        return f"threshold {self.value:.4f} ({self.source})"


def check_threshold(value: float) -> float:
    if not (np.isfinite(value) and value > 0):
        raise FacecnnError(f"threshold must be a positive number, got {value!r}")
    return float(value)


def resolve_threshold(given: float | None, gallery: StoresThreshold | None,
                      embedder: Embedder) -> Threshold:
    """The threshold an answer uses now (the gallery's is read fresh: an enroll in another
    process may have calibrated it since)."""
    if given is not None:
        return Threshold(check_threshold(given), "given")
    stored = gallery.threshold if gallery is not None else None
    if stored is not None:
        return Threshold(stored, gallery.threshold_source)
    return Threshold(embedder.default_threshold, "embedder")
