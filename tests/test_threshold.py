"""One threshold rule everywhere: the given value, else the gallery's stored one, else the
embedder's default - the same answer, and the same stated source, from the Python API, the
CLI's verify and recognize, and the server."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from facecnn.faces.config import PipelineConfig
from facecnn.faces.detect import FaceDetector
from facecnn.faces.gallery import Gallery
from facecnn.faces.recognize import Recognizer
from facecnn.serve.app import create_app
from helpers import canvas, invoke_cli, write_photos

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("threshold")
    photos = write_photos(root / "photos", ["s1", "s2", "s3"], range(1, 4))
    result = invoke_cli("enroll", str(photos), "--gallery", str(root / "g.db"), "--detector",
                        "hog", "--quiet", cwd=root)
    assert result.returncode == 0, result.stderr
    for name, index in (("a", 8), ("b", 10)):
        Image.fromarray(canvas("s2", index)).save(root / f"{name}.jpg", quality=95)
    return root


@pytest.mark.parametrize("stored, given, expected", [
    (("calibrated", 0.41), None, (0.41, "calibrated")),
    (("manual", 0.52), None, (0.52, "manual")),
    (None, None, (0.6, "embedder")),
    (("calibrated", 0.41), 0.35, (0.35, "given")),
])
def test_every_door_resolves_the_same_threshold(enrolled: Path, stored, given,
                                                expected) -> None:
    db = enrolled / "g.db"
    with Gallery.open(db) as gallery:
        gallery.set_threshold(*(reversed(stored) if stored else (None, "manual")))
    value, source = expected
    hog = FaceDetector("hog")
    threshold = Recognizer(gallery=db, detector=hog, threshold=given).current_threshold()
    assert (threshold.value, threshold.source) == expected
    flag = [] if given is None else ["--threshold", str(given)]
    verified = invoke_cli("verify", str(enrolled / "a.jpg"), str(enrolled / "b.jpg"), "--gallery",
                          str(db), "--detector", "hog", "--json", *flag, cwd=enrolled)
    assert verified.returncode == 0, verified.stderr
    answer = json.loads(verified.stdout)
    assert (answer["threshold"], answer["threshold_source"]) == expected
    recognized = invoke_cli("recognize", str(enrolled / "a.jpg"), "--gallery", str(db),
                            "--detector", "hog", "--json", *flag, cwd=enrolled)
    assert recognized.returncode == 0, recognized.stderr
    assert f"unknown beyond threshold {value:.4f} ({source})" in recognized.stderr
    if given is None:  # the server has no per-request threshold: the gallery's rule alone
        images = [("images", (f"{n}.jpg", (enrolled / f"{n}.jpg").read_bytes())) for n in "ab"]
        with TestClient(create_app(db, pipeline=PipelineConfig(detector="hog"))) as client:
            served = client.post("/v1/verify", files=images).json()
        assert (served["threshold"], served["threshold_source"]) == expected


def test_verify_without_a_gallery_uses_the_embedders_default(enrolled: Path) -> None:
    verified = invoke_cli("verify", str(enrolled / "a.jpg"), str(enrolled / "b.jpg"),
                          "--detector", "hog", "--json", cwd=enrolled)
    assert verified.returncode == 0, verified.stderr
    answer = json.loads(verified.stdout)
    assert (answer["threshold"], answer["threshold_source"]) == (0.6, "embedder")
    assert answer["same_person"]


def test_verify_compares_faces_as_the_gallery_does(enrolled: Path, tmp_path: Path) -> None:
    """Two faces are compared by direction, both scaled to dlib's typical length 1.4 (as a
    gallery compares faces with people), except with an older "euclidean" gallery, whose
    threshold the verdict uses and was chosen for raw distances."""
    a, b = str(enrolled / "a.jpg"), str(enrolled / "b.jpg")

    def distance(*extra: str) -> float:
        verified = invoke_cli("verify", a, b, "--detector", "hog", "--json", *extra,
                              cwd=enrolled)
        assert verified.returncode == 0, verified.stderr
        return json.loads(verified.stdout)["distance"]

    embedded = invoke_cli("embed", a, b, "--detector", "hog", "--largest-only", "--out",
                          str(tmp_path / "ab.npz"), "--quiet", cwd=enrolled)
    assert embedded.returncode == 0, embedded.stderr
    with np.load(tmp_path / "ab.npz") as found:
        vectors = dict(zip((Path(f).name for f in found["files"]), found["vectors"]))
    va, vb = vectors["a.jpg"].astype(np.float64), vectors["b.jpg"].astype(np.float64)
    with Gallery.open(enrolled / "g.db") as gallery:
        assert (gallery.metric, gallery.length) == ("mean_direction_lead", 1.4)
        vecs, owners, names = gallery.vectors()
        crop = gallery.crop
    with Gallery.create(tmp_path / "old.db", "dlib", 128, crop, metric="euclidean") as old:
        for i, name in enumerate(names):
            old.add(name, vecs[owners == i])
        old.set_threshold(0.6, "manual")
    scaled = 1.4 * np.linalg.norm(va / np.linalg.norm(va) - vb / np.linalg.norm(vb))
    assert distance() == pytest.approx(scaled, abs=2e-4)
    assert distance("--gallery", str(enrolled / "g.db")) == pytest.approx(scaled, abs=2e-4)
    assert distance("--gallery", str(tmp_path / "old.db")) == pytest.approx(
        np.linalg.norm(va - vb), abs=2e-4)
