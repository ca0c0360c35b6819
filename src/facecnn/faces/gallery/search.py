"""Naming query faces by brute force over a gallery's vectors, by the gallery's metric.

"mean_direction_lead" (galleries made now): as "mean_direction", and in a gallery of
LEAD_MIN_PEOPLE or more a face is named when its distance to the nearest person is within the
threshold plus LEAD_WEIGHT of its lead over the next nearest person (`decision_distance`). A
stranger tends to come about as near to several people as to the nearest; a known face stands
out from the rest even when its photo took it far from its person (hard light, a small crop,
one enrolled photo). With 40 lfw_dev people enrolled from 1 / 2 / 5 photos, calibrated for 1%
of strangers, 0.856 / 0.935 / 0.953 of their other photos were named and 1.2 / 0.6 / 0.6% of
strangers' faces, against 0.836 / 0.925 / 0.956 and 1.5 / 1.0 / 1.2% by the distance alone
(benchmarks/open_set.py; docs/recognition.md).
"mean_direction" (galleries from before the lead): every vector is scaled to one length (the
embedder's typical length, so that distances keep the scale of its default threshold: dlib's
0.6), each person is the mean direction of their faces at that length, and a face's distance
to them is the Euclidean one (length * sqrt(2 - 2 cos)). The length of a dlib vector varies
from face to face with little to do with who it is, and averaging a person's faces smooths
out each photo's accident: with 40 lfw_dev people enrolled from 5 photos each, their other
photos were named 0.953 of the time against 0.922 by "euclidean", and strangers named 1.2%
against 2.8% (benchmarks/open_set.py; docs/recognition.md).
"euclidean" (older galleries, whose thresholds were chosen for it): the raw distance to the
nearest enrolled face; faces/index.py answers the same, bit for bit, up to its exact limit."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from facecnn.errors import FacecnnError
from facecnn.faces.names import UNKNOWN

_BLOCK_ELEMS = 1 << 22  # distance matrices are built in blocks of at most this many entries
METRICS = ("mean_direction_lead", "mean_direction", "euclidean")
BY_DIRECTION = ("mean_direction_lead", "mean_direction")  # people as mean directions
# how much of its lead over the next person a face's distance is forgiven: at the decision
# value naming 1% of strangers' faces, 0.5 named the most known faces or within 0.001 of the
# most, against 0, 0.25 and 1.0, on lfw_dev photos (40 people x 1, 2, 5: 0.832, 0.941, 0.965
# against 0.786, 0.927, 0.956 by the distance alone) and five crop layouts (112 px aligned:
# 0.975 against 0.965; shadowed: 0.661 against 0.620); benchmarks/lead.py
LEAD_WEIGHT = 0.5
# with fewer people the runner-up says little about how near strangers come to people, and
# thresholds calibrated for 1% named more strangers than by the distance alone: on lfw_dev,
# 2 / 5 / 10 people from 1 photo each, 3.1 / 2.3 / 1.8% against 1.1 / 1.7 / 1.5%, for no more
# known faces; at 20, 1.2% against 1.5% (as many known named); at 40 and 80, fewer strangers
# and 1.1-3.1 points more known faces (benchmarks/lead.py)
LEAD_MIN_PEOPLE = 20


@dataclass
class Match:
    """One query's answer; `name` is UNKNOWN when the nearest face is beyond the threshold."""

    name: str
    distance: float
    score: float


def match(name: str, distance: float, threshold: float, decision: float | None = None) -> Match:
    """The answer for a query whose nearest face (of `name`) is `distance` away, judged by
    `decision` (default: the distance itself; `decision_distance`): UNKNOWN beyond the
    threshold; score = 1 - decision / (2 * threshold), so >= 0.5 exactly when accepted."""
    decision = distance if decision is None else decision
    accepted = decision <= threshold
    score = round(max(0.0, 1.0 - decision / (2 * threshold)), 4)
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
    if check_metric(metric) in BY_DIRECTION:
        return nearest_person(unit(queries, length), directions(refs, owners, len(names), length),
                              names, threshold, lead_weight(metric, len(names)))
    return nearest_of(queries, refs, owners, names, threshold)


def lead_weight(metric: str, people: int) -> float:
    """How much of a face's lead over the next person a gallery of `metric` and `people`
    forgives (module docstring)."""
    return LEAD_WEIGHT if metric == "mean_direction_lead" and people >= LEAD_MIN_PEOPLE else 0.0


def decision_distance(nearest: np.ndarray, next_nearest: np.ndarray,
                      weight: float) -> np.ndarray:
    """What the threshold judges: the distance to the nearest person, less `weight` of
    its lead over the next one (none where there is no next one: next_nearest inf)."""
    nearest, next_nearest = np.asarray(nearest, np.float64), np.asarray(next_nearest, np.float64)
    lead = np.zeros_like(nearest)
    known = np.isfinite(nearest) & np.isfinite(next_nearest)
    lead[known] = np.maximum(next_nearest[known] - nearest[known], 0.0)
    return nearest - weight * lead


def judge(queries: np.ndarray, people: np.ndarray, weight: float = 0.0
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each query (at the people's length): its nearest row of `people` (one per person),
    the distance to it, and the `decision_distance` the threshold judges."""
    best, nearest, decision = (np.empty(len(queries), np.int64), np.empty(len(queries)),
                               np.empty(len(queries)))
    for rows in blocks(len(queries), len(people)):
        d = distances(queries[rows], people)
        best[rows] = d.argmin(1)
        nearest[rows] = pair_distances(queries[rows], people[best[rows]])
        d[np.arange(d.shape[0]), best[rows]] = np.inf
        runner_up = d.min(1) if len(people) > 1 else np.full(d.shape[0], np.inf)
        decision[rows] = decision_distance(nearest[rows], runner_up, weight)
    return best, nearest, decision


def nearest_person(queries: np.ndarray, people: np.ndarray, names: list[str], threshold: float,
                   weight: float = 0.0) -> list[Match]:
    """Each query's Match to its nearest row of `people` (one row per name), judged by
    `decision_distance`."""
    return [match(names[j], float(dist), threshold, float(judged))
            for j, dist, judged in zip(*judge(queries, people, weight))]


def nearest_of(queries: np.ndarray, refs: np.ndarray, owners: np.ndarray, names: list[str],
               threshold: float) -> list[Match]:
    """Each query's Match to its nearest row of `refs`."""
    matches = []
    for rows in blocks(len(queries), len(refs)):
        best = distances(queries[rows], refs).argmin(1)
        for j, dist in zip(best, pair_distances(queries[rows], refs[best])):
            matches.append(match(names[owners[j]], dist, threshold))
    return matches
