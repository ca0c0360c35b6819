"""Open-set calibration with the shipped cohort: on galleries of 5, 10 and 40 people (AT&T) and
of five Johns, at least 95% of enrolled people's new photos are named right and at least 95% of
strangers' faces come out unknown."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facecnn.data.decode import read_image
from facecnn.faces.calibration import StrangerModel
from facecnn.faces.cohort import load_cohort
from facecnn.faces.detect import FaceDetector
from facecnn.faces.embedders.dlib_torch import DlibTorchEmbedder
from facecnn.faces.gallery import UNKNOWN, Gallery
from facecnn.faces.gallery.calibrate import person_distances
from helpers import canvas, invoke_cli

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


def rates(tmp_path: Path, known: np.ndarray, enrolled: int, strangers: np.ndarray,
          ceiling: float | None = None) -> dict:
    """Enroll photos [:enrolled] of each known person, calibrate with the cohort, then name
    their other photos and the strangers' faces."""
    people = [f"p{k}" for k in range(len(known))]
    with Gallery.create(tmp_path / f"g{len(known)}.db", "dlib", 128) as gallery:
        for name, photos in zip(people, known):
            gallery.add(name, photos[:enrolled])
        report = gallery.calibrate(0.01, load_cohort("dlib"), ceiling)
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


@pytest.mark.e2e
@pytest.mark.parametrize("people", [1, 3, 10, 40])
def test_one_photo_a_person_is_calibrated_by_the_cohort_alone(vectors, tmp_path: Path,
                                                               people: int) -> None:
    """No genuine pairs (one photo each) or no impostors (one person): the cohort's threshold,
    never above dlib's 0.6 (which was all such a gallery got before)."""
    order = np.random.default_rng(people).permutation(40)
    known, others = vectors["att"][order[:people]], vectors["att"][order[people:]]
    strangers = np.concatenate([others.reshape(-1, 128), vectors["johns"].reshape(-1, 128)])
    result = rates(tmp_path, known, 1, strangers, ceiling=0.6)
    report = result["report"]
    assert report["own_threshold"] is None and "frr" not in report
    assert report["threshold"] == min(report["cohort"]["threshold"], 0.6)
    with Gallery.open(tmp_path / f"g{people}.db") as gallery:
        gallery.set_threshold(0.6, "manual")
        before = np.mean([m.name == UNKNOWN
                          for m in gallery.identify(strangers.reshape(-1, 128))])
    # AT&T strangers come nearer one photo of an AT&T person than the cohort's photos do: up
    # to 8% of them named here, not 1%; but at 0.6 up to 25% were (10 people)
    assert result["rejected"] >= max(before, 0.9) and result["named"] >= 0.95, result
    if people >= 10:
        assert result["rejected"] > before, (result, before)


def test_enroll_calibrates_a_gallery_of_one_photo_each(tmp_path: Path) -> None:
    for person in ("s1", "s2", "s3"):
        (tmp_path / "people" / person).mkdir(parents=True)
        Image.fromarray(canvas(person, 1)).save(tmp_path / "people" / person / "1.jpg")
    done = invoke_cli("enroll", str(tmp_path / "people"), "--gallery", str(tmp_path / "g.db"),
                      "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "(calibrated): expected" in done.stdout and "of strangers' faces named" in done.stdout
    with Gallery.open(tmp_path / "g.db") as gallery:
        assert gallery.threshold_source == "calibrated" and gallery.threshold <= 0.6


def test_stranger_model_scales_with_the_gallery() -> None:
    rng = np.random.default_rng(0)
    cohort = rng.normal(size=(60, 8))
    small = StrangerModel.of(person_distances(cohort, rng.normal(size=(10, 8)),
                                              np.repeat(np.arange(2), 5), "euclidean"))
    large = StrangerModel.of(person_distances(cohort, rng.normal(size=(100, 8)),
                                              np.repeat(np.arange(20), 5), "euclidean"))
    assert large.people == 20 and small.cohort_faces == 60
    # more people, more chances for a stranger: a stricter threshold for the same share
    assert large.threshold(0.01) < small.threshold(0.01) + (large.mean - small.mean)
    for model in (small, large):
        t = model.threshold(0.01)
        assert model.rate(t) == pytest.approx(0.01, rel=1e-6)
        assert model.rate(t * 0.9) < 0.01 < model.rate(t * 1.1)
