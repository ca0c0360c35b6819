"""Landmarks for detectors that give none: dlib's 68-point shape predictor, reduced to the five
points alignment uses.

The 68-point model is trained on iBUG 300-W, whose licence forbids commercial use; dlib's
chips are cut from these points, as dlib's face network was trained on.
"""

from __future__ import annotations

import numpy as np

from facecnn.faces import dlib_models

Box = tuple[float, float, float, float]


def five_points(points68: np.ndarray) -> np.ndarray:
    """Eye centres, nose tip and mouth corners from dlib's 68-point layout."""
    return np.stack([points68[36:42].mean(0), points68[42:48].mean(0), points68[30],
                     points68[48], points68[54]]).astype(np.float32)


def dlib_points(image: np.ndarray, box: Box) -> np.ndarray:
    """dlib's 68 landmarks (68, 2) of the face in `box`, on the full-resolution image."""
    dlib = dlib_models.import_dlib()
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    shape = dlib_models.landmark_predictor()(image, dlib.rectangle(x1, y1, x2, y2))
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
