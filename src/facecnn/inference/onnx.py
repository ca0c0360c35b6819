"""ONNX models on onnxruntime, no PyTorch imported: the one session every ONNX model here runs
in (exported classifiers, and the embedders of faces/embedders/onnx.py), and the classifier
for a model `facecnn export` wrote."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from facecnn.errors import FacecnnError
from facecnn.inference.base import ImageClassifier, softmax

if TYPE_CHECKING:
    import onnxruntime

SIDECAR = ".json"  # model.onnx -> model.onnx.json: classes and preprocessing


def onnx_session(path: Path) -> onnxruntime.InferenceSession:
    """An onnxruntime InferenceSession for the model file at `path`, on every execution
    provider this onnxruntime has (best first: CUDA before the CPU), its idle threads
    sleeping rather than spinning (as facecnn/__init__.py asks of OpenMP); a missing
    onnxruntime, a missing file or one onnxruntime cannot read is a one-line error."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise FacecnnError("ONNX models need onnxruntime: pip install onnxruntime") from None
    if not Path(path).is_file():
        raise FacecnnError(f"ONNX model not found: {path}")
    try:
        options = ort.SessionOptions()
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(str(path), options, providers=ort.get_available_providers())
    except Exception as exc:  # onnxruntime raises its own exception types
        raise FacecnnError(f"cannot load ONNX model {path}: {type(exc).__name__}") from None


class OnnxClassifier(ImageClassifier):
    """An exported model on onnxruntime: numpy preprocessing, no PyTorch needed."""

    def __init__(self, path: Path) -> None:
        sidecar = path.with_name(path.name + SIDECAR)
        if not path.is_file() or not sidecar.is_file():
            raise FacecnnError(f"need {path} and its {sidecar.name} (written by facecnn export)")
        self.meta = json.loads(sidecar.read_text())
        self.session = onnx_session(path)
        shape = (1, -1, 1, 1)
        self.mean = np.asarray(self.meta["mean"], np.float32).reshape(shape)
        self.std = np.asarray(self.meta["std"], np.float32).reshape(shape)
        self.input = self.session.get_inputs()[0].name

    def logits(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input: x})[0]

    def prepare(self, images: np.ndarray) -> np.ndarray:
        """uint8 NHWC -> the float32 NCHW input the PyTorch model was trained on."""
        x = images.astype(np.float32).transpose(0, 3, 1, 2) / 255.0
        return np.ascontiguousarray((x - self.mean) / self.std, dtype=np.float32)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        return softmax(self.logits(self.prepare(images)))
