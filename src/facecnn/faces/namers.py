"""What names faces against a gallery, by the gallery's metric (gallery/search.py): its FAISS
index for "euclidean", each person's mean direction for the others. Both follow the
gallery live (`sync` before each answer), so writes from any process count at once."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Protocol

import numpy as np

from facecnn.faces.gallery.search import (
    BY_DIRECTION,
    Match,
    directions,
    lead_weight,
    nearest_person,
    unit,
)
from facecnn.faces.threshold import check_threshold

if TYPE_CHECKING:
    from facecnn.faces.gallery import Gallery
    from facecnn.faces.index import GalleryIndex


class Namer(Protocol):
    def sync(self) -> Namer: ...

    def __len__(self) -> int: ...

    def identify(self, queries: np.ndarray, threshold: float) -> list[Match]: ...


class PersonDirections:
    """Each enrolled person's mean direction, read again from the gallery whenever its change
    counter has moved: people are few next to faces, and writes rare next to answers, so a
    whole read per write costs less than keeping per-person sums in step with removals."""

    def __init__(self, gallery: Gallery) -> None:
        self.gallery, self.length, self.metric = gallery, gallery.length, gallery.metric
        self.version: int | None = None
        self._people: tuple[list[str], np.ndarray] = ([], np.zeros((0, gallery.dim)))
        self._lock = threading.Lock()

    def sync(self) -> PersonDirections:
        with self._lock:
            version = self.gallery.version()  # read first: a write after it is seen next time
            if version != self.version:
                refs, owners, names = self.gallery.vectors()
                self._people = names, directions(refs, owners, len(names), self.length)
                self.version = version
        return self

    def __len__(self) -> int:
        return len(self._people[0])

    def identify(self, queries: np.ndarray, threshold: float) -> list[Match]:
        names, dirs = self._people  # one consistent pair, even while another thread syncs
        return nearest_person(unit(queries, self.length), dirs, names,
                              check_threshold(threshold), lead_weight(self.metric, len(names)))


def namer_for(gallery: Gallery, index: GalleryIndex | None = None) -> Namer:
    """The live namer of `gallery`'s metric, current now (`index`: its FAISS index, where the
    caller holds one already)."""
    if gallery.metric in BY_DIRECTION:
        return PersonDirections(gallery).sync()
    if index is not None:
        return index
    from facecnn.faces.index import GalleryIndex

    return GalleryIndex.for_gallery(gallery, must_save=False)
