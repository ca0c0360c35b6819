"""Clusters that last: the first run clusters every face; later runs put each new face into
the existing cluster its nearest clustered faces vote for (within the threshold), and cluster
only what is left (new faces no cluster claims, and the faces unsorted so far) into new
clusters. Existing clusters keep their names and faces; new ones get the next free number,
so `cluster_007` means the same person run after run.
"""

from __future__ import annotations

import numpy as np

from facecnn.cluster.algorithms import Settings, cluster_vectors
from facecnn.cluster.cache import UNSORTED, LibraryCache
from facecnn.cluster.graph import knn

NAME = "cluster_{:03d}"


def vote(vectors: np.ndarray, names: list[str], queries: np.ndarray,
         settings: Settings) -> list[str]:
    """For each query vector, the name its clustered neighbours within the threshold weigh
    most for (each by closeness, 1 - d / t), or UNSORTED when none is that close."""
    if len(vectors) == 0 or len(queries) == 0:
        return [UNSORTED] * len(queries)
    distances, indices = knn(vectors, settings.k, queries)
    chosen = []
    for row, found in zip(distances, indices):
        weights: dict[str, float] = {}
        for d, j in zip(row, found):
            if j >= 0 and d < settings.threshold:
                weights[names[j]] = weights.get(names[j], 0.0) + 1.0 - d / settings.threshold
        chosen.append(max(weights, key=weights.get) if weights else UNSORTED)
    return chosen


def assign(vectors: np.ndarray, clusters: list[str], new: np.ndarray, next_cluster: int,
           algorithm: str, settings: Settings) -> tuple[list[str], int]:
    """(cluster name per face, next free number): faces already in a cluster stay there; the
    `new` ones (row indices) join an existing cluster by `vote`, and the rest of the unsorted
    faces are clustered anew with `algorithm`, its groups named from `next_cluster` on
    (biggest first). With no new faces nothing changes."""
    clusters = list(clusters)
    placed = np.array([c != UNSORTED for c in clusters], bool)
    if len(new) == 0 and placed.any():
        return clusters, next_cluster
    known = np.flatnonzero(placed)
    for i, name in zip(new, vote(vectors[known], [clusters[i] for i in known], vectors[new],
                                 settings)):
        clusters[i] = name
    loose = np.array([i for i, c in enumerate(clusters) if c == UNSORTED], np.int64)
    labels = cluster_vectors(vectors[loose], algorithm, settings) if len(loose) else []
    for i, label in zip(loose, labels):
        if label >= 0:
            clusters[i] = NAME.format(next_cluster + int(label))
    return clusters, next_cluster + (int(max(labels)) + 1 if len(labels) else 0)


def assign_new(cache: LibraryCache, new: np.ndarray, algorithm: str, settings: Settings, *,
               min_quality: float = 0.0, gallery_decides: bool = False) -> None:
    """`assign` the `new` faces (rows) among the clustered ones: a named cluster grows by the
    same vote as an unnamed one, unless a gallery decided who its people are in this run
    (--gallery: a face the gallery did not match at its own threshold is none of them, so
    it is not voted into their clusters). Unsorted faces under `min_quality` stay unsorted:
    they neither join a cluster nor start one."""
    closed = set(cache.names) if gallery_decides else set()
    poor = cache.below(min_quality)
    free = np.array([i for i, c in enumerate(cache.clusters) if c not in closed
                     and not (c == UNSORTED and poor[i])], np.int64)
    clusters, cache.next_cluster = assign(
        cache.vectors[free], [cache.clusters[i] for i in free],
        np.flatnonzero(np.isin(free, new)), cache.next_cluster, algorithm, settings)
    for row, cluster in zip(free, clusters):
        cache.clusters[row] = cluster
