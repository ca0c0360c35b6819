"""Grad-CAM: which parts of the image drove the model's score for a class.

The conv layer's activation maps are weighted by how much the class logit changes with each
channel (its spatially averaged gradient); positive evidence only is kept.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from facecnn.errors import FacecnnError  # noqa: E402
from facecnn.models.classifier import Classifier  # noqa: E402
from facecnn.viz.feature_maps import named_convs  # noqa: E402
from facecnn.viz.plots import save_figure  # noqa: E402
from facecnn.viz.predictions import show_image  # noqa: E402

MAP_SHARE = 1 / 40  # resnet18's 7 x 7 of 224 px; dlib's 4 x 4 of 150 px; MNIST's 3 x 3 of 28


def gradcam(model: Classifier, x: torch.Tensor, target: int | None = None,
            layer: nn.Module | None = None) -> tuple[np.ndarray, int, float]:
    """(heat map (H, W) in [0, 1] at `x`'s resolution, target class, its softmax probability)
    for a normalised (1, C, H, W) input; `target` defaults to the predicted class and `layer`
    to `target_layer`'s. A map with no positive evidence comes back as zeros.
    """
    if layer is None:
        layer = target_layer(model, x)
    captured: dict[str, torch.Tensor] = {}

    def hook(module: nn.Module, inputs, output: torch.Tensor) -> torch.Tensor:
        captured["act"] = output
        return output.clone()  # the next layers get a copy, so an in-place ReLU cannot alter act

    handle = layer.register_forward_hook(hook)
    was_training = model.training
    try:
        with torch.enable_grad():
            # a leaf that needs grad keeps the graph alive even when the model is frozen
            logits = model.eval()(x.detach().requires_grad_(True))[0]
            target = int(logits.argmax()) if target is None else target
            # autograd.grad rather than backward(): the caller's parameter .grad stay untouched
            (grad,) = torch.autograd.grad(logits[target], captured["act"])
    finally:
        model.train(was_training)
        handle.remove()

    act = captured["act"].detach()[0]
    weights = grad[0].mean(dim=(1, 2))
    cam = F.relu((weights[:, None, None] * act).sum(dim=0))
    cam = F.interpolate(cam[None, None], size=x.shape[-2:], mode="bilinear",
                        align_corners=False)[0, 0]
    peak = cam.max()
    heat = cam / peak if peak > 0 else torch.zeros_like(cam)
    prob = torch.softmax(logits.detach().float(), dim=0)[target]
    return heat.cpu().numpy(), target, float(prob)


def target_layer(model: Classifier, x: torch.Tensor) -> nn.Module:
    """The layer whose maps Grad-CAM weighs: the last to output a map at least MAP_SHARE of
    the input's side (and 2 positions) wide: a block's output, skip connection included,
    where the model has blocks. The last Conv2d is not always it: dlib's ResNet ends in maps
    of 2 x 2 positions and MobileNetV3 in a 1 x 1 convolution after its pooling, whose
    maps say nothing about where on the face the evidence was."""
    named_convs(model)  # a model with no convolution has no map to explain: one line
    smallest = max(2, min(x.shape[-2:]) * MAP_SHARE)
    found: list[nn.Module] = []

    def seen(module: nn.Module, inputs, output) -> None:
        if isinstance(output, torch.Tensor) and output.dim() == 4 and \
                min(output.shape[-2:]) >= smallest:
            found.append(module)

    hooks = [m.register_forward_hook(seen) for m in model.modules() if m is not model]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    if not found:
        raise FacecnnError(f"{type(model).__name__} makes no map of {smallest:g} positions "
                           "or more at this input size")
    return found[-1]


def overlay_figure(image_rgb: np.ndarray, heat: np.ndarray, title: str, path: Path) -> Path:
    """The image beside it with `heat` (resized to the image) laid over it in jet."""
    height, width = image_rgb.shape[:2]
    heat = cv2.resize(heat.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 4.4))
    show_image(left, image_rgb)
    left.set_title("image")
    show_image(right, image_rgb)
    right.imshow(heat, cmap="jet", alpha=0.45, vmin=0, vmax=1)
    right.set_title("Grad-CAM")
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)
