"""What a run leaves for a reader: results.csv, plots, metrics.json and report.md."""

from __future__ import annotations

import csv
import json
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facecnn.fileio import atomic_write, write_text_atomic
from facecnn.train.metrics import summarize
from facecnn.viz.plots import plot_confusion, plot_curves

RESULT_COLUMNS = ["epoch", "train_loss", "train_acc", "train_f1", "val_loss", "val_acc",
                  "val_f1", "lr", "seconds"]


def write_results_csv(rows: list[dict[str, float]], path: Path) -> None:
    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=RESULT_COLUMNS)
            writer.writeheader()
            writer.writerows({k: row[k] for k in RESULT_COLUMNS} for row in rows)

    atomic_write(path, write)


def write_eval_outputs(run_dir: Path, cm: np.ndarray, classes: list[str], *, loss: float,
                       extra: dict[str, Any], title: str) -> dict[str, Any]:
    """metrics.json, confusion_matrix.png and report.md for a confusion matrix on some data."""
    summary = summarize(cm, classes)
    metrics = {"loss": loss, **summary, **extra}
    plot_confusion(cm, classes, run_dir / "confusion_matrix.png")
    write_text_atomic(run_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    write_text_atomic(run_dir / "report.md", render_report(title, metrics, []))
    return metrics


def render_report(title: str, metrics: dict[str, Any], history: list[dict[str, float]]) -> str:
    """A Markdown page a user can read without any tool."""
    lines = [f"# {title}", ""]
    overview = metrics.get("overview", {})
    for key, value in overview.items():
        lines.append(f"- **{key}**: {value}")
    if overview:
        lines.append("")
    params = metrics.get("parameters")
    if params:
        lines += ["## Parameters", "",
                  f"trainable {params['trainable']:,}, frozen {params['frozen']:,}, "
                  f"total {params['total']:,} ({params['total_with_bn_stats']:,} counting "
                  "BatchNorm statistics, as Keras does)", ""]
    if "model_file_mb" in metrics:  # training runs measure what deploying the model costs
        device = overview.get("device", "the training device")
        lines += ["## Size and latency", "",
                  f"model file {metrics['model_file_mb']:.3f} MB; latency "
                  f"{metrics['latency_ms']:.2f} ms per image (batch of one, median, on "
                  f"{device})", ""]
        if "run_mb" in metrics:
            lines += [f"run folder weights {metrics['run_mb']:.2f} MB: model.safetensors (the "
                      "best epoch's, what inference loads), weights/last.pt (the last epoch's "
                      "with the optimizer's state, what --resume needs), weights/best.pt (its "
                      "progress only)", ""]
    if history:
        lines += ["## Epochs", "", "| " + " | ".join(RESULT_COLUMNS) + " |",
                  "|" + "---|" * len(RESULT_COLUMNS)]
        for row in history:
            lines.append("| " + " | ".join(_fmt(row[c]) for c in RESULT_COLUMNS) + " |")
        lines += ["", "![curves](curves.png)", ""]
    for split in ("val", "test"):
        if split in metrics:
            lines += _class_table(f"{split} set (best checkpoint)", metrics[split])
    if "per_class" in metrics:
        lines += _class_table("results", metrics)
    lines += ["![confusion matrix](confusion_matrix.png)", ""]
    skipped = metrics.get("skipped", [])
    lines += [f"## Skipped files ({len(skipped)})", ""]
    lines += [f"- `{item['file']}`: {item['reason']}" for item in skipped] or ["none", ""]
    return "\n".join(lines) + "\n"


def _class_table(title: str, summary: dict[str, Any]) -> list[str]:
    lines = [f"## {title}: accuracy {summary['accuracy']:.4f}, macro-F1 "
             f"{summary['macro_f1']:.4f}", "", "| class | precision | recall | F1 | support |",
             "|---|---|---|---|---|"]
    for name, c in summary["per_class"].items():
        lines.append(f"| {name} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} | "
                     f"{c['support']} |")
    return lines + [""]


def _fmt(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer() and abs(value) > 1:
        return str(int(value))
    return f"{value:.3g}" if abs(value) < 1e-3 else f"{value:.4f}"


def environment() -> dict[str, str]:
    return {"python": platform.python_version(), "torch": torch.__version__,
            "platform": platform.platform()}


def write_train_outputs(run_dir: Path, *, history: list[dict[str, float]],
                        val_cm: np.ndarray, test_cm: np.ndarray | None, classes: list[str],
                        metrics: dict[str, Any]) -> dict[str, Any]:
    """Final plots, metrics.json and report.md of a training run."""
    metrics["val"] = summarize(val_cm, classes)
    if test_cm is not None:
        metrics["test"] = summarize(test_cm, classes)
    plot_curves(history, run_dir / "curves.png")
    plot_confusion(val_cm, classes, run_dir / "confusion_matrix.png")
    write_results_csv(history, run_dir / "results.csv")
    write_text_atomic(run_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    title = f"Training run {run_dir.name}: {metrics['overview']['model']}"
    write_text_atomic(run_dir / "report.md", render_report(title, metrics, history))
    return metrics
