"""Running trained models, whatever runs them:

- base.py: what every backend shares, torch-free: `ImageClassifier` (files -> top-k
  predictions), `Prediction`, `softmax`, `median_ms`.
- pytorch.py: a run folder or its model.safetensors on PyTorch: save and load the bare
  inference model, `Predictor`, `latency_ms`.
- onnx.py: an exported model.onnx on onnxruntime, no torch imported: `onnx_session` (the one
  place an onnxruntime session is made, for classifiers and faces/embedders/onnx.py alike)
  and `OnnxClassifier`.
- export.py: `facecnn export`, a run's model as ONNX, checked against PyTorch and timed.

`load_classifier` picks the backend, so it lives here above both (base.py is below them).
Importing this package imports neither backend: predicting with a model.onnx loads no torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from facecnn.inference.base import ImageClassifier


def load_classifier(path: Path, device: str = "auto") -> ImageClassifier:
    """A run folder / model.safetensors (PyTorch) or a model.onnx (onnxruntime)."""
    if path.suffix == ".onnx":
        from facecnn.inference.onnx import OnnxClassifier

        return OnnxClassifier(path)
    from facecnn.inference.pytorch import Predictor

    return Predictor.load(path, device)
