"""A study's table and plots: comparison.csv, comparison.md and comparison.png.

Every number of a row describes the checkpoint the run kept (weights/best.pt, the epoch of
lowest validation loss, which model.safetensors holds), not the best of each column over
epochs. Runs that differ only by seed form one row, with the mean and standard deviation.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from facecnn.fileio import write_text_atomic
from facecnn.studies.study import Study
from facecnn.viz.plots import epoch_axis, label_points, save_figure

METRICS = ["epoch", "epochs", "val_loss", "val_acc", "val_f1", "train_seconds", "trainable",
           "total", "size_mb", "latency_ms"]
WITH_STD = ("val_loss", "val_acc", "val_f1", "train_seconds")
COUNTS = ("epoch", "epochs", "trainable", "total")  # whole numbers unless seeds disagree


def run_row(folder: Path) -> dict[str, Any]:
    """The numbers of one finished run, read from its folder: validation loss, accuracy and
    macro-F1 of the kept epoch; training time, parameters, size and latency of the run."""
    metrics = json.loads((folder / "metrics.json").read_text())
    with (folder / "results.csv").open() as handle:
        history = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]
    # best epoch 0: no epoch lowered the val loss (NaN losses), so the last one's weights stay
    kept = history[(metrics["best"]["epoch"] or len(history)) - 1]
    return {"epoch": int(kept["epoch"]), "epochs": len(history), "val_loss": kept["val_loss"],
            "val_acc": kept["val_acc"], "val_f1": kept["val_f1"],
            "train_seconds": sum(r["seconds"] for r in history),
            "trainable": metrics["parameters"]["trainable"],
            "total": metrics["parameters"]["total"], "size_mb": metrics["model_file_mb"],
            "latency_ms": metrics["latency_ms"], "curve": [r["val_acc"] for r in history]}


def group_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per setting (seeds pooled), best mean kept-epoch validation accuracy first."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        if "folder" not in record:
            continue
        key = re.sub(r"(^|_)seed-\d+", "", record["name"]).strip("_") or record["name"]
        groups.setdefault(key, []).append(run_row(record["folder"]))
    rows = []
    for key, members in groups.items():
        row: dict[str, Any] = {"run": key, "seeds": len(members)}
        for metric in METRICS:
            values = np.array([m[metric] for m in members], dtype=float)
            mean = float(values.mean())
            row[metric] = int(mean) if metric in COUNTS and mean.is_integer() else mean
            if metric in WITH_STD:
                row[f"{metric}_std"] = float(values.std())
        length = min(len(m["curve"]) for m in members)
        row["curve"] = np.mean([m["curve"][:length] for m in members], axis=0).tolist()
        rows.append(row)
    return sorted(rows, key=lambda r: -r["val_acc"])


def write_comparison(root: Path, study: Study, records: list[dict[str, Any]]) -> list[Path]:
    """comparison.csv, comparison.md and comparison.png of the finished runs in `records`."""
    rows = group_rows(records)
    skipped = [r for r in records if "skipped" in r]
    columns = ["run", "seeds"] + [c for m in METRICS
                                  for c in ([m, f"{m}_std"] if m in WITH_STD else [m])]
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(root / "comparison.csv", table.getvalue())
    write_text_atomic(root / "comparison.md", _markdown(study, rows, skipped))
    save_figure(comparison_figure(rows, study.name), root / "comparison.png")
    return [root / "comparison.csv", root / "comparison.md", root / "comparison.png"]


def _pm(row: dict[str, Any], metric: str, fmt: str) -> str:
    text = format(row[metric], fmt)
    return text + (f" ± {format(row[metric + '_std'], fmt)}" if row["seeds"] > 1 else "")


def _epoch(value: float) -> str:
    """An epoch number; a mean over seeds keeps one decimal."""
    return str(value) if isinstance(value, int) else f"{value:.1f}"


def _markdown(study: Study, rows: list[dict[str, Any]], skipped: list[dict[str, Any]]) -> str:
    lines = [f"# Study: {study.name}", ""]
    if study.notes:
        lines += [study.notes.strip(), ""]
    lines += ["Validation loss, accuracy and macro-F1 are those of the kept checkpoint "
              "(weights/best.pt: the epoch of lowest validation loss); train s is the whole "
              "run's.", "",
              "| run | seeds | kept epoch | epochs run | val loss | val acc | val macro-F1 | "
              "train s | trainable | total | size MB | latency ms |", "|" + "---|" * 12]
    for r in rows:
        lines.append(f"| {r['run']} | {r['seeds']} | {_epoch(r['epoch'])} | "
                     f"{_epoch(r['epochs'])} | {_pm(r, 'val_loss', '.4f')} | "
                     f"{_pm(r, 'val_acc', '.4f')} | {_pm(r, 'val_f1', '.4f')} | "
                     f"{_pm(r, 'train_seconds', '.1f')} | {r['trainable']:,.0f} | "
                     f"{r['total']:,.0f} | {r['size_mb']:.2f} | {r['latency_ms']:.2f} |")
    for r in skipped:
        lines.append(f"| {r['name']} | - | skipped: {r['skipped']} |" + " |" * 9)
    return "\n".join(lines + ["", "![comparison](comparison.png)", ""])


def comparison_figure(rows: list[dict[str, Any]], title: str) -> Figure:
    """Validation curves per row (integer epochs) beside accuracy against model size, each
    point named (runs of one size and accuracy share a label)."""
    import matplotlib.pyplot as plt

    fig, (curves, scatter) = plt.subplots(1, 2, figsize=(13, 5))
    for row in rows:
        epochs = range(1, len(row["curve"]) + 1)
        curves.plot(epochs, row["curve"], marker="o", markersize=3, label=row["run"])
        scatter.scatter(row["size_mb"], row["val_acc"], s=40)
    curves.set(ylabel="validation accuracy", title=f"{title}: validation curves")
    epoch_axis(curves, 1, max((len(row["curve"]) for row in rows), default=1))
    curves.legend(fontsize=7)
    curves.grid(alpha=0.3)
    scatter.set(xlabel="model file (MB)", ylabel="validation accuracy (kept epoch)",
                title="accuracy vs size")
    scatter.grid(alpha=0.3)
    fig.tight_layout()
    label_points(scatter, [(row["size_mb"], row["val_acc"], row["run"]) for row in rows])
    return fig
