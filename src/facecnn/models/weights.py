"""Load `--weights FILE` into a model: a timm/torchvision state dict or a facecnn checkpoint
(a run's model.safetensors, weights/last.pt, or weights/best.pt, whose weights are the run's
model.safetensors).

Tensors whose names and shapes match are loaded; a classification head of another class
count (or a missing one) is left as built. Too few matches means the file is for another
architecture, which is an error rather than a silently random model.
"""

from __future__ import annotations

from pathlib import Path

import torch

from facecnn.errors import FacecnnError
from facecnn.models.classifier import Classifier

MIN_BACKBONE_MATCH = 0.5


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a .pt/.pth/.safetensors file, whatever wrapper they came in."""
    if not path.is_file():
        raise FacecnnError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # many error types for a damaged or foreign file
        raise FacecnnError(f"cannot read weights {path}: {type(exc).__name__}") from None
    for key in ("model", "state_dict", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    else:
        if isinstance(obj, dict) and "state" in obj and path.name == "best.pt":
            return read_state_dict(path.parent.parent / "model.safetensors")
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise FacecnnError(f"{path} holds no state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_weights(model: Classifier, path: Path) -> dict[str, int]:
    """Copy matching tensors of `path` into `model`; returns counts of loaded/skipped tensors."""
    source = read_state_dict(path)
    target = model.state_dict()
    loaded, skipped = {}, 0
    for key, value in source.items():
        name = key if key in target else f"backbone.{key}"
        if name in target and target[name].shape == value.shape:
            loaded[name] = value
        else:
            skipped += 1
    backbone_keys = [k for k in target if k.startswith("backbone.")]
    matched = sum(k in loaded for k in backbone_keys)
    if backbone_keys and matched < MIN_BACKBONE_MATCH * len(backbone_keys):
        raise FacecnnError(f"{path} does not fit this model: only {matched} of "
                           f"{len(backbone_keys)} backbone tensors match by name and shape")
    model.load_state_dict(loaded, strict=False)
    return {"loaded": len(loaded), "skipped": skipped}
