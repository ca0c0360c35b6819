"""A gallery's own threshold: leave-one-out genuine and impostor distances over its enrolled
vectors, judged by faces/calibration.py's rules (and a cohort of strangers where one ships)."""

from __future__ import annotations

import numpy as np

from facecnn.errors import FacecnnError
from facecnn.faces.calibration import StrangerModel, calibrate_threshold, open_set_threshold
from facecnn.faces.gallery.search import blocks, distances


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


def calibrate(vectors: np.ndarray, owners: np.ndarray, names: list[str], target_far: float,
              cohort: np.ndarray | None, location: str) -> dict:
    """The threshold (report["threshold"]) and how it was chosen, from a gallery's vectors
    (row i is names[owners[i]]; `location` names the gallery in errors).

    Each vector's genuine distance is to its person's nearest other vector, its impostor
    distance to the nearest vector of anyone else. Exact copies of a vector (a photo enrolled
    twice before faces were keyed by their photo) count once: a genuine distance of 0 would
    pull the threshold down to nothing.
    """
    if not 0 <= target_far < 1:
        raise FacecnnError(f"target FAR must be in [0, 1), got {target_far}")
    vecs, owners, names = distinct(vectors, owners, names)
    counts = np.bincount(owners, minlength=len(names))
    if len(set(owners.tolist())) < 2:
        raise FacecnnError(f"calibration needs at least two people; {location} has "
                           f"{len(set(owners.tolist()))}")
    if counts.max() < 2:
        raise FacecnnError("calibration needs at least one person with two or more faces")
    genuine, impostor = np.empty(len(vecs)), np.empty(len(vecs))
    for rows in blocks(len(vecs), len(vecs)):
        d = distances(vecs[rows], vecs)
        d[np.arange(d.shape[0]), np.arange(len(vecs))[rows]] = np.inf  # leave self out
        same = owners[rows, None] == owners[None, :]
        genuine[rows] = np.where(same, d, np.inf).min(1)
        impostor[rows] = np.where(same, np.inf, d).min(1)
    genuine = genuine[counts[owners] >= 2]
    with_cohort = cohort is not None and len(cohort) > 0
    # the cohort judges strangers; without one the gallery's own impostors must, leaning
    # away from them (open_set_threshold)
    own = (calibrate_threshold if with_cohort else open_set_threshold)(genuine, impostor,
                                                                       target_far)
    report: dict = {"target_far": target_far, "own_threshold": own}
    t = own
    if with_cohort:
        strangers = StrangerModel.of(cohort, vecs, owners)
        t = min(own, strangers.threshold(target_far))
        report["cohort"] = {"faces": strangers.cohort_faces,
                            "threshold": strangers.threshold(target_far),
                            "expected_far": strangers.rate(t)}
    return {"threshold": t, **report, "genuine": _summary(genuine),
            "impostor": _summary(impostor), "far": float(np.mean(impostor <= t)),
            "frr": float(np.mean(genuine > t)),
            "pairs": {"genuine": int(genuine.size), "impostor": int(impostor.size)}}
