"""Building the optimizer a config names (facecnn.choices.optimizers) over a model's
trainable parameters; torch loads only here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from facecnn.choices.optimizers import OPTIMIZER_CHOICES
from facecnn.errors import FacecnnError

if TYPE_CHECKING:
    import torch

    from facecnn.models.classifier import Classifier


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
