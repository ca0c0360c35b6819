"""The seeds' CNNs: they build, run, match the seeds' parameter counts; initializers work."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from facecnn.errors import FacecnnError
from facecnn.models.catalog import ZOO, count_parameters, create_model, list_models, model_info
from facecnn.models.init import INIT_CHOICES, initialize

SEED_MODELS = [name for name in list_models() if name not in ZOO]


def test_every_seed_model_is_registered():
    assert set(SEED_MODELS) >= {"seed_face_cnn", "seed_face_cnn3", "seed_mnist_cnn",
                                "seed_mnist_cnn_same", "seed_cifar_cnn", "seed_mlp",
                                "seed_mlp_relu", "alexnet_bn", "small_resnet"}


@torch.no_grad()
def _check_forward(model: nn.Module, in_chans: int, img_size: int) -> None:
    x = torch.rand(2, in_chans, img_size, img_size)
    model.eval()
    assert model(x).shape == (2, model.num_classes)
    assert model.features(x).shape == (2, model.classifier.in_features)


@pytest.mark.parametrize("name", SEED_MODELS)
def test_seed_model_forward(name):
    info = model_info(name)
    _check_forward(create_model(name, 5), info.in_chans, info.img_size)


@pytest.mark.parametrize("name, num_classes, trainable", [
    ("seed_face_cnn", 31, 246_495),
    ("seed_mnist_cnn", 10, 93_322),
    ("seed_mnist_cnn_same", 10, 220_234),
    ("seed_cifar_cnn", 10, 541_094),
    ("seed_mlp", 10, 266_610),
])
def test_parameter_counts_match_the_seeds(name, num_classes, trainable):
    assert count_parameters(create_model(name, num_classes))["trainable"] == trainable


def test_seed_face_cnn_keras_total_counts_bn_statistics():
    assert count_parameters(create_model("seed_face_cnn", 31))["total_with_bn_stats"] == 247_071


def test_seed_mlp_transfer_with_frozen_backbone_trains_202_parameters():
    model = create_model("seed_mlp", 2)
    model.backbone.requires_grad_(False)
    assert count_parameters(model)["trainable"] == 202


def test_head_spec_replaces_the_seed_head():
    model = create_model("seed_face_cnn", 3, head="dense64-dropout0.2")
    last = model.head[-1]
    assert (last.in_features, last.out_features) == (64, 3)
    assert isinstance(model.head[-2], nn.Dropout)


def test_small_resnet_stages_are_addressable():
    backbone = create_model("small_resnet", 2).backbone
    assert all(isinstance(getattr(backbone, f"stage{i}"), nn.Module) for i in (1, 2, 3))


def test_models_run_at_other_sizes():
    _check_forward(create_model("seed_face_cnn3", 4, img_size=64), 3, 64)
    _check_forward(create_model("seed_mnist_cnn", 4, img_size=48, in_chans=3), 3, 48)


def test_too_small_input_is_a_clear_error():
    with pytest.raises(FacecnnError, match="too small"):
        create_model("seed_face_cnn", 2, img_size=32)


def _weights(model: nn.Module) -> list[torch.Tensor]:
    return [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def test_zeros_initializer_zeroes_every_conv_and_linear_weight():
    model = create_model("seed_cifar_cnn", 10)
    initialize(model, "zeros")
    assert all(torch.count_nonzero(w) == 0 for w in _weights(model))


def test_default_initializer_leaves_weights_alone():
    model = create_model("seed_mnist_cnn", 10)
    before = [w.clone() for w in _weights(model)]
    initialize(model, "default")
    assert all(torch.equal(a, b) for a, b in zip(before, _weights(model)))


@pytest.mark.parametrize("name, expected_std", [
    ("normal", 0.01),
    ("glorot", (2 / (1000 + 500)) ** 0.5),  # uniform with variance 2 / (fan_in + fan_out)
    ("he", (2 / 1000) ** 0.5),  # normal with variance 2 / fan_in
])
def test_initializer_std_on_a_large_layer(name, expected_std):
    layer = nn.Linear(1000, 500)
    initialize(layer, name)
    assert layer.weight.std().item() == pytest.approx(expected_std, rel=0.2)
    assert torch.count_nonzero(layer.bias) == 0


def test_initializer_leaves_batchnorm_alone():
    model = create_model("seed_face_cnn3", 2, img_size=32)
    initialize(model, "zeros")
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(torch.all(bn.weight == 1) for bn in bns)


def test_unknown_initializer_lists_the_valid_names():
    with pytest.raises(FacecnnError, match="glorot"):
        initialize(nn.Linear(2, 2), "xavier")
    assert tuple(INIT_CHOICES) == ("default", "zeros", "normal", "glorot", "he")


@pytest.mark.e2e
@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_builds_and_runs(name: str) -> None:
    """Shapes only (meta device, no weights): each model maps images to one logit per class."""
    info = model_info(name)
    size = info.img_size if name not in ZOO else 96
    with torch.device("meta"):
        model = create_model(name, 7, img_size=size)
        logits = model(torch.empty(2, info.in_chans, size, size))
        features = model.features(torch.empty(2, info.in_chans, size, size))
    assert tuple(logits.shape) == (2, 7)
    assert tuple(features.shape) == (2, model.classifier.in_features)
