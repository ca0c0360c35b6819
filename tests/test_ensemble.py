"""Seed B's ensemble: averaged softmax of several runs, its outputs and its refusals."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facecnn.config import TrainConfig
from facecnn.data.datasets import load_folder_for
from facecnn.errors import FacecnnError
from facecnn.inference import Predictor
from facecnn.studies.ensemble import ensemble
from facecnn.train.trainer import Trainer


def _train(root: Path, name: str, data: str = "digits", **options: object) -> Path:
    cfg = TrainConfig(data=data, model="seed_mlp", epochs=1, batch_size=128,
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
    assert np.allclose(np.load(out / "probabilities.npy"), probs, atol=1e-6)
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
    assert np.allclose(probs, 0.25 * p1 + 0.75 * p2, atol=1e-6)
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


def test_predictions_name_files_by_stem(shapes_run: tuple[Path, Path], tmp_path: Path) -> None:
    run, data = shapes_run
    out, _ = ensemble([run], str(data), device="cpu", project=str(tmp_path))
    rows = _read_csv(out / "predictions.csv")
    assert rows[0] == ["id", "label"]
    assert sorted(row[0] for row in rows[1:]) == sorted(p.stem for p in data.rglob("*.png"))
    assert {row[1] for row in rows[1:]} <= {"circle", "square", "star"}


def test_runs_must_share_their_classes(runs: tuple[Path, Path], shapes_run: tuple[Path, Path],
                                       tmp_path: Path) -> None:
    other = shapes_run[0]
    with pytest.raises(FacecnnError, match=re.escape(str(other))):
        ensemble([runs[0], other], "digits", project=str(tmp_path))
