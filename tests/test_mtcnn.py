"""MTCNN with the mtcnn package's weights (onnxruntime on the CPU): every boxed face of dlib's
group photos found (few false ones), landmarks in place and in order, AT&T faces in
canvases, the same faces batched or one by one, nothing where there is no face; the
networks' channel padding changes no output; weight and model caches, damaged or missing
weights."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from PIL import Image

from facecnn.errors import FacecnnError
from facecnn.faces.boxes import iou, read_boxes
from facecnn.models import dlib_port, mtcnn_nets
from facecnn.models.mtcnn import MTCNNDetector, pyramid_scales, weights_dir
from helpers import canvas

DLIB_FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "dlib_faces"
MATCH_IOU = 0.4  # the truth boxes are dlib's tight squares; MTCNN's reach the forehead
# measured: 43 of 43 faces found, 43 of 44 detections true (min_face 20)
MIN_RECALL, MIN_PRECISION = 0.95, 0.93
CANVASES = [("s1", 1, 1.0, (0, 0)), ("s12", 5, 1.3, (0, 0)), ("s23", 7, 1.3, (-20, 10)),
            ("s40", 9, 0.8, (0, 0)), ("s7", 2, 0.5, (30, -40))]


def truth() -> dict[str, list[tuple[float, float, float, float]]]:
    boxes = {}
    for name in ("training.xml", "testing.xml"):
        boxes.update({path.name: t.faces for path, t in read_boxes(DLIB_FACES / name).items()})
    return boxes


def photo(name: str) -> np.ndarray:
    return np.asarray(Image.open(DLIB_FACES / name).convert("RGB"))


def matches(found: list, boxes: list) -> list[tuple[int, int]]:
    """(detection, truth) pairs, greedily by score, each truth box matched at most once."""
    pairs: list[tuple[int, int]] = []
    for i in sorted(range(len(found)), key=lambda i: -found[i][1]):
        free = [j for j in range(len(boxes)) if j not in {t for _, t in pairs}]
        if free:
            j = max(free, key=lambda j: iou(found[i][0], boxes[j]))
            if iou(found[i][0], boxes[j]) >= MATCH_IOU:
                pairs.append((i, j))
    return pairs


def pasted(side: int, scale: float, offset: tuple[int, int]) -> tuple[int, int, int, int]:
    """Where `canvas` pastes the AT&T face (92 x 112 at scale 1)."""
    w, h = round(92 * scale), round(112 * scale)
    left, top = (side - w) // 2 + offset[0], (side - h) // 2 + offset[1]
    return left, top, left + w, top + h


def assert_landmarks_in_order(box: tuple, points: np.ndarray) -> None:
    assert points.shape == (5, 2) and points.dtype == np.float32
    assert (points >= np.array(box[:2])).all() and (points <= np.array(box[2:])).all()
    left_eye, right_eye, nose, left_mouth, right_mouth = points
    assert left_eye[0] < right_eye[0] and left_mouth[0] < right_mouth[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(left_mouth[1], right_mouth[1])


@pytest.fixture(scope="module")
def detector() -> MTCNNDetector:
    return MTCNNDetector("cpu")


@pytest.fixture(scope="module")
def images() -> dict[str, np.ndarray]:
    shots = {name: photo(name) for name in sorted(truth())}
    shots.update({f"{p}-{i}": canvas(p, i, scale=s, offset=o) for p, i, s, o in CANVASES})
    shots["gray"] = np.ascontiguousarray(canvas("s5", 3)[:, :, 0])
    shots["no face"] = np.full((200, 200, 3), 90, np.uint8)
    shots["sky"] = photo("2008_002506.jpg")[:60]  # the photo's top strip: no one in it
    return shots


@pytest.fixture(scope="module")
def found(detector, images) -> dict[str, list]:
    """All photos and canvases in one call."""
    return dict(zip(images, detector(list(images.values()))))


@pytest.mark.e2e
def test_finds_the_boxed_faces_of_dlibs_group_photos(found) -> None:
    faces = detections = hits = 0
    for name, boxes in truth().items():
        pairs = matches(found[name], boxes)
        faces, detections, hits = faces + len(boxes), detections + len(found[name]), \
            hits + len(pairs)
        for i, _ in pairs:
            box, score, points = found[name][i]
            assert 0.5 < score <= 1
            assert_landmarks_in_order(box, points)
    assert faces == 43
    assert hits / faces >= MIN_RECALL and hits / detections >= MIN_PRECISION
    for faces_of_one in found.values():  # best first, boxes inside the image
        assert [s for _, s, _ in faces_of_one] == sorted((s for _, s, _ in faces_of_one),
                                                         reverse=True)
        assert all(0 <= box[0] < box[2] and 0 <= box[1] < box[3] for box, _, _ in faces_of_one)


@pytest.mark.e2e
def test_finds_the_one_face_of_each_canvas(found) -> None:
    for person, index, scale, offset in CANVASES:
        (box, _, points), = found[f"{person}-{index}"]
        left, top, right, bottom = pasted(200, scale, offset)
        centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
        assert left < centre[0] < right and top < centre[1] < bottom
        assert 0.4 < (box[2] - box[0]) / (right - left) < 1.2
        assert_landmarks_in_order(box, points)


@pytest.mark.e2e
def test_gray_image_is_its_rgb_copy_and_faceless_images_give_nothing(detector, found) -> None:
    (box, score, points), = found["gray"]
    (rgb_box, rgb_score, rgb_points), = detector([canvas("s5", 3)])[0]
    assert np.allclose(box, rgb_box) and score == pytest.approx(rgb_score)
    assert np.allclose(points, rgb_points)
    assert found["no face"] == [] and found["sky"] == []
    assert detector([np.zeros((6, 9, 3), np.uint8)]) == [[]]  # below P-Net's 12 px window
    assert detector([]) == []


@pytest.mark.e2e
def test_a_batch_finds_what_one_image_at_a_time_finds(detector, images, found) -> None:
    for name in ["2008_002506.jpg", "2008_004176.jpg", "s23-7", "gray", "no face"]:
        alone, = detector([images[name]])
        assert len(alone) == len(found[name])
        for (box, score, points), (b, s, p) in zip(alone, found[name]):
            assert np.allclose(box, b, atol=1e-3) and abs(score - s) < 1e-4
            assert np.allclose(points, p, atol=1e-3)


@pytest.mark.e2e
def test_min_face_sets_the_smallest_face_looked_for(images) -> None:
    assert pyramid_scales(375, 500, 20)[0] == pytest.approx(0.6)
    scales = pyramid_scales(375, 500, 40)
    assert scales[0] == pytest.approx(0.3) and np.allclose(np.diff(np.log(scales)),
                                                            np.log(0.709))
    assert 375 * scales[-1] >= 12 > 375 * scales[-1] * 0.709
    crowd, face = MTCNNDetector("cpu", min_face=100)([images["2008_004176.jpg"],
                                                      images["s1-1"]])
    assert crowd == [] and len(face) == 1  # 37 px faces are too small; 92 px is not


def test_inputs_it_cannot_take_are_a_clear_error(detector) -> None:
    with pytest.raises(FacecnnError, match="uint8 RGB or gray"):
        detector([np.zeros((50, 50, 4), np.uint8)])
    with pytest.raises(FacecnnError, match="min_face"):
        MTCNNDetector("cpu", min_face=0)
    with pytest.raises(FacecnnError, match="thresholds"):
        MTCNNDetector("cpu", thresholds=(0.6, 0.7))


@pytest.mark.e2e
def test_onnxruntime_finds_what_pytorch_finds(detector, images, found, monkeypatch) -> None:
    """This process has PyTorch loaded, so `found` came from PyTorch's networks; without it
    (or in a forked worker) onnxruntime runs them: the same faces, boxes and points."""
    assert detector.nets is not detector._loaded
    monkeypatch.delitem(sys.modules, "torch")
    assert detector.nets is detector._loaded
    names = list(images)
    for name, faces in zip(names, detector([images[n] for n in names])):
        assert len(faces) == len(found[name]), name
        for (box, score, points), (b, s, p) in zip(faces, found[name]):
            assert np.abs(np.subtract(box, b)).max() < 0.01 and abs(score - s) < 1e-4
            assert np.abs(points - p).max() < 0.01


def test_converted_weights_and_models_are_cached_and_reused(tmp_path: Path,
                                                           monkeypatch) -> None:
    monkeypatch.setenv("FACECNN_CACHE_DIR", str(tmp_path))
    first = mtcnn_nets.onnx_file("onet")
    assert dlib_port.cache_path(weights_dir() / "onet.lz4", "mtcnn").is_file()

    def no_converting(*args):
        raise AssertionError("the cache should have been used")
    monkeypatch.setattr(mtcnn_nets, "_converted", no_converting)
    monkeypatch.setattr(mtcnn_nets, "onnx_model", no_converting)
    assert mtcnn_nets.onnx_file("onet") == first
    assert mtcnn_nets.load_weights("onet").keys() == mtcnn_nets.SPECS["onet"].shapes().keys()


def test_padded_channels_change_no_output() -> None:
    """onnxruntime's network (channels padded to 16) gives PyTorch's outputs."""
    from facecnn.models.mtcnn_torch import MTCNNNet

    rng = np.random.default_rng(0)
    for name, spec in mtcnn_nets.SPECS.items():
        weights = mtcnn_nets.load_weights(name)
        net = MTCNNNet(spec)
        net.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
        side = 57 if name == "pnet" else spec.crop
        x = rng.uniform(0, 255, (3, 3, side, side)).astype(np.float32)
        with torch.inference_mode():
            expected = [t.numpy() for t in net.eval()(torch.from_numpy(x))]
        for ours, theirs in zip(mtcnn_nets.OnnxNet(name, mtcnn_nets.onnx_model(spec, weights))(x),
                                expected):
            assert ours.shape == theirs.shape
            np.testing.assert_allclose(ours, theirs, atol=2e-4)


@pytest.mark.parametrize("damage", ["garbage", "truncate", "wrong_net", "missing"])
def test_damaged_or_missing_weights_are_a_one_line_error(tmp_path: Path, damage: str) -> None:
    source = weights_dir()
    for name in ("pnet", "rnet", "onet"):
        (tmp_path / f"{name}.lz4").write_bytes((source / f"{name}.lz4").read_bytes())
    bad = tmp_path / "rnet.lz4"
    if damage == "garbage":
        bad.write_bytes(bytes(np.random.default_rng(3).integers(0, 256, 4000, np.uint8)))
    elif damage == "truncate":
        bad.write_bytes(bad.read_bytes()[:5000])
    elif damage == "wrong_net":
        joblib.dump(joblib.load(source / "onet.lz4"), bad, compress="lz4")
    else:
        bad.unlink()
    with pytest.raises(FacecnnError) as caught:
        MTCNNDetector("cpu", weights=tmp_path)
    message = str(caught.value)
    assert "\n" not in message and "rnet.lz4" in message
    assert "pip install --force-reinstall mtcnn" in message
    if damage != "missing":
        assert not dlib_port.cache_path(bad, "mtcnn").exists()


def test_without_the_mtcnn_package_the_error_says_what_to_install(monkeypatch) -> None:
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "mtcnn" else find_spec(name, *args))
    with pytest.raises(FacecnnError, match="not installed: pip install mtcnn$"):
        MTCNNDetector("cpu")


@pytest.mark.e2e
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")
def test_cuda_finds_what_the_cpu_finds(images, found) -> None:
    """Each GPU face is a CPU face (IoU >= 0.9, score within 0.01, points within 1 px)."""
    names = list(images)
    for name, faces in zip(names, MTCNNDetector("cuda")([images[n] for n in names])):
        assert len(faces) == len(found[name]), name
        for box, score, points in faces:
            b, s, p = max(found[name], key=lambda face: iou(face[0], box))
            assert iou(box, b) >= 0.9 and abs(score - s) < 0.01
            assert np.abs(points - p).max() < 1
