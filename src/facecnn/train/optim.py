"""Optimizers by name, with the default learning rates the seed experiments compared.

RMSprop and Adadelta use Keras' hyper-parameters (the seeds were Keras models), so runs
ported from them behave alike. Torch loads when an optimizer is built, so `--help` lists the
names without it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable

from facecnn.errors import FacecnnError
from facecnn.registry import Registry

if TYPE_CHECKING:
    import torch

    from facecnn.models.classifier import Classifier


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

# The default learning rate of each optimizer.
OPTIMIZERS: dict[str, float] = {e.name: e.value.lr for e in OPTIMIZER_CHOICES.entries()}
# Gradient-norm clipping the trainer applies for these when the user gave no --clip-grad.
DEFAULT_CLIP_FOR: dict[str, float] = {e.name: e.value.clip for e in OPTIMIZER_CHOICES.entries()
                                      if e.value.clip is not None}

# A pretrained backbone trained at the head's lr is wrecked in its first steps: dlib_resnet
# --pretrained, stages 4-5 unfrozen, Adam 1e-3 on AT&T's 40 people: epoch-1 loss 3,916, val
# accuracy 0.03 after 3 epochs (a head-only warm-up epoch first: the same once unfrozen). At
# lr x 0.1 epoch 1 fell to 0.50 train accuracy and recovered; at x 0.01 the imprinted head kept
# its start (1.00 in epoch 1) and the run ended with the lowest val loss.
PRETRAINED_BACKBONE_LR_SCALE = 0.01


def param_groups(model: Classifier, backbone_lr_scale: float) -> list[dict[str, Any]]:
    """The trainable parameters as optimizer groups: the head at the run's lr, the backbone
    at lr x `backbone_lr_scale`."""
    return [{"params": list(part.parameters()), "lr_scale": scale}
            for part, scale in ((model.head, 1.0), (model.backbone, backbone_lr_scale))]


def build_optimizer(
    name: str,
    params: Iterable[torch.nn.Parameter] | list[dict[str, Any]],
    lr: float | None = None,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """Optimizer `name` over the trainable parameters only, so frozen backbones cost no state.
    `params` may be groups (`param_groups`) whose `lr_scale` multiplies the lr."""
    spec = OPTIMIZER_CHOICES.get(name)
    base_lr = spec.lr if lr is None else lr
    items = list(params)
    groups = items if items and isinstance(items[0], dict) else [{"params": items}]
    groups = [{**g, "params": [p for p in g["params"] if p.requires_grad],
               "lr": base_lr * g.get("lr_scale", 1.0)} for g in groups]
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise FacecnnError("the model has no trainable parameters; unfreeze some layers")
    import torch

    return getattr(torch.optim, spec.torch_class)(
        groups, lr=base_lr, weight_decay=weight_decay if weight_decay > 0 else spec.weight_decay,
        **spec.options)
