"""Choosing the unknown-face threshold of a gallery from its own faces and a background cohort.

A gallery's own people give genuine distances (each face to its own person without it) and
impostor ones (to anyone else), leave-one-out. With few people those impostors say little about
the rest of the world, so where the embedder ships a cohort (faces/cohort.py) the threshold
must also keep strangers out by it: each cohort face's distances to the enrolled people say
how near a stranger comes to them, and with P people a stranger is named when any of them is
near enough. A normal model of those distances gives the threshold that names `far` of
strangers (a cohort of tens of faces has no empirical tail at 1e-3): each stranger has their
own typical distance to people (some faces are near everyone), and their distances to the P
people scatter around it. Where faces are judged by their lead over the next person too
(gallery/search.py's `decision_distance`), that scatter is what sets a stranger's lead: taking
the distances as independent instead made the lead rule name 0.4% of strangers for a target
of 1%, and 0.955 of known photos against 0.948 (40 lfw_dev people, 5 photos each). The
stricter of the two thresholds wins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import log_ndtr, ndtr

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


# a stranger's own typical distance is integrated over this grid of standard normal points,
# a nearest distance beyond the threshold over _BEYOND_POINTS (thresholds within 1e-6 of
# grids twice as fine, in 0.08 s)
_OFFSETS = np.linspace(-6.0, 6.0, 61)
_BEYOND_POINTS = 801
_OFFSET_WEIGHTS = np.exp(-_OFFSETS ** 2 / 2) / np.exp(-_OFFSETS ** 2 / 2).sum()


@dataclass(frozen=True)
class StrangerModel:
    """How near strangers come to a gallery's people: a stranger's distance to a person is
    their own typical distance (normal over strangers: `mean`, `between`) plus a scatter from
    person to person (normal: `within`; 0 with one person, where the two cannot be told
    apart and `between` holds all). `lead_weight`: the one the gallery's decisions use (0:
    the distance alone)."""

    mean: float
    between: float
    within: float
    people: int
    cohort_faces: int
    lead_weight: float = 0.0

    @classmethod
    def of(cls, nearest: np.ndarray, lead_weight: float = 0.0) -> StrangerModel:
        """From (cohort faces, people): each cohort face's distance to each person."""
        faces, people = nearest.shape
        if people < 2:
            return cls(float(nearest.mean()), max(float(nearest.std()), 1e-6), 0.0, people,
                       faces, lead_weight)
        within = float(nearest.var(axis=1, ddof=1).mean())
        between = float(nearest.mean(axis=1).var()) - within / people
        return cls(float(nearest.mean()), float(np.sqrt(max(between, 1e-12))),
                   max(float(np.sqrt(within)), 1e-6), people, faces, lead_weight)

    def threshold(self, target_far: float) -> float:
        """The threshold at which a stranger is named with probability `target_far`."""
        target = max(target_far, 1e-9)
        spread = self.between + self.within
        low, high = self.mean - 12 * spread, self.mean + 12 * spread
        for _ in range(50):  # the rate only grows with the threshold
            middle = (low + high) / 2
            low, high = (middle, high) if self.rate(middle) < target else (low, middle)
        return (low + high) / 2

    def rate(self, threshold: float) -> float:
        """How often a stranger is expected to be named at `threshold`."""
        if self.within == 0:
            return float(ndtr((threshold - self.mean) / self.between))
        typical = self.mean + self.between * _OFFSETS[:, None]  # (offsets, 1)
        # someone within the threshold: 1 - (1 - F(t)) ** P, for each stranger's typical distance
        named = -np.expm1(self.people * log_ndtr((typical - threshold) / self.within))[:, 0]
        if self.lead_weight > 0:
            named = named + self._named_beyond(threshold, typical)
        return float(_OFFSET_WEIGHTS @ named)

    def _named_beyond(self, threshold: float, typical: np.ndarray) -> np.ndarray:
        """For each typical distance: the chance that the nearest person is x > threshold away
        yet the next is far enough beyond (x + (x - threshold) / lead_weight or more) to name
        the stranger, the integral over x of P f(x) (1 - F(that)) ** (P - 1)."""
        s, p = self.within, self.people
        x = threshold + np.linspace(0.0, 1.0, _BEYOND_POINTS)[None, :] * (
            np.maximum(typical - threshold, 0.0) + 10 * s)
        needed = x + (x - threshold) / self.lead_weight
        log_density = -0.5 * ((x - typical) / s) ** 2 - np.log(s * np.sqrt(2 * np.pi))
        log_beyond = log_ndtr((typical - needed) / s)  # log(1 - F(needed))
        return np.trapezoid(p * np.exp(log_density + (p - 1) * log_beyond), x, axis=1)
