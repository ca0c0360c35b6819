"""Learning-rate schedules as multipliers of the base lr, functions of a fractional epoch t.

A schedule is a pure function of t = step / steps_per_epoch, so a LambdaLR wrapping it keeps
only `last_epoch` as state and a resumed run continues on exactly the same curve. "step" and
"rampup_expdecay" change once per whole epoch (they reproduce seed B's Keras callbacks);
"cosine" and "onecycle" change every optimizer step. facecnn.train.schedules wraps them in torch's
LambdaLR.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

from facecnn.errors import FacecnnError
from facecnn.registry import Registry


class Span(NamedTuple):
    """What a schedule may depend on besides t."""

    epochs: int
    step_size: int | None
    gamma: float


# name -> (t, span) -> multiplier of the base lr, t clamped to [0, epochs]
SCHEDULE_CHOICES: Registry[Callable[[float, Span], float]] = Registry("lr schedule")

# Seed B level 3's step table as multipliers of its base lr 5e-4:
# 5e-4, 2e-4, 1e-4, 5e-5, 2e-5, 1e-5.
_SEED_STEP_EPOCHS = 4
_SEED_STEP_MULTIPLIERS = (1.0, 0.4, 0.2, 0.1, 0.04, 0.02)

# Seed B level 1: ramp from lr_max/5 to lr_max over 5 epochs, then decay 0.8 per epoch
# towards lr_max/5.
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


@SCHEDULE_CHOICES.register("constant", help="the base lr throughout")
def _constant(t: float, span: Span) -> float:
    return 1.0


@SCHEDULE_CHOICES.register("step", help="per epoch: x --gamma every --step-size epochs; without "
                           f"it seed B's table, x {_SEED_STEP_MULTIPLIERS} in turn, "
                           f"{_SEED_STEP_EPOCHS} epochs each")
def _step(t: float, span: Span) -> float:
    epoch = int(t)
    if span.step_size:
        return span.gamma ** (epoch // span.step_size)
    return _SEED_STEP_MULTIPLIERS[min(epoch // _SEED_STEP_EPOCHS, len(_SEED_STEP_MULTIPLIERS) - 1)]


@SCHEDULE_CHOICES.register("rampup_expdecay", help=f"per epoch, seed B's: from lr x {_RAMP_START} "
                           f"up to lr over {_RAMP_EPOCHS} epochs, then decaying x {_RAMP_DECAY} "
                           f"per epoch back towards lr x {_RAMP_START}")
def _rampup_expdecay(t: float, span: Span) -> float:
    epoch = int(t)
    if epoch < _RAMP_EPOCHS:
        return (1 - _RAMP_START) / _RAMP_EPOCHS * epoch + _RAMP_START
    return (1 - _RAMP_START) * _RAMP_DECAY ** (epoch - _RAMP_EPOCHS) + _RAMP_START


@SCHEDULE_CHOICES.register("cosine", help=f"per step: half-cosine from lr down to lr x "
                           f"{_COSINE_FLOOR}")
def _cosine(t: float, span: Span) -> float:
    return _cos_interp(1.0, _COSINE_FLOOR, t / span.epochs)


@SCHEDULE_CHOICES.register("onecycle", help=f"per step: from lr x {_ONECYCLE_START} up to lr "
                           f"over the first {_ONECYCLE_WARMUP:.0%} of the run, then down to lr x "
                           f"{_ONECYCLE_END:g}")
def _onecycle(t: float, span: Span) -> float:
    peak = _ONECYCLE_WARMUP * span.epochs
    if t < peak:
        return _cos_interp(_ONECYCLE_START, 1.0, t / peak)
    return _cos_interp(1.0, _ONECYCLE_END, (t - peak) / (span.epochs - peak))


def lr_multiplier(name: str, epochs: int, step_size: int | None,
                gamma: float) -> Callable[[float], float]:
    """The schedule `name` as t -> multiplier of the base lr, after checking the arguments."""
    shape = SCHEDULE_CHOICES.get(name)
    if epochs < 1:
        raise FacecnnError(f"epochs must be at least 1, got {epochs}")
    if step_size is not None and step_size < 1:
        raise FacecnnError(f"step size must be at least 1 epoch, got {step_size}")
    span = Span(epochs, step_size, gamma)
    # the step after the last one lands exactly on `epochs`
    return lambda t: shape(min(max(t, 0.0), float(epochs)), span)


def schedule_values(
    name: str,
    base_lr: float,
    epochs: int,
    *,
    step_size: int | None = None,
    gamma: float = 0.1,
) -> list[float]:
    """The lr at the start of each epoch, for plotting a schedule and for tests."""
    multiplier = lr_multiplier(name, epochs, step_size, gamma)
    return [base_lr * multiplier(epoch) for epoch in range(epochs)]
