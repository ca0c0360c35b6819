"""Every optimizer, schedule, initializer and augmentation name trains through the real trainer."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from facecnn.choices.optimizers import OPTIMIZER_CHOICES
from facecnn.choices.schedules import SCHEDULE_CHOICES
from facecnn.config import TrainConfig
from facecnn.models.init import INIT_CHOICES
from facecnn.train.trainer import Trainer

pytestmark = pytest.mark.e2e


def one_epoch(tmp_path: Path, **choice: object) -> Trainer:
    settings = {"epochs": 1, **choice}
    cfg = TrainConfig(data="digits", model="seed_mlp", batch_size=128, amp=False,
                      project=str(tmp_path), quiet=True, **settings)
    trainer = Trainer(cfg)
    trainer.fit()
    return trainer


@pytest.mark.parametrize("name", list(OPTIMIZER_CHOICES))
def test_optimizer_trains(tmp_path: Path, name: str) -> None:
    trainer = one_epoch(tmp_path, optimizer=name, epochs=2)
    first, second = trainer.state.history
    assert math.isfinite(second["train_loss"]) and second["val_loss"] < first["val_loss"]


@pytest.mark.parametrize("name", list(SCHEDULE_CHOICES))
def test_schedule_trains(tmp_path: Path, name: str) -> None:
    trainer = one_epoch(tmp_path, schedule=name, optimizer="sgd", lr=0.05)
    assert math.isfinite(trainer.state.history[0]["train_loss"])
    assert trainer.scheduler.last_epoch == len(trainer.train_loader)


@pytest.mark.parametrize("name", list(INIT_CHOICES))
def test_initializer_trains(tmp_path: Path, name: str) -> None:
    trainer = one_epoch(tmp_path, init=name)
    assert math.isfinite(trainer.state.history[0]["train_loss"])
    if name == "zeros":  # a zero-initialised MLP cannot break symmetry: near-chance accuracy
        assert trainer.state.history[0]["val_acc"] < 0.3


def test_early_stopping_stops_when_val_loss_stops_improving(tmp_path: Path) -> None:
    """With lr 0 the val loss never improves after epoch 1: stop after `patience` more."""
    trainer = one_epoch(tmp_path, epochs=30, patience=2, optimizer="sgd", lr=0.0)
    assert len(trainer.state.history) == 3
    assert trainer.state.best_epoch == 1
