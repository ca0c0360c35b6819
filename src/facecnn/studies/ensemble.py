"""Seed B's ensemble: average the softmax probabilities of several trained runs on one dataset.

Members may differ in architecture, input size and channels; they must share the class names
(in the same order), so that their probability columns mean the same thing.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from facecnn.data.datasets import ImageSet, load_folder_for
from facecnn.data.heldout import untrained
from facecnn.errors import FacecnnError
from facecnn.fileio import atomic_write, write_csv_atomic
from facecnn.inference.pytorch import Predictor
from facecnn.progress import Reporter
from facecnn.runs import new_run_dir
from facecnn.train.metrics import accuracy_f1, confusion_matrix
from facecnn.train.report import write_eval_outputs


def ensemble(runs: list[Path], data: str, *, weights: list[float] | None = None,
             batch_size: int = 64, device: str = "auto", project: str = "runs",
             name: str = "exp", reporter: Reporter | None = None) -> tuple[Path, dict[str, Any]]:
    """Score every run and their weighted mean probabilities on the images of `data` that no
    member trained on.

    Returns (run folder under PROJECT/ensemble, metrics): the top-level accuracy, macro_f1 and
    per_class are the ensemble's, `members` holds each run's own scores, `scored` says which
    images were scored.
    """
    reporter = reporter or Reporter()
    if not runs:
        raise FacecnnError("an ensemble needs at least one run")
    weights = _normalised(weights, len(runs))
    predictors = [Predictor.load(run, device) for run in runs]
    classes = predictors[0].classes
    for run, predictor in zip(runs[1:], predictors[1:]):
        if predictor.classes != classes:
            raise FacecnnError(f"{run} has other classes than {runs[0]} "
                               f"({', '.join(predictor.classes[:10])} vs "
                               f"{', '.join(classes[:10])}): members must share their classes")
    sets, skipped = _load_sets(data, classes, predictors, reporter)
    keep, scored = untrained(next(iter(sets.values())), data, runs)
    sets = {key: images.subset(keep) for key, images in sets.items()}
    first = next(iter(sets.values()))  # all loads share ids and labels (checked)
    labels = first.labels
    members: list[dict[str, Any]] = []
    member_probs: list[np.ndarray] = []
    for run, predictor, weight in zip(runs, predictors, weights):
        meta = predictor.meta
        probs = _probabilities(predictor, sets[meta["img_size"], meta["in_chans"]], batch_size,
                               reporter, f"scoring {run}")
        accuracy, macro_f1 = accuracy_f1(confusion_matrix(labels, probs.argmax(1), len(classes)))
        members.append({"run": str(run), "model": meta["model"], "weight": weight,
                        "accuracy": accuracy, "macro_f1": macro_f1,
                        "loss": _cross_entropy(probs, labels)})
        member_probs.append(probs)
    probs = np.average(member_probs, axis=0, weights=weights).astype(np.float32)
    predicted = probs.argmax(1)

    out = new_run_dir(project, "ensemble", name)

    def save_probabilities(tmp: Path) -> None:
        with tmp.open("wb") as handle:
            np.save(handle, probs)

    atomic_write(out / "probabilities.npy", save_probabilities)
    write_csv_atomic(out / "predictions.csv", [["id", "label"]] + [  # seed B's submission
        [image_id, classes[p]] for image_id, p in zip(first.ids, predicted)])
    overview: dict[str, Any] = {"data": data, "images": scored, "members": len(runs)}
    for i, m in enumerate(members, 1):
        overview[f"member {i}"] = (f"{m['run']} ({m['model']}, weight {m['weight']:.3g}): "
                                  f"accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}")
    extra = {"data": data, "images": len(labels), "scored": scored, "weights": weights,
             "members": members, "skipped": skipped, "overview": overview}
    metrics = write_eval_outputs(out, confusion_matrix(labels, predicted, len(classes)), classes,
                                 loss=_cross_entropy(probs, labels), extra=extra,
                                 title=f"Ensemble of {len(runs)} runs on {data}")
    return out, metrics


def _normalised(weights: list[float] | None, count: int) -> list[float]:
    """One positive weight per run, scaled to sum 1; equal weights when none are given."""
    if weights is None:
        return [1.0 / count] * count
    if len(weights) != count or not all(math.isfinite(w) and w > 0 for w in weights):
        raise FacecnnError(f"weights must be one positive number per run: got "
                           f"{', '.join(f'{w:g}' for w in weights)} for {count} runs")
    total = sum(weights)
    return [w / total for w in weights]


def _load_sets(data: str, classes: list[str], predictors: list[Predictor], reporter: Reporter
               ) -> tuple[dict[tuple[int, int], ImageSet], list[dict[str, str]]]:
    """The evaluation set read once per distinct (img_size, in_chans) among the members."""
    sets: dict[tuple[int, int], ImageSet] = {}
    skipped: list[dict[str, str]] = []
    for size, chans in dict.fromkeys((p.meta["img_size"], p.meta["in_chans"])
                                     for p in predictors):
        with reporter.task(f"reading images ({size}px, {chans} channels)", 0) as advance:
            sets[size, chans], skipped = load_folder_for(data, classes, size, chans,
                                                         progress=lambda total: advance)
    first = next(iter(sets.values()))
    for (size, chans), images in sets.items():
        if images.ids != first.ids:  # e.g. a file readable in colour but not in gray
            raise FacecnnError(f"{data} read at {size}px with {chans} channels gives other "
                               "images than for the other members; remove unreadable files")
    return sets, skipped


def _probabilities(predictor: Predictor, images: ImageSet, batch_size: int,
                   reporter: Reporter, description: str) -> np.ndarray:
    """(N, classes) softmax of one member, batch by batch in the set's order."""
    chunks = []
    with reporter.task(description, len(images)) as advance:
        for start in range(0, len(images), batch_size):
            idx = np.arange(start, min(start + batch_size, len(images)))
            chunks.append(predictor.probabilities(images.batch(idx)))
            advance(len(idx))
    return np.concatenate(chunks)


def _cross_entropy(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-probability of the true class (the loss evaluate reports)."""
    picked = probs[np.arange(len(labels)), labels].astype(np.float64)
    return float(-np.log(np.maximum(picked, np.finfo(np.float64).tiny)).mean())
