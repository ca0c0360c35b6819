"""The seeds' own CNNs, layer for layer as SEEDS.md specifies them (A, C, D and E).

The parameter counts match the seeds' Keras summaries exactly, so results can be compared
with the seeds' numbers. Each backbone ends with a flat feature vector whose size is
computed from `img_size`, so every model also runs at other input sizes. Keras terms:
'valid' = no padding, 'same' = padding kernel // 2, MaxPool 2x2 stride 2 rounding down.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from facecnn.errors import FacecnnError
from facecnn.models.classifier import Classifier
from facecnn.models.heads import build_head
from facecnn.models.registry import register_model


def _block(cin: int, cout: int, layout: str, *, kernel: int = 3, stride: int = 1,
           same: bool = False, pool: int = 2, pool_stride: int = 2) -> nn.Sequential:
    """One conv block; `layout` orders its layers: c=conv, b=BatchNorm, r=ReLU, p=MaxPool.

    The seeds put BatchNorm in different places (A: after pooling, C: before ReLU,
    AlexNet: after ReLU), and the order changes what is computed, so it is spelled out.
    """
    make = {
        "c": lambda: nn.Conv2d(cin, cout, kernel, stride, kernel // 2 if same else 0),
        "b": lambda: nn.BatchNorm2d(cout),
        "r": lambda: nn.ReLU(inplace=True),
        "p": lambda: nn.MaxPool2d(pool, pool_stride),
    }
    return nn.Sequential(*(make[layer]() for layer in layout))


def _chain(in_chans: int, widths: list[int], layout: str, **kwargs) -> list[nn.Sequential]:
    """Blocks of the same layout, each taking the previous one's channels."""
    return [_block(cin, cout, layout, **kwargs) for cin, cout in zip([in_chans, *widths], widths)]


def _stack(blocks: list[nn.Module]) -> nn.Sequential:
    """Blocks named block1..blockN (addressable by freeze lists), then Flatten."""
    named = [(f"block{i}", block) for i, block in enumerate(blocks, 1)]
    return nn.Sequential(OrderedDict([*named, ("flatten", nn.Flatten())]))


def _flat_features(backbone: nn.Module, img_size: int) -> int:
    """Size of the flattened output of a conv stack, found by walking its convs and pools."""
    size, channels = img_size, 0
    for layer in backbone.modules():
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
            kernel, stride, padding = (v if isinstance(v, int) else v[0]
                                       for v in (layer.kernel_size, layer.stride, layer.padding))
            size = (size + 2 * padding - kernel) // stride + 1
            if size < 1:
                raise FacecnnError(f"img_size {img_size} is too small for this model")
        if isinstance(layer, nn.Conv2d):
            channels = layer.out_channels
    return channels * size * size


def _classifier(backbone: nn.Module, features: int, num_classes: int, head: str | None,
                seed_head: str) -> Classifier:
    """Attach the seed's head, or the user's `--head` spec when one is given."""
    return Classifier(backbone, build_head(seed_head if head is None else head, features,
                                           num_classes))


def _conv_classifier(backbone: nn.Module, num_classes: int, img_size: int, head: str | None,
                     seed_head: str) -> Classifier:
    """`_classifier` for conv stacks, whose feature size depends on `img_size`."""
    return _classifier(backbone, _flat_features(backbone, img_size), num_classes, head, seed_head)


@register_model("seed_face_cnn", img_size=224, in_chans=3,
                description="seed A: 5 conv blocks (conv-relu-pool-bn), 247k params, faces")
def seed_face_cnn(num_classes: int, in_chans: int, img_size: int,
                  head: str | None = None) -> Classifier:
    """Seed A's Keras face classifier (31 celebrities)."""
    backbone = _stack(_chain(in_chans, [32, 64, 64, 96, 32], "crpb"))
    return _conv_classifier(backbone, num_classes, img_size, head, "dropout0.5-dense128")


@register_model("seed_face_cnn3", img_size=224, in_chans=3,
                description="seed C: 3 conv blocks (conv-bn-relu-pool) + linear, faces")
def seed_face_cnn3(num_classes: int, in_chans: int, img_size: int,
                   head: str | None = None) -> Classifier:
    """Seed C's PyTorch custom CNN for the live-camera recognizer."""
    backbone = _stack(_chain(in_chans, [16, 32, 64], "cbrp", same=True))
    return _conv_classifier(backbone, num_classes, img_size, head, "")


@register_model("seed_mnist_cnn", img_size=28, in_chans=1,
                description="seed D: Keras MNIST CNN, 3 valid convs, 93k params")
def seed_mnist_cnn(num_classes: int, in_chans: int, img_size: int,
                   head: str | None = None) -> Classifier:
    """Seed D's MNIST CNN."""
    backbone = _stack([*_chain(in_chans, [32, 64], "crp"), _block(64, 64, "cr")])
    return _conv_classifier(backbone, num_classes, img_size, head, "dense64")


@register_model("seed_mnist_cnn_same", img_size=28, in_chans=1,
                description="seed E: MNIST CNN, 2 same-padded convs, 220k params")
def seed_mnist_cnn_same(num_classes: int, in_chans: int, img_size: int,
                        head: str | None = None) -> Classifier:
    """Seed E's MNIST CNN ('same' padding, 99.19% test accuracy)."""
    backbone = _stack(_chain(in_chans, [32, 64], "crp", same=True))
    return _conv_classifier(backbone, num_classes, img_size, head, "dense64")


@register_model("seed_cifar_cnn", img_size=32, in_chans=3,
                description="seed E: CIFAR-10 CNN, convs 16/32/64 + dense 500, 541k params")
def seed_cifar_cnn(num_classes: int, in_chans: int, img_size: int,
                   head: str | None = None) -> Classifier:
    """Seed E's CIFAR-10 CNN."""
    backbone = _stack(_chain(in_chans, [16, 32, 64], "crp", same=True))
    return _conv_classifier(backbone, num_classes, img_size, head,
                            "dropout0.3-dense500-dropout0.4")


def _mlp(in_features: int, widths: list[int], activation: type[nn.Module],
         **act_kwargs) -> nn.Sequential:
    """Flatten, then Linear + activation per hidden width: the MLP seeds' backbone."""
    layers: list[nn.Module] = [nn.Flatten()]
    for fan_in, width in zip([in_features, *widths], widths):
        layers += [nn.Linear(fan_in, width), activation(**act_kwargs)]
    return nn.Sequential(*layers)


# Keras' LeakyReLU() default slope; seed E used the layer with its defaults.
_LEAKY_SLOPE = 0.3


@register_model("seed_mlp", img_size=28, in_chans=1,
                description="seed E: MLP 784-300-100, LeakyReLU, He normal init")
def seed_mlp(num_classes: int, in_chans: int, img_size: int,
             head: str | None = None) -> Classifier:
    """Seed E's MLP (also the digits model of its transfer-learning study)."""
    backbone = _mlp(in_chans * img_size ** 2, [300, 100], nn.LeakyReLU,
                    negative_slope=_LEAKY_SLOPE)
    for layer in backbone:
        if isinstance(layer, nn.Linear):  # seed E: kernel_initializer="he_normal", zero bias
            nn.init.kaiming_normal_(layer.weight, a=_LEAKY_SLOPE, nonlinearity="leaky_relu")
            nn.init.zeros_(layer.bias)
    return _classifier(backbone, 100, num_classes, head, "")


@register_model("seed_mlp_relu", img_size=28, in_chans=1,
                description="seed E: MLP 784-256-128 ReLU for the initializer study")
def seed_mlp_relu(num_classes: int, in_chans: int, img_size: int,
                  head: str | None = None) -> Classifier:
    """Seed E's MLP for comparing weight initializers (see models.init)."""
    backbone = _mlp(in_chans * img_size ** 2, [256, 128], nn.ReLU)
    return _classifier(backbone, 128, num_classes, head, "")


@register_model("alexnet_bn", img_size=224, in_chans=3,
                description="seed E: AlexNet with BatchNorm (Keras tutorial layout)")
def alexnet_bn(num_classes: int, in_chans: int, img_size: int,
               head: str | None = None) -> Classifier:
    """Seed E's AlexNet with BatchNorm (Oxford Flowers-17)."""
    pooled = dict(pool=3, pool_stride=2)
    backbone = _stack([
        _block(in_chans, 96, "crbp", kernel=11, stride=4, **pooled),
        _block(96, 256, "crbp", kernel=5, same=True, **pooled),
        _block(256, 384, "crb", same=True),
        _block(384, 384, "crb", same=True),
        _block(384, 256, "crbp", same=True, **pooled),
    ])
    return _conv_classifier(backbone, num_classes, img_size, head,
                            "dense4096-dropout0.5-dense4096-dropout0.5")


class BasicBlock(nn.Module):
    """Two 3x3 conv+BN layers plus a shortcut: 1x1 conv+BN projection when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


@register_model("small_resnet", img_size=32, in_chans=3,
                description="seed E: small ResNet, 3 stages x 2 basic blocks (16/32/64)")
def small_resnet(num_classes: int, in_chans: int, img_size: int,
                 head: str | None = None) -> Classifier:
    """Seed E's small ResNet trained from scratch."""
    stages = [("stage1", BasicBlock(16, 16), BasicBlock(16, 16)),
              ("stage2", BasicBlock(16, 32, stride=2), BasicBlock(32, 32)),
              ("stage3", BasicBlock(32, 64, stride=2), BasicBlock(64, 64))]
    backbone = nn.Sequential(OrderedDict([
        ("stem", _block(in_chans, 16, "cbr", same=True)),
        *((name, nn.Sequential(*blocks)) for name, *blocks in stages),
        ("pool", nn.AdaptiveAvgPool2d(1)),
        ("flatten", nn.Flatten()),
    ]))
    return _classifier(backbone, 64, num_classes, head, "")
