"""Find faces: boxes from OpenCV's Haar cascade or dlib's HOG / MMOD-CNN detectors, then 68
landmarks from dlib's shape predictor, reduced to the 5 points alignment uses.

Every backend returns the same `Face`, so alignment and embedders never care which found it.
Large images are downscaled for the detector only; boxes are mapped back and landmarks are
predicted on the full-resolution image.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import cv2
import numpy as np

from facecnn.errors import FacecnnError
from facecnn.faces import dlib_models

DETECTORS = ("haar", "haar_seed_c", "hog", "cnn")
# OpenCV cascade (scaleFactor, minNeighbors): ours, and the 1.3 / 5 of seed C's scripts.
HAAR_SETTINGS = {"haar": (1.1, 5), "haar_seed_c": (1.3, 5)}


@dataclass
class Face:
    """One face: box (x1, y1, x2, y2) in image pixels, detector score, and landmarks.

    `landmarks` are 5 points in image coordinates, in the order of the ArcFace template:
    the eye on the image's left, the other eye, nose tip, left and right mouth corners.
    `points` are dlib's 68 landmarks, which dlib's embedder aligns with.
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray
    points: np.ndarray

    @property
    def area(self) -> float:
        return (self.box[2] - self.box[0]) * (self.box[3] - self.box[1])


def five_points(points68: np.ndarray) -> np.ndarray:
    """Eye centres, nose tip and mouth corners from dlib's 68-point layout."""
    return np.stack([points68[36:42].mean(0), points68[42:48].mean(0), points68[30],
                     points68[48], points68[54]]).astype(np.float32)


def landmarks_in(image: np.ndarray, box: tuple[float, float, float, float],
                 score: float = 1.0) -> Face:
    """A `Face` for a known box: dlib's 68-point predictor on the full-resolution image."""
    dlib = dlib_models.import_dlib()
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    shape = dlib_models.landmark_predictor()(image, dlib.rectangle(x1, y1, x2, y2))
    points = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
    return Face(tuple(float(v) for v in box), float(score), five_points(points), points)


@lru_cache(maxsize=None)
def _haar() -> Any:
    path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise FacecnnError(f"cannot load OpenCV's Haar cascade from {path}")
    return cascade


class FaceDetector:
    """`FaceDetector("hog")(rgb_image) -> [Face, ...]`, largest first (then most confident).

    upsample: dlib's pyramid upsampling (finds faces down to ~40/2^n px; slower).
    min_size: smallest face side kept, in original pixels.
    max_side: images are downscaled to this longest side for detection.
    """

    def __init__(self, name: str = "hog", *, upsample: int = 1, min_size: int = 20,
                 max_side: int = 1280) -> None:
        if name not in DETECTORS:
            raise FacecnnError(f"unknown detector {name!r}; choose one of: "
                               f"{', '.join(DETECTORS)}")
        self.name, self.upsample, self.min_size, self.max_side = name, upsample, min_size, max_side
        self.haar = HAAR_SETTINGS.get(name)
        self.options = {"name": name, "upsample": upsample, "min_size": min_size,
                        "max_side": max_side}  # to rebuild it in worker processes
        if self.haar:
            _haar()
        else:
            {"hog": dlib_models.hog_detector, "cnn": dlib_models.cnn_detector}[name]()
        dlib_models.landmark_predictor()

    def __call__(self, image: np.ndarray) -> list[Face]:
        image = as_rgb(image)
        scale = min(1.0, self.max_side / max(image.shape[:2]))
        small = image if scale == 1.0 else cv2.resize(
            image, (round(image.shape[1] * scale), round(image.shape[0] * scale)),
            interpolation=cv2.INTER_AREA)
        faces = []
        for (x1, y1, x2, y2), score in self._boxes(small, max(int(self.min_size * scale), 1)):
            box = (max(x1 / scale, 0.0), max(y1 / scale, 0.0),
                   min(x2 / scale, image.shape[1] - 1.0), min(y2 / scale, image.shape[0] - 1.0))
            if min(box[2] - box[0], box[3] - box[1]) >= self.min_size:
                faces.append(landmarks_in(image, box, score))
        # dlib's box sizes are discrete, so equal areas are common: the surer face goes first
        return sorted(faces, key=lambda f: (-round(f.area / 100), -f.score))

    def _boxes(self, image: np.ndarray, min_side: int) -> list[tuple[tuple[float, ...], float]]:
        if self.haar:
            gray = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
            rects, _, weights = _haar().detectMultiScale3(
                gray, scaleFactor=self.haar[0], minNeighbors=self.haar[1],
                minSize=(min_side, min_side), outputRejectLevels=True)
            return [((x, y, x + w, y + h), float(s)) for (x, y, w, h), s in
                    zip(np.asarray(rects).reshape(-1, 4), np.asarray(weights).ravel())]
        if self.name == "hog":
            rects, scores, _ = dlib_models.hog_detector().run(image, self.upsample, 0.0)
            return [((r.left(), r.top(), r.right(), r.bottom()), float(s))
                    for r, s in zip(rects, scores)]
        found = dlib_models.cnn_detector()(image, self.upsample)
        return [((d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()),
                 float(d.confidence)) for d in found]


def as_rgb(image: np.ndarray) -> np.ndarray:
    """Contiguous uint8 RGB (dlib needs it), from gray or RGB input."""
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    return np.ascontiguousarray(image, dtype=np.uint8)


def detect_faces(image: np.ndarray, detector: str = "hog", **options: Any) -> list[Face]:
    """Faces in an RGB image, largest first (the flat API: builds a detector each call)."""
    return FaceDetector(detector, **options)(image)
