"""Models by name: `create_model(name, num_classes, ...)` for the seeds' CNNs and timm's zoo.

Custom models register themselves with `@register_model`; zoo names map to timm
architectures. Any other name timm knows also works, so users are never limited to our list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from facecnn.errors import FacecnnError
from facecnn.models.classifier import Classifier
from facecnn.models.heads import build_head

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
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


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(
    name: str,
    *,
    img_size: int,
    in_chans: int = 3,
    description: str,
    mean: tuple[float, ...] = UNIT_MEAN,
    std: tuple[float, ...] = UNIT_STD,
    pretrained: bool = False,
) -> Callable[[Callable[..., Classifier]], Callable[..., Classifier]]:
    """Register a builder `fn(num_classes, in_chans, img_size, head=None) -> Classifier`;
    with `pretrained=True` it also takes `pretrained: bool` (weights it can load offline)."""

    def wrap(fn: Callable[..., Classifier]) -> Callable[..., Classifier]:
        _REGISTRY[name] = ModelInfo(name, img_size, in_chans, mean[:in_chans], std[:in_chans],
                                    description, fn, has_pretrained=pretrained)
        return fn

    return wrap


# Our zoo names -> timm architectures (names the seeds use, timm's current spelling).
ZOO = {
    "resnet18": "resnet18",
    "resnet34": "resnet34",
    "resnet50": "resnet50",
    "densenet121": "densenet121",
    "densenet201": "densenet201",
    **{f"efficientnet_b{i}": f"efficientnet_b{i}" for i in range(8)},
    "xception": "legacy_xception",
    "mobilenetv1": "mobilenetv1_100",
    "mobilenetv2": "mobilenetv2_100",
    "mobilenetv3": "mobilenetv3_large_100",
    "mobilenetv3_small": "mobilenetv3_small_100",
    "vgg16": "vgg16",
    "inception_v3": "inception_v3",
    "inception_resnet_v2": "inception_resnet_v2",
}


def _timm_info(name: str, timm_name: str) -> ModelInfo:
    import timm

    cfg = timm.get_pretrained_cfg(timm_name)
    mean = tuple(cfg.mean) if cfg else IMAGENET_MEAN
    std = tuple(cfg.std) if cfg else IMAGENET_STD
    size = cfg.input_size[-1] if cfg else 224
    return ModelInfo(name, size, 3, mean, std, f"timm {timm_name}", _build_timm, timm_name)


def _build_timm(num_classes: int, in_chans: int, img_size: int, head: str | None = None,
                *, timm_name: str, pretrained: bool = False) -> Classifier:
    import timm

    try:
        backbone = timm.create_model(timm_name, pretrained=pretrained, num_classes=0,
                                     in_chans=in_chans)
    except Exception as exc:  # hub errors come in many types; the user needs one line
        if not pretrained:
            raise
        raise FacecnnError(
            f"could not download pretrained weights for {timm_name} ({type(exc).__name__}); "
            "offline? pass --weights FILE with a local state dict instead"
        ) from None
    # Pooled feature width: some nets (MobileNetV3, ViTs) add a pre-logits layer after pooling.
    width = getattr(backbone, "head_hidden_size", None) or backbone.num_features
    return Classifier(backbone, build_head(head or "gap", width, num_classes))


def list_models() -> list[str]:
    """Every registered name: the seeds' CNNs first, then the zoo."""
    _load_custom()
    return list(_REGISTRY) + [n for n in ZOO if n not in _REGISTRY]


def model_info(name: str) -> ModelInfo:
    """Look a name up in our registry, our zoo, then the rest of timm."""
    _load_custom()
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name in ZOO:
        return _timm_info(name, ZOO[name])
    import timm

    if timm.is_model(name):
        return _timm_info(name, name)
    raise FacecnnError(f"unknown model {name!r}; choose one of: {', '.join(list_models())} "
                       "(or any timm model name)")


def create_model(
    name: str,
    num_classes: int,
    *,
    in_chans: int | None = None,
    img_size: int | None = None,
    head: str | None = None,
    pretrained: bool = False,
) -> Classifier:
    """Build model `name` for `num_classes` classes. None arguments keep the model's defaults."""
    info = model_info(name)
    kwargs = dict(num_classes=num_classes, in_chans=in_chans or info.in_chans,
                  img_size=img_size or info.img_size, head=head)
    if info.timm_name:
        return info.builder(**kwargs, timm_name=info.timm_name, pretrained=pretrained)
    if info.has_pretrained:
        return info.builder(**kwargs, pretrained=pretrained)
    if pretrained:
        raise FacecnnError(f"{name} has no pretrained weights; use --weights FILE or drop "
                           "--pretrained")
    return info.builder(**kwargs)


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Trainable, frozen and total parameters, plus the total Keras reports (BN statistics too)."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    bn_stats = sum(b.numel() for n, b in model.named_buffers() if n.endswith(("running_mean",
                                                                                "running_var")))
    return {"trainable": trainable, "frozen": total - trainable, "total": total,
            "total_with_bn_stats": total + bn_stats}


def parameter_count(name: str, num_classes: int = 1000) -> int:
    """Total parameters of `name` without allocating weights (built on the meta device)."""
    with torch.device("meta"):
        return count_parameters(create_model(name, num_classes))["total"]


def _load_custom() -> None:
    """Import the modules whose decorators fill the registry (kept lazy: timm is slow to import)."""
    from facecnn.models import custom, dlib_resnet  # noqa: F401
