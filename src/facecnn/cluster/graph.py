"""Nearest neighbours of face vectors with FAISS: the k-nearest-neighbour graph both clustering
methods are built on, so neither ever computes all n^2 distances (100,000 faces would be 10^10).

Exact search (`IndexFlatL2`, multithreaded BLAS) stays fast well past 100,000 128-D vectors on
a laptop's cores; distances are Euclidean, as every embedder's threshold is.
"""

from __future__ import annotations

import numpy as np

DEFAULT_K = 20  # neighbours per face: more than the faces of one person in most small libraries


def knn(vectors: np.ndarray, k: int = DEFAULT_K,
        queries: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(distances, indices), each (len(queries), k), nearest first: the k nearest of `vectors`
    to each query (default: to each vector, itself excluded). Missing neighbours (k >= n) have
    index -1 and distance inf."""
    import faiss

    base = np.ascontiguousarray(vectors, dtype=np.float32)
    index = faiss.IndexFlatL2(base.shape[1])
    index.add(base)
    own = queries is None
    found = np.ascontiguousarray(base if own else queries, dtype=np.float32)
    wanted = min(k + own, len(base))
    squared, indices = index.search(found, wanted)
    if own:  # drop each vector itself (the nearest, unless a duplicate ties with it)
        rows = np.arange(len(found))[:, None]
        keep = indices != rows
        keep[keep.sum(1) > wanted - 1, -1] = False  # no self found: drop the farthest instead
        squared = squared[keep].reshape(len(found), wanted - 1)
        indices = indices[keep].reshape(len(found), wanted - 1)
    distances = np.sqrt(np.maximum(squared, 0))
    distances[indices < 0] = np.inf
    pad = k - indices.shape[1]
    if pad > 0:
        distances = np.pad(distances, ((0, 0), (0, pad)), constant_values=np.inf)
        indices = np.pad(indices, ((0, 0), (0, pad)), constant_values=-1)
    return distances, indices


def radius_graph(vectors: np.ndarray, threshold: float, k: int = DEFAULT_K):
    """The symmetric sparse (CSR) matrix of the distances between faces closer than
    `threshold` among each one's k nearest: what the density methods take as 'precomputed'.
    Stored zeros would read as missing edges, so a distance of 0 is kept as a tiny one."""
    from scipy import sparse

    distances, indices = knn(vectors, k)
    rows = np.repeat(np.arange(len(vectors)), indices.shape[1])
    near = (indices.ravel() >= 0) & (distances.ravel() < threshold)
    values = np.maximum(distances.ravel()[near], 1e-9)
    graph = sparse.coo_matrix((values, (rows[near], indices.ravel()[near])),
                              shape=(len(vectors),) * 2).tocsr()
    return graph.maximum(graph.T).tocsr()
