"""Every registered detector on real photos (dlib's boxed PASCAL group photos, AT&T faces in
canvases), through the one FaceDetector every command uses; the registry and its listing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facecnn.data.decode import read_image
from facecnn.errors import FacecnnError
from facecnn.faces.boxes import evaluate, iou, read_boxes
from facecnn.faces.detect import FaceDetector
from facecnn.faces.detectors import DETECTORS
from helpers import canvas, invoke_cli, write_photos

BOXES = Path(__file__).resolve().parents[2] / "shared" / "data" / "dlib_faces"
# detector -> (upsample, box file, recall floor, precision floor at IoU 0.4), a little below
# what each measured (benchmarks/detect.py); dlib's own CNN is too slow for more than the
# four training photos at upsample 0, where it and its port find the same 5 of 18 faces.
FLOORS = {"hog": (1, "testing.xml", 0.95, 0.95), "haar": (1, "testing.xml", 0.85, 0.9),
          "haar_seed_c": (1, "testing.xml", 0.65, 0.9),
          "mtcnn": (1, "testing.xml", 0.95, 0.95),
          "dlib_cnn": (1, "testing.xml", 0.9, 0.95), "cnn": (0, "training.xml", 0.25, 0.95)}


@pytest.mark.e2e
@pytest.mark.parametrize("name", DETECTORS.names())
def test_every_detector_finds_the_boxed_faces(name: str) -> None:
    assert name in FLOORS, f"give the new detector {name!r} its floors here"
    upsample, file, min_recall, min_precision = FLOORS[name]
    truth = read_boxes(BOXES / file)
    detector = FaceDetector(name, upsample=upsample)
    found = {path: [(f.box, f.confidence) for f in faces] for path, faces in
             zip(truth, detector.detect_batch([read_image(p) for p in truth]))}
    scores = evaluate(found, truth, 0.4)
    assert scores.recall >= min_recall and scores.precision >= min_precision, scores
    for faces in detector.detect_batch([canvas("s3", 2), canvas("s9", 5, side=260, scale=1.4)]):
        assert len(faces) >= 1
        lm, (x1, _, x2, y2) = faces[0].landmarks, faces[0].box
        assert lm.shape == (5, 2) and lm[0, 0] < lm[1, 0] < x2 and x1 < lm[0, 0]
        assert lm[:2, 1].mean() < lm[2, 1] < lm[3:, 1].mean() < y2


@pytest.mark.e2e
def test_mtcnn_gives_its_own_landmarks_and_dlib_chips_still_work(tmp_path: Path) -> None:
    image = canvas("s4", 3)
    mtcnn, hog = FaceDetector("mtcnn")(image)[0], FaceDetector("hog")(image)[0]
    assert iou(mtcnn.box, hog.box) > 0.4
    assert np.abs(mtcnn.landmarks - hog.landmarks).max() < 8  # the same eyes, nose, mouth
    photos = write_photos(tmp_path / "photos", ["s1", "s2", "s3"], range(1, 4))
    db = tmp_path / "g.db"
    enrolled = invoke_cli("enroll", str(photos), "--gallery", str(db), "--detector", "mtcnn",
                          "--quiet", cwd=tmp_path)
    assert enrolled.returncode == 0, enrolled.stderr
    Image.fromarray(canvas("s2", 8)).save(tmp_path / "s2.jpg")
    found = invoke_cli("recognize", str(tmp_path / "s2.jpg"), "--gallery", str(db), "--detector",
                       "mtcnn", "--json", cwd=tmp_path)
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)[0]["faces"][0]["name"] == "s2"


@pytest.mark.e2e
def test_the_default_finds_turned_and_tilted_faces_that_hog_misses() -> None:
    """Real AT&T portraits: s2 turned to the side, head thrown back, head bowed and tilted."""
    images = [canvas("s2", i) for i in (6, 7, 9)]
    assert FaceDetector("hog").detect_batch(images, landmarks=False) == [[], [], []]
    for faces in FaceDetector().detect_batch(images):
        assert len(faces) == 1
        x1, y1, x2, y2 = faces[0].box
        assert 54 <= (x1 + x2) / 2 <= 146 and 44 <= (y1 + y2) / 2 <= 156  # inside the photo
        assert 15 <= x2 - x1 <= 92


def test_unknown_detector_suggests_the_right_name() -> None:
    with pytest.raises(FacecnnError, match="unknown detector 'mtcn'; did you mean 'mtcnn'"):
        FaceDetector("mtcn")


def test_detectors_command_lists_models_and_licences(tmp_path: Path) -> None:
    listed = invoke_cli("detectors", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert list(rows) == DETECTORS.names()
    assert rows["mtcnn"]["landmarks"] == "own 5 points"
    assert all(m["licence"] for row in rows.values() for m in row["models"])
    # dlib's CNN, and O-Net for its five points: nothing with a non-commercial licence
    assert {m["licence"] for m in rows["dlib_cnn"]["models"]} == {"CC0-1.0", "MIT"}
    assert rows["hog"]["landmarks"] == "onet on its boxes"


def test_box_files_in_both_formats(tmp_path: Path) -> None:
    lines = tmp_path / "boxes.txt"
    lines.write_text("# file x1 y1 x2 y2\na b.jpg 10 10 50 50\na b.jpg 60 10 90 40\n")
    truth = read_boxes(lines)
    assert truth[tmp_path / "a b.jpg"].faces == [(10, 10, 50, 50), (60, 10, 90, 40)]
    scores = evaluate({tmp_path / "a b.jpg": [((12, 12, 50, 52), 0.9), ((0, 60, 9, 69), 0.5)]},
                      truth)
    assert (scores.found, scores.detections, scores.faces) == (1, 2, 2) and scores.ap == 0.5
    lines.write_text("a.jpg 10 10 5 50\n")
    with pytest.raises(FacecnnError, match="line 1"):
        read_boxes(lines)


@pytest.mark.e2e
def test_a_crop_cut_tight_is_looked_at_again_padded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A face filling a small image leaves MTCNN no room: the padded second look finds it,
    its box and points back in the crop's pixels; a large image with no face is not looked
    at twice."""
    import cv2

    from facecnn.faces import detect
    from facecnn.faces.second_look import padded

    photo = read_image(BOXES.parent / "lfw_dev" / "Bob_Hope" / "Bob_Hope_0005.jpg")
    crop = cv2.resize(photo[75:175, 75:175], (112, 112))
    detector = FaceDetector("mtcnn")
    faces = detector(crop)
    assert len(faces) == 1
    x1, y1, x2, y2 = faces[0].box
    assert 0 <= x1 < 20 and 0 <= y1 < 20 and x2 > 80 and y2 > 100
    eyes = faces[0].landmarks[:2]
    assert (eyes > 20).all() and (eyes < 95).all() and eyes[0, 0] < eyes[1, 0]
    monkeypatch.setattr(detect, "RETRY_MAX_SIDE", 0)
    assert detector(crop) == []  # without the second look there is none
    assert detector.detector.detect_batch([padded(crop)[0]], 20)  # the padding finds it
    monkeypatch.undo()
    calls = []
    network = detector.detector
    monkeypatch.setattr(network, "detect_batch",
                        lambda images, side: calls.append(len(images)) or [[] for _ in images])
    detector(np.full((600, 800, 3), 90, np.uint8))
    detector(np.full((300, 300, 3), 90, np.uint8))
    # the large one once; the small one four times: as it is, padded, padded and equalized,
    # padded and spread
    assert calls == [1, 1, 1, 1, 1]
