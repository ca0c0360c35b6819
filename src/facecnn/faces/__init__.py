"""Faces: detect, align, embed, keep in a gallery, and recognize (the flat API is below).

The names load on first use, so importing a part of this package (the detector registry the
CLI's help reads, say) does not import OpenCV, dlib or PyTorch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_API = {"Face": "result", "Result": "result", "FaceDetector": "detect", "detect_faces": "detect",
        "align_face": "align", "create_embedder": "embedders", "embed_faces": "embedders",
        "Gallery": "gallery", "PipelineConfig": "config", "Recognizer": "recognize"}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_API[name]}"), name)
