"""Learning-rate schedules as multipliers of the base lr, functions of a fractional epoch t.

A schedule is a pure function of t = step / steps_per_epoch, so a LambdaLR wrapping it keeps
only `last_epoch` as state and a resumed run continues on exactly the same curve. "step" and
"rampup_expdecay" change once per whole epoch (they reproduce seed B's Keras callbacks);
"cosine" and "onecycle" change every optimizer step.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from facecnn.errors import FacecnnError

SCHEDULES = ("constant", "step", "rampup_expdecay", "cosine", "onecycle")

# Seed B level 3's step table as multipliers of its base lr 5e-4: 5e-4, 2e-4, 1e-4, 5e-5, 2e-5, 1e-5.
_SEED_STEP_EPOCHS = 4
_SEED_STEP_MULTIPLIERS = (1.0, 0.4, 0.2, 0.1, 0.04, 0.02)

# Seed B level 1: ramp from lr_max/5 to lr_max over 5 epochs, then decay 0.8 per epoch towards lr_max/5.
_RAMP_START = 0.2
_RAMP_EPOCHS = 5
_RAMP_DECAY = 0.8

_COSINE_FLOOR = 0.01
_ONECYCLE_WARMUP = 0.3
_ONECYCLE_START = 1 / 25
_ONECYCLE_END = 1e-4


def _cos_interp(start: float, end: float, fraction: float) -> float:
    """Half-cosine from start (fraction 0) to end (fraction 1), as torch's OneCycleLR anneals."""
    return end + (start - end) * 0.5 * (1 + math.cos(math.pi * fraction))


def _seed_step(epoch: int) -> float:
    return _SEED_STEP_MULTIPLIERS[min(epoch // _SEED_STEP_EPOCHS, len(_SEED_STEP_MULTIPLIERS) - 1)]


def _rampup_expdecay(epoch: int) -> float:
    if epoch < _RAMP_EPOCHS:
        return (1 - _RAMP_START) / _RAMP_EPOCHS * epoch + _RAMP_START
    return (1 - _RAMP_START) * _RAMP_DECAY ** (epoch - _RAMP_EPOCHS) + _RAMP_START


def _onecycle(t: float, epochs: int) -> float:
    peak = _ONECYCLE_WARMUP * epochs
    if t < peak:
        return _cos_interp(_ONECYCLE_START, 1.0, t / peak)
    return _cos_interp(1.0, _ONECYCLE_END, (t - peak) / (epochs - peak))


def _multiplier(name: str, epochs: int, step_size: int | None, gamma: float) -> Callable[[float], float]:
    """The schedule `name` as t -> multiplier of the base lr, after checking the arguments."""
    if name not in SCHEDULES:
        raise FacecnnError(f"unknown lr schedule {name!r}; choose one of: {', '.join(SCHEDULES)}")
    if epochs < 1:
        raise FacecnnError(f"epochs must be at least 1, got {epochs}")
    if step_size is not None and step_size < 1:
        raise FacecnnError(f"step size must be at least 1 epoch, got {step_size}")

    def multiplier(t: float) -> float:
        t = min(max(t, 0.0), float(epochs))  # the step after the last one lands exactly on `epochs`
        epoch = int(t)
        if name == "step":
            return gamma ** (epoch // step_size) if step_size else _seed_step(epoch)
        if name == "rampup_expdecay":
            return _rampup_expdecay(epoch)
        if name == "cosine":
            return _cos_interp(1.0, _COSINE_FLOOR, t / epochs)
        if name == "onecycle":
            return _onecycle(t, epochs)
        return 1.0  # constant

    return multiplier


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
    multiplier = _multiplier(name, epochs, step_size, gamma)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: multiplier(step / steps_per_epoch))


def schedule_values(
    name: str,
    base_lr: float,
    epochs: int,
    *,
    step_size: int | None = None,
    gamma: float = 0.1,
) -> list[float]:
    """The lr at the start of each epoch, for plotting a schedule and for tests."""
    multiplier = _multiplier(name, epochs, step_size, gamma)
    return [base_lr * multiplier(epoch) for epoch in range(epochs)]
