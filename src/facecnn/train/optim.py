"""Optimizers by name, with the default learning rates the seed experiments compared.

RMSprop and Adadelta use Keras' hyper-parameters (the seeds were Keras models), so runs
ported from them behave alike.
"""

from __future__ import annotations

from typing import Iterable

import torch

from facecnn.errors import FacecnnError

# name -> (default lr, optimizer class, fixed keyword arguments)
_TABLE: dict[str, tuple[float, type[torch.optim.Optimizer], dict]] = {
    "sgd": (0.01, torch.optim.SGD, {}),
    "sgd_clip": (0.01, torch.optim.SGD, {}),  # the trainer adds clipping, see DEFAULT_CLIP_FOR
    "momentum": (0.01, torch.optim.SGD, {"momentum": 0.9}),
    "nesterov": (0.01, torch.optim.SGD, {"momentum": 0.9, "nesterov": True}),
    "adagrad": (0.01, torch.optim.Adagrad, {}),
    "adadelta": (1.0, torch.optim.Adadelta, {"rho": 0.95}),
    "rmsprop": (1e-3, torch.optim.RMSprop, {"alpha": 0.9, "eps": 1e-7}),
    "adam": (1e-3, torch.optim.Adam, {}),
    "adamw": (1e-3, torch.optim.AdamW, {}),
}

# Weight decay used when the caller passes none: AdamW without decay is just Adam.
_DEFAULT_WEIGHT_DECAY: dict[str, float] = {"adamw": 0.01}

OPTIMIZERS: dict[str, float] = {name: entry[0] for name, entry in _TABLE.items()}

# Gradient-norm clipping the trainer applies when the user chose one of these and gave no --clip-grad.
DEFAULT_CLIP_FOR: dict[str, float] = {"sgd_clip": 1.0}


def build_optimizer(
    name: str,
    params: Iterable[torch.nn.Parameter],
    lr: float | None = None,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """Optimizer `name` over the trainable parameters only, so frozen backbones cost no state."""
    if name not in _TABLE:
        raise FacecnnError(f"unknown optimizer {name!r}; choose one of: {', '.join(_TABLE)}")
    default_lr, cls, fixed = _TABLE[name]
    trainable = [p for p in params if p.requires_grad]
    if not trainable:
        raise FacecnnError("the model has no trainable parameters; unfreeze some layers")
    if weight_decay <= 0:
        weight_decay = _DEFAULT_WEIGHT_DECAY.get(name, 0.0)
    return cls(trainable, lr=default_lr if lr is None else lr, weight_decay=weight_decay, **fixed)
