"""A model's face crop travels with it: `prepare --crop MODEL_OR_RUN` cuts faces as a model
takes them (dlib's chip for dlib_resnet), training a pretrained backbone on other crops warns,
and the classifier path then matches the gallery path on the same people."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facecnn.config import TrainConfig
from facecnn.data.decode import read_image
from facecnn.faces.crops import DLIB_CHIP, crop_for, crop_points, make_chips
from facecnn.faces.detect import FaceDetector
from facecnn.faces.embedders.dlib_torch import DlibTorchEmbedder
from facecnn.faces.recognize import Recognizer
from facecnn.models.catalog import model_info
from facecnn.train.crop_check import crop_mismatch
from facecnn.train.trainer import Trainer
from helpers import ATT_FACES, invoke_cli

PEOPLE = [f"s{i}" for i in range(1, 13)]


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twelve AT&T people, ten photos each, as they are (92 x 112 grey PGMs)."""
    root = tmp_path_factory.mktemp("raw")
    for person in PEOPLE:
        (root / person).symlink_to(ATT_FACES / person, target_is_directory=True)
    return root


@pytest.fixture(scope="module")
def chips(raw: Path) -> Path:
    out = raw.parent / "chips"
    result = invoke_cli("prepare", str(raw), str(out), "--crop", "dlib_resnet", "--quiet",
                        cwd=raw.parent)
    assert result.returncode == 0, result.stderr
    assert "dlib chips (150 px, padding 0.25, dlib5 points)" in result.stdout
    return out


@pytest.fixture(scope="module")
def run(chips: Path) -> Path:
    """dlib's pretrained ResNet with its last two stages unfrozen, on its own chips."""
    cfg = TrainConfig(data=str(chips), model="dlib_resnet", pretrained=True,
                      freeze="stem,stage1-3", epochs=2, amp=False,
                      project=str(chips.parent / "runs"), name="chips")
    return Trainer(cfg).fit()


@pytest.mark.e2e
def test_prepare_cuts_the_models_own_chips(raw: Path, chips: Path) -> None:
    report = json.loads((chips / "prepare_report.json").read_text())
    assert report["crop"] == DLIB_CHIP
    photo = read_image(raw / "s3" / "4.pgm")
    face = FaceDetector().detect_batch([photo], landmarks=False)[0][0]
    expected = make_chips(DLIB_CHIP, [(photo, face)])[0]  # what the dlib embedder cuts
    written = np.asarray(Image.open(chips / "s3" / "4.jpg"))
    assert written.shape == (150, 150, 3)
    assert np.abs(written.astype(int) - expected).mean() < 2.0  # JPEG's loss only


@pytest.mark.e2e
def test_crop_choices_are_checked_in_one_line(raw: Path, tmp_path: Path) -> None:
    both = invoke_cli("prepare", str(raw), str(tmp_path / "a"), "--crop", "dlib_resnet",
                      "--size", "100", cwd=tmp_path)
    unknown = invoke_cli("prepare", str(raw), str(tmp_path / "b"), "--crop", "no_such_net",
                         cwd=tmp_path)
    assert both.returncode != 0 and "drop --size/--margin" in both.stderr
    assert unknown.returncode != 0 and "neither a run folder nor a model" in unknown.stderr
    for result in (both, unknown):
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_model_without_a_native_crop_is_cut_at_its_input_size() -> None:
    size = model_info("seed_face_cnn3").img_size
    assert crop_for("seed_face_cnn3") == {"size": size, "margin": 0.2}


@pytest.mark.e2e
def test_pretrained_backbones_warn_about_foreign_crops(chips: Path, tmp_path: Path) -> None:
    arcface = tmp_path / "arcface"
    arcface.mkdir()
    (arcface / "prepare_report.json").write_text(json.dumps({"crop": {"size": 160,
                                                                       "margin": 0.2}}))
    assert crop_mismatch("dlib_resnet", chips) is None
    foreign = crop_mismatch("dlib_resnet", arcface)
    assert "ArcFace-template crops (160 px, margin 0.2)" in foreign
    assert "--crop dlib_resnet" in foreign
    assert "not cut by `facecnn prepare`" in crop_mismatch("dlib_resnet", tmp_path / "photos")
    assert crop_mismatch("seed_face_cnn3", arcface) is None  # no pretrained face crop


@pytest.mark.e2e
def test_unfrozen_stages_keep_the_imprinted_start(run: Path) -> None:
    history = list(csv.DictReader((run / "results.csv").open()))
    assert float(history[0]["val_acc"]) >= 0.9, history  # chance is 1/12
    assert "warning" not in (run / "train.log").read_text()


@pytest.mark.e2e
def test_classifier_path_on_par_with_gallery_path(chips: Path, run: Path) -> None:
    """Same people, same held-out chips: the trained classifier names them as well as
    dlib's network with a nearest-neighbour gallery of the training chips (in PyTorch: dlib's
    vectors, faster in batches)."""
    split = json.loads((run / "split.json").read_text())
    embedder = DlibTorchEmbedder(device="cpu")

    def vectors(ids: list[str]) -> tuple[np.ndarray, list[str]]:
        images = np.stack([np.asarray(Image.open(chips / i)) for i in ids])
        return embedder.vectors_of(images), [Path(i).parts[0] for i in ids]

    refs, ref_names = vectors(split["train"])
    queries, truth = vectors(split["val"])
    nearest = np.linalg.norm(queries[:, None] - refs[None], axis=2).argmin(1)
    gallery_acc = np.mean([ref_names[k] == name for k, name in zip(nearest, truth)])
    best = max(csv.DictReader((run / "results.csv").open()), key=lambda r: -float(r["val_loss"]))
    assert float(best["val_acc"]) >= gallery_acc - 0.02, (best, gallery_acc)


@pytest.mark.e2e
def test_recognize_with_the_run_cuts_faces_as_it_was_trained(raw: Path, run: Path) -> None:
    split = json.loads((run / "split.json").read_text())
    recognizer = Recognizer(model=run, min_confidence=0.0)
    named = []
    for chip in split["val"]:
        person, stem = Path(chip).parts[0], Path(chip).stem
        results = recognizer(read_image(raw / person / f"{stem}.pgm"))
        named.append(bool(results) and results[0].name == person)
    assert np.mean(named) >= 0.9, named
    assert crop_for(str(run)) == DLIB_CHIP  # `prepare --crop RUN` cuts its chips again


@pytest.mark.e2e
def test_chip_points_lie_on_the_chips_faces(chips: Path) -> None:
    """The five points a folder of chips is taken to hold are where MTCNN finds them."""
    images = [read_image(chips / p / "1.jpg") for p in PEOPLE[:6]]
    found = [faces[0].landmarks for faces in FaceDetector("mtcnn").detect_batch(images)]
    points = crop_points(DLIB_CHIP)
    eye_distance = np.linalg.norm(points[0] - points[1])
    errors = [np.linalg.norm(p - points, axis=1).mean() / eye_distance for p in found]
    assert np.mean(errors) < 0.08, errors


def test_68_point_landmarks_on_a_photo_without_faces() -> None:
    blank = np.full((120, 120, 3), 127, np.uint8)
    assert FaceDetector("hog", landmarks="dlib68")(blank) == []


@pytest.mark.e2e
def test_prepare_then_train_gets_the_models_own_crop(raw: Path, run: Path,
                                                     tmp_path: Path) -> None:
    """The seeds' path without `--crop`: prepare's default crops, then dlib_resnet
    --pretrained. train cuts the faces again as dlib's chips from the photos prepare recorded
    and reaches what the run on chips reached; the run recognizes as one on chips does."""
    template = tmp_path / "faces"
    assert invoke_cli("prepare", str(raw), str(template), "--quiet",
                      cwd=tmp_path).returncode == 0
    report = json.loads((template / "prepare_report.json").read_text())
    assert report["faces"]["s3/4.jpg"]["photo"] == str((raw / "s3" / "4.pgm").resolve())
    trained = invoke_cli("train", str(template), "--model", "dlib_resnet", "--pretrained",
                         "--freeze", "stem,stage1-3", "--epochs", "2", "--no-amp", "--project",
                         str(tmp_path / "runs"), "--name", "recut", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert "training on its faces cut so" in trained.stdout
    recut = tmp_path / "runs" / "train" / "recut"
    assert "warning" not in (recut / "train.log").read_text()
    assert crop_for(str(recut)) == DLIB_CHIP  # recognize --model cuts dlib chips for it

    def best(folder: Path) -> float:
        return max(float(r["val_acc"]) for r in csv.DictReader((folder / "results.csv").open()))

    assert best(recut) >= best(run) - 0.05, (best(recut), best(run))
