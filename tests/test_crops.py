"""Faces that come as crops (faces/second_look.py): real LFW faces cut in the layouts face
sets ship (tight grey crops, 112 px ArcFace-aligned chips, dlib's 150 px chips, crops half in
shadow) go through the default enroll, recognize and verify with no flags; an image with no
face stays "no face"; `--crops` takes every image as one face; folders that workers detect in
get the whole-image look in the main process."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from facecnn.data.decode import read_image
from facecnn.faces.detect import FaceDetector
from facecnn.faces.gallery import Gallery
from facecnn.faces.pipeline import FacePipeline, picked
from helpers import ATT_FACES, invoke_cli

LFW = ATT_FACES.parent / "lfw_dev"
GROUPS = ATT_FACES.parent / "dlib_faces"
PEOPLE = ["Adrien_Brody", "Ana_Palacio", "Bill_Frist", "Bob_Hope"]
ENROL = 4  # crops per person enrolled; the fifth is recognized


def _grey(image: np.ndarray) -> np.ndarray:
    return np.repeat(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2)


def _shadowed(tight: np.ndarray) -> np.ndarray:
    """Grey, lit from the left: the right half fades into shadow."""
    grey = cv2.cvtColor(cv2.resize(tight, (168, 192)), cv2.COLOR_RGB2GRAY) / 255.0
    lit = 255 * (grey * np.linspace(1.0, 0.05, 168)[None, :]) ** 1.5
    return np.repeat(lit.astype(np.uint8)[:, :, None], 3, axis=2)


def _layouts(image: np.ndarray, face) -> dict[str, np.ndarray]:
    from facecnn.faces.align import align_face
    from facecnn.faces.crops import DLIB_CHIP, make_chips

    x1, y1, x2, y2 = (int(round(v)) for v in face.box)
    tight = image[max(y1, 0):y2, max(x1, 0):x2]
    return {"grey": _grey(tight), "arcface112": align_face(image, face.landmarks, 112),
            "dlib150": make_chips(DLIB_CHIP, [(image, face)])[0], "shadow": _shadowed(tight)}


@pytest.fixture(scope="module")
def crop_sets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """root/<layout>/{enrol,query}/<person>/<i>.png: each photo's subject, found by the
    default detector in the whole photo, cut in every layout."""
    root = tmp_path_factory.mktemp("crops")
    detector = FaceDetector()
    for person in PEOPLE:
        for i, photo in enumerate(sorted((LFW / person).glob("*.jpg"))[:ENROL + 1]):
            image = read_image(photo)
            (face,) = picked(detector(image), image.shape, "center")
            for layout, crop in _layouts(image, face).items():
                part = "enrol" if i < ENROL else "query"
                (root / layout / part / person).mkdir(parents=True, exist_ok=True)
                Image.fromarray(crop).save(root / layout / part / person / f"{i}.png")
    return root


def _non_face(tmp_path: Path) -> Path:
    """A patch of a group photo far from every face (its top-left corner: sky and wall)."""
    patch = read_image(GROUPS / "2008_002470.jpg")[:110, :110]
    path = tmp_path / "wall.png"
    Image.fromarray(patch).save(path)
    return path


@pytest.mark.e2e
@pytest.mark.parametrize("layout", ["grey", "arcface112", "dlib150", "shadow"])
def test_crops_through_the_default_commands(crop_sets: Path, layout: str,
                                            tmp_path: Path) -> None:
    """No flags: every crop enrolled and recognized as its person; two crops of one person
    verified as the same."""
    folder = crop_sets / layout
    enrolled = invoke_cli("enroll", str(folder / "enrol"), "--gallery", str(tmp_path / "g.db"),
                          "--quiet", cwd=tmp_path)
    assert enrolled.returncode == 0, enrolled.stderr
    assert "no face" not in enrolled.stderr and "low quality" not in enrolled.stderr
    with Gallery.open(tmp_path / "g.db") as gallery:
        assert gallery.people() == [(p, ENROL) for p in PEOPLE]
    found = invoke_cli("recognize", str(folder / "query"), "--gallery", str(tmp_path / "g.db"),
                       "--json", "--quiet", cwd=tmp_path)
    assert found.returncode == 0, found.stderr
    results = json.loads(found.stdout)
    assert len(results) == len(PEOPLE) and all(r["faces"] for r in results)
    named = {Path(r["file"]).parent.name: r["faces"][0]["name"] for r in results}
    right = sum(named[p] == p for p in PEOPLE)
    assert right >= (2 if layout == "shadow" else 4), named
    assert all(n in (p, "unknown") for p, n in named.items()), named  # nobody misnamed
    first, second = sorted((folder / "enrol" / PEOPLE[0]).glob("*.png"))[:2]
    verified = invoke_cli("verify", str(first), str(second), "--json", cwd=tmp_path)
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["distance"] < 0.75


@pytest.mark.e2e
def test_a_washed_out_crop_is_found(crop_sets: Path) -> None:
    """A grey crop faded into 26 grey levels: MTCNN sees raw pixel values and finds no face
    in about a quarter of such crops, CLAHE cannot spread so few levels; the look with the
    histogram spread finds every one."""
    crops = sorted((crop_sets / "grey").glob("*/*/*.png"))
    detector = FaceDetector()
    for path in crops:
        faded = (0.6 * 255 + 0.1 * read_image(path).astype(np.float32)).astype(np.uint8)
        assert np.ptp(faded) <= 26
        (face,) = detector(faded)
        assert face.landmarks is not None and face.confidence >= 0.7, path


def _lit_from_above(tight: np.ndarray, elevation: float) -> np.ndarray:
    """Grey, 168 x 192, one light high above a round face (Lambert's law, 2% ambient): the
    forehead lit, the rest near black, as in face sets shot under a moving light."""
    grey = cv2.cvtColor(cv2.resize(tight, (168, 192)), cv2.COLOR_RGB2GRAY) / 255.0
    v, u = np.mgrid[-1:1:192j, -1:1:168j]
    normal = np.stack([u, -v, np.sqrt(np.clip(1 - u ** 2 - v ** 2, 0.05, None))], axis=-1)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    light = np.array([0.0, np.sin(np.radians(elevation)), np.cos(np.radians(elevation))])
    shade = 0.02 + 0.98 * np.clip(normal @ light, 0, None)
    return np.repeat((255 * grey * shade).astype(np.uint8)[:, :, None], 3, axis=2)


@pytest.mark.e2e
def test_a_face_lit_from_a_steep_angle_is_found(monkeypatch) -> None:
    """Taken whole, a face mostly near black gets a brightened look too: more such crops are
    found than with the plain and equalized looks alone, each with its points inside."""
    from facecnn.faces import second_look

    detector = FaceDetector()
    crops = []
    for person in PEOPLE:
        for photo in sorted((LFW / person).glob("*.jpg"))[:ENROL + 1]:
            image = read_image(photo)
            (face,) = picked(detector(image), image.shape, "center")
            x1, y1, x2, y2 = (int(round(v)) for v in face.box)
            crops.append(_lit_from_above(image[max(y1, 0):y2, max(x1, 0):x2], 80))
    found = [detector(crop) for crop in crops]
    for faces in found:
        assert all(((f.landmarks >= 0) & (f.landmarks <= (168, 192))).all() for f in faces)
    monkeypatch.setattr(second_look, "brightened", second_look.equalized)
    before = sum(bool(detector(crop)) for crop in crops)
    assert sum(map(bool, found)) > before


@pytest.mark.e2e
def test_an_image_with_no_face_stays_no_face(tmp_path: Path, monkeypatch) -> None:
    """Looked at five times (as it is, padded, equalized, spread, whole: as it is, equalized
    and brightened), and O-Net says no face."""
    from facecnn.faces import second_look

    wall = read_image(_non_face(tmp_path))
    looked = []
    whole = second_look.whole_faces
    monkeypatch.setattr("facecnn.faces.detect.whole_faces",
                        lambda net, images, **kw: looked.append(len(images))
                        or whole(net, images, **kw))
    assert FaceDetector()(wall) == []
    assert looked == [1]  # taken whole, and refused by O-Net's score
    (taken,) = FaceDetector(crops=True)(wall)  # --crops: the user says it is a face
    assert taken.confidence < second_look.WHOLE_FACE_SCORE
    assert taken.box == (0.0, 0.0, 109.0, 109.0) and taken.landmarks.shape == (5, 2)  # whole


@pytest.mark.e2e
def test_crops_flag_takes_the_whole_image(crop_sets: Path, tmp_path: Path) -> None:
    """--crops skips detection: each image is one face, inside it, its points in order."""
    shadows = sorted((crop_sets / "shadow" / "enrol").glob("*/*.png"))
    detector = FaceDetector(crops=True)
    for path in shadows:
        image = read_image(path)
        (face,) = detector(image)
        x1, y1, x2, y2 = face.box
        assert 0 <= x1 < x2 <= image.shape[1] and 0 <= y1 < y2 <= image.shape[0]
        left_eye, right_eye = face.landmarks[:2]
        assert left_eye[0] < right_eye[0]
    enrolled = invoke_cli("enroll", str(crop_sets / "shadow" / "enrol"), "--gallery",
                          str(tmp_path / "g.db"), "--crops", "--min-quality", "0", "--quiet",
                          cwd=tmp_path)
    assert enrolled.returncode == 0, enrolled.stderr
    with Gallery.open(tmp_path / "g.db") as gallery:
        assert sum(n for _, n in gallery.people()) == len(shadows)


@pytest.mark.e2e
def test_workers_take_crops_whole_themselves(crop_sets: Path, monkeypatch) -> None:
    """HOG in two forked workers cannot see most shadowed crops; the workers take them whole
    themselves (O-Net on onnxruntime is safe after a fork), so this process looks at none
    again, and they find the faces one process finds."""
    from facecnn.faces import second_look
    from facecnn.faces.embedders import create_embedder

    files = sorted((crop_sets / "shadow").glob("*/*/*.png")) * 2
    assert len(files) >= 16  # enough for two workers
    whole, looked = second_look.whole_faces, []
    monkeypatch.setattr("facecnn.faces.detect.whole_faces",
                        lambda net, images, **kw: looked.append(len(images))
                        or whole(net, images, **kw))
    found = {}
    for workers in (2, 1):
        pipeline = FacePipeline(FaceDetector("hog"), create_embedder("dlib"), workers=workers)
        found[workers] = [r.boxes for r in pipeline.run(files, pick="largest")]
        if workers == 2:
            assert sum(looked) == 0  # the workers' appends stay in the workers
    assert sum(looked) > 0  # one process: the whole looks were needed, here
    # the same faces; boxes to float rounding (O-Net runs on onnxruntime in the workers, on
    # PyTorch here where this process has it loaded)
    assert [len(b) for b in found[2]] == [len(b) for b in found[1]]
    assert np.allclose([list(b) for boxes in found[2] for b in boxes],
                       [list(b) for boxes in found[1] for b in boxes], atol=0.01)
    assert sum(len(b) for b in found[2]) >= 0.9 * len(files)


def test_a_dlib_chip_repeats_the_photos_edge_instead_of_black() -> None:
    """A tight crop's chip reaches past the crop: its edge pixels are repeated there, not
    dlib's black; a face whose surroundings lie inside the photo gets dlib's own chip."""
    from facecnn.faces import dlib_models
    from facecnn.faces.crops import DLIB_CHIP, make_chips
    from facecnn.faces.landmarks import dlib_shape

    dlib = dlib_models.import_dlib()
    photo = read_image(ATT_FACES / "s1" / "1.pgm")
    wide = cv2.copyMakeBorder(photo, 150, 150, 150, 150, cv2.BORDER_CONSTANT, value=(90,) * 3)
    face = FaceDetector()(wide)[0]
    own = dlib.get_face_chip(wide, dlib_shape(wide, face.box, "dlib5"), size=150,
                             padding=0.25)
    np.testing.assert_array_equal(make_chips(DLIB_CHIP, [(wide, face)])[0], own)
    x1, y1, x2, y2 = (int(round(v)) for v in face.box)
    tight = np.ascontiguousarray(wide[y1:y2, x1:x2])
    inside = FaceDetector()(tight)[0]
    black = dlib.get_face_chip(tight, dlib_shape(tight, inside.box, "dlib5"), size=150,
                               padding=0.25)
    assert (black.max(2) == 0).mean() > 0.1  # dlib's own: a black frame
    assert (make_chips(DLIB_CHIP, [(tight, inside)])[0].max(2) == 0).mean() < 0.01
