"""The clusters as a user reads them: biggest first, "unsorted" last, each face's score (how
surely it belongs) and each cluster's cohesion (how much it looks like one person), and the
clusters.json document: `[{"cluster", "name", "folder", "sheet", "dismissed", "faces":
[{"file", "box", "score", "quality"}], "size", "cohesion"}]`. "cluster" is its lasting number
(cluster_007), "name" the person it was named as (null: nobody yet); a named cluster's folder
and contact sheet are the person's (dora/, dora.png), unless that name is taken in the folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from facecnn.cluster.cache import UNSORTED, LibraryCache
from facecnn.faces.result import json_box, json_number

UNSORTED_NAME = "unsorted"
COHESION_SAMPLE = 500  # faces a cluster's cohesion is measured on (all pairs of them)


@dataclass
class Group:
    """One cluster's faces (rows of the cache, best first), their scores: 1 - (distance to
    the cluster's mean vector / threshold), clipped to [0, 1]; and its cohesion: the share of
    its pairs of faces closer than the threshold (1: everyone matches everyone; a low one is
    two look-alikes merged). Unsorted faces have score 0 and no cohesion."""

    cluster: str
    rows: np.ndarray
    scores: np.ndarray
    cohesion: float | None
    person: str | None = None
    dismissed: bool = False
    folder: str = ""

    @property
    def size(self) -> int:
        return len(self.rows)

    @property
    def sheet(self) -> str:
        return f"{self.folder}.png"


def _cohesion(vectors: np.ndarray, threshold: float) -> float:
    sample = vectors[np.linspace(0, len(vectors) - 1, min(len(vectors), COHESION_SAMPLE))
                     .astype(int)]
    if len(sample) < 2:
        return 1.0
    squared = (sample ** 2).sum(1)
    distances = np.sqrt(np.maximum(squared[:, None] + squared[None] - 2 * sample @ sample.T, 0))
    upper = np.triu_indices(len(sample), 1)
    return float(np.mean(distances[upper] < threshold))


def make_groups(cache: LibraryCache, threshold: float,
                reserved: frozenset[str] = frozenset()) -> list[Group]:
    """Every cluster of the cache, biggest first (then by name), and the unsorted faces last
    (if any), each with its folder: a named cluster's is the person's name unless another
    cluster, the unsorted faces or one of the `reserved` files have it (in any case)."""
    by_name: dict[str, list[int]] = {}
    for row, name in enumerate(cache.clusters):
        by_name.setdefault(name, []).append(row)
    groups = []
    for name, rows in by_name.items():
        rows = np.asarray(rows, np.int64)
        if name == UNSORTED:
            continue
        vectors = cache.vectors[rows]
        distances = np.linalg.norm(vectors - vectors.mean(0), axis=1)
        scores = np.clip(1.0 - distances / threshold, 0.0, 1.0)
        order = np.argsort(-scores, kind="stable")
        groups.append(Group(name, rows[order], scores[order], _cohesion(vectors, threshold),
                            cache.names.get(name), name in cache.dismissed))
    groups.sort(key=lambda g: (-g.size, g.cluster))
    if UNSORTED in by_name:
        rows = np.asarray(by_name[UNSORTED], np.int64)
        groups.append(Group(UNSORTED_NAME, rows, np.zeros(len(rows)), None))
    taken = {n.casefold() for n in (*by_name, UNSORTED_NAME, *reserved)}
    for group in groups:
        person = group.person or ""
        free = person and not person.startswith(".") and person.casefold() not in taken
        group.folder = person if free else group.cluster
    return groups


def document(groups: list[Group], cache: LibraryCache) -> list[dict[str, Any]]:
    """clusters.json: boxes are (x1, y1, x2, y2) in the photo's pixels."""
    return [{"cluster": g.cluster, "name": g.person, "folder": g.folder, "sheet": g.sheet,
             "dismissed": g.dismissed,
             "faces": [{"file": cache.files[row],
                        "box": json_box(cache.boxes[row]), "score": json_number(s),
                        "quality": json_number(cache.qualities[row])}
                       for row, s in zip(g.rows, g.scores)],
             "size": g.size, "cohesion": json_number(g.cohesion)}
            for g in groups]
