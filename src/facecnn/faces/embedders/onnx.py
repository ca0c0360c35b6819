"""Any ArcFace-style ONNX model (onnx:PATH) run with onnxruntime: aligned RGB crops on the
ArcFace template with no margin (112 x 112 unless the model says), (x - 127.5) / 127.5, NCHW."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facecnn.faces.embedders.base import Embedder, normalize, register
from facecnn.inference.onnx import onnx_session


@register("onnx", help="an ArcFace-style ONNX model (onnx:PATH), run with onnxruntime")
class OnnxEmbedder(Embedder):
    default_threshold = 1.2  # unit vectors: cosine similarity 0.28

    def __init__(self, path: Path, flip: bool = False, batch_size: int = 32) -> None:
        super().__init__(flip, batch_size)
        self.session = onnx_session(Path(path))
        self.input = self.session.get_inputs()[0]
        size = self.input.shape[-1]
        self.crop = {"size": size if isinstance(size, int) else 112, "margin": 0.0}
        self.fixed_batch = self.input.shape[0] if isinstance(self.input.shape[0], int) else None
        self.name = f"onnx:{Path(path).resolve()}"
        probe = np.zeros((1, 3, self.crop["size"], self.crop["size"]), np.float32)
        self.dim = int(self.session.run(None, {self.input.name: probe})[0].shape[-1])

    def embed_chips(self, chips: np.ndarray) -> np.ndarray:
        x = (chips.astype(np.float32).transpose(0, 3, 1, 2) - 127.5) / 127.5
        step = self.fixed_batch or len(x)
        outputs = [self.session.run(None, {self.input.name: x[i:i + step]})[0]
                   for i in range(0, len(x), step)]
        return normalize(np.concatenate(outputs).reshape(len(x), -1))
