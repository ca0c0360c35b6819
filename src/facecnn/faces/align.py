"""Alignment: a similarity transform (rotation, uniform scale, shift) that puts the 5
landmarks of a face on a canonical template, so eyes and mouth land on the same pixels in
every crop.

The template is the ArcFace one (112 x 112, used by most modern face embedders), scaled to
the crop size; `margin` widens the view around it by that fraction of the face on each side.
"""

from __future__ import annotations

import cv2
import numpy as np

ARCFACE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                        [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float64)


def template(size: int, margin: float = 0.0) -> np.ndarray:
    """The 5 template points in a size x size crop with `margin` extra room on each side."""
    unit = ARCFACE_112 / 112.0 - 0.5
    return (unit / (1.0 + 2.0 * margin) + 0.5) * size


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 least-squares similarity transform taking points `src` to `dst` (Umeyama, 1991)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    u, sigma, vt = np.linalg.svd(d.T @ s / len(src))
    sign = np.diag([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt))])
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(sigma) @ sign) / s.var(0).sum()
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = mu_d - scale * rotation @ mu_s
    return matrix


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int = 112,
               margin: float = 0.0) -> np.ndarray:
    """The aligned size x size crop of the face whose 5 landmarks are given."""
    matrix = similarity(landmarks, template(size, margin))
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)

