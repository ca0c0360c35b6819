"""What every face detector plug-in is: boxes and scores of an RGB image (and, for detectors
that find them, their own five landmarks), plus what a user should know about it.

A detector sees the image at the scale `FaceDetector` chose for it and knows nothing of
landmark prediction, alignment or sorting: those are the same for every detector.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from facecnn.faces.model_files import ModelFile
from facecnn.registry import Registry


@dataclass
class Detection:
    """A face as a detector reports it: box (x1, y1, x2, y2), score, and the five ArcFace
    points (image-left eye, other eye, nose tip, image-left mouth corner, other corner) when
    the detector predicts them."""

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray | None = None


class Detector(ABC):
    """Base of the plug-ins; `speed` is what `facecnn detectors` says of it: seconds a photo,
    one at a time, measured on 2 CPU cores by benchmarks/detect.py (dlib's 9 group photos,
    300 LFW photos; 2026-12-06). `in_workers`: safe to run in forked worker processes, one
    photo at a time (dlib's and OpenCV's C++, onnxruntime); PyTorch detectors run batches in
    the main process instead. `scores_faces`: a network says how sure it is that each box is a face
    (MTCNN's O-Net), so it may look at contrast-equalized copies (faces/second_look.py)
    without taking their artefacts for faces, as HOG does."""

    name: ClassVar[str]
    gives_landmarks: ClassVar[bool] = False
    scores_faces: ClassVar[bool] = False
    in_workers: ClassVar[bool] = True
    models: ClassVar[tuple[ModelFile, ...]] = ()
    speed: ClassVar[str] = ""

    def __init__(self, upsample: int = 1, device: str = "auto") -> None:
        self.upsample, self.device = upsample, device

    @abstractmethod
    def detect(self, image: np.ndarray, min_side: int) -> list[Detection]:
        """Faces of a contiguous uint8 RGB image whose sides are at least `min_side`."""

    def detect_batch(self, images: list[np.ndarray], min_side: int) -> list[list[Detection]]:
        """Several images at once (network detectors batch; the rest loop)."""
        return [self.detect(image, min_side) for image in images]


class BatchDetector(Detector):
    """A PyTorch detector: whole batches are its unit of work, in the main process."""

    in_workers = False

    def detect(self, image: np.ndarray, min_side: int) -> list[Detection]:
        return self.detect_batch([image], min_side)[0]

    @abstractmethod
    def detect_batch(self, images: list[np.ndarray], min_side: int) -> list[list[Detection]]:
        """The faces of each image, the images run as batches."""


DETECTORS: Registry[type[Detector]] = Registry("detector")


def register(name: str, help: str):  # noqa: A002 (the registry's word)
    """Class decorator: register a Detector subclass under `name`."""

    def wrap(cls: type[Detector]) -> type[Detector]:
        cls.name = name
        DETECTORS.add(name, cls, help)
        return cls

    return wrap
