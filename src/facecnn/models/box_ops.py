"""Non-maximum suppression and RoIAlign in plain PyTorch, for MTCNN.

They stand in for torchvision.ops (importing torchvision costs 1.5-2 s of start-up, mostly
torch._dynamo, on the default face-detection path) and give the results of its kernels: the
same kept boxes in the same order, and the same crops to float rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

NMS_BLOCK = 256  # boxes NMS settles together, at most
NMS_PAIRS = 1 << 20  # box pairs NMS compares at once, at most: memory O(this), not O(n^2)
ROI_BUDGET = 1 << 23  # float64 values RoIAlign samples at once: bounds memory on big boxes


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Indices of the boxes (x1, y1, x2, y2) kept by greedy NMS, by decreasing score.

    Matches torchvision.ops.nms: a box goes when its IoU with a kept, higher-scoring box
    exceeds `iou_threshold`; equal scores keep their input order, as in torchvision's CPU
    kernel, and IoUs are computed as its kernels do (0 / 0 for two empty boxes suppresses
    nothing)."""
    return _greedy_nms(boxes, scores, iou_threshold, None)


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """`nms` run independently within each category `idxs`, kept indices by decreasing score.

    Matches torchvision.ops.batched_nms. For small inputs torchvision offsets each
    category's boxes by (largest coordinate + 1) and runs one NMS; here a box only
    suppresses boxes of its own category instead, so coordinates keep their values. The two
    differ only where the offset's rounding moves an IoU across the threshold, or where
    negative coordinates make torchvision's offset boxes of different categories overlap
    (then this is right). For big inputs torchvision runs NMS per category, as this does."""
    return _greedy_nms(boxes, scores, iou_threshold, idxs)


def _greedy_nms(boxes: Tensor, scores: Tensor, iou_threshold: float,
                groups: Tensor | None) -> Tensor:
    """Greedy NMS in blocks of the score order. A block first drops the boxes that a box kept
    before it suppresses (comparing only kept boxes that reach across a box's left-right
    extent), then settles its own boxes by iterating `keep = alive & nothing kept and
    earlier suppresses it` to its fixed point: the greedy result, as box i is settled once
    boxes 0..i-1 are, so it takes at most one pass per box and usually a few. Blocks shrink
    as more boxes are kept, so that a step compares about NMS_PAIRS pairs at most."""
    order = scores.sort(descending=True, stable=True).indices
    boxes = boxes[order]
    groups = None if groups is None else groups[order]
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    threshold = _iou_threshold(iou_threshold, boxes)
    kept = order.new_zeros(0)  # positions in `order` kept so far, by left edge
    found, start = [kept], 0
    while start < len(order):
        size = max(NMS_BLOCK // 8, min(NMS_BLOCK, NMS_PAIRS // max(len(kept), 1)))
        block = torch.arange(start, min(start + size, len(order)), device=order.device)
        alive = torch.ones_like(block, dtype=torch.bool)
        if len(kept):
            near, other = _near(boxes, kept, block, threshold)
            alive[near[_suppresses(boxes, area, groups, other, block.take(near), threshold)]] \
                = False
        later = _suppresses(boxes, area, groups, block[:, None], block, threshold).triu(1)
        keep = alive
        while True:
            settled = alive & ~(later & keep[:, None]).any(0)
            if torch.equal(settled, keep):
                break
            keep = settled
        found.append(block[keep])
        kept = torch.cat([kept, found[-1]])
        kept = kept.take(boxes[kept, 0].argsort())
        start += size
    return order.take(torch.cat(found))


def _iou_threshold(iou_threshold: float, boxes: Tensor) -> float:
    """The threshold that makes `iou > it` in the boxes' dtype decide as torchvision does: its
    CPU kernel compares each IoU with the threshold as a double, its CUDA kernel as a float."""
    as_dtype = torch.tensor(iou_threshold, dtype=boxes.dtype)
    if boxes.device.type == "cpu" and as_dtype.item() > iou_threshold:
        as_dtype = torch.nextafter(as_dtype, torch.tensor(-torch.inf, dtype=boxes.dtype))
    return as_dtype.item()


def _near(boxes: Tensor, kept: Tensor, block: Tensor, threshold: float
          ) -> tuple[Tensor, Tensor]:
    """(block position, kept box) pairs that may overlap: the kept boxes (sorted by left
    edge) whose left edges lie before a block box's right edge and less than the widest
    kept box's width before its left edge (in float64, so that rounding drops no pair);
    all pairs if even disjoint boxes suppress (threshold below 0)."""
    lefts = boxes[kept, 0].double()
    if threshold < 0:
        first, end = torch.zeros_like(block), torch.full_like(block, len(kept))
    else:
        widest = (boxes[kept, 2].double() - lefts).max()
        first = torch.searchsorted(lefts, boxes[block, 0].double() - widest, right=True)
        end = torch.searchsorted(lefts, boxes[block, 2].double())
    count = (end - first).clamp(min=0)
    near = torch.repeat_interleave(count)
    step = torch.arange(len(near), device=block.device) - (count.cumsum(0) - count).take(near)
    return near, kept.take(first.take(near) + step)


def _suppresses(boxes: Tensor, area: Tensor, groups: Tensor | None, i: Tensor, j: Tensor,
                threshold: float) -> Tensor:
    """IoU(box i, box j) > threshold (and the same group, if grouped), broadcasting the index
    tensors; the IoU is torchvision's: intersection / (area i + area j - intersection)."""
    a = boxes.index_select(0, i.flatten()).view(*i.shape, 4)
    b = boxes.index_select(0, j.flatten()).view(*j.shape, 4)
    width = torch.minimum(a[..., 2], b[..., 2]) - torch.maximum(a[..., 0], b[..., 0])
    height = torch.minimum(a[..., 3], b[..., 3]) - torch.maximum(a[..., 1], b[..., 1])
    inter = width.clamp_(min=0) * height.clamp_(min=0)
    over = inter / (area.take(i) + area.take(j) - inter) > threshold
    return over if groups is None else over & (groups.take(i) == groups.take(j))


def roi_align(input: Tensor, boxes: list[Tensor], output_size: int,
              aligned: bool = True) -> Tensor:
    """(K, C, output_size, output_size) crops of `input` (N, C, H, W): `boxes[i]` (x1, y1, x2,
    y2), in input pixels, cut from image i, in order.

    Matches torchvision.ops.roi_align with spatial_scale 1 and sampling_ratio -1, to float
    rounding: each output bin averages ceil(box side / output_size) bilinear samples per
    side; a sample more than a pixel outside the image reads 0, one nearer reads the edge.
    `aligned` shifts boxes by half a pixel, as there; without it boxes are at least 1 x 1.
    MTCNN uses aligned=True; both are supported and tested. The sample positions are
    torchvision's floats, clamped by its rules; `grid_sample` reads them in float64, so its
    coordinate round trip costs nothing. Boxes go by image and sample grid, ROI_BUDGET
    values at a time."""
    channels, height, width = input.shape[1:]
    rois = torch.cat(boxes).to(input.dtype)
    image = torch.cat([torch.full((len(b),), i, device=input.device)
                       for i, b in enumerate(boxes)])
    crops = input.new_zeros((len(rois), channels, output_size, output_size))
    offset = 0.5 if aligned else 0.0
    start = rois[:, :2] - offset  # (x, y)
    size = (rois[:, 2:] - offset) - start
    if not aligned:
        size = size.clamp(min=1)
    bin_size = size / output_size
    grids = torch.ceil(bin_size).clamp(min=0).long()  # samples per bin side; none: zeros
    keys, group = torch.unique(torch.cat([image[:, None], grids], 1), dim=0,
                               return_inverse=True)
    source = input.double()
    for g, (i, grid_x, grid_y) in enumerate(keys.tolist()):
        if not grid_x or not grid_y:
            continue
        per_box = (channels + 2) * output_size ** 2 * grid_x * grid_y
        for k in torch.nonzero(group == g)[:, 0].split(max(1, ROI_BUDGET // per_box)):
            xs = _samples(start[k, 0], bin_size[k, 0], grid_x, output_size, width)
            ys = _samples(start[k, 1], bin_size[k, 1], grid_y, output_size, height)
            at = torch.stack(torch.broadcast_tensors(xs[:, None], ys[:, :, None]), 3)
            # (1, C, n * bins * grid y, bins * grid x), zero outside the image
            read = F.grid_sample(source[i:i + 1], at.flatten(0, 1)[None], align_corners=False)
            bins = read.view(-1, grid_y, output_size * grid_x).sum(1).view(-1, grid_x) \
                @ read.new_full((grid_x,), 1 / (grid_x * grid_y))  # each bin's mean
            crops[k] = bins.view(channels, len(k), output_size, output_size).transpose(0, 1) \
                .to(input.dtype)
    return crops


def _samples(start: Tensor, bin_size: Tensor, grid: int, bins: int, limit: int
             ) -> Tensor:
    """Along one axis, the boxes' (boxes, bins * grid) sample positions, clamped to the image
    as torchvision does (those it reads as 0 sent far outside), in float64 and normalized
    for `grid_sample` (align_corners False, zero padding)."""
    bin_index = torch.arange(bins, dtype=start.dtype, device=start.device)[:, None]
    sub = torch.arange(grid, dtype=start.dtype, device=start.device) + 0.5
    start, bin_size = start[:, None, None], bin_size[:, None, None]
    # the same operations in the same order as torchvision, for the same floats
    at = start + bin_index * bin_size + sub * bin_size / grid
    at = torch.where((at >= -1) & (at <= limit), at.clamp(0, limit - 1), -2.0 * limit - 2)
    return ((2 * at.double() + 1) / limit - 1).flatten(1)
