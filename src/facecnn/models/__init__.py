"""Model registry, the seeds' CNNs, heads, initializers and freeze policies.

The names below load on first use, so torch-free modules of this package (the dlib file
reader) can be imported by torch-free code paths (ONNX inference) without importing torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {"Classifier": "facecnn.models.classifier",
            **{name: "facecnn.models.registry" for name in (
                "count_parameters", "create_model", "list_models", "model_info",
                "register_model")}}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'facecnn.models' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
