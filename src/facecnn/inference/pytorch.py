"""Trained models as files on PyTorch: save the bare inference model, load it back, predict,
time it.

`model.safetensors` holds the weights and, in its metadata, everything needed to rebuild and
feed the model (architecture, head, input size, channels, mean/std, class names), so a run
folder - or that one file - is enough to predict.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facecnn.errors import FacecnnError
from facecnn.fileio import atomic_write
from facecnn.inference.base import ImageClassifier, median_ms
from facecnn.models.catalog import create_model
from facecnn.models.classifier import Classifier
from facecnn.runtime import Runtime, select_device

MODEL_FILE = "model.safetensors"


def save_inference_model(model: Classifier, meta: dict[str, Any], path: Path) -> Path:
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {"facecnn": json.dumps(meta)}
    atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata=metadata))
    return path


def resolve_model_file(path: Path) -> Path:
    """A run folder or a model file -> the model file."""
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        raise FacecnnError(f"no trained model at {path}: pass a run folder (runs/train/exp) "
                           f"or its {MODEL_FILE}")
    return path


def read_meta(path: Path) -> dict[str, Any]:
    """What a saved model says about itself (classes, input, crop), without its weights."""
    from safetensors import safe_open

    file = resolve_model_file(path)
    try:
        with safe_open(str(file), framework="pt") as handle:
            return json.loads((handle.metadata() or {})["facecnn"])
    except Exception as exc:  # damaged file or another program's safetensors
        raise FacecnnError(f"{file} is not a facecnn model ({type(exc).__name__})") from None


def load_inference_model(path: Path) -> tuple[Classifier, dict[str, Any]]:
    """Rebuild the model saved by `save_inference_model` from a run folder or the file."""
    from safetensors.torch import load_file

    meta = read_meta(path)
    file = resolve_model_file(path)
    try:
        state = load_file(str(file))
    except Exception as exc:
        raise FacecnnError(f"{file} is not a facecnn model ({type(exc).__name__})") from None
    model = create_model(meta["model"], len(meta["classes"]), in_chans=meta["in_chans"],
                         img_size=meta["img_size"], head=meta.get("head"))
    model.load_state_dict(state)
    return model.eval(), meta


class Predictor(ImageClassifier):
    """Classify image files with a trained run: `Predictor.load(run)(paths)`."""

    def __init__(self, model: Classifier, meta: dict[str, Any], device: str = "auto") -> None:
        self.meta = meta
        self.rt = Runtime.create(select_device(device), meta["mean"], meta["std"])
        self.model = model.to(self.rt.device).eval()

    @classmethod
    def load(cls, path: Path, device: str = "auto") -> "Predictor":
        return cls(*load_inference_model(path), device=device)

    @torch.inference_mode()
    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W, C) uint8 at the model's size -> (N, classes) softmax probabilities."""
        x = self.rt.from_uint8(torch.from_numpy(images).permute(0, 3, 1, 2))
        with self.rt.autocast():
            return torch.softmax(self.model(x).float(), dim=1).cpu().numpy()


@torch.inference_mode()
def latency_ms(model: torch.nn.Module, rt: Runtime, in_chans: int, img_size: int,
               repeats: int = 20) -> float:
    """Median milliseconds to classify one image (batch of one) on `rt`'s device."""
    model.eval()
    x = rt.normalize(torch.rand(1, in_chans, img_size, img_size, device=rt.device))

    def forward() -> None:
        with rt.autocast():
            model(x)
        if rt.device.type == "cuda":
            torch.cuda.synchronize()

    return median_ms(forward, repeats)
