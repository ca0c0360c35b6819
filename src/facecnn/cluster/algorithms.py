"""Clustering algorithms by name: face vectors and the embedder's distance threshold -> one
label per face, -1 for faces left unsorted. A new algorithm is one registered function.

Every algorithm sees the faces only through their k nearest neighbours (graph.py), and groups
smaller than `min_size` are never forced into a person: they stay unsorted (-1). Labels are
renumbered 0, 1, ... from the biggest group down.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Callable

import numpy as np

from facecnn.cluster.graph import DEFAULT_K, knn, radius_graph
from facecnn.registry import Registry


@dataclass(frozen=True)
class Settings:
    """What every algorithm is given: `threshold`, the embedder's distance under which two
    faces are one person; `min_size`, the smallest group kept; `k`, neighbours per face."""

    threshold: float
    min_size: int = 3
    k: int = DEFAULT_K


Algorithm = Callable[[np.ndarray, Settings], np.ndarray]
ALGORITHMS: Registry[Algorithm] = Registry("clustering algorithm")
# The default by benchmarks/cluster.py, which reports every algorithm on every set
DEFAULT_ALGORITHM = "chinese_whispers"
# A face's vote for its own label in chinese whispers: next to nothing, so it takes its
# neighbours' (at the weight of an edge, 1.0, faces kept their first labels: AT&T in 45 groups)
SELF_WEIGHT = 1e-3
# The density methods link faces closer than this share of the threshold: a chain of faces
# each within the embedder's 0.6 of the next joins different people (DBSCAN at the full
# threshold merged most AT&T people into a few groups)
DENSITY_SCALE = 0.75


def cluster_vectors(vectors: np.ndarray, algorithm: str, settings: Settings) -> np.ndarray:
    """Labels of `vectors` (N, dim) by the named algorithm: 0 for the biggest group, -1 for the
    faces in groups smaller than `settings.min_size`."""
    run = ALGORITHMS.get(algorithm)
    if len(vectors) == 0:
        return np.zeros(0, np.int64)
    return by_size(run(np.asarray(vectors, np.float32), settings), settings.min_size)


def by_size(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Groups renumbered from the biggest (ties: the one met first), -1 for small ones."""
    counts = Counter(int(label) for label in labels if label >= 0)
    first = {}
    for position, label in enumerate(labels):
        first.setdefault(int(label), position)
    kept = sorted((label for label, n in counts.items() if n >= min_size),
                  key=lambda label: (-counts[label], first[label]))
    new = {label: rank for rank, label in enumerate(kept)}
    return np.array([new.get(int(label), -1) for label in labels], np.int64)


@ALGORITHMS.register("chinese_whispers", help="graph: chinese whispers (dlib's C++) on the "
                     "k-nearest-neighbour graph of faces closer than the threshold")
def chinese_whispers(vectors: np.ndarray, settings: Settings) -> np.ndarray:
    """dlib's chinese whispers on FAISS's kNN graph, edges weighted by closeness (1 - d / t),
    so a face follows its nearest look-alikes rather than the most numerous ones under the
    threshold: unweighted, the embedder's 0.6 chains the 40 AT&T people into 22 groups.

    dlib's `chinese_whispers_clustering(vectors, t)` links all n^2 pairs in Python-side lists;
    its `chinese_whispers(edges)` runs the same C++ on the edges FAISS finds."""
    from facecnn.faces import dlib_models

    dlib = dlib_models.import_dlib()
    distances, indices = knn(vectors, settings.k)
    edges = [(i, i, SELF_WEIGHT) for i in range(len(vectors))]  # every face a vertex
    near = (indices >= 0) & (distances < settings.threshold)
    for i, j, d in zip(*np.nonzero(near), distances[near]):
        edges.append((int(i), int(indices[i, j]), 1.0 - float(d) / settings.threshold))
    return np.asarray(dlib.chinese_whispers(edges), np.int64)


@ALGORITHMS.register("hdbscan", help="density: scikit-learn's HDBSCAN on the kNN distances "
                     "under the threshold (clusters of any density)")
def hdbscan(vectors: np.ndarray, settings: Settings) -> np.ndarray:
    """HDBSCAN over the sparse kNN graph: faces farther apart than DENSITY_SCALE x the
    threshold are never linked directly. scikit-learn's sparse HDBSCAN wants one connected
    graph, so its separate parts are joined by a chain of edges far beyond the threshold,
    where every part splits from the rest as it would with all n^2 distances given."""
    from scipy import sparse
    from scipy.sparse.csgraph import connected_components
    from sklearn.cluster import HDBSCAN

    graph = radius_graph(vectors, settings.threshold * DENSITY_SCALE, settings.k)
    count, parts = connected_components(graph, directed=False)
    if count > 1:
        firsts = np.unique(parts, return_index=True)[1]
        far = np.full(count - 1, 4.0 * settings.threshold)
        chain = sparse.coo_matrix((far, (firsts[:-1], firsts[1:])), shape=graph.shape)
        graph = (graph + chain + chain.T).tocsr()
    return HDBSCAN(min_cluster_size=max(settings.min_size, 2), min_samples=1,
                   metric="precomputed", copy=True).fit_predict(graph)


@ALGORITHMS.register("dbscan", help="density: scikit-learn's DBSCAN (Immich's method) "
                     "on the kNN distances under the threshold")
def dbscan(vectors: np.ndarray, settings: Settings) -> np.ndarray:
    """DBSCAN linking faces within DENSITY_SCALE x the threshold, `min_size` faces making a
    core face."""
    from sklearn.cluster import DBSCAN

    eps = settings.threshold * DENSITY_SCALE
    return DBSCAN(eps=eps, min_samples=settings.min_size,
                  metric="precomputed").fit_predict(radius_graph(vectors, eps, settings.k))
