"""OpenCV's frontal-face Haar cascade (ships inside opencv-python, BSD licence)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from facecnn.errors import FacecnnError
from facecnn.faces.detectors.base import Detection, Detector, ModelFile, register

CASCADE = "haarcascade_frontalface_default.xml"


@lru_cache(maxsize=None)
def _cascade() -> Any:
    import cv2

    path = cv2.data.haarcascades + CASCADE
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise FacecnnError(f"cannot load OpenCV's Haar cascade from {path}")
    return cascade


@register("haar", help="OpenCV's Haar cascade: fast, frontal faces only")
class Haar(Detector):
    models = (ModelFile(CASCADE, "opencv-python(-headless)", "BSD-3-Clause (Intel)"),)
    speed = "0.15 s a group photo, 0.04 s an LFW one"
    scale_factor, min_neighbors = 1.1, 5

    def __init__(self, upsample: int = 1, device: str = "auto") -> None:
        super().__init__(upsample, device)
        _cascade()

    def detect(self, image: np.ndarray, min_side: int) -> list[Detection]:
        import cv2

        gray = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
        rects, _, weights = _cascade().detectMultiScale3(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=(min_side, min_side), outputRejectLevels=True)
        return [Detection((float(x), float(y), float(x + w), float(y + h)), float(s))
                for (x, y, w, h), s in zip(np.asarray(rects).reshape(-1, 4),
                                           np.asarray(weights).ravel())]


@register("haar_seed_c", help="the same cascade with seed C's settings: scale 1.3, 5 "
                              "neighbours")
class HaarSeedC(Haar):
    speed = "0.06 s a group photo, 0.02 s an LFW one"
    scale_factor = 1.3
