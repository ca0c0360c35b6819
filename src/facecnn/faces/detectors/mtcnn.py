"""MTCNN (three small cascaded CNNs) run by PyTorch (facecnn.models.mtcnn), with the weights
of the MIT-licensed `mtcnn` package: boxes and the five ArcFace points, no dlib predictor."""

from __future__ import annotations

import numpy as np

from facecnn.faces.detectors.base import BatchDetector, Detection, register
from facecnn.faces.model_files import MTCNN


@register("mtcnn", help="MTCNN in PyTorch: finds turned and small faces, gives its own five "
                        "landmarks, GPU when present")
class Mtcnn(BatchDetector):
    gives_landmarks = True
    scores_faces = True
    models = (MTCNN,)
    speed = "medium"

    def __init__(self, upsample: int = 1, device: str = "auto") -> None:
        super().__init__(upsample, device)
        from facecnn.models.mtcnn import MTCNNDetector

        self.net = MTCNNDetector(device=device)

    def detect_batch(self, images: list[np.ndarray], min_side: int) -> list[list[Detection]]:
        """Its image pyramid starts at faces of `min_side` pixels (`upsample` is dlib's)."""
        self.net.min_face = max(min_side, 12)  # P-Net's window
        return [[Detection(tuple(float(v) for v in box), float(score), points)
                 for box, score, points in found] for found in self.net(images)]
