"""Find faces: any registered detector's boxes (faces/detectors), then the landmark step for
the detectors that give no points (faces/landmarks), as one `Face` per face, largest first.

Every detector's faces become the same `Face` record (faces/result.py), so alignment and
embedders never care which found it.
Large images are downscaled for the detector only; boxes are mapped back and the landmark
step sees the full-resolution image. Every face gets its quality (faces/quality.py).
"""

from __future__ import annotations

import threading
from functools import cached_property
from typing import Any

import numpy as np

from facecnn.data.decode import as_rgb
from facecnn.errors import FacecnnError
from facecnn.faces.config import PipelineConfig
from facecnn.faces.detectors import DEFAULT_DETECTOR, Detection, create_detector
from facecnn.faces.landmarks import LANDMARKERS, Landmarker, create_landmarker
from facecnn.faces.quality import face_quality
from facecnn.faces.result import Face

AUTO = "auto"
DEFAULT_LANDMARKER = "onet"  # MIT-licensed, and as close to dlib's 68 points as MTCNN's own
RETRY_MAX_SIDE = 512  # images this small with no face are looked at again, padded
PAD_SHARE = 0.25


class FaceDetector:
    """`FaceDetector("mtcnn")(rgb_image) -> [Face, ...]`, largest first (then most confident).

    name: a registered detector (`facecnn detectors` lists them).
    upsample: look for smaller faces (dlib's pyramid upsampling; slower).
    min_size: smallest face side kept, in original pixels.
    max_side: images are downscaled to this longest side for detection.
    device: where network detectors run (auto, cpu, cuda).
    landmarks: where the five points come from: `auto` (the detector's own, else O-Net on its
    boxes) or a landmark model for every face (`onet`, `dlib68`).
    """

    def __init__(self, name: str = DEFAULT_DETECTOR, *, upsample: int = 1, min_size: int = 20,
                 max_side: int = 1280, device: str = "auto", landmarks: str = "auto") -> None:
        self.detector = create_detector(name, upsample=upsample, device=device)
        if landmarks != AUTO and landmarks not in LANDMARKERS:  # a misspelt name fails now
            raise FacecnnError(f"{LANDMARKERS.unknown(landmarks)} (or {AUTO})")
        self.name, self.upsample, self.min_size, self.max_side = name, upsample, min_size, max_side
        self.device = device
        self.landmark_model = (None if landmarks == AUTO and self.detector.gives_landmarks
                               else DEFAULT_LANDMARKER if landmarks == AUTO else landmarks)
        self.config = PipelineConfig(detector=name, landmarks=landmarks, upsample=upsample,
                                     min_size=min_size, max_side=max_side, device=device)
        self._lock = threading.Lock()  # dlib's and PyTorch's models: one call at a time

    @classmethod
    def from_config(cls, config: PipelineConfig) -> FaceDetector:
        """The detector a pipeline configuration describes (its other fields are ignored)."""
        return cls(config.detector, upsample=config.upsample, min_size=config.min_size,
                   max_side=config.max_side, device=config.device, landmarks=config.landmarks)

    @cached_property
    def landmarker(self) -> Landmarker | None:
        """The landmark step, loaded when first needed (never, for dlib chips of HOG faces)."""
        if self.landmark_model is None:
            return None
        return create_landmarker(self.landmark_model, self.device)

    def in_workers(self, landmarks: bool = True) -> bool:
        """Whether forked worker processes can detect (and find `landmarks`) for it."""
        return self.detector.in_workers and (
            not landmarks or self.landmark_model is None
            or LANDMARKERS.get(self.landmark_model).in_workers)

    def __call__(self, image: np.ndarray) -> list[Face]:
        return self.detect_batch([image])[0]

    def detect_batch(self, images: list[np.ndarray], landmarks: bool = True) -> list[list[Face]]:
        """The faces of several images (network detectors run them as one batch), with their
        five points unless `landmarks` is False (dlib's chips need none). Safe to call from
        several threads: they take turns."""
        with self._lock:
            return self._detect_batch([as_rgb(image) for image in images], landmarks)

    def _detect_batch(self, images: list[np.ndarray], landmarks: bool) -> list[list[Face]]:
        scales = [min(1.0, self.max_side / max(image.shape[:2])) for image in images]
        small = [image if s == 1.0 else _resized(image, s) for image, s in zip(images, scales)]
        min_side = max(int(self.min_size * min(scales, default=1.0)), 1)
        found = self._with_retries(small, self.detector.detect_batch(small, min_side), min_side)
        faces = [self._faces(image, scale, detections)
                 for image, scale, detections in zip(images, scales, found)]
        if landmarks and self.landmarker is not None:
            points = self.landmarker.points(images, [[f.box for f in fs] for fs in faces])
            for image_faces, image_points in zip(faces, points):
                for face, face_points in zip(image_faces, image_points):
                    face.landmarks = face_points
        for image, image_faces in zip(images, faces):
            for face in image_faces:
                face.quality = face_quality(image, face)
        return faces

    def _with_retries(self, images: list[np.ndarray], found: list[list[Detection]],
                      min_side: int) -> list[list[Detection]]:
        """Look again, on a copy padded by a quarter of its side, at each small image in
        which nothing was found: a crop cut tight around a face gives a detector no room
        (its face fills the frame, its chin or brow at the edge). Large photos with no face
        (landscapes) are not looked at twice."""
        again = [k for k, (image, dets) in enumerate(zip(images, found))
                 if not dets and max(image.shape[:2]) <= RETRY_MAX_SIDE]
        if not again:
            return found
        padded = [_padded(images[k]) for k in again]
        looked = self.detector.detect_batch([image for image, _ in padded], min_side)
        for k, (_, pad), dets in zip(again, padded, looked):
            found[k] = [Detection(tuple(v - pad for v in d.box), d.score,
                                  None if d.landmarks is None else d.landmarks - pad)
                        for d in dets]
        return found

    def _faces(self, image: np.ndarray, scale: float, found: list[Detection]) -> list[Face]:
        faces = []
        height, width = image.shape[:2]
        for detection in found:
            x1, y1, x2, y2 = (v / scale for v in detection.box)
            box = (max(x1, 0.0), max(y1, 0.0), min(x2, width - 1.0), min(y2, height - 1.0))
            if min(box[2] - box[0], box[3] - box[1]) < self.min_size:
                continue
            points = detection.landmarks
            faces.append(Face(box, float(detection.score),
                              None if points is None else (points / scale).astype(np.float32)))
        # dlib's box sizes are discrete, so equal areas are common: the surer face goes first
        return sorted(faces, key=lambda f: (-round(f.area / 100), -f.confidence))


def _padded(image: np.ndarray) -> tuple[np.ndarray, int]:
    """The image inside a border of its mean colour a quarter of its longer side wide."""
    import cv2

    pad = int(round(PAD_SHARE * max(image.shape[:2])))
    colour = [int(v) for v in image.reshape(-1, 3).mean(0)]
    return cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT,
                              value=colour), pad


def _resized(image: np.ndarray, scale: float) -> np.ndarray:
    import cv2

    return cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)),
                      interpolation=cv2.INTER_AREA)


def detect_faces(image: np.ndarray, detector: str = DEFAULT_DETECTOR,
                 **options: Any) -> list[Face]:
    """Faces in an RGB image, largest first (the flat API: builds a detector each call)."""
    return FaceDetector(detector, **options)(image)

