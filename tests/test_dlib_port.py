"""dlib's face ResNet read without dlib and run by PyTorch: the file reader, equality with
dlib's own vectors on real faces, the cache, the `dlib_torch` embedder, `facecnn embed` and
the `dlib_resnet` model trained with a frozen pretrained backbone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from facecnn.errors import FacecnnError
from facecnn.faces import dlib_models
from facecnn.faces.config import PipelineConfig
from facecnn.faces.detect import FaceDetector
from facecnn.faces.embedders import create_embedder
from facecnn.models import dlib_port
from facecnn.models.catalog import create_model
from facecnn.models.dlib_port import cache_path
from facecnn.models.dlib_resnet import (
    DlibResNet,
    load_dlib_weights,
    padded_add,
    pretrained_dlib_resnet,
    to_input,
)
from facecnn.models.freeze import apply_freeze
from helpers import canvas, invoke_cli, make_jpeg_tree, write_photos

TOLERANCE = 1e-4  # the bound on the largest absolute difference per vector


@pytest.fixture(scope="module")
def ported() -> tuple[DlibResNet, tuple[float, ...]]:
    return pretrained_dlib_resnet()


def port_vectors(ported, chips: np.ndarray) -> np.ndarray:
    model, mean = ported
    with torch.inference_mode():
        x = torch.from_numpy(np.ascontiguousarray(chips)).permute(0, 3, 1, 2)
        return model(to_input(x, mean)).numpy()


def photos() -> list[np.ndarray]:
    """AT&T faces of several people at several scales and places in larger canvases, some
    colour-tinted so a swapped channel order would show."""
    out = []
    for i, person in enumerate(["s1", "s7", "s12", "s23", "s34", "s40"]):
        image = canvas(person, 1 + i, side=260, scale=1.0 + 0.25 * (i % 3),
                       offset=(10 * (i - 3), 5 * i - 10))
        if i % 2:
            image = np.clip(image * np.array([1.1, 0.95, 0.8]), 0, 255).astype(np.uint8)
        out.append(image)
    return out


@pytest.mark.e2e
def test_port_equals_dlib_on_faces_found_in_real_photos(ported) -> None:
    """The whole chain as dlib runs it: its landmarks (5 or 68 points), its chip, its network -
    vs ours."""
    dlib = dlib_models.import_dlib()
    encoder = dlib_models.face_encoder()
    detector = FaceDetector("hog")
    compared = 0
    for points in ("dlib5", "dlib68"):
        predictor = dlib_models.shape_predictor(f"shape_predictor_{points[4:]}_face_landmarks.dat")
        embedder = create_embedder("dlib_torch", device="cpu", landmarks=points)
        for image in photos():
            faces = detector.detect_batch([image], landmarks=False)[0]
            assert len(faces) == 1
            face = faces[0]
            rect = dlib.rectangle(*(int(round(v)) for v in face.box))
            shape = predictor(image, rect)
            reference = np.asarray(encoder.compute_face_descriptor(image, shape))
            ours = embedder.embed([(image, face)])[0]
            assert np.abs(ours - reference).max() <= TOLERANCE
            # the chip our embedder feeds the network is dlib's get_face_chip of dlib's shape
            assert np.array_equal(embedder.chips([(image, face)])[0],
                                  dlib.get_face_chip(image, shape, size=150, padding=0.25))
            compared += 1
    assert compared == 12


@pytest.mark.e2e
def test_port_equals_dlib_on_test_made_crops(ported) -> None:
    """Chips made without any alignment: crops, flips, colour and noise, in one batch."""
    encoder = dlib_models.face_encoder()
    rng = np.random.default_rng(0)
    chips = []
    for person, index in (("s2", 3), ("s9", 5), ("s17", 8), ("s30", 10)):
        image = canvas(person, index, side=180)
        chips.append(np.ascontiguousarray(image[15:165, 15:165]))
        chips.append(np.ascontiguousarray(chips[-1][:, ::-1]))
    chips.append(rng.integers(0, 256, (150, 150, 3), dtype=np.uint8))
    chips = np.stack(chips)
    reference = np.asarray([np.asarray(v) for v in encoder.compute_face_descriptor(list(chips))])
    ours = port_vectors(ported, chips)
    assert ours.shape == (9, 128)
    assert np.abs(ours - reference).max() <= TOLERANCE
    # and the vectors carry identity: a face is nearer its own mirror than another person
    d = np.linalg.norm(ours[:8:2] - ours[1:8:2], axis=1)
    assert d.max() < np.linalg.norm(ours[0] - ours[2])


def test_reader_recovers_dlib_layout() -> None:
    net = dlib_port.read_dlib_net(dlib_port.model_file())
    assert net.input_size == (150, 150)
    assert np.allclose(net.mean_rgb, (122.782, 117.001, 104.298), atol=1e-3)
    kinds = [layer.kind for layer in net.layers]
    assert kinds.count("con") == 29 and kinds.count("affine") == 29 and kinds[-1] == "fc"
    assert kinds.count("add_prev") == 14 and kinds.count("max_pool") == 1
    assert net.layers[0].geometry == (7, 7, 2, 2, 0, 0)
    model = DlibResNet()
    assert sum(p.numel() for p in model.parameters()) == sum(
        a.size for layer in net.layers for a in layer.params.values())


def test_padded_add_zero_fills_the_smaller_tensor_at_the_end() -> None:
    a = torch.ones(1, 2, 3, 3)
    b = torch.full((1, 4, 4, 4), 2.0)
    out = padded_add(a, b)
    assert out.shape == (1, 4, 4, 4)
    assert (out[:, :2, :3, :3] == 3).all() and (out[:, 2:] == 2).all() and (out[:, :, 3] == 2).all()


@pytest.mark.parametrize("damage", ["truncate", "garbage", "wrong_loss"])
def test_damaged_model_file_is_a_clear_error(tmp_path: Path, damage: str) -> None:
    data = dlib_port.model_file().read_bytes()
    bad = {"truncate": data[:len(data) // 2],
           "garbage": bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8)),
           "wrong_loss": data.replace(b"loss_metric_2", b"loss_mmod___2", 1)}[damage]
    path = tmp_path / "model.dat"
    path.write_bytes(bad)
    with pytest.raises(dlib_port.DlibFormatError, match="model.dat is not a readable dlib"):
        dlib_port.read_dlib_net(path)
    with pytest.raises(FacecnnError):
        load_dlib_weights(path)
    assert not cache_path(path, "resnet").exists()


def test_missing_face_recognition_models_says_how_to_install(monkeypatch) -> None:
    monkeypatch.setattr(dlib_port.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FacecnnError, match="pip install dlib-bin face-recognition-models"):
        pretrained_dlib_resnet()


def test_converted_weights_are_cached_and_reused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FACECNN_CACHE_DIR", str(tmp_path))
    source = dlib_port.model_file()
    first, mean = load_dlib_weights()
    cached = cache_path(source, "resnet")
    assert cached.is_file() and cached.is_relative_to(tmp_path)

    def no_parsing(path):
        raise AssertionError("the cache should have been used")
    monkeypatch.setattr("facecnn.models.dlib_resnet.read_dlib_net", no_parsing)
    second, mean2 = load_dlib_weights()
    assert mean2 == pytest.approx(mean)
    assert all(torch.equal(first[k], second[k]) for k in first) and first.keys() == second.keys()
    cached.write_bytes(b"not safetensors")  # a damaged cache is rebuilt, not trusted
    monkeypatch.undo()
    monkeypatch.setenv("FACECNN_CACHE_DIR", str(tmp_path))
    third, _ = load_dlib_weights()
    assert all(torch.equal(first[k], third[k]) for k in first)
    assert cached.stat().st_size > 20_000_000


@pytest.mark.e2e
def test_embed_command_writes_files_boxes_and_vectors(tmp_path: Path) -> None:
    root = write_photos(tmp_path / "photos", ["s3", "s4"], range(1, 3))
    (root / "notes.jpg").write_text("not an image")
    out = tmp_path / "vectors.npz"
    result = invoke_cli("embed", str(root), "--embedder", "dlib_torch", "--out", str(out),
                        "--json", "--workers", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    saved = np.load(out)
    assert len(records) == 4 == len(saved["files"])
    assert str(saved["embedder"]) == "dlib_torch"
    assert saved["vectors"].shape == (4, 128) and saved["boxes"].shape == (4, 4)
    assert np.allclose(saved["vectors"], [r["vector"] for r in records], atol=1e-6)
    assert [Path(f).parent.name for f in saved["files"]] == ["s3", "s3", "s4", "s4"]
    assert "notes.jpg" in result.stderr
    no_device = invoke_cli("embed", str(root), "--embedder", "dlib_torch", "--device", "gpu",
                           "--out", str(tmp_path / "other.npz"), cwd=tmp_path)
    assert no_device.returncode == 2 and "unknown device 'gpu'" in no_device.stderr
    assert "Traceback" not in no_device.stderr and not (tmp_path / "other.npz").exists()
    again = invoke_cli("embed", str(root), "--out", str(out), cwd=tmp_path)
    assert again.returncode == 2 and "--overwrite" in again.stderr
    assert np.array_equal(np.load(out)["vectors"], saved["vectors"])  # left as it was


@pytest.mark.e2e
def test_dlib_and_dlib_torch_galleries_name_the_same_people(tmp_path: Path) -> None:
    people = [f"s{i}" for i in range(1, 7)]
    photos_dir = write_photos(tmp_path / "enroll", people, range(1, 4))
    queries = write_photos(tmp_path / "queries", [*people, "s39"], range(8, 10))
    answers = {}
    for embedder in ("dlib", "dlib_torch"):
        db = tmp_path / f"{embedder}.db"
        enrolled = invoke_cli("enroll", str(photos_dir), "--gallery", str(db), "--embedder",
                              embedder, "--batch-size", "64", "--quiet", cwd=tmp_path)
        assert enrolled.returncode == 0, enrolled.stderr
        found = invoke_cli("recognize", str(queries), "--gallery", str(db), "--json", "--quiet",
                           cwd=tmp_path)
        assert found.returncode == 0, found.stderr
        answers[embedder] = {r["file"]: [f["name"] for f in r["faces"]]
                             for r in json.loads(found.stdout)}
    assert answers["dlib"] == answers["dlib_torch"]
    right = sum(names == [Path(f).parent.name] for f, names in answers["dlib"].items()
                if Path(f).parent.name != "s39")
    assert right >= 10
    # a dlib gallery can be searched with the ported network: same vectors
    cross = invoke_cli("recognize", str(queries), "--gallery", str(tmp_path / "dlib.db"),
                       "--embedder", "dlib_torch", "--json", "--quiet", cwd=tmp_path)
    assert cross.returncode == 0, cross.stderr
    assert {r["file"]: [f["name"] for f in r["faces"]]
            for r in json.loads(cross.stdout)} == answers["dlib"]


def test_dlib_resnet_frozen_backbone_trains_only_the_head(tmp_path: Path) -> None:
    model = create_model("dlib_resnet", 5, pretrained=True)
    apply_freeze(model, "all-but-head")
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == ["head.0.weight", "head.0.bias"] or all(
        n.startswith("head.") for n in trainable)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 128 * 5 + 5
    apply_freeze(model, "stem,stage1-3")
    frozen = {n.split(".")[1] for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {"stem", "stage1", "stage2", "stage3"}


@pytest.mark.e2e
def test_training_dlib_resnet_pretrained_changes_only_the_head(tmp_path: Path) -> None:
    from facecnn.inference.pytorch import Predictor

    data = make_jpeg_tree(tmp_path / "faces", ["s1", "s2", "s3"], 6, size=150)
    result = invoke_cli("train", str(data), "--model", "dlib_resnet", "--pretrained", "--freeze",
                        "all-but-head", "--epochs", "2", "--batch-size", "8", "--lr", "0.01",
                        "--no-amp", "--quiet", "--project", str(tmp_path / "runs"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = tmp_path / "runs" / "train" / "exp"
    trained = Predictor.load(run, "cpu").model.eval()
    reference = create_model("dlib_resnet", 3, pretrained=True).eval()
    for name, tensor in reference.backbone.state_dict().items():
        assert torch.equal(trained.backbone.state_dict()[name], tensor), name
    assert trained.classifier.weight.shape == (3, 128)
    assert not torch.equal(trained.classifier.weight, reference.classifier.weight)
    # the BatchNorm form of the pretrained backbone computes dlib's embedding
    chips = torch.randint(0, 256, (2, 3, 150, 150), dtype=torch.uint8)
    embedder, mean = pretrained_dlib_resnet()
    with torch.inference_mode():
        assert torch.allclose(trained.backbone(to_input(chips, mean)),
                              embedder(to_input(chips, mean)), atol=1e-5)
    report = (run / "report.md").read_text()
    assert "trainable 387," in report  # 3 x 128 + 3: the head alone


@pytest.mark.e2e
def test_server_searches_a_dlib_gallery_with_dlib_torch(tmp_path: Path) -> None:
    import io

    from fastapi.testclient import TestClient
    from PIL import Image

    from facecnn.serve.app import create_app

    photos_dir = write_photos(tmp_path / "enroll", ["s5", "s6", "s7"], range(1, 4))
    enrolled = invoke_cli("enroll", str(photos_dir), "--gallery", str(tmp_path / "g.db"),
                          "--quiet", cwd=tmp_path)
    assert enrolled.returncode == 0, enrolled.stderr
    app = create_app(tmp_path / "g.db",
                     pipeline=PipelineConfig(embedder="dlib_torch", device="cpu"))
    buffer = io.BytesIO()
    Image.fromarray(canvas("s6", 9)).save(buffer, "JPEG", quality=92)
    with TestClient(app) as client:
        answer = client.post("/v1/recognize", files={"image": ("q.jpg", buffer.getvalue())})
        assert answer.status_code == 200, answer.text
        assert [f["name"] for f in answer.json()["faces"]] == ["s6"]
        verdict = client.post("/v1/verify", files=[("images", ("a.jpg", buffer.getvalue())),
                                                   ("images", ("b.jpg", buffer.getvalue()))])
        assert verdict.json()["embedder"] == "dlib_torch" and verdict.json()["same_person"]


def test_pretrained_dlib_resnet_keeps_dlibs_statistics_while_training(ported) -> None:
    model = create_model("dlib_resnet", 3, pretrained=True).train()
    chips = torch.randint(0, 256, (4, 3, 150, 150), dtype=torch.uint8)
    x = to_input(chips, ported[1])
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    with torch.no_grad():
        training_mode = model.backbone(x)
        reference = ported[0](x)
    assert torch.allclose(training_mode, reference, atol=1e-5)
    assert all(torch.equal(before[k], model.state_dict()[k]) for k in before)
