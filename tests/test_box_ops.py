"""box_ops against torchvision.ops, which it replaces on MTCNN's path: the same kept boxes in
the same order (ties, empty and duplicate boxes, IoUs exactly at the threshold, thousands of
boxes), the same RoIAlign crops (boxes partly outside, under a pixel, bigger than the image);
and importing MTCNN no longer imports torchvision."""

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


@pytest.mark.parametrize("n", [0, 1, 7, 300, 1500])
@pytest.mark.parametrize("threshold", [-0.1, 0.0, 0.3, 0.5, 0.7, 1.0])
def test_nms_keeps_what_torchvision_keeps(n: int, threshold: float) -> None:
    for seed, extent in ((n, 100.0), (n + 1, 1000.0)):
        boxes, scores = random_boxes(n, seed, extent)
        assert torch.equal(box_ops.nms(boxes, scores, threshold),
                           tv.nms(boxes, scores, threshold))
        boxes, scores = random_boxes(n, seed, extent, dyadic=True)
        assert torch.equal(box_ops.nms(boxes, scores, threshold),
                           tv.nms(boxes, scores, threshold))


def test_nms_compares_like_torchvisions_cpu_kernel_at_the_threshold() -> None:
    # IoU 3 / 10 is float32(0.3), above the double 0.3 that torchvision compares it with
    boxes = torch.tensor([[0.0, 0, 10, 1], [0, 0, 3, 1], [20, 0, 30, 1], [20, 0, 25, 1]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    for threshold in (0.3, 0.5):
        kept = box_ops.nms(boxes, scores, threshold)
        assert torch.equal(kept, tv.nms(boxes, scores, threshold))
    assert box_ops.nms(boxes, scores, 0.3).tolist() == [0, 2]


def test_nms_on_many_boxes_and_in_float64() -> None:
    g = torch.Generator().manual_seed(0)
    corner = torch.rand(6000, 2, generator=g) * 2000
    boxes = torch.cat([corner, corner + 10 + torch.rand(6000, 2, generator=g) * 60], 1)
    scores = torch.rand(6000, generator=g)
    for b in (boxes, boxes.double()):
        assert torch.equal(box_ops.nms(b, scores.to(b.dtype), 0.5),
                           tv.nms(b, scores.to(b.dtype), 0.5))


@pytest.mark.parametrize("n", [0, 5, 400, 1200])
def test_batched_nms_keeps_what_torchvision_keeps(n: int) -> None:
    boxes, scores = random_boxes(n, n, dyadic=True)
    idxs = torch.randint(0, 4, (n,), generator=torch.Generator().manual_seed(n))
    for threshold in (0.0, 0.5, 0.7):
        kept = box_ops.batched_nms(boxes, scores, idxs, threshold)
        assert torch.equal(kept, per_category(boxes, scores, idxs, threshold))
        if n <= 1000 or n == len(scores.unique()):  # beyond: torchvision's order of ties
            assert torch.equal(kept, tv.batched_nms(boxes, scores, idxs, threshold))
    scores = torch.rand(n, generator=torch.Generator().manual_seed(n))  # no ties
    assert torch.equal(box_ops.batched_nms(boxes, scores, idxs, 0.5),
                       tv.batched_nms(boxes, scores, idxs, 0.5))


def test_batched_nms_keeps_categories_apart_where_boxes_reach_below_zero() -> None:
    boxes, scores = random_boxes(500, 3, negative=True)
    idxs = torch.randint(0, 3, (500,), generator=torch.Generator().manual_seed(3))
    for threshold in (0.0, 0.5):
        assert torch.equal(box_ops.batched_nms(boxes, scores, idxs, threshold),
                           per_category(boxes, scores, idxs, threshold))


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


@pytest.mark.parametrize("output_size", [12, 24, 48])
@pytest.mark.parametrize("aligned", [True, False])
def test_roi_align_crops_what_torchvision_crops(output_size: int, aligned: bool) -> None:
    g = torch.Generator().manual_seed(output_size)
    for height, width in ((1, 1), (5, 90), (61, 40)):
        images = torch.rand(2, 3, height, width, generator=g) * 2
        boxes = [roi_boxes(40, height, width, g), roi_boxes(0, height, width, g)]
        if height > 1:
            boxes = boxes[::-1] + [roi_boxes(30, height, width, g)]
            images = torch.cat([images, images[:1].flip(2)])
        crops = box_ops.roi_align(images, boxes, output_size, aligned=aligned)
        assert crops.shape == (sum(map(len, boxes)), 3, output_size, output_size)
        torch.testing.assert_close(crops, tv.roi_align(images, boxes, output_size,
                                                        aligned=aligned),
                                   atol=1e-5, rtol=0)


def test_roi_align_in_float64_and_one_box_at_a_time_crops_what_torchvision_crops(
        monkeypatch) -> None:
    g = torch.Generator().manual_seed(5)
    images = torch.rand(2, 3, 61, 90, generator=g, dtype=torch.float64) * 2
    boxes = [roi_boxes(50, 61, 90, g).double(), roi_boxes(20, 61, 90, g).double()]
    expected = tv.roi_align(images, boxes, 24, aligned=True)
    crops = box_ops.roi_align(images, boxes, 24)
    assert crops.dtype == torch.float64
    torch.testing.assert_close(crops, expected, atol=1e-12, rtol=0)
    images, boxes = images.float(), [b.float() for b in boxes]
    monkeypatch.setattr(box_ops, "ROI_BUDGET", 1)  # every box in a batch of its own
    torch.testing.assert_close(box_ops.roi_align(images, boxes, 24),
                               tv.roi_align(images, boxes, 24, aligned=True), atol=1e-5, rtol=0)


@pytest.mark.e2e
def test_importing_mtcnn_leaves_torchvision_unimported() -> None:
    code = "import facecnn.models.mtcnn, sys; assert 'torchvision' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")
def test_cuda_matches_torchvisions_cuda_kernels() -> None:
    boxes = random_boxes(3000, 7, 500.0, dyadic=True)[0].cuda()
    scores = torch.randperm(3000, generator=torch.Generator().manual_seed(7)).float().cuda()
    idxs = torch.randint(0, 3, (3000,), generator=torch.Generator().manual_seed(7)).cuda()
    for threshold in (0.3, 0.5, 0.7):  # (ties come in the order of each one's sort)
        assert torch.equal(box_ops.nms(boxes, scores, threshold),
                           tv.nms(boxes, scores, threshold))
        assert torch.equal(box_ops.batched_nms(boxes, scores, idxs, threshold),
                           tv.batched_nms(boxes, scores, idxs, threshold))
    g = torch.Generator().manual_seed(1)
    images = torch.rand(1, 3, 200, 300, generator=g).cuda()
    rois = [roi_boxes(500, 200, 300, g).cuda()]
    for output_size in (24, 48):
        torch.testing.assert_close(box_ops.roi_align(images, rois, output_size),
                                   tv.roi_align(images, rois, output_size, aligned=True),
                                   atol=1e-5, rtol=0)
