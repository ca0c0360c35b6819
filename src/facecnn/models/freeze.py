"""Which parameters train: `none`, `backbone`, `all-but-head`, or a list of stages.

`backbone` freezes the feature extractor and trains the whole head (new dense layers too);
`all-but-head` trains only the final Linear (seed E's 202-parameter transfer). A stage list
names modules, with ranges: `layer1-3` (seed C's ResNet50), `stage1,stage2`, `features.0-4`.
Frozen BatchNorm layers stay in eval mode while training, as Keras does for frozen layers, so
their statistics are not overwritten by a few hundred faces. Torch loads when a model is
frozen, so `--help` lists the policies without it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Callable

from facecnn.errors import FacecnnError
from facecnn.registry import Registry, suggest

if TYPE_CHECKING:
    from torch import nn

    from facecnn.models.classifier import Classifier

# The fixed policies: name -> the modules it freezes. Anything else is a stage list.
FREEZE_CHOICES: Registry[Callable[[Classifier], list[nn.Module]]] = Registry("freeze policy")
FREEZE_CHOICES.add("none", lambda model: [], "every layer trains")
FREEZE_CHOICES.add("backbone", lambda model: [model.backbone],
                   "the feature extractor; the whole head trains, new dense layers too")
FREEZE_CHOICES.add("all-but-head", lambda model: [model.backbone, *model.head[:-1]],
                   "all but the final Linear")
_RANGE = re.compile(r"^(.*?)(\d+)-(\d+)$")


def expand_stages(spec: str) -> list[str]:
    """`layer1-3,fc` -> [layer1, layer2, layer3, fc]."""
    names = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        match = _RANGE.match(part)
        if match:
            prefix, lo, hi = match.group(1), int(match.group(2)), int(match.group(3))
            names += [f"{prefix}{i}" for i in range(lo, hi + 1)]
        else:
            names.append(part)
    return names


def frozen_modules(model: Classifier, policy: str) -> list[nn.Module]:
    if policy in FREEZE_CHOICES:
        return FREEZE_CHOICES.get(policy)(model)
    modules = dict(model.named_modules())
    found = []
    for name in expand_stages(policy):
        module = modules.get(name) or modules.get(f"backbone.{name}")
        if module is None:
            children = [n for n, _ in model.backbone.named_children()]
            raise FacecnnError(f"--freeze: no stage {name!r} in this model; "
                               f"{suggest(name, [*FREEZE_CHOICES, *children])}use "
                               f"{', '.join(FREEZE_CHOICES)} or stages of: {', '.join(children)}")
        found.append(module)
    return found


def apply_freeze(model: Classifier, policy: str) -> None:
    """Set requires_grad by `policy` and mark frozen modules so `train()` keeps their BN in eval."""
    for p in model.parameters():
        p.requires_grad_(True)
    for module in frozen_modules(model, policy):
        for p in module.parameters():
            p.requires_grad_(False)


def keep_frozen_bn_eval(model: nn.Module) -> None:
    """Call after `model.train()`: BatchNorm layers whose parameters are all frozen go to eval."""
    from torch.nn.modules.batchnorm import _BatchNorm

    for module in model.modules():
        if isinstance(module, _BatchNorm):
            params = list(module.parameters())
            if params and not any(p.requires_grad for p in params):
                module.eval()
