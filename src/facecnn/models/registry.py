"""The table of our own models: each module that defines one registers it with
`@register_model` where it is defined (models/custom.py, models/dlib_resnet.py).

This module holds only the table and imports none of the models, so they can import it;
models/catalog.py imports them all to fill it and looks every name up (ours, then timm's).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from facecnn.models.classifier import Classifier

UNIT_MEAN = (0.0, 0.0, 0.0)  # the seeds' Keras models take pixels / 255
UNIT_STD = (1.0, 1.0, 1.0)


@dataclass(frozen=True)
class ModelInfo:
    """What a user and the data pipeline need to know about a model before building it."""

    name: str
    img_size: int
    in_chans: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    description: str
    builder: Callable[..., Classifier] = field(repr=False)
    timm_name: str | None = None
    has_pretrained: bool = False
    crop: dict[str, Any] | None = None  # the face crop its pretrained weights were trained on


MODELS: dict[str, ModelInfo] = {}  # name -> info, in registration order


def register_model(
    name: str,
    *,
    img_size: int,
    in_chans: int = 3,
    description: str,
    mean: tuple[float, ...] = UNIT_MEAN,
    std: tuple[float, ...] = UNIT_STD,
    pretrained: bool = False,
    crop: dict[str, Any] | None = None,
) -> Callable[[Callable[..., Classifier]], Callable[..., Classifier]]:
    """Register a builder `fn(num_classes, in_chans, img_size, head=None) -> Classifier`;
    with `pretrained=True` it also takes `pretrained: bool` (weights it can load offline),
    and `crop` is the face crop (faces/crops.py) those weights were trained on."""

    def wrap(fn: Callable[..., Classifier]) -> Callable[..., Classifier]:
        MODELS[name] = ModelInfo(name, img_size, in_chans, mean[:in_chans], std[:in_chans],
                                 description, fn, has_pretrained=pretrained, crop=crop)
        return fn

    return wrap
