"""Naming query faces by brute force over a gallery's vectors: the exact answer every search
index is held to (faces/index.py answers the same, bit for bit, up to its exact limit)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from facecnn.errors import FacecnnError
from facecnn.faces.names import UNKNOWN

_BLOCK_ELEMS = 1 << 22  # distance matrices are built in blocks of at most this many entries
MODES = ("nearest", "mean")


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


def identify(queries: np.ndarray, refs: np.ndarray, owners: np.ndarray, names: list[str],
             threshold: float, mode: str = "nearest") -> list[Match]:
    """Each query's Match against `refs` (row i is names[owners[i]]): mode "nearest" compares
    with every vector, "mean" with each person's mean vector."""
    if mode not in MODES:
        raise FacecnnError(f"unknown identify mode {mode!r}; use 'nearest' or 'mean'")
    if mode == "mean":
        sums = np.zeros((len(names), refs.shape[1]), dtype=np.float64)
        np.add.at(sums, owners, refs)
        refs = sums / np.bincount(owners)[:, None]
        owners = np.arange(len(names))
    matches = []
    for rows in blocks(len(queries), len(refs)):
        best = distances(queries[rows], refs).argmin(1)
        for j, dist in zip(best, pair_distances(queries[rows], refs[best])):
            matches.append(match(names[owners[j]], dist, threshold))
    return matches
