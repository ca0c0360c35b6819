"""Every visualisation writes a readable PNG; Grad-CAM explains the class the model picks."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from facecnn.errors import FacecnnError
from facecnn.models.catalog import create_model
from facecnn.viz.feature_maps import feature_maps
from facecnn.viz.gradcam import gradcam, overlay_figure
from facecnn.viz.kernels import kernel_figure, kernel_panels
from facecnn.viz.predictions import parse_grid, predictions_grid
from helpers import ATT_FACES


@pytest.fixture(scope="module")
def face_rgb(att_faces: Path) -> np.ndarray:
    return np.asarray(Image.open(att_faces / "s1" / "1.pgm").convert("RGB"))


def _png_size(path: Path) -> tuple[int, int]:
    assert path.is_file()
    with Image.open(path) as img:
        assert img.format == "PNG"
        return img.size


def _face_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return create_model("seed_face_cnn3", 3, img_size=32)


def test_kernel_figure(face_rgb: np.ndarray, tmp_path: Path) -> None:
    path = kernel_figure(face_rgb, tmp_path / "sub" / "kernels.png")
    assert path == tmp_path / "sub" / "kernels.png"
    assert _png_size(path)[0] > 500


def test_kernel_channel_panels_show_each_channel_in_its_colour() -> None:
    image = np.zeros((8, 8, 3), np.uint8)
    image[:, :4] = (255, 0, 0)  # left: pure red; right: white
    image[:, 4:] = 255
    fig = kernel_panels(image)
    panels = {ax.get_title(): ax.images[0] for ax in fig.axes if ax.images}
    plt.close(fig)
    expected = {"red channel": [(255, 0, 0), (255, 0, 0)],
                "green channel": [(0, 0, 0), (0, 255, 0)],
                "blue channel": [(0, 0, 0), (0, 0, 255)]}
    for title, (left, right) in expected.items():
        shown = panels[title].to_rgba(panels[title].get_array(), bytes=True)[..., :3]
        assert tuple(shown[0, 0]) == left and tuple(shown[0, 7]) == right, title


def test_feature_maps_leave_out_1x1_layers(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Conv2d(4, 2, 1))
    paths = feature_maps(model, torch.randn(1, 3, 16, 16), tmp_path)
    assert [p.name for p in paths] == ["01_0.png"]  # 03_2 would be blank squares
    assert [p.name for p in tmp_path.iterdir()] == ["01_0.png"]


@pytest.mark.parametrize("name, chans, names", [
    ("seed_face_cnn3", 3, ["01_backbone_block1_0.png", "02_backbone_block2_0.png",
                           "03_backbone_block3_0.png"]),
    ("seed_mnist_cnn", 1, ["01_backbone_block1_0.png", "02_backbone_block2_0.png",
                           "03_backbone_block3_0.png"]),
])
def test_feature_maps_one_png_per_conv(name: str, chans: int, names: list[str],
                                       tmp_path: Path) -> None:
    model = create_model(name, 3, img_size=32).train()
    paths = feature_maps(model, torch.randn(1, chans, 32, 32), tmp_path / "maps", max_channels=16)
    assert [p.name for p in paths] == names
    assert sorted(p.name for p in (tmp_path / "maps").iterdir()) == names
    assert len(paths) == sum(isinstance(m, nn.Conv2d) for m in model.modules())
    for path in paths:
        _png_size(path)
    assert model.training  # the caller's mode is restored


def test_feature_maps_needs_convs(tmp_path: Path) -> None:
    with pytest.raises(FacecnnError, match="no Conv2d"):
        feature_maps(create_model("seed_mlp", 3, img_size=28), torch.randn(1, 1, 28, 28), tmp_path)


def test_gradcam_map_and_class() -> None:
    model = _face_model()
    heat, target, prob = gradcam(model, torch.randn(1, 3, 32, 32))
    assert heat.shape == (32, 32)
    assert heat.min() >= 0 and heat.max() <= 1
    assert 0 <= target < 3 and 0 < prob <= 1
    assert all(p.grad is None for p in model.parameters())  # no gradients left behind


def test_gradcam_explains_the_predicted_class() -> None:
    model = _face_model()
    with torch.no_grad():
        model.classifier.bias.copy_(torch.tensor([0.0, 0.0, 50.0]))
    x = torch.randn(1, 3, 32, 32)
    _, target, prob = gradcam(model, x)
    assert target == 2 and prob > 0.99
    _, target, prob = gradcam(model, x, target=0)
    assert target == 0 and prob < 0.01


def test_gradcam_all_zero_map_is_zeros() -> None:
    model = _face_model()
    last = [m for m in model.modules() if isinstance(m, nn.Conv2d)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
    heat, _, _ = gradcam(model, torch.randn(1, 3, 32, 32))
    assert heat.shape == (32, 32) and not heat.any()


def test_gradcam_on_given_layer_and_frozen_model() -> None:
    model = _face_model()
    model.requires_grad_(False)
    first = model.backbone.block1[0]
    heat, _, _ = gradcam(model, torch.randn(1, 3, 32, 32), layer=first)
    assert heat.shape == (32, 32) and np.isfinite(heat).all()


def test_gradcam_timm_resnet() -> None:
    torch.manual_seed(0)
    model = create_model("resnet18", 2, img_size=32)
    heat, target, prob = gradcam(model, torch.randn(1, 3, 32, 32))
    assert heat.shape == (32, 32) and heat.min() >= 0 and heat.max() <= 1
    assert target in (0, 1) and 0 < prob <= 1


def test_overlay_figure(face_rgb: np.ndarray, tmp_path: Path) -> None:
    heat = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    path = overlay_figure(face_rgb, heat, "s1 (0.93)", tmp_path / "cam" / "overlay.png")
    assert _png_size(path)[0] > 500


@pytest.mark.parametrize("count, chans", [(32, 3), (5, 1)])
def test_predictions_grid(count: int, chans: int, tmp_path: Path) -> None:
    images = np.random.default_rng(0).integers(0, 256, (count, 24, 24, chans), dtype=np.uint8)
    true = [f"c{i % 3}" for i in range(count)]
    predicted = [f"c{i % 2}" for i in range(count)]
    path = predictions_grid(images, predicted, true, tmp_path / "grid.png")
    _png_size(path)


def test_parse_grid() -> None:
    assert parse_grid("4x8") == (4, 8)
    assert parse_grid("2X3") == (2, 3)
    for bad in ("4by8", "4x", "0x8", ""):
        with pytest.raises(FacecnnError):
            parse_grid(bad)


@pytest.mark.e2e
def test_gradcam_layer_of_every_model() -> None:
    """Every registered model with convolutions is explained on a map at least 1/40 of its
    input wide (resnet18: 5 x 5 of 160), never on the 1 x 1 or 2 x 2 maps some end in."""
    from facecnn.models.catalog import list_models, model_info
    from facecnn.viz.gradcam import target_layer

    for name in list_models():
        info = model_info(name)
        side = min(info.img_size, 160)  # the rule scales with the input; big ones cost time
        torch.manual_seed(0)
        model = create_model(name, 3, img_size=side)
        if not any(isinstance(m, nn.Conv2d) for m in model.modules()):
            continue  # an MLP: no map to explain (feature_maps says so in one line)
        x = torch.randn(1, info.in_chans, side, side)
        layer, shapes = target_layer(model, x), {}
        hook = layer.register_forward_hook(lambda m, i, o: shapes.update(out=o.shape))
        with torch.no_grad():
            model.eval()(x)
        hook.remove()
        assert min(shapes["out"][-2:]) >= max(2, side / 40), (name, shapes["out"])


def test_gradcam_of_dlib_resnet_varies_over_a_face() -> None:
    """dlib's network with its weights (a run's `--pretrained`): the map of an AT&T face is
    no uniform wash (it was, on its last 2 x 2 convolution)."""
    from facecnn.models.catalog import model_info

    info = model_info("dlib_resnet")
    model = create_model("dlib_resnet", 3, pretrained=True)
    face = Image.open(ATT_FACES / "s1" / "1.pgm").convert("RGB").resize((info.img_size,) * 2)
    x = torch.tensor(np.asarray(face), dtype=torch.float32).permute(2, 0, 1)[None] / 255
    x = (x - torch.tensor(info.mean)[:, None, None]) / torch.tensor(info.std)[:, None, None]
    heat, _, _ = gradcam(model, x)
    assert heat.std() > 0.1 and heat.max() - heat.min() > 0.5
    quarters = [heat[r:r + 75, c:c + 75].mean() for r in (0, 75) for c in (0, 75)]
    assert max(quarters) - min(quarters) > 0.05  # not the same everywhere on the face
