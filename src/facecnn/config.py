"""Every choice of a training run in one dataclass, saved as the run's config.yaml."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from facecnn.errors import FacecnnError


@dataclass
class TrainConfig:
    data: str
    model: str = "seed_face_cnn"
    epochs: int = 10
    batch_size: int = 32
    img_size: int | None = None
    head: str | None = None
    pretrained: bool = False
    weights: str | None = None
    freeze: str = "none"
    optimizer: str = "adam"
    lr: float | None = None
    weight_decay: float = 0.0
    schedule: str = "constant"
    step_size: int | None = None
    gamma: float = 0.1
    init: str = "default"
    augment: str = "none"
    label_smoothing: float = 0.0
    objective: str = "softmax"
    margin: float | None = None  # arcface / triplet; None: the objective's default
    scale: float | None = None  # arcface
    patience: int | None = None
    clip_grad: float | None = None
    val_split: float = 0.2
    seed: int = 0
    device: str = "auto"
    amp: bool | None = None
    project: str = "runs"
    name: str = "exp"
    quiet: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise FacecnnError(f"unknown config keys: {', '.join(unknown)}")
        return cls(**values)

    def save(self, path: Path) -> None:
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def load(cls, path: Path) -> "TrainConfig":
        return cls.from_dict(yaml.safe_load(path.read_text()) or {})
