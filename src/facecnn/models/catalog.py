"""Models by name: `create_model(name, num_classes, ...)` for the seeds' CNNs and timm's zoo.

Importing this module imports every module that registers a model (filling models/registry.py's
table); zoo names map to timm architectures. Any other name timm knows also works, so users
are never limited to our list. timm itself loads only when a zoo model is looked up.
"""

from __future__ import annotations

import torch
from torch import nn

from facecnn.errors import FacecnnError
from facecnn.models import custom, dlib_resnet  # noqa: F401 (imported to register their models)
from facecnn.models.classifier import Classifier
from facecnn.models.heads import build_head
from facecnn.models.registry import MODELS, ModelInfo

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # for a timm model without a pretrained config
IMAGENET_STD = (0.229, 0.224, 0.225)

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
    return list(MODELS) + [n for n in ZOO if n not in MODELS]


def model_info(name: str) -> ModelInfo:
    """Look a name up in our registry, our zoo, then the rest of timm."""
    if name in MODELS:
        return MODELS[name]
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

