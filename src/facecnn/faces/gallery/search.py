"""Naming query faces by brute force over a gallery's vectors, by the gallery's metric.

"mean_direction" (galleries made now): every vector is scaled to one length (the embedder's
typical length, so that distances keep the scale of its default threshold: dlib's 0.6), each
person is the mean direction of their faces at that length, and a face's distance to them is
the Euclidean one (length * sqrt(2 - 2 cos)). The length of a dlib vector varies from face
to face with little to do with who it is, and averaging a person's faces smooths out each
photo's accident: with 40 lfw_dev people enrolled from 5 photos each, their other photos were
named 0.953 of the time against 0.922 by "euclidean", and strangers named 1.2% against 2.8%
(benchmarks/open_set.py; docs/recognition.md).
"euclidean" (older galleries, whose thresholds were chosen for it): the raw distance to the
nearest enrolled face; faces/index.py answers the same, bit for bit, up to its exact limit."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from facecnn.errors import FacecnnError
from facecnn.faces.names import UNKNOWN

_BLOCK_ELEMS = 1 << 22  # distance matrices are built in blocks of at most this many entries
METRICS = ("mean_direction", "euclidean")


@dataclass
class Match:
    """One query's answer; `name` is UNKNOWN when the nearest face is beyond the threshold."""

    name: str
    distance: float
    score: float


def match(name: str, distance: float, threshold: float) -> Match:
    """The answer for a query whose nearest face (of `name`) is `distance` away: UNKNOWN beyond
    the threshold; score = 1 - distance / (2 * threshold), so >= 0.5 exactly when accepted."""
    accepted = distance <= threshold
    score = round(max(0.0, 1.0 - distance / (2 * threshold)), 4)
    return Match(name if accepted else UNKNOWN, float(distance),
                 score if accepted else min(score, 0.4999))


def distances(queries: np.ndarray, refs: np.ndarray) -> np.ndarray:
    """Euclidean distances (float64, so an enrolled vector is at distance ~0 from itself)."""
    q, r = queries.astype(np.float64), refs.astype(np.float64)
    d2 = (q * q).sum(1)[:, None] + (r * r).sum(1)[None, :] - 2.0 * q @ r.T
    return np.sqrt(np.clip(d2, 0.0, None))


def pair_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distance between a[i] and b[i], in float64 from the differences, row by row: a
    pair's distance never depends on which other faces were searched with it (the matrix
    product in `distances` does, by an ulp), so every search reports the same number."""
    diff = a.astype(np.float64) - b.astype(np.float64)
    return np.sqrt(np.square(diff).sum(1))


def blocks(rows: int, cols: int) -> Iterator[slice]:
    """Row slices that keep a (rows, cols) distance matrix within memory bounds."""
    step = max(1, _BLOCK_ELEMS // max(cols, 1))
    for start in range(0, rows, step):
        yield slice(start, min(start + step, rows))


def unit(vectors: np.ndarray, length: float = 1.0) -> np.ndarray:
    """Rows scaled to `length` (float64)."""
    v = np.asarray(vectors, dtype=np.float64)
    return length * v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def directions(refs: np.ndarray, owners: np.ndarray, people: int,
               length: float = 1.0) -> np.ndarray:
    """(people, dim): each person's mean direction at `length`."""
    sums = np.zeros((people, refs.shape[1]), dtype=np.float64)
    np.add.at(sums, owners, unit(refs))
    return unit(sums, length)


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise FacecnnError(f"unknown gallery metric {metric!r}; use one of {METRICS}")
    return metric


def identify(queries: np.ndarray, refs: np.ndarray, owners: np.ndarray, names: list[str],
             threshold: float, metric: str = "euclidean", length: float = 1.0) -> list[Match]:
    """Each query's Match against `refs` (row i is names[owners[i]]) by `metric` (see the
    module's docstring; `length`: the one mean_direction scales vectors to)."""
    if check_metric(metric) == "mean_direction":
        return nearest_of(unit(queries, length), directions(refs, owners, len(names), length),
                          np.arange(len(names)), names, threshold)
    return nearest_of(queries, refs, owners, names, threshold)


def nearest_of(queries: np.ndarray, refs: np.ndarray, owners: np.ndarray, names: list[str],
               threshold: float) -> list[Match]:
    """Each query's Match to its nearest row of `refs`."""
    matches = []
    for rows in blocks(len(queries), len(refs)):
        best = distances(queries[rows], refs).argmin(1)
        for j, dist in zip(best, pair_distances(queries[rows], refs[best])):
            matches.append(match(names[owners[j]], dist, threshold))
    return matches
