"""A gallery's own threshold: leave-one-out genuine and impostor distances over its enrolled
vectors, by the gallery's metric (search.py), judged by faces/calibration.py's rules (and a
cohort of strangers where one ships)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facecnn.errors import FacecnnError
from facecnn.faces.calibration import StrangerModel, calibrate_threshold, open_set_threshold
from facecnn.faces.gallery.search import (
    BY_DIRECTION,
    blocks,
    check_metric,
    decision_distance,
    directions,
    distances,
    lead_weight,
    pair_distances,
    unit,
)


def distinct(vecs: np.ndarray, owners: np.ndarray,
             names: list[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Each (person, vector) once; a vector enrolled under two people is nobody's (it cannot
    tell them apart, and would be an impostor at distance 0)."""
    if len(vecs) == 0:
        return vecs, owners, names
    _, first, inverse = np.unique(vecs, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    owner_sets = np.zeros(len(first), dtype=np.int64) - 1
    clash = np.zeros(len(first), dtype=bool)
    for row, group in enumerate(inverse):
        if owner_sets[group] == -1:
            owner_sets[group] = owners[row]
        elif owner_sets[group] != owners[row]:
            clash[group] = True
    keep = np.sort(first[~clash])
    return vecs[keep], owners[keep], names


def _summary(x: np.ndarray) -> dict:
    return {k: round(float(f(x)), 4) for k, f in
            (("min", np.min), ("median", np.median), ("mean", np.mean), ("max", np.max))}


def person_distances(points: np.ndarray, vecs: np.ndarray, owners: np.ndarray,
                     metric: str, length: float = 1.0) -> np.ndarray:
    """(len(points), people enrolled): each point's distance to each person by `metric`."""
    present = np.unique(owners)
    if metric in BY_DIRECTION:
        return distances(unit(points, length),
                         directions(vecs, owners, present.max() + 1, length)[present])
    d = distances(points, vecs)
    return np.stack([d[:, owners == p].min(1) for p in present], 1)


# the most faces whose leave-one-out distances are measured (a seeded sample of a bigger
# gallery): the 1% tail is well estimated from 10,000, and a refit after each server
# enrolment takes 1.5 s at 50,000 faces of 10,000 people (4.9 s measuring all; refit.py in
# benchmarks/)
MAX_PROBES = 10_000


def probes(count: int, limit: int | None = None) -> np.ndarray:
    """The rows whose distances are measured: all, or a seeded sample of `limit` (default
    MAX_PROBES; the same gallery always gives the same threshold)."""
    limit = MAX_PROBES if limit is None else limit
    if count <= limit:
        return np.arange(count)
    return np.sort(np.random.default_rng(0).choice(count, limit, replace=False))


def _nearest_loo(vecs: np.ndarray, owners: np.ndarray,
                 probed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each probed vector's distance to its person's nearest other vector and to anyone
    else's."""
    genuine, impostor = np.empty(len(probed)), np.empty(len(probed))
    for rows in blocks(len(probed), len(vecs)):
        d = distances(vecs[probed[rows]], vecs)
        d[np.arange(d.shape[0]), probed[rows]] = np.inf  # leave self out
        same = owners[probed[rows], None] == owners[None, :]
        genuine[rows] = np.where(same, d, np.inf).min(1)
        impostor[rows] = np.where(same, np.inf, d).min(1)
    return genuine, impostor


def _direction_loo(vecs: np.ndarray, owners: np.ndarray, length: float, probed: np.ndarray,
                   weight: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Each probed vector's decision distance (search.decision_distance) to its person's mean
    direction without it, and to the nearest of everyone else's, the probe then a stranger to
    the gallery without its own person (a person of one face has no genuine distance: inf);
    all at `length`."""
    u = unit(vecs)
    sums = np.zeros((owners.max() + 1, u.shape[1]))
    np.add.at(sums, owners, u)
    dirs = unit(sums)
    absent = np.bincount(owners, minlength=len(sums)) == 0
    u, owners = u[probed], owners[probed]
    others = sums[owners] - u
    own = np.where(np.linalg.norm(others, axis=1) > 1e-9,
                   length * pair_distances(u, unit(others)), np.inf)
    nearest, runner_up = np.empty(len(u)), np.empty(len(u))
    for rows in blocks(len(u), len(dirs)):
        d = distances(u[rows], dirs)
        d[:, absent] = np.inf
        d[np.arange(d.shape[0]), owners[rows]] = np.inf
        if d.shape[1] < 2:
            d = np.c_[d, np.full(len(d), np.inf)]
        two = np.sort(np.partition(d, 1, axis=1)[:, :2], axis=1)
        nearest[rows], runner_up[rows] = length * two[:, 0], length * two[:, 1]
    genuine = decision_distance(own, np.where(nearest > own, nearest, np.inf), weight)
    return genuine, decision_distance(nearest, runner_up, weight)


def calibrate(vectors: np.ndarray, owners: np.ndarray, names: list[str], target_far: float,
              cohort: np.ndarray | None, location: str, metric: str = "euclidean",
              length: float = 1.0, ceiling: float | None = None) -> dict:
    """The threshold (report["threshold"]) and how it was chosen, from a gallery's vectors
    (row i is names[owners[i]]; `location` names the gallery in errors; `length`: the one
    mean_direction scales vectors to; `ceiling`: the embedder's default threshold, which a
    calibrated one never exceeds).

    Each vector's genuine distance is to its own person without it (their nearest other
    vector, or their mean direction without it), its impostor distance to the nearest other
    person, each judged as the gallery judges faces (less the lead's share where it counts
    one: search.decision_distance). Exact copies of a vector (a photo enrolled twice before
    faces were keyed by their photo) count once: a genuine distance of 0 would pull the
    threshold down to nothing.
    A gallery of one person, or of one photo a person, has no such pairs: with a cohort its
    threshold is the cohort's alone (strangers are judged all the same), up to `ceiling` (a
    cohort fit to one photo of each of 1-3 people comes out near or above dlib's 0.6, and on
    crop sets named 2-8% of strangers there), and without one it cannot be calibrated.
    """
    if not 0 <= target_far < 1:
        raise FacecnnError(f"target FAR must be in [0, 1), got {target_far}")
    check_metric(metric)
    vecs, owners, names = distinct(vectors, owners, names)
    if len(vecs) == 0:
        raise FacecnnError(f"calibration needs faces; {location} has none")
    with_cohort = cohort is not None and len(cohort) > 0
    lead = lead_weight(metric, len(names))
    own = _own(vecs, owners, names, target_far, metric, length, location, lead,
               cohort_judges=with_cohort)
    strangers = (StrangerModel.of(person_distances(cohort, vecs, owners, metric, length), lead)
                 if with_cohort else None)
    cohort_threshold = strangers.threshold(target_far) if strangers else np.inf
    t = min(own.threshold if own else np.inf, cohort_threshold,
            np.inf if ceiling is None else ceiling)
    if not t > 0:  # the cohort's normal fit reaches below 0: these vectors are unlike its faces
        raise FacecnnError(f"{location}'s vectors are unlike the cohort's faces (strangers would "
                           f"be named at any distance): were they made by another embedder?")
    report: dict = {"threshold": float(t), "target_far": target_far, "metric": metric,
                    "lead_weight": lead,
                    "own_threshold": own.threshold if own else None, "ceiling": ceiling}
    if strangers:
        report["cohort"] = {"faces": strangers.cohort_faces,
                            "threshold": cohort_threshold,
                            "expected_far": strangers.rate(t)}
    return {**report, **(own.measured(t) if own else {})}


@dataclass(frozen=True)
class _OwnPairs:
    """The enrolled people's leave-one-out distances and the threshold they choose."""

    genuine: np.ndarray
    impostor: np.ndarray
    threshold: float

    def measured(self, t: float) -> dict:
        return {"genuine": _summary(self.genuine), "impostor": _summary(self.impostor),
                "far": float(np.mean(self.impostor <= t)),
                "frr": float(np.mean(self.genuine > t)),
                "pairs": {"genuine": int(self.genuine.size),
                          "impostor": int(self.impostor.size)}}


def _own(vecs: np.ndarray, owners: np.ndarray, names: list[str], target_far: float,
         metric: str, length: float, location: str, lead: float,
         cohort_judges: bool) -> _OwnPairs | None:
    """The gallery's own pairs and their threshold; where there are none (one person, or one
    photo each), None if a cohort judges strangers, else an error."""
    counts = np.bincount(owners, minlength=len(names))
    people = len(set(owners.tolist()))
    problem = None
    if people < 2:
        problem = f"calibration needs at least two people; {location} has {people}"
    elif counts.max() < 2:
        problem = "calibration needs at least one person with two or more faces"
    if problem:
        if not cohort_judges:
            raise FacecnnError(problem)
        return None
    probed = probes(len(vecs))
    if metric in BY_DIRECTION:
        genuine, impostor = _direction_loo(vecs, owners, length, probed, lead)
    else:
        genuine, impostor = _nearest_loo(vecs, owners, probed)
    genuine = genuine[counts[owners[probed]] >= 2]
    # without a cohort the gallery's own impostors must judge strangers, leaning away from
    # them (open_set_threshold)
    choose = calibrate_threshold if cohort_judges else open_set_threshold
    return _OwnPairs(genuine, impostor, choose(genuine, impostor, target_far))
