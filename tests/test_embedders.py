"""Embedders as plug-ins and the landmark step: one class makes a new embedder, the default
path needs no non-commercial model, and galleries keep cutting chips as they were made."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from facecnn.apps.enroll import enroll
from facecnn.data.decode import read_image
from facecnn.errors import FacecnnError
from facecnn.faces import dlib_models
from facecnn.faces.align import align_face
from facecnn.faces.crops import crop_face
from facecnn.faces.detect import FaceDetector
from facecnn.faces.embedders import EMBEDDERS, create_embedder, same_vectors
from facecnn.faces.embedders.base import Embedder, register
from facecnn.faces.embedders.dlib import DlibEmbedder
from facecnn.faces.gallery import Gallery
from facecnn.faces.landmarks import DLIB_68, create_landmarker
from facecnn.faces.pipeline import FacePipeline
from facecnn.faces.recognize import Recognizer
from helpers import canvas, invoke_cli, write_photos


@register("test_cells", help="mean colour of 4 x 4 cells (a test's embedder)")
class CellColours(Embedder):
    """A whole embedder in one class: its crop, threshold and network."""

    default_threshold = 0.5
    dim = 48

    def __init__(self, flip: bool = False, batch_size: int = 32) -> None:
        super().__init__(flip, batch_size)
        self.crop = {"size": 32, "margin": 0.2}

    def embed_chips(self, chips: np.ndarray) -> np.ndarray:
        cells = chips.reshape(len(chips), 4, 8, 4, 8, 3).mean((2, 4)).reshape(len(chips), -1)
        return cells / np.linalg.norm(cells, axis=1, keepdims=True)


@pytest.mark.e2e
def test_a_new_embedder_is_one_class(tmp_path: Path) -> None:
    photos = write_photos(tmp_path / "p", ["s1", "s2"], range(1, 5))
    files = sorted(photos.rglob("*.jpg"))
    pipeline = FacePipeline(FaceDetector("hog"), CellColours(), workers=1)
    vectors = [r.vectors for r in pipeline.run(files)]
    assert all(v is not None and v.shape == (1, 48) for v in vectors)
    same, other = np.linalg.norm(vectors[0] - vectors[1]), np.linalg.norm(vectors[0] - vectors[4])
    assert same < other  # s1 is nearer s1 than s2, even in mean colours
    by_name = create_embedder("test_cells")
    assert isinstance(by_name, CellColours) and EMBEDDERS.get("test_cells") is CellColours
    assert np.allclose(FacePipeline(FaceDetector("hog"), by_name).run(files[:1]).__next__()
                       .vectors, vectors[0])


@pytest.mark.e2e
def test_embedders_pickle_as_their_recipe() -> None:
    """What a spawned worker process receives: the class and its arguments, with the crop a
    gallery made it adopt."""
    embedder = DlibEmbedder(jitter=1)
    embedder.match_gallery({"size": 150, "padding": 0.25})  # an old gallery: 68 points
    copy = pickle.loads(pickle.dumps(embedder))
    assert type(copy) is DlibEmbedder and copy.jitter == 1
    assert copy.crop == embedder.crop and copy.crop["landmarks"] == "dlib68"
    image = canvas("s5", 2)
    face = FaceDetector("hog")(image)[0]
    assert np.array_equal(copy.chips([(image, face)]), embedder.chips([(image, face)]))


def test_names_options_and_families() -> None:
    assert same_vectors("dlib", "dlib_torch") and not same_vectors("dlib", "run:/x")
    assert same_vectors("run:/x", "run:/x") and not same_vectors("run:/x", "run:/y")
    with pytest.raises(FacecnnError, match="unknown embedder 'dlb'; did you mean 'dlib'"):
        create_embedder("dlb")
    with pytest.raises(FacecnnError, match="named with a path: run:PATH"):
        create_embedder("run")
    with pytest.raises(FacecnnError, match="dlib_torch has no jitter option"):
        create_embedder("dlib_torch", jitter=2)
    with pytest.raises(FacecnnError, match="dlib5 or dlib68"):
        DlibEmbedder(landmarks="dlib7")
    assert create_embedder("dlib", device="cuda").crop["landmarks"] == "dlib5"  # no device
    with pytest.raises(FacecnnError, match="did you mean 'dlib68'.*onet, dlib68 \\(or auto\\)"):
        FaceDetector("hog", landmarks="dlib7")


@pytest.mark.e2e
def test_default_path_loads_no_68_point_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """dlib's 68-point model may not be used commercially: neither the default detector with
    dlib's chips, nor a detector without landmarks with ArcFace crops, loads it."""
    loaded: list[str] = []
    real = dlib_models._load
    monkeypatch.setattr(dlib_models, "_load",
                        lambda loader, file: loaded.append(file) or real(loader, file))
    dlib_models.shape_predictor.cache_clear()
    image = canvas("s6", 4)
    items = [(image, face) for face in FaceDetector()(image)]
    assert DlibEmbedder().embed(items).shape == (1, 128)
    hog_faces = FaceDetector("hog")(image)
    assert CellColours().embed([(image, face) for face in hog_faces]).shape == (1, 48)
    assert DLIB_68.name not in loaded and "shape_predictor_5_face_landmarks.dat" in loaded
    FaceDetector("hog", landmarks="dlib68")(image)
    assert DLIB_68.name in loaded  # by flag, it is still there


@pytest.mark.e2e
def test_onet_points_on_other_detectors_boxes_agree_with_dlib68() -> None:
    images = [canvas(f"s{k}", 1 + k % 10) for k in range(1, 41, 3)]
    hog = FaceDetector("hog", landmarks="dlib68")
    faces = [found[0] for found in hog.detect_batch(images)]
    onet = create_landmarker("onet", "cpu").points(images, [[f.box] for f in faces])
    errors = [np.linalg.norm(points[0] - face.landmarks, axis=1).mean()
              / np.linalg.norm(face.landmarks[0] - face.landmarks[1])
              for points, face in zip(onet, faces)]
    assert np.mean(errors) < 0.07 and max(errors) < 0.25, errors  # of the eye distance


@pytest.mark.e2e
def test_prepared_crops_are_their_own_alignment() -> None:
    """A crop `prepare` wrote is known to hold the template's points: aligning it again
    returns it unchanged, with no landmark model run."""
    crop = canvas("s7", 3, side=160)
    face = crop_face({"size": 160, "margin": 0.2}, 160)
    assert np.abs(align_face(crop, face.landmarks, 160, 0.2).astype(int) - crop).max() <= 1


@pytest.mark.e2e
def test_galleries_keep_the_chips_they_were_made_with(tmp_path: Path) -> None:
    photos = write_photos(tmp_path / "p", ["s1", "s2", "s3"], range(1, 4))
    old = tmp_path / "old.db"
    Gallery.create(old, "dlib", 128, {"size": 150, "padding": 0.25}).close()  # before dlib5
    enroll(photos, old, DlibEmbedder(), FaceDetector("hog"), workers=1)
    enroll(photos, tmp_path / "new.db", DlibEmbedder(), FaceDetector("hog"), workers=1)
    with Gallery.open(tmp_path / "new.db") as new:
        assert new.crop["landmarks"] == "dlib5"
        new_vectors = new.vectors()[0]
    with Gallery.open(old) as gallery:
        assert "landmarks" not in gallery.crop
        old_vectors = gallery.vectors()[0]
    image = read_image(photos / "s1" / "1.jpg")
    face = FaceDetector("hog")(image)[0]
    as_68 = DlibEmbedder(landmarks="dlib68").embed([(image, face)])[0]
    assert np.abs(old_vectors - as_68).sum(1).min() < 1e-4  # enrolled from 68 points
    assert np.abs(new_vectors - as_68).sum(1).min() > 1e-3  # not the new gallery
    assert Recognizer(gallery=old, detector=FaceDetector("hog")).embedder.crop[
        "landmarks"] == "dlib68"


def test_embedders_command_lists_models_and_families(tmp_path: Path) -> None:
    listed = invoke_cli("embedders", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    rows: dict[str, Any] = {row["name"]: row for row in json.loads(listed.stdout)}
    assert list(rows)[:4] == ["dlib", "dlib_torch", "run:PATH", "onnx:PATH"]
    assert rows["dlib"]["same_vectors_as"] == ["dlib_torch"]
    assert rows["dlib"]["default_threshold"] == 0.6
    assert {m["licence"] for m in rows["dlib"]["models"]} == {"CC0-1.0"}
