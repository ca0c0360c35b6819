"""Find faces: any registered detector's boxes (faces/detectors), then landmarks for the
detectors that give none (faces/landmarks), as one `Face` per face, largest first.

Every detector returns the same `Face`, so alignment and embedders never care which found it.
Large images are downscaled for the detector only; boxes are mapped back and landmarks are
predicted on the full-resolution image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from facecnn.data.decode import as_rgb
from facecnn.faces import dlib_models
from facecnn.faces.detectors import DEFAULT_DETECTOR, Detection, create_detector
from facecnn.faces.landmarks import dlib_points, five_points


@dataclass
class Face:
    """One face: box (x1, y1, x2, y2) in image pixels, detector score, and landmarks.

    `landmarks` are 5 points in image coordinates, in the order of the ArcFace template:
    the eye on the image's left, the other eye, nose tip, left and right mouth corners.
    `points` are dlib's 68 landmarks, which dlib's embedder cuts its chips from; None when
    the detector gave its own five points (dlib's chip then predicts them when it needs them).
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray
    points: np.ndarray | None = None

    @property
    def area(self) -> float:
        return (self.box[2] - self.box[0]) * (self.box[3] - self.box[1])


def landmarks_in(image: np.ndarray, box: tuple[float, float, float, float],
                 score: float = 1.0) -> Face:
    """A `Face` for a known box: dlib's 68-point predictor on the full-resolution image."""
    points = dlib_points(image, box)
    return Face(tuple(float(v) for v in box), float(score), five_points(points), points)


class FaceDetector:
    """`FaceDetector("mtcnn")(rgb_image) -> [Face, ...]`, largest first (then most confident).

    name: a registered detector (`facecnn detectors` lists them).
    upsample: look for smaller faces (dlib's pyramid upsampling; slower).
    min_size: smallest face side kept, in original pixels.
    max_side: images are downscaled to this longest side for detection.
    device: where network detectors run (auto, cpu, cuda).
    """

    def __init__(self, name: str = DEFAULT_DETECTOR, *, upsample: int = 1, min_size: int = 20,
                 max_side: int = 1280, device: str = "auto") -> None:
        self.detector = create_detector(name, upsample=upsample, device=device)
        self.name, self.upsample, self.min_size, self.max_side = name, upsample, min_size, max_side
        self.options = {"name": name, "upsample": upsample, "min_size": min_size,
                        "max_side": max_side, "device": device}  # to rebuild it in workers
        if not self.detector.gives_landmarks:
            dlib_models.landmark_predictor()

    def __call__(self, image: np.ndarray) -> list[Face]:
        return self.detect_batch([image])[0]

    def detect_batch(self, images: list[np.ndarray]) -> list[list[Face]]:
        """The faces of several images; network detectors run them as one batch."""
        images = [as_rgb(image) for image in images]
        scales = [min(1.0, self.max_side / max(image.shape[:2])) for image in images]
        small = [image if s == 1.0 else _resized(image, s) for image, s in zip(images, scales)]
        min_side = max(int(self.min_size * min(scales, default=1.0)), 1)
        found = self.detector.detect_batch(small, min_side)
        return [self._faces(image, scale, detections)
                for image, scale, detections in zip(images, scales, found)]

    def _faces(self, image: np.ndarray, scale: float, found: list[Detection]) -> list[Face]:
        faces = []
        height, width = image.shape[:2]
        for detection in found:
            x1, y1, x2, y2 = (v / scale for v in detection.box)
            box = (max(x1, 0.0), max(y1, 0.0), min(x2, width - 1.0), min(y2, height - 1.0))
            if min(box[2] - box[0], box[3] - box[1]) < self.min_size:
                continue
            if detection.landmarks is None:
                faces.append(landmarks_in(image, box, detection.score))
            else:
                faces.append(Face(box, float(detection.score),
                                  (detection.landmarks / scale).astype(np.float32)))
        # dlib's box sizes are discrete, so equal areas are common: the surer face goes first
        return sorted(faces, key=lambda f: (-round(f.area / 100), -f.score))


def _resized(image: np.ndarray, scale: float) -> np.ndarray:
    import cv2

    return cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)),
                      interpolation=cv2.INTER_AREA)


def face_points(image: np.ndarray, face: Face) -> np.ndarray:
    """dlib's 68 landmarks of a face, predicted now if its detector gave only five."""
    return face.points if face.points is not None else dlib_points(image, face.box)


def detect_faces(image: np.ndarray, detector: str = DEFAULT_DETECTOR,
                 **options: Any) -> list[Face]:
    """Faces in an RGB image, largest first (the flat API: builds a detector each call)."""
    return FaceDetector(detector, **options)(image)

