"""PNG figures for training runs: learning curves, confusion matrix, learning-rate schedule.

Uses the non-interactive Agg backend so plotting works on headless training machines.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

DPI = 120
MAX_ANNOTATED_CLASSES = 30
_CURVE_PANELS = (("loss", "Loss"), ("acc", "Accuracy"), ("f1", "Macro-F1"))


def epoch_axis(ax: Axes, first: int, last: int) -> None:
    """Integer epoch ticks; half an epoch of padding keeps them integer even for a single epoch."""
    ax.set_xlabel("epoch")
    ax.set_xlim(first - 0.5, last + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def label_points(ax: Axes, points: list[tuple[float, float, str]], fontsize: float = 7) -> None:
    """Name each point without labels on top of each other: points at the same spot share one
    label ("a, b"), and a label that would cover an earlier one moves down a line until clear.
    Call it once the figure's layout is final: it places labels in display coordinates."""
    merged: dict[tuple[float, float], list[str]] = {}
    for x, y, name in points:
        merged.setdefault((x, y), []).append(name)
    ax.get_xlim(), ax.get_ylim()  # settle autoscaling: data-to-display must be final
    renderer = ax.figure.canvas.get_renderer()
    placed = []
    for (x, y), names in sorted(merged.items(), key=lambda item: (-item[0][1], item[0][0])):
        label = ax.annotate(", ".join(names), (x, y), fontsize=fontsize, xytext=(4, 2),
                            textcoords="offset points")
        box = label.get_window_extent(renderer)
        while any(box.overlaps(other) for other in placed):
            dx, dy = label.xyann
            label.xyann = (dx, dy - fontsize * 1.3)
            box = label.get_window_extent(renderer)
        placed.append(box)


def save_figure(fig: Figure, path: Path) -> Path:
    """Write the figure and close it, so long runs that plot every epoch do not leak memory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_curves(rows: list[dict], path: Path) -> Path:
    """Loss, accuracy and macro-F1 per epoch, train against val, in three side-by-side panels."""
    epochs = [row["epoch"] for row in rows]
    fig, axes = plt.subplots(1, len(_CURVE_PANELS), figsize=(15, 4.2))
    for ax, (metric, title) in zip(axes, _CURVE_PANELS):
        for split, marker in (("train", "o"), ("val", "s")):
            values = [row.get(f"{split}_{metric}") for row in rows]
            if any(v is not None for v in values):  # a run without a val split has no val curve
                ax.plot(epochs, [np.nan if v is None else v for v in values],
                        marker=marker, markersize=4, label=split)
        ax.set_title(title)
        epoch_axis(ax, min(epochs), max(epochs))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


def plot_confusion(cm: np.ndarray, class_names: list[str], path: Path,
                   normalize: bool = True) -> Path:
    """Confusion-matrix heat map; rows are normalised so rare classes are as visible as
    common ones."""
    cm = np.asarray(cm)
    n = len(class_names)
    total = cm.sum()
    accuracy = np.trace(cm) / total if total else 0.0
    if normalize:
        support = cm.sum(axis=1, keepdims=True)
        shown = np.divide(cm, support, out=np.zeros(cm.shape), where=support > 0)
    else:
        shown = cm
    side = max(6.0, 0.32 * n + 3.0)  # ~0.3 inch per class keeps 40 names legible
    fig, ax = plt.subplots(figsize=(side + 1.2, side))
    image = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(n), class_names, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    kind = "row-normalised" if normalize else "counts"
    ax.set_title(f"Confusion matrix ({kind}), accuracy {accuracy:.2%}")
    if n <= MAX_ANNOTATED_CLASSES:
        threshold = shown.max() / 2 if shown.size else 0
        for i in range(n):
            for j in range(n):
                text = f"{shown[i, j]:.0%}" if normalize else str(int(shown[i, j]))
                color = "white" if shown[i, j] > threshold else "black"
                ax.text(j, i, text, ha="center", va="center", color=color, fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_lr_schedule(lrs: list[float], path: Path, title: str) -> Path:
    """Learning rate at the start of each epoch, to check a schedule before spending a run on it."""
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(range(len(lrs)), lrs, marker="o", markersize=4)
    ax.set_title(title)
    epoch_axis(ax, 0, len(lrs) - 1)
    ax.set_ylabel("learning rate")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)
