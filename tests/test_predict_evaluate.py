"""A trained run used the way users do: evaluate on other data, predict files, reload weights."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
import timm
import torch

from facecnn.config import TrainConfig
from facecnn.errors import FacecnnError
from facecnn.evaluate import evaluate_run
from facecnn.models.weights import read_state_dict
from facecnn.train.trainer import Trainer
from helpers import invoke_cli, make_jpeg_tree

pytestmark = pytest.mark.e2e

PEOPLE = ["s1", "s2", "s3", "s4"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(run folder, data folder): seed C's CNN on four AT&T people, with a test/ split."""
    root = tmp_path_factory.mktemp("trained")
    data = root / "data"
    make_jpeg_tree(data / "train", PEOPLE, 7)
    for person in PEOPLE:  # photos 8-10 of each person are never trained on
        (data / "val" / person).mkdir(parents=True)
        (data / "test" / person).mkdir(parents=True)
        for i in (8, 9, 10):
            src = data / "train" / person / f"{i - 7}.jpg"
            (data / ("val" if i < 10 else "test") / person / f"{i}.jpg").write_bytes(
                src.read_bytes())
    result = invoke_cli("train", str(data), "--model", "seed_face_cnn3", "--img-size", "48",
                        "--epochs", "6", "--batch-size", "8", "--no-amp", "--quiet", "--project",
                        str(root / "runs"), cwd=root)
    assert result.returncode == 0, result.stderr
    return root / "runs" / "train" / "exp", data


def test_evaluate_writes_metrics(trained: tuple[Path, Path], tmp_path: Path) -> None:
    run, data = trained
    result = invoke_cli("evaluate", str(run), str(data), "--quiet", "--project", str(tmp_path),
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "evaluate" / "exp"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["images"] == len(PEOPLE)  # test/ holds one photo per person
    said = f"scored 4 held-out images of {data}/test (the data's test/ part)"
    assert metrics["scored"] == said and said in result.stdout
    assert set(metrics["per_class"]) == set(PEOPLE)
    assert 0.0 <= metrics["accuracy"] <= 1.0
    assert (out / "confusion_matrix.png").stat().st_size > 1000
    assert "accuracy" in (out / "report.md").read_text()


def test_evaluate_refuses_training_images(trained: tuple[Path, Path], tmp_path: Path) -> None:
    run, data = trained
    result = invoke_cli("evaluate", str(run), str(data / "train"), "--quiet", "--project",
                        str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert f"every image of {data / 'train'} was trained on by {run}" in result.stderr
    assert not (tmp_path / "evaluate").exists()


def test_evaluate_without_val_scores_the_recorded_held_out_split(faces3: Path,
                                                                 tmp_path: Path) -> None:
    cfg = TrainConfig(data=str(faces3), model="seed_mlp", epochs=1, amp=False,
                      project=str(tmp_path), name="flat", quiet=True)
    run = Trainer(cfg).fit()
    held_out = json.loads((run / "split.json").read_text())["val"]
    assert len(held_out) == 6  # 20% of each person's ten photos
    result = invoke_cli("evaluate", str(run), str(faces3), "--quiet", "--project", str(tmp_path),
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "evaluate" / "exp" / "metrics.json").read_text())
    assert metrics["images"] == 6
    assert sum(c["support"] for c in metrics["per_class"].values()) == 6
    said = (f"scored 6 held-out images of {faces3} (the split recorded in {run}: left out the "
            "24 images trained on)")
    assert metrics["scored"] == said and said in result.stdout
    (run / "split.json").unlink()  # as if trained before runs recorded their split
    with pytest.raises(FacecnnError, match="flat has no split.json"):
        evaluate_run(run / "model.safetensors", str(faces3), project=str(tmp_path))


def test_evaluate_refuses_unknown_classes(trained: tuple[Path, Path], tmp_path: Path) -> None:
    run, _ = trained
    other = make_jpeg_tree(tmp_path / "other", ["s1", "s9"], 2)
    result = invoke_cli("evaluate", str(run), str(other), "--quiet", cwd=tmp_path)
    assert result.returncode == 2 and "s9" in result.stderr


def test_predict_json_and_csv(trained: tuple[Path, Path], tmp_path: Path) -> None:
    run, data = trained
    files = sorted((data / "train" / "s2").glob("*.jpg"))[:3]
    (tmp_path / "note.jpg").write_text("not an image")
    result = invoke_cli("predict", str(run), *map(str, files), str(tmp_path / "note.jpg"),
                        "--top-k", "2", "--json", "--csv", str(tmp_path / "preds.csv"),
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    predictions = json.loads(result.stdout)
    assert [p["file"] for p in predictions] == [str(f) for f in files]
    for p in predictions:
        assert p["label"] in PEOPLE and len(p["top_k"]) == 2
        assert p["top_k"][0] == [p["label"], p["score"]]
        assert p["top_k"][0][1] >= p["top_k"][1][1]
    assert sum(p["label"] == "s2" for p in predictions) >= 2  # trained images: mostly right
    assert "note.jpg" in result.stderr and "not an image" in result.stderr
    with (tmp_path / "preds.csv").open() as handle:
        rows = list(csv.reader(handle))
    base = Path(os.path.commonpath([files[0].parent, tmp_path]))
    assert rows[0] == ["id", "label"]
    assert rows[1] == [files[0].relative_to(base).as_posix(), predictions[0]["label"]]


def test_csv_ids_are_unique_across_class_folders(trained: tuple[Path, Path],
                                                 tmp_path: Path) -> None:
    """s1/1.jpg and s2/1.jpg share a name: their ids are their paths below the folder given."""
    run, data = trained
    folders = [data / "train" / "s1", data / "train" / "s2"]
    result = invoke_cli("predict", str(run), *map(str, folders), "--csv", str(tmp_path / "p.csv"),
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with (tmp_path / "p.csv").open() as handle:
        rows = list(csv.reader(handle))
    expected = sorted(f.relative_to(data / "train").as_posix()
                      for folder in folders for f in folder.glob("*.jpg"))
    assert len(expected) == 14 and "s1/1.jpg" in expected and "s2/1.jpg" in expected
    assert rows[0] == ["id", "label"] and sorted(r[0] for r in rows[1:]) == expected


def test_predict_never_overwrites_a_csv(trained: tuple[Path, Path], tmp_path: Path) -> None:
    run, data = trained
    existing = tmp_path / "keep.csv"
    existing.write_text("precious\n")
    image = next((data / "train" / "s1").glob("*.jpg"))
    result = invoke_cli("predict", str(run), str(image), "--csv", str(existing), cwd=tmp_path)
    assert result.returncode == 2 and existing.read_text() == "precious\n"


def test_checkpoint_as_pretrained_with_frozen_backbone(trained: tuple[Path, Path],
                                                       tmp_path: Path) -> None:
    """A facecnn checkpoint reloaded as --weights: only the head trains, backbone unchanged."""
    run, data = trained
    result = invoke_cli("train", str(data), "--model", "seed_face_cnn3", "--img-size", "48",
                        "--weights", str(run / "weights" / "best.pt"), "--freeze", "backbone",
                        "--epochs", "1", "--no-amp", "--quiet", "--project", str(tmp_path),
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "train" / "exp" / "metrics.json").read_text())
    head = 64 * 6 * 6 * len(PEOPLE) + len(PEOPLE)  # Linear(64 * (48/8)^2 -> classes)
    assert metrics["parameters"]["trainable"] == head
    assert metrics["parameters"]["frozen"] == metrics["parameters"]["total"] - head
    before = read_state_dict(run / "weights" / "best.pt")  # the run's model.safetensors
    after = read_state_dict(tmp_path / "train" / "exp" / "model.safetensors")
    for key, value in before.items():
        if key.startswith("backbone.") and value.is_floating_point():
            assert torch.equal(value, after[key]), key


def test_timm_state_dict_as_pretrained(faces3: Path, tmp_path: Path) -> None:
    """A plain timm state dict (with its 1000-class fc) loads; all-but-head trains only fc."""
    weights = tmp_path / "resnet18.pth"
    torch.save(timm.create_model("resnet18").state_dict(), weights)
    result = invoke_cli("train", str(faces3), "--model", "resnet18", "--img-size", "32",
                        "--weights", str(weights), "--freeze", "all-but-head", "--epochs", "1",
                        "--no-amp", "--quiet", "--project", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "tensors loaded" in result.stdout
    metrics = json.loads((tmp_path / "train" / "exp" / "metrics.json").read_text())
    assert metrics["parameters"]["trainable"] == 512 * 3 + 3


def test_freeze_stage_list_on_resnet(faces3: Path, tmp_path: Path) -> None:
    result = invoke_cli("train", str(faces3), "--model", "resnet18", "--img-size", "32",
                        "--freeze", "layer1-3", "--epochs", "1", "--no-amp", "--quiet",
                        "--project", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    model = timm.create_model("resnet18", num_classes=3)
    frozen = sum(p.numel() for name, p in model.named_parameters()
                 if name.startswith(("layer1.", "layer2.", "layer3.")))
    metrics = json.loads((tmp_path / "train" / "exp" / "metrics.json").read_text())
    assert metrics["parameters"]["frozen"] == frozen


def test_weights_for_another_model_is_an_error(faces3: Path, tmp_path: Path) -> None:
    weights = tmp_path / "mobilenet.pth"
    torch.save(timm.create_model("mobilenetv3_small_100").state_dict(), weights)
    result = invoke_cli("train", str(faces3), "--model", "resnet18", "--img-size", "32",
                        "--weights", str(weights), "--epochs", "1", "--no-amp", "--quiet",
                        cwd=tmp_path)
    assert result.returncode == 2 and "does not fit this model" in result.stderr
