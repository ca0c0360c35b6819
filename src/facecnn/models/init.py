"""Weight initializers by name, for seed E's study (zeros vs normal vs Glorot vs He).

`initialize(model, name)` re-draws every conv and linear weight so the same architecture
can be trained from each starting point; BatchNorm keeps its own (1, 0) initialization.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from facecnn.errors import FacecnnError

_WEIGHT_INIT: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "zeros": nn.init.zeros_,
    "normal": lambda w: nn.init.normal_(w, mean=0.0, std=0.01),  # Keras RandomNormal(0.01)
    "glorot": nn.init.xavier_uniform_,
    "he": lambda w: nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="relu"),
}
INITIALIZERS = ("default", *_WEIGHT_INIT)  # "default": keep the layers' own initialization
_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def initialize(module: nn.Module, name: str) -> None:
    """Re-initialize all conv/linear weights in `module` with initializer `name`, biases to 0."""
    if name not in INITIALIZERS:
        raise FacecnnError(f"unknown initializer {name!r}; choose one of: "
                           f"{', '.join(INITIALIZERS)}")
    if name == "default":
        return
    for layer in module.modules():
        if isinstance(layer, _LAYERS):
            _WEIGHT_INIT[name](layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
