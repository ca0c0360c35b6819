"""Optimizers by name, with the default learning rates the seed experiments compared.

RMSprop and Adadelta use Keras' hyper-parameters (the seeds were Keras models), so runs
ported from them behave alike. facecnn.train.optim builds them with torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from facecnn.registry import Registry


@dataclass(frozen=True)
class OptimizerSpec:
    lr: float  # the default learning rate
    torch_class: str  # in torch.optim
    options: dict[str, Any] = field(default_factory=dict)  # fixed keyword arguments
    weight_decay: float = 0.0  # when the caller gives none: AdamW without decay is just Adam
    clip: float | None = None  # gradient-norm clipping the trainer applies without --clip-grad


OPTIMIZER_CHOICES: Registry[OptimizerSpec] = Registry("optimizer")


def _add(name: str, help: str, spec: OptimizerSpec) -> None:
    """Register `spec`, with its settings appended to `help`."""
    settings = [f"lr {spec.lr:g}", *(f"{key}={value}" for key, value in spec.options.items())]
    if spec.weight_decay:
        settings.append(f"weight decay {spec.weight_decay:g} unless --weight-decay")
    if spec.clip is not None:
        settings.append(f"gradient norm clipped at {spec.clip:g} unless --clip-grad")
    OPTIMIZER_CHOICES.add(name, spec, ", ".join([help, *settings]))


_add("sgd", "plain SGD", OptimizerSpec(0.01, "SGD"))
_add("sgd_clip", "SGD", OptimizerSpec(0.01, "SGD", clip=1.0))
_add("momentum", "SGD with momentum", OptimizerSpec(0.01, "SGD", {"momentum": 0.9}))
_add("nesterov", "SGD with Nesterov momentum",
     OptimizerSpec(0.01, "SGD", {"momentum": 0.9, "nesterov": True}))
_add("adagrad", "Adagrad", OptimizerSpec(0.01, "Adagrad"))
_add("adadelta", "Adadelta as Keras sets it", OptimizerSpec(1.0, "Adadelta", {"rho": 0.95}))
_add("rmsprop", "RMSprop as Keras sets it",
     OptimizerSpec(1e-3, "RMSprop", {"alpha": 0.9, "eps": 1e-7}))
_add("adam", "Adam", OptimizerSpec(1e-3, "Adam"))
_add("adamw", "Adam with decoupled weight decay", OptimizerSpec(1e-3, "AdamW", weight_decay=0.01))

# A pretrained backbone trained at the head's lr is wrecked in its first steps: dlib_resnet
# --pretrained, stages 4-5 unfrozen, Adam 1e-3 on AT&T's 40 people: epoch-1 loss 3,916, val
# accuracy 0.03 after 3 epochs (a head-only warm-up epoch first: the same once unfrozen). At
# lr x 0.1 epoch 1 fell to 0.50 train accuracy and recovered; at x 0.01 the imprinted head kept
# its start (1.00 in epoch 1) and the run ended with the lowest val loss.
PRETRAINED_BACKBONE_LR_SCALE = 0.01
