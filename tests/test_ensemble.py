"""Seed B's ensemble: averaged softmax of several runs, its outputs and its refusals."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facecnn.config import TrainConfig
from facecnn.data.datasets import ImageSet, load_folder_for
from facecnn.data.heldout import untrained
from facecnn.errors import FacecnnError
from facecnn.inference.pytorch import Predictor
from facecnn.studies.ensemble import ensemble
from facecnn.train.trainer import Trainer

pytestmark = pytest.mark.e2e


def _train(root: Path, name: str, data: str = "digits", **options: object) -> Path:
    cfg = TrainConfig(data=data, model="seed_mlp", epochs=1, batch_size=128, amp=False,
                      project=str(root), name=name, quiet=True, **options)
    return Trainer(cfg).fit()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two digits runs that differ in seed and input size (28px and 16px)."""
    root = tmp_path_factory.mktemp("ensemble_runs")
    return _train(root, "a", seed=0), _train(root, "b", seed=1, img_size=16)


@pytest.fixture(scope="module")
def shapes_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(run, data folder): a run on three classes of random 28px images, six per class."""
    root = tmp_path_factory.mktemp("shapes")
    rng = np.random.default_rng(0)
    for name in ("circle", "square", "star"):
        (root / "data" / name).mkdir(parents=True)
        for i in range(6):
            pixels = rng.integers(0, 256, (28, 28), dtype=np.uint8)
            Image.fromarray(pixels).save(root / "data" / name / f"{name}_{i}.png")
    return _train(root, "shapes", data=str(root / "data")), root / "data"


def _member_probabilities(run: Path) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, labels) of one run on the digits test part, scored directly."""
    predictor = Predictor.load(run, "cpu")
    meta = predictor.meta
    images, _ = load_folder_for("digits", meta["classes"], meta["img_size"], meta["in_chans"])
    return predictor.probabilities(images.batch(np.arange(len(images)))), images.labels


def _read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="") as handle:
        return list(csv.reader(handle))


def test_ensemble_of_a_run_with_itself_is_that_run(runs: tuple[Path, Path],
                                                   tmp_path: Path) -> None:
    run = runs[0]
    out, metrics = ensemble([run, run], "digits", device="cpu", project=str(tmp_path))
    probs, labels = _member_probabilities(run)
    assert np.allclose(np.load(out / "probabilities.npy"), probs, atol=1e-4)  # float32 sums
    # differ with the batch size (2e-5 seen), not with the ensemble
    assert metrics["accuracy"] == metrics["members"][0]["accuracy"]
    assert metrics["accuracy"] == pytest.approx(float((probs.argmax(1) == labels).mean()))
    classes = Predictor.load(run, "cpu").classes
    assert [row[1] for row in _read_csv(out / "predictions.csv")[1:]] == \
        [classes[i] for i in probs.argmax(1)]


def test_ensemble_of_two_runs_writes_everything(runs: tuple[Path, Path],
                                                tmp_path: Path) -> None:
    out, metrics = ensemble(list(runs), "digits", weights=[1, 3], batch_size=50, device="cpu",
                            project=str(tmp_path), name="pair")
    assert out == tmp_path / "ensemble" / "pair"
    (p1, labels), (p2, _) = _member_probabilities(runs[0]), _member_probabilities(runs[1])
    assert metrics["weights"] == [0.25, 0.75]
    probs = np.load(out / "probabilities.npy")
    assert probs.dtype == np.float32 and probs.shape == (len(labels), 10)
    assert np.allclose(probs, 0.25 * p1 + 0.75 * p2, atol=1e-4)
    assert not np.allclose(probs, 0.5 * p1 + 0.5 * p2, atol=1e-4)

    for member, run, p in zip(metrics["members"], runs, (p1, p2)):
        assert member["run"] == str(run)
        assert member["accuracy"] == pytest.approx(float((p.argmax(1) == labels).mean()))
        assert 0.0 <= member["macro_f1"] <= 1.0
    assert metrics["accuracy"] == pytest.approx(float((probs.argmax(1) == labels).mean()))
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert set(metrics["per_class"]) == {str(d) for d in range(10)}

    rows = _read_csv(out / "predictions.csv")
    assert len(rows) == len(labels) + 1 and rows[0] == ["id", "label"]
    assert (out / "confusion_matrix.png").stat().st_size > 1000
    report = (out / "report.md").read_text()
    assert str(runs[0]) in report and str(runs[1]) in report and "accuracy" in report


def test_weights_must_match_the_runs(runs: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(FacecnnError, match="one positive number per run"):
        ensemble(list(runs), "digits", weights=[1.0], project=str(tmp_path))
    with pytest.raises(FacecnnError, match="one positive number per run"):
        ensemble(list(runs), "digits", weights=[1.0, 0.0], project=str(tmp_path))
    assert not (tmp_path / "ensemble").exists()


def _split(run: Path) -> dict:
    return json.loads((run / "split.json").read_text())


def test_a_folder_without_val_is_scored_on_the_held_out_split(shapes_run: tuple[Path, Path],
                                                               tmp_path: Path) -> None:
    run, data = shapes_run
    split = _split(run)
    every = sorted(p.relative_to(data).as_posix() for p in data.rglob("*.png"))
    assert sorted(split["train"] + split["val"]) == every  # the run wrote its split down
    assert len(split["val"]) == 3 and split["root"] == str(data.resolve())
    out, metrics = ensemble([run], str(data), device="cpu", project=str(tmp_path))
    rows = _read_csv(out / "predictions.csv")
    assert rows[0] == ["id", "label"]
    assert sorted(row[0] for row in rows[1:]) == sorted(split["val"])  # never a training image
    assert {row[1] for row in rows[1:]} <= {"circle", "square", "star"}
    assert metrics["images"] == 3 and metrics["scored"] == (
        f"scored 3 held-out images of {data} (the split recorded in {run}: left out the 15 "
        "images trained on)")
    assert metrics["scored"] in (out / "report.md").read_text()


def test_scoring_training_images_is_refused(shapes_run: tuple[Path, Path],
                                            tmp_path: Path) -> None:
    run, data = shapes_run
    parts = tmp_path / "parts"  # the same images in train/ and val/ folders
    for i, image in enumerate(sorted(data.rglob("*.png"))):
        target = parts / ("val" if i % 3 == 0 else "train") / image.parent.name / image.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(image.read_bytes())
    split_run = _train(tmp_path, "parts", data=str(parts))
    assert all(i.startswith("train/") for i in _split(split_run)["train"])
    with pytest.raises(FacecnnError, match="every image of .*train was trained on by"):
        ensemble([split_run], str(parts / "train"), project=str(tmp_path))
    old = tmp_path / "old"  # a run from before split.json: its held-out images are unknown
    shutil.copytree(run, old)
    (old / "split.json").unlink()
    with pytest.raises(FacecnnError, match="old has no split.json"):
        ensemble([old], str(data), project=str(tmp_path))
    assert not (tmp_path / "ensemble").exists()
    out, metrics = ensemble([old, split_run], str(parts), project=str(tmp_path))
    assert metrics["images"] == 6 and "the data's val/ part" in metrics["scored"]


def test_members_are_scored_on_images_none_trained_on(tmp_path: Path) -> None:
    """Two seeds hold out different images: the ensemble scores those both held out."""
    ids = [f"p{c}/{i}.png" for c in range(2) for i in range(4)]
    images = ImageSet(np.zeros((8, 2, 2, 1), np.uint8), np.arange(8), np.repeat([0, 1], 4), ids)
    data = tmp_path / "data"
    for run, train in (("a", [0, 1, 4, 5]), ("b", [1, 2, 5, 6])):
        (tmp_path / run).mkdir()
        (tmp_path / run / "split.json").write_text(json.dumps(
            {"root": str(data.resolve()), "train": [ids[i] for i in train]}))
    keep, said = untrained(images, str(data), [tmp_path / "a", tmp_path / "b"])
    assert keep.tolist() == [3, 7]
    assert said == (f"scored 2 held-out images of {data} (the split recorded in {tmp_path / 'a'}"
                    f", {tmp_path / 'b'}: left out the 6 images trained on)")


def test_runs_must_share_their_classes(runs: tuple[Path, Path], shapes_run: tuple[Path, Path],
                                       tmp_path: Path) -> None:
    other = shapes_run[0]
    with pytest.raises(FacecnnError, match=re.escape(str(other))):
        ensemble([runs[0], other], "digits", project=str(tmp_path))
