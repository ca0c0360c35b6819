"""Open-set calibration with the shipped cohort: on galleries of 5, 10 and 40 people (AT&T) and
of five Johns, at least 95% of enrolled people's new photos are named right and at least 95% of
strangers' faces come out unknown."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facecnn.data.decode import read_image
from facecnn.faces.calibration import StrangerModel
from facecnn.faces.cohort import load_cohort
from facecnn.faces.detect import FaceDetector
from facecnn.faces.embedders.dlib_torch import DlibTorchEmbedder
from facecnn.faces.gallery import UNKNOWN, Gallery
from facecnn.faces.gallery.calibrate import person_distances
from helpers import canvas

JOHNS = Path(__file__).resolve().parents[2] / "shared" / "data" / "johns"


@pytest.fixture(scope="module")
def vectors() -> dict[str, np.ndarray]:
    """people x 10 (AT&T) and x 11 (johns, already dlib chips) face vectors: HOG's faces, and
    MTCNN's for the turned ones HOG misses; dlib's network in PyTorch (dlib's vectors)."""
    embedder = DlibTorchEmbedder(device="cpu")
    hog, mtcnn = FaceDetector("hog"), FaceDetector()
    images = [canvas(f"s{person}", i) for person in range(1, 41) for i in range(1, 11)]
    faces = hog.detect_batch(images, landmarks=False)
    faces = [found or mtcnn.detect_batch([image], landmarks=False)[0]
             for image, found in zip(images, faces)]
    att = embedder.embed([(image, found[0]) for image, found in zip(images, faces)])
    johns = [embedder.vectors_of(np.stack([read_image(f) for f in sorted(d.iterdir())]))
             for d in sorted(JOHNS.iterdir()) if d.is_dir()]
    return {"att": att.reshape(40, 10, -1), "johns": np.stack(johns)}


def rates(tmp_path: Path, known: np.ndarray, enrolled: int, strangers: np.ndarray) -> dict:
    """Enroll photos [:enrolled] of each known person, calibrate with the cohort, then name
    their other photos and the strangers' faces."""
    people = [f"p{k}" for k in range(len(known))]
    with Gallery.create(tmp_path / f"g{len(known)}.db", "dlib", 128) as gallery:
        for name, photos in zip(people, known):
            gallery.add(name, photos[:enrolled])
        report = gallery.calibrate(0.01, load_cohort("dlib"))
        probes = known[:, enrolled:].reshape(-1, 128)
        truth = np.repeat(people, known.shape[1] - enrolled)
        named = [m.name for m in gallery.identify(probes)]
        rejected = [m.name == UNKNOWN for m in gallery.identify(strangers.reshape(-1, 128))]
    return {"named": float(np.mean(np.array(named) == truth)),
            "rejected": float(np.mean(rejected)), "report": report}


@pytest.mark.e2e
@pytest.mark.parametrize("people", [5, 10, 40])
def test_att_galleries_of_any_size(vectors, tmp_path: Path, people: int) -> None:
    order = np.random.default_rng(people).permutation(40)
    known, others = vectors["att"][order[:people]], vectors["att"][order[people:]]
    strangers = np.concatenate([others.reshape(-1, 128), vectors["johns"].reshape(-1, 128)])
    result = rates(tmp_path, known, 5, strangers)
    assert result["named"] >= 0.95 and result["rejected"] >= 0.95, result
    assert result["report"]["cohort"]["faces"] == 43
    assert result["report"]["threshold"] <= result["report"]["own_threshold"]


@pytest.mark.e2e
def test_five_johns_against_att_strangers(vectors, tmp_path: Path) -> None:
    result = rates(tmp_path, vectors["johns"], 6, vectors["att"])
    assert result["named"] >= 0.95 and result["rejected"] >= 0.95, result


def test_stranger_model_scales_with_the_gallery() -> None:
    rng = np.random.default_rng(0)
    cohort = rng.normal(size=(60, 8))
    small = StrangerModel.of(person_distances(cohort, rng.normal(size=(10, 8)),
                                              np.repeat(np.arange(2), 5), "euclidean"))
    large = StrangerModel.of(person_distances(cohort, rng.normal(size=(100, 8)),
                                              np.repeat(np.arange(20), 5), "euclidean"))
    assert large.people == 20 and small.cohort_faces == 60
    # more people, more chances for a stranger: a stricter threshold for the same share
    assert large.threshold(0.01) < small.threshold(0.01) + (large.fit.mean - small.fit.mean)
    for model in (small, large):
        t = model.threshold(0.01)
        assert model.rate(t) == pytest.approx(0.01, rel=1e-6)
        assert model.rate(t * 0.9) < 0.01 < model.rate(t * 1.1)
