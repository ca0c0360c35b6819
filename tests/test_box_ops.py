"""box_ops (numpy) against torchvision.ops, which it replaces on MTCNN's path: the same kept
boxes in the same order (ties, empty and duplicate boxes, IoUs exactly at the threshold,
thousands of boxes), the same RoIAlign crops (boxes partly outside, under a pixel, bigger than
the image, upside down); and MTCNN on the CPU imports neither PyTorch nor torchvision."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torchvision.ops as tv

from facecnn.models import box_ops


def random_boxes(n: int, seed: int, extent: float = 100.0, negative: bool = False,
                 dyadic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes of sides up to 40 (some empty, some duplicated), and scores with many ties."""
    g = torch.Generator().manual_seed(seed)
    corner = torch.rand(n, 2, generator=g) * extent - (extent / 4 if negative else 0)
    side = torch.rand(n, 2, generator=g) * 40
    side[torch.rand(n, generator=g) < 0.1] = 0
    boxes = torch.cat([corner, corner + side], 1)
    if dyadic:  # exact under torchvision's category offsets, and IoUs land on thresholds
        boxes = (boxes * 4).round() / 4
    if n >= 10:
        boxes[-(n // 10):] = boxes[:n // 10]
    scores = torch.randint(0, 30, (n,), generator=g).float() / 30
    return boxes, scores


def per_category(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor,
                 threshold: float) -> torch.Tensor:
    """What batched NMS means: torchvision's NMS within each category, kept by score."""
    kept = torch.cat([idxs.new_zeros(0)] + [
        torch.nonzero(idxs == c)[:, 0][tv.nms(boxes[idxs == c], scores[idxs == c], threshold)]
        for c in idxs.unique()]).sort().values
    return kept[scores[kept].sort(descending=True, stable=True).indices]


def ours(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> torch.Tensor:
    return torch.from_numpy(box_ops.nms(boxes.numpy(), scores.numpy(), threshold))


@pytest.mark.parametrize("n", [0, 1, 7, 300, 1500])
@pytest.mark.parametrize("threshold", [-0.1, 0.0, 0.3, 0.5, 0.7, 1.0])
def test_nms_keeps_what_torchvision_keeps(n: int, threshold: float) -> None:
    for seed, extent in ((n, 100.0), (n + 1, 1000.0)):
        for dyadic in (False, True):
            boxes, scores = random_boxes(n, seed, extent, dyadic=dyadic)
            assert torch.equal(ours(boxes, scores, threshold), tv.nms(boxes, scores, threshold))


def test_nms_compares_like_torchvisions_cpu_kernel_at_the_threshold() -> None:
    # IoU 3 / 10 is float32(0.3), above the double 0.3 that torchvision compares it with
    boxes = torch.tensor([[0.0, 0, 10, 1], [0, 0, 3, 1], [20, 0, 30, 1], [20, 0, 25, 1]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    for threshold in (0.3, 0.5):
        assert torch.equal(ours(boxes, scores, threshold), tv.nms(boxes, scores, threshold))
    assert ours(boxes, scores, 0.3).tolist() == [0, 2]


def test_nms_on_many_boxes() -> None:
    g = torch.Generator().manual_seed(0)
    corner = torch.rand(6000, 2, generator=g) * 2000
    boxes = torch.cat([corner, corner + 10 + torch.rand(6000, 2, generator=g) * 60], 1)
    scores = torch.rand(6000, generator=g)
    assert torch.equal(ours(boxes, scores, 0.5), tv.nms(boxes, scores, 0.5))


@pytest.mark.parametrize("n", [0, 5, 400, 1200])
def test_nms_per_group_keeps_what_torchvision_keeps_in_each(n: int) -> None:
    boxes, scores = random_boxes(n, n, negative=True)
    idxs = torch.randint(0, 4, (n,), generator=torch.Generator().manual_seed(n))
    for threshold in (0.0, 0.5, 0.7):
        kept = box_ops.nms_per_group(boxes.numpy(), scores.numpy(), idxs.numpy(), threshold)
        assert kept.tolist() == sorted(per_category(boxes, scores, idxs, threshold).tolist())


def roi_boxes(k: int, height: int, width: int, g: torch.Generator) -> torch.Tensor:
    """Boxes from under a pixel to twice the image, many partly or wholly outside it, and
    a few with no area or upside down."""
    corner = torch.rand(k, 2, generator=g) * torch.tensor([width * 1.4, height * 1.4]) \
        - torch.tensor([width * 0.2, height * 0.2])
    side = torch.rand(k, 1, generator=g) ** 3 * 2 * max(height, width)
    side[: k // 5] = torch.rand(k // 5, 1, generator=g)  # under a pixel
    side[k // 5: k // 4] = 0
    side[k // 4: k // 4 + 2] = -3
    return torch.cat([corner, corner + side * (0.5 + torch.rand(k, 2, generator=g))], 1)


def crops_of(image: torch.Tensor, boxes: torch.Tensor, output_size: int) -> torch.Tensor:
    """box_ops.roi_align of a (C, H, W) image, as a tensor."""
    return torch.from_numpy(box_ops.roi_align(image.permute(1, 2, 0).numpy(), boxes.numpy(),
                                              output_size))


@pytest.mark.parametrize("output_size", [12, 24, 48])
def test_roi_align_crops_what_torchvision_crops(output_size: int) -> None:
    g = torch.Generator().manual_seed(output_size)
    for height, width in ((1, 1), (5, 90), (61, 40), (300, 500)):
        image = torch.rand(3, height, width, generator=g) * 255
        for boxes in (roi_boxes(60, height, width, g), roi_boxes(0, height, width, g)):
            crops = crops_of(image, boxes, output_size)
            assert crops.shape == (len(boxes), 3, output_size, output_size)
            torch.testing.assert_close(crops, tv.roi_align(image[None], [boxes], output_size,
                                                            aligned=True),
                                       atol=2e-3, rtol=1e-5)


def test_roi_align_a_box_at_a_time_crops_the_same(monkeypatch) -> None:
    g = torch.Generator().manual_seed(5)
    image = torch.rand(3, 61, 90, generator=g) * 255
    boxes = roi_boxes(50, 61, 90, g)
    together = crops_of(image, boxes, 24)
    monkeypatch.setattr(box_ops, "ROI_BUDGET", 1)  # every box in a batch of its own
    torch.testing.assert_close(crops_of(image, boxes, 24), together, atol=2e-3, rtol=1e-5)


@pytest.mark.e2e
def test_mtcnn_on_the_cpu_imports_neither_torch_nor_torchvision() -> None:
    code = ("import numpy, sys; from facecnn.models.mtcnn import MTCNNDetector; "
            "MTCNNDetector('cpu')([numpy.zeros((60, 60, 3), numpy.uint8)]); "
            "assert not {'torch', 'torchvision'} & set(sys.modules), 'imported'")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
