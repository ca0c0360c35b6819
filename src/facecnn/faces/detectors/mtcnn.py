"""MTCNN (three small cascaded CNNs, facecnn.models.mtcnn), with the weights of the
MIT-licensed `mtcnn` package: boxes and the five ArcFace points, no dlib predictor. On the CPU
its networks run on onnxruntime, so it imports no PyTorch and runs in forked worker processes
like dlib's detectors; on a GPU they run on PyTorch, in batches in the main process."""

from __future__ import annotations

import numpy as np

from facecnn.faces.detectors.base import Detection, Detector, register
from facecnn.faces.model_files import MTCNN


@register("mtcnn", help="MTCNN: finds turned and small faces, gives its own five landmarks; "
                        "onnxruntime on the CPU, PyTorch on a GPU")
class Mtcnn(Detector):
    gives_landmarks = True
    scores_faces = True
    models = (MTCNN,)
    speed = "0.17 s a group photo, 0.05 s an LFW one"

    def __init__(self, upsample: int = 1, device: str = "auto") -> None:
        super().__init__(upsample, device)
        from facecnn.models.mtcnn import MTCNNDetector

        self.net = MTCNNDetector(device=device)
        self.in_workers = not self.net.on_gpu  # PyTorch on a GPU: batches, main process

    def detect(self, image: np.ndarray, min_side: int) -> list[Detection]:
        return self.detect_batch([image], min_side)[0]

    def detect_batch(self, images: list[np.ndarray], min_side: int) -> list[list[Detection]]:
        """Its image pyramid starts at faces of `min_side` pixels (`upsample` is dlib's)."""
        self.net.min_face = max(min_side, 12)  # P-Net's window
        return [[Detection(tuple(float(v) for v in box), float(score), points)
                 for box, score, points in found] for found in self.net(images)]
