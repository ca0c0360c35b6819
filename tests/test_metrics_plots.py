"""Confusion-matrix metrics agree with sklearn; every plot writes a readable PNG."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from sklearn import metrics as skm

from facecnn.train.metrics import accuracy_f1, confusion_matrix, summarize
from facecnn.viz.plots import plot_confusion, plot_curves, plot_lr_schedule


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    num_classes = 7
    # class 6 never occurs in y_true but is sometimes predicted: it must be left out of macro-F1
    y_true = rng.integers(0, num_classes - 1, size=300)
    y_pred = np.where(rng.random(300) < 0.6, y_true, rng.integers(0, num_classes, size=300))
    cm = confusion_matrix(y_true, y_pred, num_classes)
    labels = list(range(num_classes))
    np.testing.assert_array_equal(cm, skm.confusion_matrix(y_true, y_pred, labels=labels))
    assert cm.dtype == np.int64

    names = [f"c{i}" for i in labels]
    report = summarize(cm, names)
    present = np.unique(y_true)
    assert report["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert report["macro_f1"] == pytest.approx(
        skm.f1_score(y_true, y_pred, average="macro", labels=present, zero_division=0)
    )
    assert accuracy_f1(cm) == (report["accuracy"], report["macro_f1"])

    precision, recall, f1, support = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    for i, name in enumerate(names):
        row = report["per_class"][name]
        assert row["precision"] == pytest.approx(precision[i])
        assert row["recall"] == pytest.approx(recall[i])
        assert row["f1"] == pytest.approx(f1[i])
        assert row["support"] == support[i]
    assert report["per_class"]["c6"]["support"] == 0
    json.dumps(report)  # plain Python numbers only


def test_confusion_matrices_sum_across_batches() -> None:
    rng = np.random.default_rng(3)
    y_true, y_pred = rng.integers(0, 4, size=(2, 50))
    whole = confusion_matrix(y_true, y_pred, 4)
    parts = (confusion_matrix(y_true[:20], y_pred[:20], 4)
             + confusion_matrix(y_true[20:], y_pred[20:], 4))
    np.testing.assert_array_equal(whole, parts)


def test_empty_confusion_matrix_is_all_zero_metrics() -> None:
    cm = confusion_matrix(np.array([], dtype=int), np.array([], dtype=int), 3)
    assert accuracy_f1(cm) == (0.0, 0.0)
    assert summarize(cm, ["a", "b", "c"])["per_class"]["a"]["precision"] == 0.0


def test_confusion_matrix_rejects_out_of_range_labels() -> None:
    with pytest.raises(ValueError):
        confusion_matrix(np.array([0, 3]), np.array([0, 1]), 3)


def _assert_png(path, min_side: int = 300) -> None:
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert min(image.size) > min_side


def _row(epoch: int) -> dict:
    return {
        "epoch": epoch, "train_loss": 2.0 / epoch, "train_acc": 0.5 + 0.04 * epoch,
        "train_f1": 0.45 + 0.04 * epoch, "val_loss": 2.2 / epoch, "val_acc": 0.45 + 0.04 * epoch,
        "val_f1": 0.4 + 0.04 * epoch, "lr": 1e-3, "seconds": 3.0,
    }


@pytest.mark.parametrize("epochs", [1, 6])
def test_plot_curves(tmp_path, epochs: int) -> None:
    path = plot_curves([_row(e) for e in range(1, epochs + 1)], tmp_path / "curves.png")
    _assert_png(path)


@pytest.mark.parametrize("num_classes", [3, 40])
@pytest.mark.parametrize("normalize", [True, False])
def test_plot_confusion(tmp_path, num_classes: int, normalize: bool) -> None:
    rng = np.random.default_rng(num_classes)
    y_true = rng.integers(0, num_classes, size=400)
    y_pred = np.where(rng.random(400) < 0.7, y_true, rng.integers(0, num_classes, size=400))
    cm = confusion_matrix(y_true, y_pred, num_classes)
    names = [f"person_{i:02d}" for i in range(num_classes)]
    path = plot_confusion(cm, names, tmp_path / "sub" / "cm.png", normalize=normalize)
    _assert_png(path, min_side=500 if num_classes == 40 else 300)


def test_plot_lr_schedule(tmp_path) -> None:
    path = plot_lr_schedule([1e-5, 2.6e-5, 5e-5, 4.2e-5], tmp_path / "lr.png", "rampup_expdecay")
    _assert_png(path)
