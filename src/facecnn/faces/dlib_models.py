"""dlib and the model files of `face-recognition-models`, found without importing that package
(its __init__ needs pkg_resources) and loaded once per process."""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Any

from facecnn.errors import FacecnnError

INSTALL_HINT = "pip install dlib-bin face-recognition-models"


def import_dlib() -> Any:
    try:
        import dlib
    except ImportError:
        raise FacecnnError(f"dlib is not installed: {INSTALL_HINT}") from None
    return dlib


def model_file(name: str) -> Path:
    """Path of one of face-recognition-models' .dat files."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise FacecnnError(f"face-recognition-models is not installed: {INSTALL_HINT}")
    path = Path(spec.origin).parent / "models" / name
    if not path.is_file():
        raise FacecnnError(f"{name} is missing from face-recognition-models at {path.parent}")
    return path


def _load(loader_name: str, file: str) -> Any:
    loader = getattr(import_dlib(), loader_name)
    try:
        return loader(str(model_file(file)))
    except RuntimeError as exc:
        raise FacecnnError(f"cannot load {file}: {exc}") from None


@lru_cache(maxsize=None)
def hog_detector() -> Any:
    return import_dlib().get_frontal_face_detector()


@lru_cache(maxsize=None)
def cnn_detector() -> Any:
    return _load("cnn_face_detection_model_v1", "mmod_human_face_detector.dat")


@lru_cache(maxsize=None)
def landmark_predictor() -> Any:
    return _load("shape_predictor", "shape_predictor_68_face_landmarks.dat")


@lru_cache(maxsize=None)
def face_encoder() -> Any:
    return _load("face_recognition_model_v1", "dlib_face_recognition_resnet_model_v1.dat")
