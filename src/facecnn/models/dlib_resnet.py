"""dlib's face recognition ResNet as a PyTorch module, with its published weights.

The architecture of `dlib_face_recognition_resnet_model_v1.dat` (dlib's `anet_type`), layer
for layer: 7x7/2 conv 32 (no padding), affine, ReLU, 3x3/2 max-pool; residual stages of
3 x 32, 4 x 64, 3 x 128, 3 x 256 and 1 x 256 filters whose first block (except in the first
stage) downsamples with an unpadded 3x3/2 conv and a 2x2/2 average-pooled shortcut; global
average pool; 128-unit fc without bias. Two dlib details matter for exact outputs:

- dlib adds a residual to its shortcut even when their shapes differ, zero-padding the
  smaller at the end of each dimension (channels 32 -> 64, and 3x3 vs 4x4 maps at 150 px);
- its input layer maps a pixel to (value - mean) / 256, mean = the training set's colour.

With `norm="affine"` the normalisation layers are dlib's: a fixed per-channel scale and shift
(its batch norm folded after training), as in the published weights; the embedder uses it.
The registry model uses `norm="batch"` (real BatchNorm, since a 29-conv net without
normalisation trains badly from scratch). `--pretrained` loads dlib's scale and shift into
BatchNorms with zero running means and unit running variances that keep using those
statistics while training (`norm="frozen_stats"`): normalising by batch statistics instead
is not the function dlib's scales were fitted to, and it cost 8-17 points of verification
accuracy in fine-tuning on AT&T. The scales and shifts still train; saved weights load into
a plain BatchNorm model, which computes the same in eval mode.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facecnn.errors import FacecnnError
from facecnn.models.classifier import Classifier
from facecnn.models.dlib_port import (
    DlibFormatError,
    DlibNet,
    cached_conversion,
    model_file,
    read_dlib_net,
)
from facecnn.models.heads import build_head
from facecnn.models.registry import register_model

INPUT_SIZE = 150
INPUT_SCALE = 256.0  # dlib divides by 256, not 255
TRAINING_MEAN_RGB = (122.782, 117.001, 104.298)  # dlib's input_rgb_image_sized defaults
EMBEDDING_DIM = 128
STAGES = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))


class Affine(nn.Module):
    """Per-channel scale and shift: dlib's `affine` layer (a frozen batch norm)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class FrozenStatsBatchNorm2d(nn.BatchNorm2d):
    """A BatchNorm that normalises with its running statistics in training too (and never
    updates them); its weight and bias train as usual."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            False, 0.0, self.eps)


NORMS = {"affine": Affine, "batch": nn.BatchNorm2d, "frozen_stats": FrozenStatsBatchNorm2d}


def _norm(kind: str, channels: int) -> nn.Module:
    return NORMS[kind](channels)


def padded_add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's add_prev: the sum over the larger shape, the smaller tensor zero-padded at the
    end of channels, rows and columns."""
    if a.shape == b.shape:
        return a + b
    c, h, w = (max(x, y) for x, y in zip(a.shape[1:], b.shape[1:]))

    def pad(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))
    return pad(a) + pad(b)


class Residual(nn.Module):
    """conv3x3 -> norm -> ReLU -> conv3x3 -> norm, added to the (pooled) input, then ReLU."""

    def __init__(self, cin: int, cout: int, down: bool, norm: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, 2 if down else 1, 0 if down else 1)
        self.norm1 = _norm(norm, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.norm2 = _norm(norm, cout)
        self.shortcut = nn.AvgPool2d(2, 2) if down else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm2(self.conv2(F.relu(self.norm1(self.conv1(x)))))
        return F.relu(padded_add(y, self.shortcut(x)))


class DlibResNet(nn.Module):
    """Input: (B, 3, H, W) already normalised by `to_input`; output: (B, 128) embeddings.

    Children `stem`, `stage1`..`stage5` and `embedding` are the names `--freeze` takes.
    """

    def __init__(self, norm: str = "affine", in_chans: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_chans, 32, 7, 2, 0), _norm(norm, 32),
                                  nn.ReLU(), nn.MaxPool2d(3, 2))
        cin = 32
        for i, (width, blocks, down) in enumerate(STAGES, start=1):
            layers = [Residual(cin if b == 0 else width, width, down and b == 0, norm)
                      for b in range(blocks)]
            self.add_module(f"stage{i}", nn.Sequential(*layers))
            cin = width
        self.embedding = nn.Linear(cin, EMBEDDING_DIM, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for i in range(1, len(STAGES) + 1):
            x = getattr(self, f"stage{i}")(x)
        return self.embedding(x.mean(dim=(2, 3)))


def to_input(chips: torch.Tensor, mean_rgb: tuple[float, ...] = TRAINING_MEAN_RGB) -> torch.Tensor:
    """uint8 (B, 3, H, W) RGB -> float32 exactly as dlib's input layer: (x - mean) / 256."""
    mean = torch.tensor(mean_rgb, dtype=torch.float32, device=chips.device).view(1, 3, 1, 1)
    return (chips.float() - mean) / INPUT_SCALE


def state_dict_from(net: DlibNet, model: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """Map the parsed dlib layers (input -> output) onto the parameters of `model` (its
    convolutions, Affines and Linears in definition order; DlibResNet("affine") by default),
    checking every convolution's geometry and every shape on the way."""
    model = model if model is not None else DlibResNet("affine")
    targets = [(name, module) for name, module in model.named_modules()
               if isinstance(module, (nn.Conv2d, Affine, nn.Linear))]
    sources = [layer for layer in net.layers if layer.kind in ("con", "affine", "fc")]
    if len(sources) != len(targets):
        raise DlibFormatError(f"expected {len(targets)} weighted layers, found {len(sources)}")
    state: dict[str, torch.Tensor] = {}
    for (name, module), layer in zip(targets, sources):
        if isinstance(module, nn.Conv2d):
            geometry = (*module.kernel_size, *module.stride, *module.padding)
            arrays = {"weight": layer.params.get("weight"), "bias": layer.params.get("bias")}
            ok = layer.kind == "con" and layer.geometry == geometry
        elif isinstance(module, Affine):
            arrays = {"weight": layer.params.get("gamma"), "bias": layer.params.get("beta")}
            ok = layer.kind == "affine"
        else:
            arrays, ok = {"weight": layer.params.get("weight")}, layer.kind == "fc"
        for key, array in arrays.items():
            target = getattr(module, key)
            if not ok or array is None or tuple(array.shape) != tuple(target.shape):
                raise DlibFormatError(f"layer {name} does not match dlib's {layer.kind} "
                                      f"{layer.geometry}")
            state[f"{name}.{key}"] = torch.from_numpy(np.array(array, np.float32, order="C"))
    return state


def _converted(source: Path) -> dict[str, torch.Tensor]:
    net = read_dlib_net(source)
    return {**state_dict_from(net), "input_mean": torch.tensor(net.mean_rgb)}


def load_dlib_weights(source: Path | None = None) -> tuple[dict[str, torch.Tensor],
                                                           tuple[float, ...]]:
    """(state dict for DlibResNet("affine"), input mean) of dlib's model file, converted once
    and cached as safetensors in facecnn's cache directory."""
    source = Path(source) if source is not None else model_file()
    state = dict(cached_conversion(source, "resnet", lambda: _converted(source)))
    return state, tuple(state.pop("input_mean").tolist())


def pretrained_dlib_resnet(source: Path | None = None) -> tuple[DlibResNet, tuple[float, ...]]:
    """dlib's network with its weights, in eval mode, and the input mean it expects."""
    state, mean = load_dlib_weights(source)
    model = DlibResNet("affine")
    model.load_state_dict(state)
    return model.eval(), mean


def as_batchnorm(state: dict[str, torch.Tensor], eps: float = 1e-5) -> dict[str, torch.Tensor]:
    """Affine-form weights -> the same function in BatchNorm form: mean 0, variance 1 - eps
    (so that sqrt(variance + eps) is exactly 1 in float32)."""
    model = DlibResNet("batch")
    out = dict(state)
    for name, module in model.named_modules():
        if isinstance(module, nn.BatchNorm2d):
            channels = module.num_features
            out[f"{name}.running_mean"] = torch.zeros(channels)
            out[f"{name}.running_var"] = torch.full((channels,), 1.0 - eps)
            out[f"{name}.num_batches_tracked"] = torch.tensor(0)
    return out


# crop: dlib's face chip, faces/crops.py's DLIB_CHIP, spelt out since models/ is below faces/
# (importing it made a cycle; tests/test_imports.py checks the two agree)
@register_model("dlib_resnet", img_size=INPUT_SIZE,
                mean=tuple(m / 255 for m in TRAINING_MEAN_RGB),
                std=(INPUT_SCALE / 255,) * 3, pretrained=True,
                crop={"size": INPUT_SIZE, "padding": 0.25, "landmarks": "dlib5"},
                description="dlib's 29-conv face ResNet (128-D embedding) + a new head; "
                            "--pretrained: dlib's face weights (offline)")
def dlib_resnet(num_classes: int, in_chans: int = 3, img_size: int = INPUT_SIZE,
                head: str | None = None, pretrained: bool = False) -> Classifier:
    if pretrained and in_chans != 3:
        raise FacecnnError("dlib_resnet's pretrained weights take RGB images (in_chans 3)")
    backbone = DlibResNet("frozen_stats" if pretrained else "batch", in_chans)
    if pretrained:
        backbone.load_state_dict(as_batchnorm(load_dlib_weights()[0]))
    return Classifier(backbone, build_head(head or "gap", EMBEDDING_DIM, num_classes))
