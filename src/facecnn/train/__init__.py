"""Training from Python, as small as the command:

    import facecnn
    run = facecnn.train("faces/", model="seed_face_cnn3", epochs=12)
    run.dir, run.metrics["val"]["accuracy"], run.model_file

takes the options `facecnn train` takes (TrainConfig's fields) and leaves the same run folder.
The loop is trainer.py, what happens around it callbacks.py.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Run:
    """A finished run: its folder, final metrics (metrics.json) and per-epoch rows."""

    dir: Path
    metrics: dict[str, Any]
    history: list[dict[str, float]]

    @property
    def model_file(self) -> Path:
        from facecnn.inference.pytorch import MODEL_FILE

        return self.dir / MODEL_FILE


def fit(data: str | Path, *, reporter: Any = None, callbacks: list | None = None,
        **options: Any) -> Run:
    """Train on DATA (a folder, or mnist5k/digits) with TrainConfig's options."""
    from facecnn.config import TrainConfig
    from facecnn.train.trainer import Trainer

    cfg = TrainConfig.from_dict({"data": str(data), **options})
    trainer = Trainer(cfg, reporter, callbacks=callbacks)
    run_dir = trainer.fit()
    return Run(run_dir, trainer.metrics, trainer.state.history)


class _CallableModule(types.ModuleType):
    """`facecnn.train` is this package and, called, `fit`: the name a user reaches for."""

    def __call__(self, data: str | Path, **options: Any) -> Run:
        return fit(data, **options)


sys.modules[__name__].__class__ = _CallableModule
