"""Find faces: any registered detector's boxes (faces/detectors), then the landmark step for
the detectors that give no points (faces/landmarks), as one `Face` per face, largest first.

Every detector's faces become the same `Face` record (faces/result.py), so alignment and
embedders never care which found it.
Large images are downscaled for the detector only; boxes are mapped back and the landmark
step sees the full-resolution image. Small images with no face get a second look (padded,
with their contrast equalized, then taken whole: faces/second_look.py). Every face gets its quality
(faces/quality.py).
"""

from __future__ import annotations

import multiprocessing
import threading
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from facecnn.data.decode import as_rgb
from facecnn.errors import FacecnnError
from facecnn.faces.config import PipelineConfig
from facecnn.faces.detectors import (
    DEFAULT_DETECTOR,
    DEFAULT_MIN_SIZE,
    Detection,
    create_detector,
)
from facecnn.faces.landmarks import LANDMARKERS, Landmarker, create_landmarker
from facecnn.faces.quality import face_quality
from facecnn.faces.result import Face
from facecnn.faces.second_look import CONTRASTS, RETRY_MAX_SIDE, padded, unpadded, whole_faces

if TYPE_CHECKING:
    from facecnn.models.mtcnn import MTCNNDetector

AUTO = "auto"
DEFAULT_LANDMARKER = "onet"  # MIT-licensed, and as close to dlib's 68 points as MTCNN's own


class FaceDetector:
    """`FaceDetector("mtcnn")(rgb_image) -> [Face, ...]`, largest first (then most confident).

    name: a registered detector (`facecnn detectors` lists them).
    upsample: look for smaller faces (dlib's pyramid upsampling; slower).
    min_size: smallest face side kept, in original pixels.
    max_side: images are downscaled to this longest side for detection.
    device: where network detectors run (auto, cpu, cuda).
    landmarks: where the five points come from: `auto` (the detector's own, else O-Net on its
    boxes) or a landmark model for every face (`onet`, `dlib68`).
    crops: every image is one face already (a folder of face crops): no detection, the whole
    image is the face and O-Net finds its points.
    """

    def __init__(self, name: str = DEFAULT_DETECTOR, *, upsample: int = 1,
                 min_size: int = DEFAULT_MIN_SIZE,
                 max_side: int = 1280, device: str = "auto", landmarks: str = "auto",
                 crops: bool = False) -> None:
        self.detector = create_detector(name, upsample=upsample, device=device)
        if landmarks != AUTO and landmarks not in LANDMARKERS:  # a misspelt name fails now
            raise FacecnnError(f"{LANDMARKERS.unknown(landmarks)} (or {AUTO})")
        self.name, self.upsample, self.min_size, self.max_side = name, upsample, min_size, max_side
        self.device = device
        self.landmark_model = (None if landmarks == AUTO and self.detector.gives_landmarks
                               else DEFAULT_LANDMARKER if landmarks == AUTO else landmarks)
        self.crops = crops
        self.config = PipelineConfig(detector=name, landmarks=landmarks, upsample=upsample,
                                     min_size=min_size, max_side=max_side, device=device,
                                     crops=crops)
        self._lock = threading.Lock()  # dlib's and PyTorch's models: one call at a time

    @classmethod
    def from_config(cls, config: PipelineConfig) -> FaceDetector:
        """The detector a pipeline configuration describes (its other fields are ignored)."""
        return cls(config.detector, upsample=config.upsample, min_size=config.min_size,
                   max_side=config.max_side, device=config.device, landmarks=config.landmarks,
                   crops=config.crops)

    @cached_property
    def landmarker(self) -> Landmarker | None:
        """The landmark step, loaded when first needed (never, for dlib chips of HOG faces)."""
        if self.landmark_model is None:
            return None
        return create_landmarker(self.landmark_model, self.device)

    @cached_property
    def onet(self) -> MTCNNDetector:
        """MTCNN's O-Net for the whole-image look: the detector's or landmarker's own, if
        either is MTCNN's."""
        from facecnn.models.mtcnn import MTCNNDetector

        for owner in (self.detector, self.landmarker):
            if isinstance(getattr(owner, "net", None), MTCNNDetector):
                return owner.net
        return MTCNNDetector(device=self.device)

    @property
    def looks_whole(self) -> bool:
        """Whether this process may take a whole image as the face: anywhere with O-Net on
        onnxruntime; with O-Net on a GPU (PyTorch) not in forked workers, which the parent's
        PyTorch threads a fork leaves behind would hang (the pipeline looks again in the
        main process at what they found no face in)."""
        return not self.onet.on_gpu or multiprocessing.parent_process() is None

    def in_workers(self, landmarks: bool = True) -> bool:
        """Whether forked worker processes can detect (and find `landmarks`) for it (not
        `crops`: there is no detection to share out)."""
        return not self.crops and self.detector.in_workers and (
            not landmarks or self.landmarker is None or self.landmarker.in_workers)

    def __call__(self, image: np.ndarray) -> list[Face]:
        return self.detect_batch([image])[0]

    def detect_batch(self, images: list[np.ndarray], landmarks: bool = True) -> list[list[Face]]:
        """The faces of several images (network detectors run them as one batch), with their
        five points unless `landmarks` is False (dlib's chips need none). Safe to call from
        several threads: they take turns."""
        with self._lock:
            return self._detect_batch([as_rgb(image) for image in images], landmarks)

    def _detect_batch(self, images: list[np.ndarray], landmarks: bool) -> list[list[Face]]:
        if self.crops:
            return self._as_crops(images)
        scales = [min(1.0, self.max_side / max(image.shape[:2])) for image in images]
        small = [image if s == 1.0 else _resized(image, s) for image, s in zip(images, scales)]
        min_side = max(int(self.min_size * min(scales, default=1.0)), 1)
        found = self._second_look(small, self.detector.detect_batch(small, min_side), min_side)
        faces = [self._faces(image, scale, detections)
                 for image, scale, detections in zip(images, scales, found)]
        if landmarks and self.landmarker is not None:
            points = self.landmarker.points(images, [[f.box for f in fs] for fs in faces])
            for image_faces, image_points in zip(faces, points):
                for face, face_points in zip(image_faces, image_points):
                    face.landmarks = face_points
        self._rate(images, faces)
        return faces

    @staticmethod
    def _rate(images: list[np.ndarray], faces: list[list[Face]]) -> None:
        for image, image_faces in zip(images, faces):
            for face in image_faces:
                face.quality = face_quality(image, face)

    def _second_look(self, images: list[np.ndarray], found: list[list[Detection]],
                     min_side: int) -> list[list[Detection]]:
        """Each small image with no face looked at again (faces/second_look.py): padded,
        then padded with each change of contrast, then as a face itself."""
        def empty() -> list[int]:
            return [k for k, (image, dets) in enumerate(zip(images, found))
                    if not dets and max(image.shape[:2]) <= RETRY_MAX_SIDE]

        looks = (lambda image: image, *CONTRASTS) if self.detector.scores_faces else \
            (lambda image: image,)
        for prepare in looks:
            again = empty()
            if not again:
                return found
            copies = [padded(prepare(images[k])) for k in again]
            looked = self.detector.detect_batch([image for image, _ in copies], min_side)
            for k, (_, pad), dets in zip(again, copies, looked):
                found[k] = unpadded(dets, pad)
        again = empty()
        if again and self.looks_whole:
            for k, whole in zip(again, whole_faces(self.onet, [images[k] for k in again])):
                found[k] = [whole] if whole is not None else []
        return found

    def _as_crops(self, images: list[np.ndarray]) -> list[list[Face]]:
        """`crops`: each image is one face, its box and points from O-Net."""
        faces = [self._faces(image, 1.0, [found])
                 for image, found in zip(images, whole_faces(self.onet, images, accept=None))]
        self._rate(images, faces)
        return faces

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


def _resized(image: np.ndarray, scale: float) -> np.ndarray:
    import cv2

    return cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)),
                      interpolation=cv2.INTER_AREA)


def detect_faces(image: np.ndarray, detector: str = DEFAULT_DETECTOR,
                 **options: Any) -> list[Face]:
    """Faces in an RGB image, largest first (the flat API: builds a detector each call)."""
    return FaceDetector(detector, **options)(image)

