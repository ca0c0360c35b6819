"""dlib and the model files of `face-recognition-models`, found without importing that package
(its __init__ needs pkg_resources) and loaded once per process."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from facecnn.errors import FacecnnError
from facecnn.models.dlib_port import INSTALL_HINT, model_file


def import_dlib() -> Any:
    try:
        import dlib
    except ImportError:
        raise FacecnnError(f"dlib is not installed: {INSTALL_HINT}") from None
    return dlib


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
def shape_predictor(file: str) -> Any:
    """One of dlib's landmark models (faces/landmarks.py says which is which)."""
    return _load("shape_predictor", file)


@lru_cache(maxsize=None)
def face_encoder() -> Any:
    return _load("face_recognition_model_v1", "dlib_face_recognition_resnet_model_v1.dat")
