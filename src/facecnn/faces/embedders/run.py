"""Any facecnn training run as an embedder: its penultimate features, L2-normalised, of faces
cut as the run's training crops were (faces/crops.run_crop)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facecnn.faces.crops import run_crop
from facecnn.faces.embedders.base import Embedder, normalize, register


@register("run", help="a facecnn training run (run:PATH): its penultimate features")
class RunEmbedder(Embedder):
    default_threshold = 1.0  # unit vectors: between orthogonal (1.41) and identical

    def __init__(self, path: Path, flip: bool = False, batch_size: int = 32,
                 device: str = "auto") -> None:
        super().__init__(flip, batch_size)
        from facecnn.inference.pytorch import Predictor

        self.predictor = Predictor.load(Path(path), device)
        meta = self.predictor.meta
        self.name = f"run:{Path(path).resolve()}"
        self.dim = self.predictor.model.classifier.in_features
        self.crop = run_crop(meta)
        self.gray = meta["in_chans"] == 1

    def embed_chips(self, chips: np.ndarray) -> np.ndarray:
        import torch

        if self.gray:
            chips = np.round(chips @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)[..., None]
        rt = self.predictor.rt
        with torch.inference_mode(), rt.autocast():
            x = rt.from_uint8(torch.from_numpy(np.ascontiguousarray(chips)).permute(0, 3, 1, 2))
            features = self.predictor.model.features(x).float()
        return normalize(features.cpu().numpy())
