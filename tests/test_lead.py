"""A face's lead over the next person (gallery/search.py's "mean_direction_lead"): in a gallery
of LEAD_MIN_PEOPLE or more, a face beyond the threshold is still named when it stands well
clear of everyone else, and the calibration (leave-one-out pairs and the cohort's model of
strangers) judges faces the same way."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facecnn.faces.calibration import StrangerModel
from facecnn.faces.gallery import UNKNOWN, Gallery
from facecnn.faces.gallery.calibrate import _direction_loo, calibrate
from facecnn.faces.gallery.search import LEAD_MIN_PEOPLE, LEAD_WEIGHT, unit

DIM, LENGTH, THRESHOLD = 128, 1.4, 0.6


def _people(count: int, seed: int = 0) -> np.ndarray:
    """(count, DIM) random directions at dlib's length: about 1.98 apart."""
    return unit(np.random.default_rng(seed).normal(size=(count, DIM)), LENGTH)


def _toward(person: np.ndarray, distance: float, seed: int) -> np.ndarray:
    """A vector `distance` from `person` (both at LENGTH), in a random direction."""
    u = person / LENGTH
    other = np.random.default_rng(seed).normal(size=DIM)
    other -= other @ u * u
    cos = 1 - (distance / LENGTH) ** 2 / 2
    return LENGTH * (cos * u + np.sqrt(1 - cos ** 2) * other / np.linalg.norm(other))


def _gallery(path: Path, people: np.ndarray, metric: str | None = None) -> Gallery:
    gallery = Gallery.create(path, "dlib", DIM, metric=metric)
    for i, vector in enumerate(people):
        gallery.add(f"p{i:02d}", vector[None])
    gallery.set_threshold(THRESHOLD, "manual")
    return gallery


@pytest.mark.parametrize("size", [LEAD_MIN_PEOPLE, LEAD_MIN_PEOPLE - 1])
def test_a_face_clear_of_everyone_else_is_named_beyond_the_threshold(tmp_path: Path,
                                                                     size: int) -> None:
    people = _people(size)
    clear = _toward(people[0], 0.66, seed=1)  # beyond 0.6, everyone else ~1.98 away
    # as far beyond, but the runner-up is nearly as near: a stranger between two people
    between = unit(_toward(people[1], 0.66, seed=2)[None] + _toward(people[2], 0.66, seed=3),
                   LENGTH)[0]
    with _gallery(tmp_path / "lead.db", people) as lead, \
            _gallery(tmp_path / "plain.db", people, "mean_direction") as plain:
        assert lead.metric == "mean_direction_lead"
        named, crowded = lead.identify(np.stack([clear, between]))
        (plain_named,) = plain.identify(clear[None])
    assert named.distance == pytest.approx(0.66, abs=1e-6)  # the real distance, beyond 0.6
    assert plain_named.name == UNKNOWN and plain_named.score < 0.5
    assert crowded.name == UNKNOWN and crowded.score < 0.5
    if size >= LEAD_MIN_PEOPLE:
        assert named.name == "p00" and named.score >= 0.5
        # judged at 0.66 less half its lead over the next person
        runner_up = np.linalg.norm(people[1:] - clear, axis=1).min()
        assert named.score == pytest.approx(
            1 - (0.66 - LEAD_WEIGHT * (runner_up - 0.66)) / (2 * THRESHOLD), abs=1e-4)
    else:  # too few people for the runner-up to say how near strangers come
        assert named.name == UNKNOWN and named.score == plain_named.score


def test_leave_one_out_pairs_are_judged_with_the_lead() -> None:
    """_direction_loo against a plain loop: each face's decision distance to its own person
    without it, and to the nearest other person (its lead over the runner-up besides it)."""
    rng = np.random.default_rng(4)
    centres = _people(25, seed=4)
    vecs = np.concatenate([unit(c + rng.normal(scale=0.5, size=(3, DIM)), LENGTH)
                           for c in centres])
    owners = np.repeat(np.arange(25), 3)
    genuine, impostor = _direction_loo(vecs, owners, LENGTH, np.arange(len(vecs)), 0.5)

    def direction(rows: np.ndarray) -> np.ndarray:
        return unit(unit(vecs[rows]).sum(0, keepdims=True), LENGTH)[0]

    for i in range(len(vecs)):
        own = direction(np.flatnonzero((owners == owners[i]) & (np.arange(len(vecs)) != i)))
        others = np.stack([direction(np.flatnonzero(owners == p))
                           for p in range(25) if p != owners[i]])
        face = unit(vecs[i:i + 1], LENGTH)[0]
        d_own = np.linalg.norm(face - own)
        d_others = np.sort(np.linalg.norm(others - face, axis=1))
        lead_own = max(d_others[0] - d_own, 0.0)
        assert genuine[i] == pytest.approx(d_own - 0.5 * lead_own, abs=1e-9)
        assert impostor[i] == pytest.approx(
            d_others[0] - 0.5 * (d_others[1] - d_others[0]), abs=1e-9)


def test_the_stranger_model_matches_a_simulation_of_itself() -> None:
    """rate(t) for the distance alone and with the lead agrees with strangers drawn from the
    model (own typical distance, then a scatter from person to person)."""
    rng = np.random.default_rng(5)
    cohort = 0.8 + rng.normal(scale=0.04, size=(43, 1)) + rng.normal(scale=0.07, size=(43, 30))
    plain, lead = StrangerModel.of(cohort), StrangerModel.of(cohort, LEAD_WEIGHT)
    typical = rng.normal(plain.mean, plain.between, size=(200_000, 1))
    d = np.sort(typical + rng.normal(scale=plain.within, size=(200_000, 30)), axis=1)
    judged = d[:, 0] - LEAD_WEIGHT * (d[:, 1] - d[:, 0])
    for model, values in ((plain, d[:, 0]), (lead, judged)):
        t = model.threshold(0.01)
        assert model.rate(t) == pytest.approx(0.01, rel=1e-4)
        assert np.mean(values <= t) == pytest.approx(0.01, rel=0.12)
    # the lead names more faces at any threshold, so the threshold for 1% is lower
    assert lead.threshold(0.01) < plain.threshold(0.01) - 0.02


def test_calibration_says_whether_the_lead_counts() -> None:
    rng = np.random.default_rng(6)
    centres = _people(LEAD_MIN_PEOPLE, seed=6)
    vecs = np.concatenate([unit(c + rng.normal(scale=0.5, size=(3, DIM)), LENGTH)
                           for c in centres])
    owners = np.repeat(np.arange(LEAD_MIN_PEOPLE), 3)
    names = [f"p{i}" for i in range(LEAD_MIN_PEOPLE)]
    cohort = unit(rng.normal(size=(43, DIM)), LENGTH)
    many = calibrate(vecs, owners, names, 0.01, cohort, "g", "mean_direction_lead", LENGTH)
    plain = calibrate(vecs, owners, names, 0.01, cohort, "g", "mean_direction", LENGTH)
    few = calibrate(vecs[3:], owners[3:] - 1, names[1:], 0.01, cohort, "g",
                    "mean_direction_lead", LENGTH)
    assert (many["lead_weight"], plain["lead_weight"], few["lead_weight"]) == (
        LEAD_WEIGHT, 0.0, 0.0)
    assert many["cohort"]["threshold"] < plain["cohort"]["threshold"]
    assert many["cohort"]["expected_far"] <= 0.01 + 1e-6
