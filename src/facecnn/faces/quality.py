"""How usable a face is for recognition, 0 to 1, from what detection already knows: its size,
its sharpness and how far it is turned (from the five points). Small, blurred and turned faces
(background faces, motion blur, profiles) give vectors that match the wrong people; the score
lets workflows keep them apart and lets users see why a face was not named.

The score is the geometric mean of three parts, each 0 to 1:
- size: the box's shorter side, 0 at MIN_SIDE pixels or less, 1 from FULL_SIDE;
- sharpness: the variance of the Laplacian of the face (grey, resized to SHARP_SIDE) over the
  variance of its grey levels, so a dark or low-contrast face is not taken for a blurred one;
  0 at BLURRED or less, 1 from SHARP, on a log scale;
- pose: how far the nose sits from the middle of the eyes, over the eye distance (0 frontal,
  about 0.5 in profile), 1 - that / TURNED; 1 where the points are unknown.
Detector scores are left out: each detector has its own scale.
"""

from __future__ import annotations

import numpy as np

from facecnn.faces.result import Face

MIN_SIDE, FULL_SIDE = 20.0, 80.0
SHARP_SIDE = 64
BLURRED, SHARP = 0.02, 0.15
TURNED = 0.6
# Faces under this are kept out of clusters and galleries (listed, never dropped silently):
# chosen on LFW dev by benchmarks/cluster.py, which reports what each floor removes
DEFAULT_MIN_QUALITY = 0.5


def face_quality(image: np.ndarray, face: Face) -> float:
    """The quality of `face` in the RGB `image` (see the module's docstring)."""
    parts = (size_part(face), sharpness_part(image, face), pose_part(face))
    return float(np.prod(parts) ** (1 / len(parts)))


def size_part(face: Face) -> float:
    side = min(face.box[2] - face.box[0], face.box[3] - face.box[1])
    return float(np.clip((side - MIN_SIDE) / (FULL_SIDE - MIN_SIDE), 0.0, 1.0))


def sharpness_part(image: np.ndarray, face: Face) -> float:
    import cv2  # here, so the CLI's help can read DEFAULT_MIN_QUALITY without OpenCV

    x1, y1, x2, y2 = (int(round(v)) for v in face.box)
    region = image[max(y1, 0):max(y2, 0), max(x1, 0):max(x2, 0)]
    if region.size == 0:
        return 0.0
    grey = cv2.cvtColor(np.ascontiguousarray(region), cv2.COLOR_RGB2GRAY)
    grey = cv2.resize(grey, (SHARP_SIDE, SHARP_SIDE),
                      interpolation=cv2.INTER_AREA).astype(np.float64)
    contrast = float(grey.var())
    if contrast < 1e-6:  # one flat colour: nothing to recognize
        return 0.0
    edges = float(cv2.Laplacian(grey, cv2.CV_64F).var()) / contrast
    return float(np.clip(np.log(max(edges, 1e-9) / BLURRED) / np.log(SHARP / BLURRED),
                         0.0, 1.0))


def pose_part(face: Face) -> float:
    if face.landmarks is None:
        return 1.0
    points = np.asarray(face.landmarks, np.float64)
    eyes = points[:2]
    distance = float(np.linalg.norm(eyes[1] - eyes[0]))
    if distance < 1e-6:
        return 0.0
    turn = abs(float(points[2, 0] - eyes[:, 0].mean())) / distance
    return float(np.clip(1.0 - turn / TURNED, 0.0, 1.0))
