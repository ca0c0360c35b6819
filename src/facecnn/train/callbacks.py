"""What happens around the training loop, as callbacks on four events: the run's files
(train.log, results.csv, best and last checkpoints), the epoch lines and early stopping.

A callback of your own is a subclass overriding the events it needs:

    from facecnn.train.callbacks import Callback

    class StopAtAccuracy(Callback):
        def on_epoch_end(self, trainer, row):
            if row["val_acc"] >= 0.99:
                trainer.should_stop = True

    facecnn.train("faces/", model="seed_face_cnn3", epochs=50, callbacks=[StopAtAccuracy()])

Callbacks run on every rank of a torchrun job; only the main rank (`trainer.dist.is_main`)
writes files. They run in order, the built-in ones first.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

from facecnn.config import TrainConfig
from facecnn.train.checkpoint import save_atomic
from facecnn.train.distributed import DistContext
from facecnn.train.report import write_results_csv

log = logging.getLogger("facecnn.train")


class Trainer(Protocol):
    """What callbacks see of the trainer (trainer.Trainer), named here so that this module
    needs nothing from the loop that calls it."""

    cfg: TrainConfig
    dist: DistContext
    run_dir: Path
    state: Any  # trainer.TrainState: epoch, batch, history, best_epoch, bad_epochs
    interrupted: bool
    should_stop: bool
    augment_state: Any

    def save_best(self) -> None: ...

    def checkpoint(self, augment_state: Any) -> dict[str, Any]: ...

    def log(self, message: str) -> None: ...


class Callback:
    """The events of a fit; each default does nothing."""

    def on_fit_start(self, trainer: Trainer) -> None:
        """The run folder exists (new or resumed) and the first epoch is about to start."""

    def on_epoch_end(self, trainer: Trainer, row: dict[str, float]) -> None:
        """An epoch ended: `row` is its results.csv row, `trainer.state` already counts it."""

    def on_interrupt(self, trainer: Trainer) -> None:
        """The fit stopped before its end: Ctrl-C (`trainer.interrupted`) or an error."""

    def on_fit_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        """The best weights are back in the model and every final file is written."""


class TrainLog(Callback):
    """RUN/train.log: every line the trainer logs, appended (a resumed run continues it)."""

    def __init__(self) -> None:
        self.handler: logging.Handler | None = None

    def on_fit_start(self, trainer: Trainer) -> None:
        if trainer.dist.is_main:
            self.handler = logging.FileHandler(trainer.run_dir / "train.log", encoding="utf-8")
            self.handler.setFormatter(logging.Formatter("%(message)s"))
            log.addHandler(self.handler)
            log.setLevel(logging.INFO)

    def _close(self, *_: Any) -> None:
        if self.handler is not None:
            log.removeHandler(self.handler)
            self.handler.close()
            self.handler = None

    on_interrupt = _close

    def on_fit_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        self._close()


class Checkpoints(Callback):
    """weights/last.pt after every epoch and at Ctrl-C (what an exact resume needs); at each
    lower val loss, the weights in model.safetensors and their progress in weights/best.pt.
    Every tensor is kept once: a run weighs its weights twice plus the optimizer's state."""

    def on_epoch_end(self, trainer: Trainer, row: dict[str, float]) -> None:
        if not trainer.dist.is_main:
            return
        if trainer.state.best_epoch == trainer.state.epoch:
            trainer.save_best()
        save_atomic(trainer.checkpoint(None), trainer.run_dir / "weights" / "last.pt")

    def on_interrupt(self, trainer: Trainer) -> None:
        if trainer.dist.is_main and trainer.interrupted and trainer.state.batch:
            save_atomic(trainer.checkpoint(trainer.augment_state),
                        trainer.run_dir / "weights" / "last.pt")


class ResultsCsv(Callback):
    """RUN/results.csv, rewritten whole after every epoch."""

    def on_epoch_end(self, trainer: Trainer, row: dict[str, float]) -> None:
        if trainer.dist.is_main:
            write_results_csv(trainer.state.history, trainer.run_dir / "results.csv")


class EpochLine(Callback):
    """The line each epoch prints (and train.log keeps)."""

    def on_epoch_end(self, trainer: Trainer, row: dict[str, float]) -> None:
        trainer.log(
            f"epoch {row['epoch']}/{trainer.cfg.epochs}  loss {row['train_loss']:.4f}  "
            f"acc {row['train_acc']:.4f}  val_loss {row['val_loss']:.4f}  val_acc "
            f"{row['val_acc']:.4f}  val_f1 {row['val_f1']:.4f}  lr {row['lr']:.2e}  "
            f"{row['seconds']:.1f}s")


class EarlyStopping(Callback):
    """Stop when the val loss has not improved for `patience` epochs."""

    def __init__(self, patience: int) -> None:
        self.patience = patience

    def on_epoch_end(self, trainer: Trainer, row: dict[str, float]) -> None:
        if trainer.state.bad_epochs >= self.patience:
            trainer.log(f"early stop: val loss has not improved for {self.patience} epochs "
                        f"(best epoch {trainer.state.best_epoch})")
            trainer.should_stop = True


def default_callbacks(patience: int | None) -> list[Callback]:
    """The run folder's files, the epoch lines, and early stopping when asked for."""
    callbacks = [TrainLog(), Checkpoints(), ResultsCsv(), EpochLine()]
    return callbacks + ([EarlyStopping(patience)] if patience is not None else [])
