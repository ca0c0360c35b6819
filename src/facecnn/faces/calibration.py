"""Choosing the unknown-face threshold of a gallery from its own faces and a background cohort.

A gallery's own people give genuine distances (each face to its own person without it) and
impostor ones (to anyone else), leave-one-out. With few people those impostors say little about
the rest of the world, so where the embedder ships a cohort (faces/cohort.py) the threshold
must also keep strangers out by it: each cohort face's distance to each enrolled person is a
stranger's chance of being taken for that person, and with P people a stranger is named when
any of them is near enough, so the per-person rate allowed is 1 - (1 - far) ** (1 / P); a
normal fit to those distances gives the threshold that meets it (a cohort of tens of faces has
no empirical tail at 1e-3). The stricter of the two wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from facecnn.errors import FacecnnError


def calibrate_threshold(genuine: np.ndarray, impostor: np.ndarray, target_far: float) -> float:
    """Threshold separating genuine from impostor distances (accept when distance <= t).

    Among thresholds with FAR <= target_far (if any exist) pick the lowest FRR, else the lowest
    FRR + FAR. Equal-cost ties go to the lower, safer threshold. FRR and FAR only change at
    observed distances, so the answer is the midpoint of the chosen gap between consecutive
    distances: it sits between the classes rather than on an enrolled face.
    """
    g = np.sort(np.asarray(genuine, dtype=np.float64).ravel())
    i = np.sort(np.asarray(impostor, dtype=np.float64).ravel())
    if g.size == 0 or i.size == 0:
        raise FacecnnError("calibration needs both genuine and impostor distances")
    if not (np.isfinite(g).all() and np.isfinite(i).all()):
        raise FacecnnError("calibration distances must be finite")
    u = np.unique(np.concatenate([g, i]))
    frr = 1.0 - np.searchsorted(g, u, side="right") / g.size
    far = np.searchsorted(i, u, side="right") / i.size
    feasible = far <= target_far
    cost = np.where(feasible, frr, np.inf) if feasible.any() else frr + far
    k = int(np.flatnonzero(cost <= cost.min() + 1e-12)[0])
    return float((u[k] + u[k + 1]) / 2 if k + 1 < u.size else u[k])


def open_set_threshold(genuine: np.ndarray, impostor: np.ndarray, target_far: float) -> float:
    """`calibrate_threshold`, but never above the point equally many standard deviations from
    the genuine and the impostor mean.

    Strangers are fresh impostors: their nearest distances reach lower than the enrolled
    people's leave-one-out impostor samples do, so the empirical gap midpoint lets some in
    (benchmarks/open_set.py compares the two).
    """
    empirical = calibrate_threshold(genuine, impostor, target_far)
    g, i = np.asarray(genuine, np.float64), np.asarray(impostor, np.float64)
    spread = g.std() + i.std()
    if spread == 0 or g.mean() >= i.mean():
        return empirical
    return float(min(empirical, (g.mean() * i.std() + i.mean() * g.std()) / spread))


@dataclass(frozen=True)
class StrangerModel:
    """How near strangers come to a gallery's people: a normal fit to the distances from
    each cohort face to each enrolled person."""

    fit: NormalDist
    people: int
    cohort_faces: int

    @classmethod
    def of(cls, nearest: np.ndarray) -> StrangerModel:
        """From (cohort faces, people): each cohort face's distance to each person."""
        return cls(NormalDist(float(nearest.mean()), max(float(nearest.std()), 1e-6)),
                   nearest.shape[1], nearest.shape[0])

    def threshold(self, target_far: float) -> float:
        """The distance at which a stranger is named with probability `target_far`."""
        per_person = 1.0 - (1.0 - max(target_far, 1e-9)) ** (1.0 / self.people)
        return self.fit.inv_cdf(per_person)

    def rate(self, threshold: float) -> float:
        """How often a stranger is expected to come within `threshold` of anyone enrolled."""
        return 1.0 - (1.0 - self.fit.cdf(threshold)) ** self.people
