"""A study's table and plots: comparison.csv, comparison.md and comparison.png.

Runs that differ only by seed form one row, with the mean and standard deviation.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from facecnn.studies.study import Study
from facecnn.viz.plots import save_figure

METRICS = ["best_val_acc", "macro_f1", "epochs_to_best", "train_seconds", "trainable",
           "total", "size_mb", "latency_ms"]
WITH_STD = ("best_val_acc", "macro_f1", "train_seconds")


def run_row(folder: Path) -> dict[str, Any]:
    """The numbers of one finished run, read from its folder."""
    metrics = json.loads((folder / "metrics.json").read_text())
    with (folder / "results.csv").open() as handle:
        history = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]
    accs = [row["val_acc"] for row in history]
    best = int(np.argmax(accs))
    return {"best_val_acc": accs[best], "macro_f1": metrics["val"]["macro_f1"],
            "epochs_to_best": best + 1, "train_seconds": sum(r["seconds"] for r in history),
            "trainable": metrics["parameters"]["trainable"],
            "total": metrics["parameters"]["total"], "size_mb": metrics["model_file_mb"],
            "latency_ms": metrics["latency_ms"], "curve": accs}


def group_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per setting (seeds pooled), best mean validation accuracy first."""
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
            row[metric] = float(values.mean())
            if metric in WITH_STD:
                row[f"{metric}_std"] = float(values.std())
        length = min(len(m["curve"]) for m in members)
        row["curve"] = np.mean([m["curve"][:length] for m in members], axis=0).tolist()
        rows.append(row)
    return sorted(rows, key=lambda r: -r["best_val_acc"])


def write_comparison(root: Path, study: Study, records: list[dict[str, Any]]) -> list[Path]:
    rows = group_rows(records)
    skipped = [r for r in records if "skipped" in r]
    columns = ["run", "seeds"] + [c for m in METRICS
                                  for c in ([m, f"{m}_std"] if m in WITH_STD else [m])]
    with (root / "comparison.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    (root / "comparison.md").write_text(_markdown(study, rows, skipped))
    _plot(rows, root / "comparison.png", study.name)
    return [root / "comparison.csv", root / "comparison.md", root / "comparison.png"]


def _pm(row: dict[str, Any], metric: str, fmt: str) -> str:
    text = format(row[metric], fmt)
    return text + (f" ± {format(row[metric + '_std'], fmt)}" if row["seeds"] > 1 else "")


def _markdown(study: Study, rows: list[dict[str, Any]], skipped: list[dict[str, Any]]) -> str:
    lines = [f"# Study: {study.name}", ""]
    if study.notes:
        lines += [study.notes.strip(), ""]
    lines += ["| run | seeds | best val acc | macro-F1 | epochs to best | train s | trainable | "
              "total | size MB | latency ms |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['run']} | {r['seeds']} | {_pm(r, 'best_val_acc', '.4f')} | "
                     f"{_pm(r, 'macro_f1', '.4f')} | {r['epochs_to_best']:.1f} | "
                     f"{_pm(r, 'train_seconds', '.1f')} | {r['trainable']:,.0f} | "
                     f"{r['total']:,.0f} | {r['size_mb']:.2f} | {r['latency_ms']:.2f} |")
    for r in skipped:
        lines.append(f"| {r['name']} | - | skipped: {r['skipped']} | | | | | | | |")
    return "\n".join(lines + ["", "![comparison](comparison.png)", ""])


def _plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (curves, scatter) = plt.subplots(1, 2, figsize=(13, 5))
    for row in rows:
        epochs = range(1, len(row["curve"]) + 1)
        curves.plot(epochs, row["curve"], marker="o", markersize=3, label=row["run"])
        scatter.scatter(row["size_mb"], row["best_val_acc"], s=40)
        scatter.annotate(row["run"], (row["size_mb"], row["best_val_acc"]), fontsize=7,
                         xytext=(4, 2), textcoords="offset points")
    curves.set(xlabel="epoch", ylabel="validation accuracy", title=f"{title}: validation curves")
    curves.legend(fontsize=7)
    curves.grid(alpha=0.3)
    scatter.set(xlabel="model file (MB)", ylabel="best validation accuracy",
                title="accuracy vs size")
    scatter.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)
