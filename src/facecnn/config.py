"""Every choice of a training run in one dataclass, saved as the run's config.yaml.

Each field is declared once, with its default, help and limits: `facecnn train` has one option
per field (cli/training.py), a study may vary any of them (studies/study.py), and every config
- from flags, a config.yaml or a study file - is coerced and checked here, so a wrong value is
one line naming its field. A new training flag is one new field.
"""

from __future__ import annotations

import numbers
import os
from dataclasses import MISSING, Field, asdict, dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import Any, Callable, get_args, get_origin, get_type_hints

import yaml

from facecnn.choices.objectives import OBJECTIVE_CHOICES
from facecnn.choices.optimizers import OPTIMIZER_CHOICES, PRETRAINED_BACKBONE_LR_SCALE
from facecnn.choices.schedules import SCHEDULE_CHOICES
from facecnn.data.augment_presets import AUGMENT_CHOICES
from facecnn.errors import FacecnnError
from facecnn.models.freeze import FREEZE_CHOICES
from facecnn.models.init import INIT_CHOICES
from facecnn.registry import Registry, suggest


def setting(default: Any = MISSING, help: str = "", *, min: float | None = None,
            max: float | None = None, choices: Registry | None = None,
            strict: bool = True) -> Any:
    """A field with the help `facecnn train` shows for it and the limits every config keeps.

    `choices`: the registry the value names, listed where `help` says {choices}; `strict`
    False lets other values through (freeze's stage lists, which only the model can check).
    """
    return field(default=default, metadata={"help": help, "min": min, "max": max,
                                            "choices": choices, "strict": strict})


@dataclass
class TrainConfig:
    data: str = setting(help="Folder of class folders (or with train/, val/ and optionally "
                        "test/), or a built-in: mnist5k, digits.")
    model: str = setting("seed_face_cnn", "Model name (see `facecnn models`).")
    epochs: int = setting(10, min=1)
    batch_size: int = setting(32, min=1)
    img_size: int | None = setting(None, "Input size (default: the model's).")
    head: str | None = setting(None, "Head spec, e.g. gap-dense512-dropout0.5.")
    pretrained: bool = setting(False, "Pretrained weights: ImageNet from the hub (online); "
                               "dlib_resnet: dlib's face weights (offline).")
    weights: str | None = setting(None, "Local weights: timm/torchvision state dict or a "
                                  "facecnn checkpoint.")
    freeze: str = setting("none", "Frozen layers: {choices}; or stages such as layer1-3.",
                          choices=FREEZE_CHOICES, strict=False)
    optimizer: str = setting("adam", "{choices}.", choices=OPTIMIZER_CHOICES)
    lr: float | None = setting(None, "Learning rate (default: the optimizer's).")
    backbone_lr_scale: float | None = setting(
        None, "Pretrained backbone layers that train learn at lr x this (default: "
        f"{PRETRAINED_BACKBONE_LR_SCALE:g} with --pretrained/--weights, else 1).", min=0.0)
    weight_decay: float = setting(0.0, "Weight decay (0: the optimizer's default).")
    schedule: str = setting("constant", "Learning-rate schedule: {choices}.",
                            choices=SCHEDULE_CHOICES)
    step_size: int | None = setting(None, "step schedule: epochs per decay (default: seed B's "
                                    "table).")
    gamma: float = setting(0.1, "step schedule: decay factor.")
    init: str = setting("default", "Weight initializer: {choices}.", choices=INIT_CHOICES)
    augment: str = setting("none", "Training augmentation: {choices}.", choices=AUGMENT_CHOICES)
    label_smoothing: float = setting(0.0, min=0.0, max=0.99)
    objective: str = setting("softmax", "Loss (docs/objectives.md): {choices}.",
                             choices=OBJECTIVE_CHOICES)
    margin: float | None = setting(None, "arcface: angular margin in radians (default 0.5); "
                                   "triplet: distance margin (0.2).")
    scale: float | None = setting(None, "arcface: logit scale (default 30).")
    patience: int | None = setting(None, "Early stop after this many epochs without a better "
                                   "val loss.")
    clip_grad: float | None = setting(None, "Clip the gradient norm.")
    val_split: float = setting(0.2, "Validation fraction when DATA has no val/.")
    seed: int = setting(0)
    device: str = setting("auto", "auto, cpu, cuda, cuda:1, mps.")
    amp: bool | None = setting(None, "Mixed precision (default: on for CUDA and for CPUs with "
                               "bf16 instructions).")
    project: str = setting("runs", "Runs are saved under PROJECT/train/NAME.")
    name: str = setting("exp", "Run name (exp2, exp3... when taken).")
    quiet: bool = setting(False, "No progress bars.")

    def __post_init__(self) -> None:
        """Coerce and check every field, however the config was made."""
        for f in fields(self):
            setattr(self, f.name, _checked(f, getattr(self, f.name)))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def check(cls, values: Any) -> dict[str, Any]:
        """Some settings (a study's), coerced and checked as in a whole config."""
        if not isinstance(values, dict):
            raise FacecnnError(f"expected a mapping of settings, got {values!r}")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            hint = suggest(unknown[0], known).strip()
            raise FacecnnError(f"unknown config keys: {', '.join(map(str, unknown))}"
                               + (f"; {hint}" if hint else ""))
        return {key: _checked(known[key], value) for key, value in values.items()}

    @classmethod
    def from_dict(cls, values: Any) -> "TrainConfig":
        values = cls.check(values)
        missing = [f.name for f in fields(cls) if f.default is MISSING and f.name not in values]
        if missing:
            raise FacecnnError(f"missing config keys: {', '.join(missing)}")
        return cls(**values)

    def save(self, path: Path) -> None:
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def load(cls, path: Path) -> "TrainConfig":
        return cls.from_dict(yaml.safe_load(path.read_text()) or {})


def _checked(f: Field, value: Any) -> Any:
    """`value` coerced to field `f`'s type and held to its limits and choices."""
    value = coerce(f.name, _type_hints(TrainConfig)[f.name], value)
    low, high, choices = f.metadata["min"], f.metadata["max"], f.metadata["choices"]
    if value is None:
        return value
    if low is not None and value < low:
        raise FacecnnError(f"{f.name}: must be at least {low}, got {value}")
    if high is not None and value > high:
        raise FacecnnError(f"{f.name}: must be at most {high}, got {value}")
    if choices is not None and f.metadata["strict"] and value not in choices:
        raise FacecnnError(choices.unknown(value))
    return value


@cache
def _type_hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def coerce_fields(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """`values`, each named for a field of dataclass `cls`, coerced to that field's type."""
    hints = _type_hints(cls)
    return {key: coerce(key, hints[key], value) for key, value in values.items()}


def coerce(name: str, hint: Any, value: Any) -> Any:
    """`value` as type `hint` (str, int, float, bool, dict, list or one of them | None), or a
    one-line error naming `name`."""
    args = get_args(hint)
    if type(None) in args:
        if value is None:
            return None
        hint = next(arg for arg in args if arg is not type(None))
    convert, expected = _COERCE.get(get_origin(hint) or hint, (lambda v: v, ""))
    try:
        return convert(value)
    except (TypeError, ValueError):
        raise FacecnnError(f"{name}: expected {expected}, got {value!r}") from None


def _to_str(value: Any) -> str:
    if isinstance(value, (str, os.PathLike)):
        return os.fspath(value)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return str(value)  # YAML reads a run named 2024 as a number
    raise TypeError


def _to_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, str)):
        raise TypeError
    return float(value)  # from a string too: YAML 1.1 reads 1e-3 (no dot) as one


def _to_int(value: Any) -> int:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    number = _to_float(value)
    if not number.is_integer():
        raise ValueError
    return int(number)


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise TypeError


def _instance_of(kind: type) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if not isinstance(value, kind):
            raise TypeError
        return value

    return check


# type -> (conversion, what the error says was expected); other types pass unchecked
_COERCE: dict[Any, tuple[Callable[[Any], Any], str]] = {
    str: (_to_str, "a string"), int: (_to_int, "a whole number"), float: (_to_float, "a number"),
    bool: (_to_bool, "true or false"), dict: (_instance_of(dict), "a mapping"),
    list: (_instance_of(list), "a list")}
