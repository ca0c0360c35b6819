"""Face quality (faces/quality.py): blurred, tiny and turned faces score low, and `enroll` and
`cluster` keep the faces under --min-quality out, list them and count them."""

from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from facecnn.faces.detect import FaceDetector
from facecnn.faces.quality import DEFAULT_MIN_QUALITY, pose_part, sharpness_part
from facecnn.faces.result import Face
from helpers import canvas, invoke_cli, write_photos

pytestmark = pytest.mark.e2e

FAST = ("--detector", "hog", "--workers", "1")


def _blurred(path: Path, person: str, index: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(cv2.GaussianBlur(canvas(person, index), (0, 0), 2.0)).save(path)
    return path


def test_blurred_tiny_and_turned_faces_score_low() -> None:
    detector = FaceDetector()
    sharp = detector(canvas("s3", 4))[0]
    assert sharp.quality > 0.75
    # sigma 2 sits on the floor (0.50), 1.5 above it (0.61): blur this strong falls under
    assert detector(cv2.GaussianBlur(canvas("s3", 4), (0, 0), 2.5))[0].quality < \
        DEFAULT_MIN_QUALITY
    assert detector(canvas("s3", 4, scale=0.3))[0].quality < DEFAULT_MIN_QUALITY
    turned = Face(sharp.box, landmarks=sharp.landmarks + np.array([[0, 0], [0, 0],
                                                                    [25, 0], [0, 0], [0, 0]]))
    assert pose_part(turned) < 0.5 * pose_part(sharp)
    dark = (canvas("s3", 4) * 0.25).astype(np.uint8)  # dim light is not blur
    assert abs(sharpness_part(dark, sharp) - sharpness_part(canvas("s3", 4), sharp)) < 0.1
    assert sharpness_part(np.full((200, 200, 3), 90, np.uint8), sharp) == 0.0


def test_enroll_lists_and_counts_the_faces_under_the_floor(tmp_path: Path) -> None:
    photos = write_photos(tmp_path / "photos", ["s1", "s2"], range(1, 4))
    blurred = _blurred(photos / "s1" / "blurred.jpg", "s1", 5)
    result = invoke_cli("enroll", str(photos), "--gallery", str(tmp_path / "g.db"), *FAST,
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "enrolled 6 new faces of 2 people" in result.stdout
    assert f"1 photo was under quality {DEFAULT_MIN_QUALITY:g}" in result.stdout
    assert f"not enrolled: {blurred}" in result.stderr
    again = invoke_cli("enroll", str(photos), "--gallery", str(tmp_path / "all.db"), *FAST,
                       "--min-quality", "0", cwd=tmp_path)
    assert "enrolled 7 new faces of 2 people" in again.stdout  # 0 keeps every face


def test_cluster_leaves_faces_under_the_floor_unsorted_and_lists_them(tmp_path: Path) -> None:
    photos = write_photos(tmp_path / "photos", ["s1", "s2", "s3"], range(1, 5))
    poor = [_blurred(photos / "s1" / f"blurred{i}.jpg", "s1", i) for i in (6, 7, 8)]
    result = invoke_cli("cluster", str(photos), "--out", str(tmp_path / "people"), "--json",
                        *FAST, "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert sorted(Path(f["file"]).name for f in report["low_quality"]) == \
        sorted(p.name for p in poor)
    assert all(f["quality"] < DEFAULT_MIN_QUALITY for f in report["low_quality"])
    assert sorted(c["size"] for c in report["clusters"]) == [4, 4, 4]  # no blurred face in
    assert report["unsorted"] == 3
    document = json.loads((tmp_path / "people" / "clusters.json").read_text())
    assert all("quality" in face for entry in document for face in entry["faces"])


def test_contact_sheets_show_each_face_quality(tmp_path: Path) -> None:
    from facecnn.cluster.sheets import THUMB, TITLE, contact_sheet

    crops = []
    for k in range(2):
        crops.append(tmp_path / f"{k}.jpg")
        Image.fromarray(canvas("s5", k + 1)).save(crops[-1])
    plain = np.asarray(Image.open(io.BytesIO(contact_sheet("c", crops, 2))))
    labelled = np.asarray(Image.open(io.BytesIO(contact_sheet("c", crops, 2, [0.93, None]))))
    corner = (slice(TITLE + THUMB - 12, TITLE + THUMB), slice(0, 40))
    assert (labelled[corner] != plain[corner]).any()  # the first face's quality is written
    second = (slice(TITLE + THUMB - 12, TITLE + THUMB), slice(THUMB, THUMB + 40))
    assert (labelled[second] == plain[second]).all()  # none for a face not measured
