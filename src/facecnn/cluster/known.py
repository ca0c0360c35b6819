"""`facecnn cluster --gallery team.db`: the faces a gallery knows are named before the rest
are clustered. Each face in no named or dismissed cluster is identified against the gallery (by its
metric: faces/namers.py) at the gallery's threshold (its calibrated one, where enroll calibrated
it), and a person's faces go to the cluster that is that person: the one named so before, else the
unnamed cluster most of whose faces are theirs (named now, keeping its number), else a new one.
Faces nobody matches are left to the clustering, and so is a face taken away from the person it
matches (`gallery forget` or `move` with --clusters)."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import numpy as np

from facecnn.cluster.assign import NAME
from facecnn.cluster.cache import UNSORTED, LibraryCache
from facecnn.faces.names import UNKNOWN
from facecnn.faces.threshold import resolve_threshold

if TYPE_CHECKING:
    from facecnn.faces.embedders import Embedder
    from facecnn.faces.gallery import Gallery


def name_known(cache: LibraryCache, gallery: Gallery, embedder: Embedder) -> int:
    """Put the faces `gallery` knows into their people's clusters; returns how many."""
    from facecnn.faces.namers import namer_for

    decided = set(cache.names) | set(cache.dismissed)
    rows = np.array([i for i, c in enumerate(cache.clusters) if c not in decided], np.int64)
    namer = namer_for(gallery)
    if len(rows) == 0 or len(namer) == 0:
        return 0
    threshold = resolve_threshold(None, gallery, embedder).value
    found: dict[str, list[int]] = {}
    for row, match in zip(rows, namer.identify(cache.vectors[rows], threshold)):
        if match.name != UNKNOWN and match.name not in cache.not_of.get(cache.face_key(row), ()):
            found.setdefault(match.name, []).append(int(row))
    for person, faces in sorted(found.items()):
        home = _home(cache, person, faces)
        for row in faces:
            cache.clusters[row] = home
    return sum(len(faces) for faces in found.values())


def _home(cache: LibraryCache, person: str, faces: list[int]) -> str:
    """The cluster that is `person` (see the module's docstring), named so."""
    home = cache.cluster_named(person)
    if home is not None:
        return home
    sizes = Counter(cache.clusters)
    held = Counter(cache.clusters[row] for row in faces)
    held.pop(UNSORTED, None)
    best = max(held, key=lambda c: (held[c], c), default=None)
    if best is not None and best not in cache.names and 2 * held[best] > sizes[best]:
        home = best
    else:
        home = NAME.format(cache.next_cluster)
        cache.next_cluster += 1
    cache.names[home] = person
    return home
