"""A grid of test images titled "predicted (true)", green when right and red when wrong.

Seed E's way of eyeballing a classifier: the mistakes stand out at a glance.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402

from facecnn.errors import FacecnnError  # noqa: E402
from facecnn.viz.plots import save_figure  # noqa: E402

_GRID = re.compile(r"\s*(\d+)\s*[xX]\s*(\d+)\s*")


def show_image(ax: Axes, image: np.ndarray) -> None:
    """Draw a uint8 (H, W), (H, W, 1) or (H, W, 3) image: gray ones in gray, not viridis."""
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        ax.imshow(image, cmap="gray", vmin=0, vmax=255)
    else:
        ax.imshow(image)
    ax.axis("off")


def parse_grid(text: str) -> tuple[int, int]:
    """"4x8" -> (4, 8): rows by columns, both at least 1."""
    match = _GRID.fullmatch(text)
    if not match or min(int(match[1]), int(match[2])) < 1:
        raise FacecnnError(f"grid must look like 4x8 (rows x columns), got {text!r}")
    return int(match[1]), int(match[2])


def predictions_grid(images: np.ndarray, predicted: list[str], true: list[str], path: Path,
                     rows: int = 4, cols: int = 8) -> Path:
    """The first rows*cols of `images` (N, H, W, C uint8); rows left empty by fewer images are
    dropped, so a short test set does not leave a band of white below it."""
    rows = max(1, min(rows, math.ceil(len(images) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.8 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, pred, label in zip(axes.flat, images, predicted, true):
        show_image(ax, image)
        ax.set_title(f"{pred} ({label})", fontsize=8, color="green" if pred == label else "red")
    fig.tight_layout()
    return save_figure(fig, path)
