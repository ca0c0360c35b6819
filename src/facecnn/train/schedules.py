"""The lr schedule a config names (facecnn.choices.schedules) as a torch LambdaLR, stepped
once per optimizer step, so a resumed run keeps only `last_epoch` and continues on the same
curve."""

from __future__ import annotations

from typing import TYPE_CHECKING

from facecnn.choices.schedules import lr_multiplier
from facecnn.errors import FacecnnError

if TYPE_CHECKING:
    import torch


def build_scheduler(
    name: str,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    steps_per_epoch: int,
    *,
    step_size: int | None = None,
    gamma: float = 0.1,
) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR to be stepped once per optimizer step; `gamma` only applies with `step_size`."""
    if steps_per_epoch < 1:
        raise FacecnnError(f"steps per epoch must be at least 1, got {steps_per_epoch}")
    multiplier = lr_multiplier(name, epochs, step_size, gamma)
    from torch.optim.lr_scheduler import LambdaLR

    return LambdaLR(optimizer, lambda step: multiplier(step / steps_per_epoch))
