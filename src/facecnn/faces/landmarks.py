"""The landmark step, for faces whose detector gives no points of its own.

Two kinds of points are needed downstream:
- the five ArcFace points (eye centres, nose tip, mouth corners) that `align_face` maps onto
  its template, for `prepare` and the ArcFace-template embedders: MTCNN's O-Net (MIT), run on
  the detector's box, by default; dlib's 68-point predictor (`--landmarks dlib68`) by choice;
- the dlib shape that dlib's face chips are cut from: dlib's 5-point predictor (CC0, as
  face_recognition aligns), or the 68-point one for galleries made with it.

dlib's 68-point model is trained on iBUG 300-W, whose terms forbid commercial use, so no
default path loads it. O-Net's five points on HOG boxes agree closely with those derived
from the 68 points (tests/test_embedders.py holds them to it).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from facecnn.faces import dlib_models
from facecnn.faces.model_files import DLIB_5, DLIB_68, MTCNN, ModelFile
from facecnn.registry import Registry

Box = tuple[float, float, float, float]
CHIP_SHAPES = {"dlib5": DLIB_5, "dlib68": DLIB_68}  # what dlib chips can be cut from


class Landmarker(ABC):
    """Five ArcFace points for given boxes. `in_workers`: safe in forked worker processes
    (dlib's C++, onnxruntime; a PyTorch network is not, after the parent has run one)."""

    name: ClassVar[str]
    in_workers: ClassVar[bool] = True
    models: ClassVar[tuple[ModelFile, ...]] = ()

    @abstractmethod
    def points(self, images: list[np.ndarray], boxes: list[list[Box]]) -> list[np.ndarray]:
        """Per image, (len(boxes), 5, 2) float32 points in image coordinates."""


LANDMARKERS: Registry[type[Landmarker]] = Registry("landmark model")


@LANDMARKERS.register("onet", help="MTCNN's O-Net on the detector's box (MIT)")
class OnetLandmarker(Landmarker):
    name = "onet"
    models = (MTCNN,)

    def __init__(self, device: str = "auto") -> None:
        from facecnn.models.mtcnn import MTCNNDetector

        self.net = MTCNNDetector(device=device)
        self.in_workers = not self.net.on_gpu

    def points(self, images: list[np.ndarray], boxes: list[list[Box]]) -> list[np.ndarray]:
        return self.net.landmarks(images, boxes)


@LANDMARKERS.register("dlib68", help="dlib's 68-point predictor (iBUG 300-W: non-commercial)")
class Dlib68Landmarker(Landmarker):
    name = "dlib68"
    models = (DLIB_68,)

    def __init__(self, device: str = "auto") -> None:
        dlib_models.shape_predictor(DLIB_68.name)  # a missing file fails now, not per face

    def points(self, images: list[np.ndarray], boxes: list[list[Box]]) -> list[np.ndarray]:
        return [np.array([five_points(dlib_points(image, box)) for box in image_boxes],
                         np.float32).reshape(-1, 5, 2)
                for image, image_boxes in zip(images, boxes)]


def chip_shape(landmarks: str) -> str:
    """The dlib shape dlib's chips are cut from when a user asks for `landmarks` (auto, onet
    or dlib68): the 68 points only when asked for by name."""
    return "dlib68" if landmarks == "dlib68" else "dlib5"


def create_landmarker(name: str, device: str = "auto") -> Landmarker:
    return LANDMARKERS.get(name)(device=device)


def five_points(points68: np.ndarray) -> np.ndarray:
    """Eye centres, nose tip and mouth corners from dlib's 68-point layout."""
    return np.stack([points68[36:42].mean(0), points68[42:48].mean(0), points68[30],
                     points68[48], points68[54]]).astype(np.float32)


def dlib_shape(image: np.ndarray, box: Box, shape: str) -> Any:
    """dlib's `full_object_detection` of the face in `box` with the `shape` predictor
    (dlib5 or dlib68), on the full-resolution image: what dlib's chips are cut from."""
    dlib = dlib_models.import_dlib()
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    return dlib_models.shape_predictor(CHIP_SHAPES[shape].name)(image,
                                                               dlib.rectangle(x1, y1, x2, y2))


def dlib_points(image: np.ndarray, box: Box) -> np.ndarray:
    """dlib's 68 landmarks (68, 2) of the face in `box`."""
    parts = dlib_shape(image, box, "dlib68").parts()
    return np.array([[p.x, p.y] for p in parts], dtype=np.float32)
