"""Non-maximum suppression and RoIAlign in plain PyTorch, for MTCNN.

They stand in for torchvision.ops (importing torchvision costs 1.5-2 s of start-up, mostly
torch._dynamo, on the default face-detection path) and give the results of its kernels: the
same kept boxes in the same order, and the same crops to float rounding.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

NMS_BLOCK = 256  # boxes NMS settles together, at most
NMS_PAIRS = 1 << 20  # box pairs NMS compares at once, at most: memory O(this), not O(n^2)
ROI_BUDGET = 1 << 23  # values RoIAlign reads and weighs at once: bounds memory on big boxes
REGION_STEP = 2  # ratio of the box sides RoIAlign batches together: padding vs batches
BLOCK = 8  # RoIAlign bins one band of pixels serves: wider re-reads less, multiplies more


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
    torchvision's floats, clamped by its rules. A bilinear sample's weight is a row weight
    times a column weight, so a bin's mean is separable: the rows first (BLOCK bins at a
    time weigh the band of image rows their samples fall between, over the box's columns:
    one small matrix product), then the columns of that the same way. That reads a box's
    pixels about once, where sampling (torchvision, grid_sample) reads four per sample, and
    runs in the input's dtype. Boxes go in batches of similar size (sides within
    REGION_STEP), ROI_BUDGET values at a time."""
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
    # batches: boxes whose in-image extents fall in the same REGION_STEP classes
    limits = torch.tensor([width, height], device=input.device)
    extent = ((start + size).clamp(min=0).minimum(limits) - start.clamp(min=0).minimum(limits)
              ).ceil().long() + 2
    classes = (extent.clamp(min=1).log() / math.log(REGION_STEP)).long()
    sampled = torch.nonzero((grids > 0).all(1))[:, 0]
    keys, group = torch.unique(classes[sampled], dim=0, return_inverse=True)
    pixels = input.permute(0, 2, 3, 1).contiguous().view(-1)  # (N, H, W, C), flat
    for g in range(len(keys)):
        members = sampled[group == g]
        side = extent[members].amax(0).tolist()
        per_box = channels * (side[0] + output_size) * (side[1] + output_size) * 2
        for k in members.split(max(1, ROI_BUDGET // per_box)):
            crops[k] = _crops(pixels, (height, width, channels), image[k], start[k],
                              bin_size[k], grids[k], output_size)
    return crops


def _crops(pixels: Tensor, shape: tuple[int, int, int], image: Tensor, start: Tensor,
           bin_size: Tensor, grids: Tensor, bins: int) -> Tensor:
    """RoIAlign crops (k, C, bins, bins) of boxes with samples, from `pixels`: the images
    (N, H, W, C) flattened. Weighs the row bands over the boxes' columns, then the column
    bands of what that gave."""
    height, width, channels = shape
    count = len(start)
    (col_first, col_weights), (row_first, row_weights) = _bands(start, bin_size, grids, bins,
                                                                (width, height))
    # the columns the boxes' column bands cover, from x0 on (moved inside the image)
    x0 = col_first.amin(1)
    cols = int((col_first.amax(1) + col_weights.shape[3] - x0).max())
    x0 = x0.clamp(max=width - cols)
    # a run of `cols` pixels starts at each pixel: the image rows over those columns
    runs = pixels.as_strided((len(pixels) // channels - cols + 1, cols * channels),
                             (channels, 1))
    by_rows = _weigh(runs, image * height * width + x0, row_first, width, row_weights, bins)
    # (k * cols, bins y * C): a box's columns, each with its bins' rows
    by_rows = by_rows.reshape(count, bins, cols, channels).transpose(1, 2) \
        .reshape(count * cols, bins * channels)
    both = _weigh(by_rows, torch.arange(count, device=pixels.device) * cols - x0, col_first,
                  1, col_weights, bins)
    samples = (grids[:, 0] * grids[:, 1]).to(pixels.dtype)
    return both.reshape(count, bins, bins, channels).permute(0, 3, 2, 1) \
        / samples[:, None, None, None]


def _weigh(table: Tensor, base: Tensor, first: Tensor, step: int, weights: Tensor,
           bins: int) -> Tensor:
    """(k, bins, run) weighted sums of `table`'s rows (runs): for box i's block j of bins,
    the rows base[i] + (first[i, j] + t) * step, t < band, weighed by weights[i, j] (blocks,
    bins per block, band)."""
    count, blocks, per_block, band = weights.shape
    at = base[:, None, None] + (first[:, :, None] + torch.arange(band, device=base.device)) \
        * step
    rows = table.index_select(0, at.flatten()).view(count * blocks, band, table.shape[1])
    return (weights.view(count * blocks, per_block, band) @ rows) \
        .view(count, blocks * per_block, -1)[:, :bins]


def _bands(start: Tensor, bin_size: Tensor, grid: Tensor, bins: int,
           limits: tuple[int, int]) -> list[tuple[Tensor, Tensor]]:
    """Per axis (x, y: columns, rows), the pixels that each block of BLOCK bins weighs (a
    band): the first (boxes, blocks) and the weights (boxes, blocks, BLOCK, band) of it and
    the next ones, the sums of each bin's samples' bilinear weights, each sample placed,
    clamped and weighed by torchvision's rules (one out of bounds weighs nothing); bands
    as wide as the axis' widest, inside the image."""
    per_block = min(BLOCK, bins)
    blocks = -(-bins // per_block)
    sub = torch.arange(int(grid.max()), device=start.device)
    start, bin_size, grid = start[:, :, None, None], bin_size[:, :, None, None], \
        grid[:, :, None, None]
    bin_index = torch.arange(blocks * per_block, dtype=start.dtype, device=start.device)
    bin_index = bin_index[:, None]
    limit = torch.tensor(limits, device=start.device)[:, None, None]
    # the same operations in the same order as torchvision, for the same floats
    at = start + bin_index * bin_size + (sub + 0.5) * bin_size / grid  # (k, 2, bins, grid)
    inside = (at >= -1) & (at <= limit) & (sub < grid) & (bin_index < bins)
    at = at.clamp(min=0)
    low = at.floor()
    between = inside & (low < limit - 1)  # from the last pixel on, it alone is read
    high_weight = torch.where(between, at - low, 0)
    low_weight = torch.where(inside, 1 - high_weight, 0)
    low = low.long().minimum(limit - 1)
    by_block = (len(start), 2, blocks, -1)
    first = torch.where(inside, low, limit).view(by_block).amin(3)
    last = torch.where(inside, low + between.long(), -1).view(by_block).amax(3)
    bands = []
    for axis, band in enumerate((last - first).amax((0, 2)).clamp(min=0).add(1).tolist()):
        axis_first = first[:, axis].clamp(max=limits[axis] - band)
        axis_low = torch.where(inside[:, axis],
                               low[:, axis] - axis_first.repeat_interleave(per_block, 1)[..., None],
                               0)
        weights = start.new_zeros((len(start), blocks * per_block, band))
        weights.scatter_add_(2, axis_low, low_weight[:, axis])
        weights.scatter_add_(2, axis_low + between[:, axis].long(), high_weight[:, axis])
        bands.append((axis_first, weights.view(len(start), blocks, per_block, band)))
    return bands
