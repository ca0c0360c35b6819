"""dlib's MMOD CNN face detector read without dlib and run by PyTorch: the same boxes and
scores as dlib's own `cnn_face_detection_model_v1` on real group photos and on AT&T faces,
batched or not, upsampled or not; the reader, the weight cache and damaged model files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facecnn.errors import FacecnnError
from facecnn.faces import dlib_models
from facecnn.models import dlib_port
from facecnn.models.dlib_mmod import MODEL_FILE, MMODDetector, load_mmod, tiled_layout
from helpers import canvas

DLIB_FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "dlib_faces"
MIN_IOU, MAX_SCORE_DIFF = 0.9, 0.05  # the bounds a port box must keep to its dlib box


@pytest.fixture(scope="module")
def detector() -> MMODDetector:
    return MMODDetector("cpu")


@pytest.fixture(scope="module")
def dlib_cnn():
    dlib = dlib_models.import_dlib()
    return dlib.cnn_face_detection_model_v1(str(dlib_port.model_file(MODEL_FILE)))


def photo(name: str, scale: float = 1.0) -> np.ndarray:
    image = Image.open(DLIB_FACES / name).convert("RGB")
    if scale != 1.0:
        image = image.resize((round(image.width * scale), round(image.height * scale)),
                             Image.Resampling.BILINEAR)
    return np.asarray(image)


def dlib_faces(dlib_cnn, image: np.ndarray, upsample: int) -> list[tuple[tuple, float]]:
    return [((d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()), d.confidence)
            for d in dlib_cnn(image, upsample)]


def iou(a: tuple, b: tuple) -> float:
    """Intersection over union of inclusive pixel rectangles."""
    w = min(a[2], b[2]) - max(a[0], b[0]) + 1
    h = min(a[3], b[3]) - max(a[1], b[1]) + 1
    inter = max(w, 0) * max(h, 0)
    area = [(r[2] - r[0] + 1) * (r[3] - r[1] + 1) for r in (a, b)]
    return inter / (sum(area) - inter)


def assert_agrees(ours: list, reference: list) -> None:
    """Every dlib box has a port box with IoU >= 0.9 and a score within 0.05, and every port
    box (all score above dlib's threshold, 0) is such a match: none extra."""
    assert len(ours) == len(reference)
    for mine, theirs in ((ours, reference), (reference, ours)):
        for box, score in theirs:
            match = max(mine, key=lambda found: iou(found[0], box))
            assert iou(match[0], box) >= MIN_IOU and abs(match[1] - score) <= MAX_SCORE_DIFF


@pytest.mark.e2e
def test_port_finds_dlibs_faces_in_group_photos_and_canvases_in_one_batch(detector,
                                                                          dlib_cnn) -> None:
    """Two 500x375 photos (batched together), a 400x500 one, and AT&T faces in 200 px
    canvases (batched: one without a detectable face, one gray), all in one call."""
    images = [photo("2008_002506.jpg"), photo("2009_004587.jpg"), photo("2008_001322.jpg")]
    images += [canvas("s1", 1), canvas("s12", 5, scale=1.3),
               canvas("s23", 7, scale=1.3, offset=(-20, 10)), canvas("s40", 9, scale=0.8)]
    images.append(np.ascontiguousarray(canvas("s5", 3)[:, :, 0]))
    found = detector(images)
    faces = 0
    for image, ours in zip(images, found):
        reference = dlib_faces(dlib_cnn, image, 0)
        assert_agrees(ours, reference)
        faces += len(reference)
    assert faces == 3 + 2 + 3 + 4 and found[6] == []
    # the boxes are dlib's integer rectangles (x1, y1, x2, y2), right and bottom inclusive
    assert all(v == int(v) for per_image in found for box, _ in per_image for v in box)
    alone = detector(images[:1])[0]  # a batch of one finds the same
    assert [box for box, _ in alone] == [box for box, _ in found[0]]
    assert np.allclose([s for _, s in alone], [s for _, s in found[0]], atol=1e-4)


@pytest.mark.e2e
def test_port_upsampled_matches_dlib_upsampled(detector, dlib_cnn) -> None:
    """Upsampled once, the faces of a downscaled photo come back in its own pixels."""
    image = photo("2008_001322.jpg", scale=0.6)
    reference = dlib_faces(dlib_cnn, image, 1)
    assert len(reference) == 3
    assert_agrees(detector([image], upsample=1)[0], reference)
    assert detector([image])[0] == []  # too small for the 80 px window without upsampling


def test_reader_recovers_the_detector_layout() -> None:
    net = dlib_port.read_dlib_net(dlib_port.model_file(MODEL_FILE))
    assert net.input_kind == "input_rgb_image_pyramid" and net.pyramid_padding == (10, 11)
    assert np.allclose(net.mean_rgb, (122.782, 117.001, 104.298), atol=1e-3)
    assert net.loss == "loss_mmod_" and net.mmod.windows == ((80, 80),)
    assert net.mmod.nms_iou == pytest.approx(0.3383, abs=1e-4) and net.mmod.nms_covered == 1
    kinds = [layer.kind for layer in net.layers]
    assert kinds == ["con", "affine", "relu"] * 6 + ["con"]
    geometry = [layer.geometry for layer in net.layers if layer.kind == "con"]
    assert geometry == [(5, 5, 2, 2, 0, 0)] * 3 + [(5, 5, 1, 1, 2, 2)] * 3 + [(9, 9, 1, 1, 4, 4)]
    assert [layer.params["weight"].shape[0] for layer in net.layers if layer.kind == "con"] \
        == [16, 32, 32, 45, 45, 45, 1]


def test_tiled_layout_keeps_levels_apart_and_inside() -> None:
    tiling = tiled_layout(375, 500, 10, 11)
    rects = np.array(tiling.rects)
    assert tuple(rects[0]) == (11, 11, 510, 385) and tiling.size[1] == 500 + 22
    assert (rects[1:, 3] - rects[1:, 1] + 1 == np.floor(5 / 6 * (rects[:-1, 3] - rects[:-1, 1]
                                                                 + 1))).all()
    assert (rects[:, :2] >= 11).all() and (rects[:, 2:] < np.array(tiling.size)[::-1] - 10).all()
    for i, a in enumerate(rects):
        for b in rects[i + 1:]:
            assert max(a[0], b[0]) > min(a[2], b[2]) or max(a[1], b[1]) > min(a[3], b[3])


def test_converted_weights_are_cached_and_reused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FACECNN_CACHE_DIR", str(tmp_path))
    first, settings = load_mmod()
    assert dlib_port.cache_path(dlib_port.model_file(MODEL_FILE), "mmod").is_file()

    def no_parsing(path):
        raise AssertionError("the cache should have been used")
    monkeypatch.setattr("facecnn.models.dlib_mmod.read_dlib_net", no_parsing)
    second, again = load_mmod()
    assert again == settings and settings.window == (80, 80)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(),
                                                 second.state_dict().values()))


@pytest.mark.parametrize("damage", ["truncate", "garbage", "face_resnet"])
def test_damaged_model_file_is_a_one_line_error(tmp_path: Path, damage: str) -> None:
    data = dlib_port.model_file(MODEL_FILE).read_bytes()
    bad = {"truncate": data[:len(data) // 3],
           "garbage": bytes(np.random.default_rng(2).integers(0, 256, 4000, dtype=np.uint8)),
           "face_resnet": dlib_port.model_file().read_bytes()}[damage]
    path = tmp_path / "detector.dat"
    path.write_bytes(bad)
    with pytest.raises(FacecnnError) as caught:
        MMODDetector("cpu", source=path)
    message = str(caught.value)
    assert "\n" not in message and "detector.dat" in message
    assert ("byte" in message) if damage != "face_resnet" else ("not a dlib MMOD" in message)
    assert not dlib_port.cache_path(path, "mmod").exists()


def test_images_it_cannot_take_are_a_clear_error(detector) -> None:
    with pytest.raises(FacecnnError, match="uint8 RGB or gray"):
        detector([np.zeros((50, 50, 4), np.uint8)])
    with pytest.raises(FacecnnError, match="upsample must be 0 or more"):
        detector([np.zeros((50, 50, 3), np.uint8)], upsample=-1)
    assert detector([np.zeros((6, 9, 3), np.uint8)]) == [[]]  # too small for any window


@pytest.mark.e2e
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")
def test_cuda_finds_what_the_cpu_finds(detector) -> None:
    images = [photo("2008_002506.jpg"), photo("2008_001322.jpg")]
    on_gpu = MMODDetector("cuda")(images, upsample=1)
    for ours, reference in zip(on_gpu, detector(images, upsample=1)):
        assert_agrees(ours, reference)
