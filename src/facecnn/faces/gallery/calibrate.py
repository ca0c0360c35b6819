"""A gallery's own threshold: leave-one-out genuine and impostor distances over its enrolled
vectors, by the gallery's metric (search.py), judged by faces/calibration.py's rules (and a
cohort of strangers where one ships)."""

from __future__ import annotations

import numpy as np

from facecnn.errors import FacecnnError
from facecnn.faces.calibration import StrangerModel, calibrate_threshold, open_set_threshold
from facecnn.faces.gallery.search import (
    blocks,
    check_metric,
    directions,
    distances,
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
    if metric == "mean_direction":
        return distances(unit(points, length),
                         directions(vecs, owners, present.max() + 1, length)[present])
    d = distances(points, vecs)
    return np.stack([d[:, owners == p].min(1) for p in present], 1)


def _nearest_loo(vecs: np.ndarray, owners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each vector's distance to its person's nearest other vector and to anyone else's."""
    genuine, impostor = np.empty(len(vecs)), np.empty(len(vecs))
    for rows in blocks(len(vecs), len(vecs)):
        d = distances(vecs[rows], vecs)
        d[np.arange(d.shape[0]), np.arange(len(vecs))[rows]] = np.inf  # leave self out
        same = owners[rows, None] == owners[None, :]
        genuine[rows] = np.where(same, d, np.inf).min(1)
        impostor[rows] = np.where(same, np.inf, d).min(1)
    return genuine, impostor


def _direction_loo(vecs: np.ndarray, owners: np.ndarray,
                   length: float) -> tuple[np.ndarray, np.ndarray]:
    """Each vector's distance to its person's mean direction without it, and to everyone
    else's (a person of one face has no genuine distance: inf); all at `length`."""
    u = unit(vecs)
    sums = np.zeros((owners.max() + 1, u.shape[1]))
    np.add.at(sums, owners, u)
    others = sums[owners] - u
    genuine = np.where(np.linalg.norm(others, axis=1) > 1e-9,
                       length * pair_distances(u, unit(others)), np.inf)
    dirs = unit(sums)
    absent = np.bincount(owners, minlength=len(sums)) == 0
    impostor = np.empty(len(vecs))
    for rows in blocks(len(vecs), len(dirs)):
        d = distances(u[rows], dirs)
        d[:, absent] = np.inf
        d[np.arange(d.shape[0]), owners[rows]] = np.inf
        impostor[rows] = length * d.min(1)
    return genuine, impostor


def calibrate(vectors: np.ndarray, owners: np.ndarray, names: list[str], target_far: float,
              cohort: np.ndarray | None, location: str, metric: str = "euclidean",
              length: float = 1.0) -> dict:
    """The threshold (report["threshold"]) and how it was chosen, from a gallery's vectors
    (row i is names[owners[i]]; `location` names the gallery in errors; `length`: the one
    mean_direction scales vectors to).

    Each vector's genuine distance is to its own person without it (their nearest other
    vector, or their mean direction without it), its impostor distance to the nearest other
    person. Exact copies of a vector (a photo enrolled twice before faces were keyed by their
    photo) count once: a genuine distance of 0 would pull the threshold down to nothing.
    """
    if not 0 <= target_far < 1:
        raise FacecnnError(f"target FAR must be in [0, 1), got {target_far}")
    check_metric(metric)
    vecs, owners, names = distinct(vectors, owners, names)
    counts = np.bincount(owners, minlength=len(names))
    if len(set(owners.tolist())) < 2:
        raise FacecnnError(f"calibration needs at least two people; {location} has "
                           f"{len(set(owners.tolist()))}")
    if counts.max() < 2:
        raise FacecnnError("calibration needs at least one person with two or more faces")
    if metric == "mean_direction":
        genuine, impostor = _direction_loo(vecs, owners, length)
    else:
        genuine, impostor = _nearest_loo(vecs, owners)
    genuine = genuine[counts[owners] >= 2]
    with_cohort = cohort is not None and len(cohort) > 0
    # the cohort judges strangers; without one the gallery's own impostors must, leaning
    # away from them (open_set_threshold)
    own = (calibrate_threshold if with_cohort else open_set_threshold)(genuine, impostor,
                                                                       target_far)
    report: dict = {"target_far": target_far, "metric": metric, "own_threshold": own}
    t = own
    if with_cohort:
        strangers = StrangerModel.of(person_distances(cohort, vecs, owners, metric, length))
        t = min(own, strangers.threshold(target_far))
        report["cohort"] = {"faces": strangers.cohort_faces,
                            "threshold": strangers.threshold(target_far),
                            "expected_far": strangers.rate(t)}
    return {"threshold": t, **report, "genuine": _summary(genuine),
            "impostor": _summary(impostor), "far": float(np.mean(impostor <= t)),
            "frr": float(np.mean(genuine > t)),
            "pairs": {"genuine": int(genuine.size), "impostor": int(impostor.size)}}
