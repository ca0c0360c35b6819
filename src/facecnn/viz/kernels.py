"""Seed E's image-kernel demo: what classic 3x3 filters and the colour channels pick out.

It shows by hand what a CNN's first conv layer learns to do: edges, sharpening, outlines.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from facecnn.viz.plots import save_figure  # noqa: E402

# (title, kernel, signed): signed responses (edge directions) are drawn around a mid-gray zero;
# the others are clipped to 0..255 as an image editor would show them.
KERNELS = (
    ("Sobel x", np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]), True),
    ("Sobel y", np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]]), True),
    ("sharpen", np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]]), False),
    ("outline", np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]]), False),
)
_CHANNELS = ("red", "green", "blue")


def kernel_figure(image_rgb: np.ndarray, path: Path) -> Path:
    """Write `kernel_panels` of the (H, W, 3) uint8 image to `path`."""
    return save_figure(kernel_panels(image_rgb), path)


def kernel_panels(image_rgb: np.ndarray) -> Figure:
    """The image, its gray version through each kernel, and its R, G, B channels."""
    gray = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    fig, axes = plt.subplots(2, 4, figsize=(12, 6.6))
    panels = iter(axes.flat)

    ax = next(panels)
    ax.imshow(image_rgb)
    ax.set_title("original")
    for (title, kernel, signed), ax in zip(KERNELS, panels):
        response = cv2.filter2D(gray, -1, kernel.astype(np.float32))
        if signed:
            limit = max(float(np.abs(response).max()), 1.0)
            ax.imshow(response, cmap="gray", vmin=-limit, vmax=limit)
        else:
            ax.imshow(np.clip(response, 0, 255), cmap="gray", vmin=0, vmax=255)
        ax.set_title(title)
    for channel, (name, ax) in enumerate(zip(_CHANNELS, panels)):
        # the channel alone, black to full colour; matplotlib's Reds/Greens/Blues run from white
        # to dark, which drew bright parts dark, like a negative
        alone = np.zeros_like(image_rgb)
        alone[..., channel] = image_rgb[..., channel]
        ax.imshow(alone)
        ax.set_title(f"{name} channel")

    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    return fig
