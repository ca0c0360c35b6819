"""Weight initializers by name, for seed E's study (zeros vs normal vs Glorot vs He).

`initialize(model, name)` re-draws every conv and linear weight so the same architecture
can be trained from each starting point; BatchNorm keeps its own (1, 0) initialization.
Torch loads when a model is initialized, so `--help` lists the names without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from facecnn.registry import Registry

if TYPE_CHECKING:
    from torch import nn

# name -> (torch.nn.init function, its keyword arguments); None keeps the layers' own
INIT_CHOICES: Registry[tuple[str, dict[str, Any]] | None] = Registry("initializer")
INIT_CHOICES.add("default", None, "keep each layer's own initialization")
INIT_CHOICES.add("zeros", ("zeros_", {}), "every weight 0, which cannot break symmetry")
INIT_CHOICES.add("normal", ("normal_", {"mean": 0.0, "std": 0.01}),
                 "normal with std 0.01, as Keras' RandomNormal")
INIT_CHOICES.add("glorot", ("xavier_uniform_", {}), "Glorot/Xavier uniform")
INIT_CHOICES.add("he", ("kaiming_normal_", {"mode": "fan_in", "nonlinearity": "relu"}),
                 "He/Kaiming normal for ReLU, fan-in")


def initialize(module: nn.Module, name: str) -> None:
    """Re-initialize all conv/linear weights in `module` with initializer `name`, biases to 0."""
    spec = INIT_CHOICES.get(name)
    if spec is None:
        return
    from torch import nn

    function, options = getattr(nn.init, spec[0]), spec[1]
    for layer in module.modules():
        if isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            function(layer.weight, **options)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
