"""Faces end to end on real AT&T photos pasted into larger canvases: detect, align, prepare,
enroll, recognize (gallery and classifier), video, capture, verify, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from facecnn.apps.pairs import write_pairs
from facecnn.errors import FacecnnError
from facecnn.faces.align import align_face
from facecnn.faces.detect import FaceDetector
from facecnn.faces.embedders.run import RunEmbedder
from helpers import canvas, digest, invoke_cli, run_cli, write_photos

pytestmark = pytest.mark.e2e

ENROLLED = [f"s{i}" for i in range(1, 31)]
STRANGERS = [f"s{i}" for i in range(31, 41)]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("faces")


@pytest.fixture(scope="module")
def gallery(work: Path) -> Path:
    """30 people enrolled from photos 1-5, threshold calibrated; with dlib's network in PyTorch
    (dlib's vectors, ~10x faster in batches: test_dlib_port.py holds the two to one another)."""
    photos = write_photos(work / "enroll", ENROLLED, range(1, 6))
    result = invoke_cli("enroll", str(photos), "--gallery", str(work / "team.db"), "--embedder",
                        "dlib_torch", "--min-quality", "0", "--quiet", cwd=work)  # every photo
    assert result.returncode == 0, result.stderr
    assert "enrolled 150 new faces of 30 people" in result.stdout
    assert "(calibrated)" in result.stdout
    return work / "team.db"


def test_detectors_find_the_face_and_map_boxes_back() -> None:
    image = canvas("s5", 3)
    for name in ("hog", "haar", "haar_seed_c"):
        faces = FaceDetector(name)(image)
        assert len(faces) == 1, name
        x1, y1, x2, y2 = faces[0].box
        assert 54 - 20 <= x1 and x2 <= 146 + 20 and 44 - 20 <= y1 and y2 <= 156 + 20, name
        lm = faces[0].landmarks
        assert lm[0, 0] < lm[1, 0] and lm[:2, 1].mean() < lm[2, 1] < lm[3:, 1].mean()
    big = cv2.resize(image, (800, 800), interpolation=cv2.INTER_CUBIC)
    small_box = np.array(FaceDetector("hog")(image)[0].box)
    big_box = np.array(FaceDetector("hog", max_side=400)(big)[0].box)  # detected at half size
    assert np.abs(big_box / 4 - small_box).max() < 8


def test_alignment_is_stable_under_scale_and_shift() -> None:
    detector = FaceDetector("hog")
    crops = []
    for scale, offset in ((1.0, (0, 0)), (1.5, (-20, 15)), (0.9, (25, -10))):
        image = canvas("s7", 1, side=260, scale=scale, offset=offset)
        crops.append(align_face(image, detector(image)[0].landmarks, 112).astype(float))
    for other in crops[1:]:
        assert np.abs(crops[0] - other).mean() < 20  # same pixels land in the same place
    assert np.abs(crops[0] - align_face(canvas("s8", 1, 260), detector(
        canvas("s8", 1, 260))[0].landmarks, 112)).mean() > np.abs(crops[0] - crops[1]).mean()


def test_prepare_writes_crops_reports_and_never_overwrites(work: Path) -> None:
    raw = write_photos(work / "raw", ["s1", "s2"], range(1, 4))
    Image.new("RGB", (200, 200), (90, 90, 90)).save(raw / "s1" / "empty.jpg")
    (raw / "s2" / "notes.jpg").write_text("not an image")
    before = digest(raw)
    out = work / "prepared"
    result = invoke_cli("prepare", str(raw), str(out), "--size", "96", "--quiet", cwd=work)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (out / "s1").iterdir()) == ["1.jpg", "2.jpg", "3.jpg"]
    assert Image.open(out / "s2" / "1.jpg").size == (96, 96)
    report = json.loads((out / "prepare_report.json").read_text())
    assert report["faces_written"] == 6 and report["no_face"] == ["s1/empty.jpg"]
    assert [u["file"] for u in report["unreadable"]] == ["s2/notes.jpg"]
    assert digest(raw) == before  # RAW is only read
    kept = (out / "s1" / "1.jpg").read_bytes()
    again = invoke_cli("prepare", str(raw), str(out), "--size", "64", "--quiet", cwd=work)
    assert again.returncode == 0, again.stderr
    assert (out / "s1" / "1.jpg").read_bytes() == kept
    assert len(json.loads((out / "prepare_report.json").read_text())["kept_existing"]) == 6


@pytest.mark.slow
def test_open_set_recognition(work: Path, gallery: Path) -> None:
    """Held-out photos of enrolled people are named; strangers come out unknown."""
    known = write_photos(work / "known", ENROLLED, range(6, 11))
    strangers = write_photos(work / "strangers", STRANGERS, range(1, 6))
    result = invoke_cli("recognize", str(known), str(strangers), "--gallery", str(gallery),
                        "--json", cwd=work)
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    assert len(records) == 200 and all(r["frame"] == 0 for r in records)
    right = unknown = 0
    for record in records:
        person = Path(record["file"]).parent.name
        name = record["faces"][0]["name"] if record["faces"] else "unknown"
        right += person in ENROLLED and name == person
        unknown += person in STRANGERS and name == "unknown"
    face = next(r for r in records if r["faces"])["faces"][0]
    assert set(face) == {"box", "confidence", "quality", "name", "score", "distance"}
    assert len(face["box"]) == 4 and all(isinstance(v, int) for v in face["box"])
    named_strangers = {Path(r["file"]).parent.name for r in records
                       if Path(r["file"]).parent.name in STRANGERS and r["faces"]
                       and r["faces"][0]["name"] != "unknown"}
    # Measured: 148/150 named right, 46/50 strangers unknown (threshold ~0.42 with the lead);
    # the 4 are photos of one stranger, s31, whom dlib puts 0.45-0.47 from s6: a lookalike
    # that the distance alone (threshold ~0.47, 146/150 named) left out by 0.01
    assert right / 150 >= 0.95
    assert unknown / 50 >= 0.9 and len(named_strangers) <= 1, named_strangers


def test_gallery_people_persist_across_processes(work: Path) -> None:
    photos = write_photos(work / "small", ["s1", "s2", "s3"], range(1, 3))
    db = work / "small.db"
    assert invoke_cli("enroll", str(photos), "--gallery", str(db), "--quiet",
                      cwd=work).returncode == 0
    assert invoke_cli("gallery", "rename", str(db), "s1", "alice", cwd=work).returncode == 0
    assert invoke_cli("gallery", "remove", str(db), "s2", cwd=work).returncode == 0
    # a fresh process (the real command, start to end) reads what the others wrote
    listed = json.loads(run_cli("gallery", "list", str(db), "--json", cwd=work).stdout)
    assert [(p["name"], p["faces"]) for p in listed["people"]] == [("alice", 2), ("s3", 2)]
    bad = invoke_cli("gallery", "rename", str(db), "s3", "../evil", cwd=work)
    assert bad.returncode == 2 and "invalid person name" in bad.stderr


def _video(path: Path, frames: list[np.ndarray]) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (200, 200))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def test_video_recognize_and_capture(work: Path, gallery: Path) -> None:
    blank = np.full((200, 200, 3), 90, np.uint8)
    clip = _video(work / "clip.avi", [canvas("s4", i) for i in range(6, 11)] + [blank] * 3)
    out = work / "annotated"
    result = invoke_cli("recognize", str(clip), "--gallery", str(gallery), "--save", str(out),
                        "--json", cwd=work)
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)["frames"]
    assert [r["frame"] for r in records] == list(range(8))
    assert sum(r["faces"][0]["name"] == "s4" for r in records[:5] if r["faces"]) >= 4
    assert not records[-1]["faces"]  # the tracker follows a face until a look misses it
    assert (out / "clip.mp4").stat().st_size > 0 and (out / "clip.json").is_file()


def test_capture_saves_one_persons_aligned_faces(work: Path) -> None:
    """s4 alone, then beside s5 (twice the same frame), then s5 alone: the crops saved for
    bob are s4's alone, aligned, the repeated frame once; then ann is s5 (not s4 again)."""
    from facecnn.faces.embedders import create_embedder

    pair = [np.hstack([canvas("s4", i), canvas("s5", i)]) for i in (7, 8)]
    frames = [cv2.resize(f, (400, 200)) for f in
              [np.hstack([canvas("s4", 6)] * 2), pair[0], pair[0], pair[1]]
              + [np.hstack([canvas("s5", i)] * 2) for i in (1, 2, 3, 4)]]
    writer = cv2.VideoWriter(str(work / "two.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10,
                             (400, 200))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    out = work / "captured"
    captured = invoke_cli("capture", str(out), "--person", "bob", "--person", "ann", "--count",
                          "3", "--from-video", str(work / "two.avi"), "--detector", "hog",
                          cwd=work)
    assert captured.returncode == 0, captured.stderr
    crops = {p: sorted((out / p).glob("*.jpg")) for p in ("bob", "ann")}
    assert len(crops["bob"]) == 3 and len(crops["ann"]) >= 2
    assert len({c.read_bytes() for c in crops["bob"]}) == 3  # the repeated frame saved once
    assert json.loads((out / "prepare_report.json").read_text())["crop"] == {"size": 160,
                                                                             "margin": 0.2}
    embedder = create_embedder("dlib_torch")
    refs = {p: embedder.embed([(canvas(p, 9), FaceDetector("hog")(canvas(p, 9))[0])])[0]
            for p in ("s4", "s5")}
    for person, truth in (("bob", "s4"), ("ann", "s5")):
        for crop in crops[person]:
            image = np.asarray(Image.open(crop))
            assert image.shape == (160, 160, 3)
            (face,) = FaceDetector("hog")(image)
            vector = embedder.embed([(image, face)])[0]
            near = min(refs, key=lambda p: np.linalg.norm(refs[p] - vector))
            assert near == truth, (crop, near)


def test_verify_two_photos_and_lfw_pairs(work: Path) -> None:
    for name, (person, i) in {"a": ("s9", 1), "b": ("s9", 2), "c": ("s10", 1)}.items():
        Image.fromarray(canvas(person, i)).save(work / f"{name}.jpg")
    same = json.loads(invoke_cli("verify", str(work / "a.jpg"), str(work / "b.jpg"), "--json",
                                 cwd=work).stdout)
    other = json.loads(invoke_cli("verify", str(work / "a.jpg"), str(work / "c.jpg"), "--json",
                                  cwd=work).stdout)
    assert same["same_person"] and not other["same_person"]
    assert same["distance"] < other["distance"]
    root = work / "lfw"
    people = [f"Person_{i}" for i in range(1, 21)]
    for k, name in enumerate(people):
        (root / name).mkdir(parents=True)
        for i in (1, 2, 3):
            Image.fromarray(canvas(f"s{k + 1}", i)).save(root / name / f"{name}_{i:04d}.jpg")
    matched = [(people[k], 1, 2 + k % 2) for k in range(20)]
    mismatched = [(people[k], 1, people[(k + 7) % 20], 3) for k in range(20)]
    matched[0] = (people[0], 1, 9)  # a missing image: its pair counts as wrong
    write_pairs(work / "pairs.txt", matched, mismatched, folds=10)
    result = invoke_cli("verify", "--pairs", str(work / "pairs.txt"), "--root", str(root),
                        "--embedder", "dlib_torch", "--json", "--project", str(work / "runs"),
                        cwd=work)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report) == {"mean_accuracy", "std_accuracy", "tar_at_far_1e-3", "threshold",
                           "pairs", "pairs_without_face"}
    assert report["pairs"] == 40 and report["pairs_without_face"] == 1
    assert 0.85 <= report["mean_accuracy"] <= 0.975  # the failed pair is always wrong
    assert (work / "runs" / "verify" / "exp" / "roc.png").is_file()


def test_classifier_path_and_onnx_embedder(work: Path) -> None:
    """Seed C's path (a CNN trained on prepared crops) and an ONNX embedder exported from it."""
    raw = write_photos(work / "raw3", ["s11", "s12", "s13"], range(1, 11))
    crops = work / "crops3"
    assert invoke_cli("prepare", str(raw), str(crops), "--size", "64", "--margin", "0.1",
                      "--quiet", cwd=work).returncode == 0
    trained = invoke_cli("train", str(crops), "--model", "seed_face_cnn3", "--img-size", "64",
                         "--epochs", "8", "--batch-size", "8", "--no-amp", "--quiet", "--project",
                         str(work / "runs"), "--name", "faces3", cwd=work)
    assert trained.returncode == 0, trained.stderr
    run = work / "runs" / "train" / "faces3"
    photo = raw / "s12" / "10.jpg"
    result = invoke_cli("recognize", str(photo), "--model", str(run), "--json", cwd=work)
    assert result.returncode == 0, result.stderr
    face = json.loads(result.stdout)[0]["faces"][0]
    assert face["name"] in ("s11", "s12", "s13", "unknown") and face["distance"] is None

    # predict on photos names their largest face cut as the crops were, as recognize does;
    # on the prepared folder it takes the crops as they are; a photo with no face is skipped
    Image.new("RGB", (200, 200), (90, 90, 90)).save(work / "blank.jpg")
    photos = [raw / person / "10.jpg" for person in ("s11", "s12", "s13")]
    named = invoke_cli("predict", str(run), *map(str, photos), str(work / "blank.jpg"),
                       "--json", cwd=work)
    assert named.returncode == 0, named.stderr
    assert "skipped" in named.stderr and "blank.jpg: no face found" in named.stderr
    predicted = {Path(p["file"]).parent.name: p for p in json.loads(named.stdout)}
    assert list(predicted) == ["s11", "s12", "s13"]
    recognized = json.loads(invoke_cli("recognize", *map(str, photos), "--model", str(run),
                                       "--min-confidence", "0", "--json", cwd=work).stdout)
    for record in recognized:
        best = record["faces"][0]
        mine = predicted[Path(record["file"]).parent.name]
        assert mine["label"] == best["name"] and abs(mine["score"] - best["score"]) < 1e-3
    as_crops = invoke_cli("predict", str(run), str(crops / "s12"), "--json", cwd=work)
    assert as_crops.returncode == 0 and "skipped" not in as_crops.stderr, as_crops.stderr
    assert len(json.loads(as_crops.stdout)) == 10

    from facecnn.inference.pytorch import load_inference_model

    model, meta = load_inference_model(run)
    # the crop travels with the weights: recognizing cuts faces as the run was trained on
    assert meta["crop"] == {"size": 64, "margin": 0.1}
    assert RunEmbedder(run).crop == {"size": 64, "margin": 0.1}

    class Features(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model.features(x)

    onnx_file = work / "faces3.onnx"
    torch.onnx.export(Features().eval(), torch.randn(1, 3, 64, 64), str(onnx_file),
                      dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "n"}})
    db = work / "onnx.db"
    enrolled = invoke_cli("enroll", str(crops), "--gallery", str(db), "--embedder",
                          f"onnx:{onnx_file}", "--quiet", cwd=work)
    assert enrolled.returncode == 0, enrolled.stderr
    listed = json.loads(invoke_cli("gallery", "list", str(db), "--json", cwd=work).stdout)
    assert listed["embedder"] == f"onnx:{onnx_file.resolve()}"
    assert [p["faces"] for p in listed["people"]] == [10, 10, 10]
    mixed = invoke_cli("enroll", str(crops), "--gallery", str(db), "--quiet", cwd=work)
    assert mixed.returncode == 2 and "refusing to mix" in mixed.stderr


@pytest.mark.parametrize("case", ["missing_gallery", "bad_video", "no_face"])
def test_bad_input(work: Path, case: str) -> None:
    if case == "missing_gallery":
        result = invoke_cli("recognize", str(work), "--gallery", str(work / "none.db"), cwd=work)
        assert result.returncode == 2 and "gallery not found" in result.stderr
    elif case == "bad_video":
        (work / "broken.mp4").write_text("not a video")
        (work / "g0").mkdir(exist_ok=True)
        photos = write_photos(work / "g0", ["s1", "s2"], range(1, 3))
        db = work / "g0.db"
        assert invoke_cli("enroll", str(photos), "--gallery", str(db), "--quiet",
                          cwd=work).returncode == 0
        result = invoke_cli("recognize", str(work / "broken.mp4"), "--gallery", str(db), cwd=work)
        assert result.returncode == 2 and "cannot open video" in result.stderr
    else:
        Image.new("RGB", (120, 120), (90, 90, 90)).save(work / "wall.jpg")
        result = invoke_cli("verify", str(work / "wall.jpg"), str(work / "wall.jpg"), cwd=work)
        assert result.returncode == 2 and "no face found" in result.stderr
    assert "Traceback" not in result.stderr and result.stderr.strip().count("\n") == 0


def test_python_api_mirrors_the_cli(work: Path, gallery: Path) -> None:
    from facecnn.faces import Gallery, Recognizer, align_face, detect_faces, embed_faces

    image = canvas("s6", 9)
    faces = detect_faces(image, "hog")
    assert len(faces) == 1 and align_face(image, faces[0].landmarks, 112).shape == (112, 112, 3)
    vector = embed_faces([(image, faces[0])], "dlib")
    assert vector.shape == (1, 128)
    with Gallery.open(gallery) as g:
        assert g.identify(vector)[0].name == "s6"
    recognizer = Recognizer(gallery=gallery, workers=1)
    result = recognizer(image)
    assert [f.name for f in result.faces] == ["s6"] and result.faces[0].score >= 0.5
    face = result.faces[0]  # one record, enriched by each stage
    assert face.confidence is not None and face.vector.shape == (128,)
    assert face.landmarks.shape == (5, 2)
    # a path, a numpy array and a PIL image are the same photo
    Image.fromarray(image).save(work / "s6.png")
    for source in (work / "s6.png", str(work / "s6.png"), Image.open(work / "s6.png")):
        assert recognizer(source).to_dict()["faces"] == result.to_dict()["faces"]
    record = json.loads(recognizer(work / "s6.png").to_json())
    assert record["file"] == str(work / "s6.png") and record["faces"][0]["name"] == "s6"
    plotted = result.plot()
    assert plotted.shape == image.shape and (plotted != image[:, :, ::-1]).any()
    saved = result.save(work / "plots")
    assert saved.suffix == ".jpg" and cv2.imread(str(saved)).shape == image.shape
    assert result.save(work / "plots") != saved  # nothing is overwritten
    with pytest.raises(FacecnnError, match="path, a numpy array or a PIL image"):
        recognizer(42)


def test_one_recognizer_serves_several_threads(gallery: Path) -> None:
    """The server, a video's namer and the CLI share one Recognizer: photos recognized from
    eight threads at once get exactly the answers they get one at a time."""
    from concurrent.futures import ThreadPoolExecutor

    from facecnn.faces import FaceDetector, Recognizer
    from facecnn.faces.embedders import create_embedder

    recognizer = Recognizer(gallery=gallery, detector=FaceDetector("hog"),
                            embedder=create_embedder("dlib"))  # dlib's C++: not thread-safe
    photos = [canvas(person, 3) for person in ENROLLED[:8]] * 3  # enrolled photos

    def answer(image: np.ndarray) -> list[tuple[str, float]]:
        return [(r.name, round(r.distance or 0.0, 5)) for r in recognizer(image)]

    alone = [answer(image) for image in photos]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(answer, photos))
    assert together == alone
    found = [(names[0][0], person) for names, person in zip(alone, ENROLLED[:8]) if names]
    assert len(found) >= 6 and all(name == person for name, person in found)
