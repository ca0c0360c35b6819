"""Non-maximum suppression and RoIAlign in numpy, for MTCNN without PyTorch.

They give torchvision.ops' results (tests/test_box_ops.py holds them to it): the same kept
boxes in the same order, and the same crops to float rounding. numpy keeps MTCNN's path free
of PyTorch's 1.5-2 s import, and its per-call overhead is a few microseconds where
PyTorch's is tens, which is what MTCNN's many small steps pay.
"""

from __future__ import annotations

import numpy as np

ROI_BUDGET = 1 << 23  # pixel values RoIAlign gathers at once: bounds memory on big boxes


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes (x1, y1, x2, y2) kept by greedy NMS, by decreasing score.

    As torchvision.ops.nms on the CPU: a box goes when its IoU with a kept, higher-scoring
    box exceeds `iou_threshold` (compared as a double); equal scores keep their input order;
    IoUs are float32, and 0 / 0 for two empty boxes suppresses nothing."""
    boxes = np.asarray(boxes, np.float32)
    order = np.argsort(-np.asarray(scores), kind="stable")
    x1, y1, x2, y2 = boxes[order].T
    area = (x2 - x1) * (y2 - y1)
    kept: list[int] = []
    rest = np.arange(len(order))
    with np.errstate(invalid="ignore", divide="ignore"):
        while len(rest):
            i, rest = rest[0], rest[1:]
            kept.append(int(i))
            width = np.maximum(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0)
            height = np.maximum(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0)
            inter = width * height
            iou = inter / (area[i] + area[rest] - inter)
            rest = rest[~(iou.astype(np.float64) > iou_threshold)]
    return order[np.array(kept, dtype=np.int64)]


def nms_per_group(boxes: np.ndarray, scores: np.ndarray, groups: np.ndarray,
                  iou_threshold: float) -> np.ndarray:
    """`nms` within each group (an image's boxes), the kept indices in ascending order."""
    kept = [np.flatnonzero(groups == g)[nms(boxes[groups == g], scores[groups == g],
                                            iou_threshold)] for g in np.unique(groups)]
    return np.sort(np.concatenate(kept)) if kept else np.zeros(0, np.int64)


def roi_align(image: np.ndarray, boxes: np.ndarray, output_size: int) -> np.ndarray:
    """(K, C, output_size, output_size) float32 crops of `image` (H, W, C) in `boxes` (K, 4:
    x1, y1, x2, y2, in pixels).

    As torchvision.ops.roi_align with spatial_scale 1, sampling_ratio -1 and aligned=True:
    each output bin averages ceil(box side / output_size) bilinear samples per side, placed,
    clamped and weighed by its rules (a sample more than a pixel outside the image weighs
    nothing, one nearer reads the edge). A sample's weight is a row weight times a column
    weight, so a crop is two small matrix products over the pixels its box reaches (rows,
    then columns), done for many boxes at once: boxes of similar size (their sample grids
    within a factor of two) together, ROI_BUDGET pixel values at a time."""
    height, width, channels = image.shape
    boxes = np.asarray(boxes, np.float32)
    crops = np.zeros((len(boxes), channels, output_size, output_size), np.float32)
    start = boxes[:, :2] - np.float32(0.5)
    bin_size = ((boxes[:, 2:] - np.float32(0.5)) - start) / np.float32(output_size)
    grid = np.ceil(bin_size).astype(np.int64)  # samples per bin side; none: zeros
    sampled = np.flatnonzero((grid > 0).all(1))
    classes = np.ceil(np.log2(grid[sampled].max(1, initial=1)))
    for size_class in np.unique(classes):
        members = sampled[classes == size_class]
        side = int(2 ** size_class) * (output_size + 1) + 1
        chunks = min(len(members), -(-len(members) * side * side * channels // ROI_BUDGET))
        for chunk in np.array_split(members, chunks):
            crops[chunk] = _crops(image, start[chunk], bin_size[chunk], grid[chunk],
                                  output_size)
    return crops


def _crops(image: np.ndarray, start: np.ndarray, bin_size: np.ndarray, grid: np.ndarray,
           bins: int) -> np.ndarray:
    """The crops (k, C, bins, bins) of boxes that all have samples."""
    (col0, col_weights), (row0, row_weights) = (
        _axis_weights(start[:, axis], bin_size[:, axis], grid[:, axis], bins,
                      image.shape[1 - axis]) for axis in (0, 1))
    windows = np.lib.stride_tricks.sliding_window_view(
        image, (row_weights.shape[2], col_weights.shape[2]), axis=(0, 1))
    patches = windows[row0, col0]  # (k, C, band rows, band columns)
    return (row_weights[:, None] @ patches @ col_weights[:, None].transpose(0, 1, 3, 2)
            ).astype(np.float32)


def _axis_weights(start: np.ndarray, bin_size: np.ndarray, grid: np.ndarray, bins: int,
                  limit: int) -> tuple[np.ndarray, np.ndarray]:
    """One axis of k boxes: the first pixel each reads and the (k, bins, band) weights of the
    band of pixels from there (as wide as the widest box's, inside the image): each bin's
    samples' bilinear weights, summed and divided by their number."""
    count = len(start)
    sub = np.arange(int(grid.max()), dtype=np.float32)
    start, bin_size = start[:, None, None], bin_size[:, None, None]
    per_side = grid[:, None, None]
    # torchvision's float32 operations, in its order
    at = (start + np.arange(bins, dtype=np.float32)[:, None] * bin_size
          + (sub + np.float32(0.5)) * bin_size / per_side.astype(np.float32))
    inside = (sub < per_side) & (at >= -1) & (at <= limit)
    at = np.maximum(at, 0)
    low = np.floor(at)
    between = inside & (low < limit - 1)  # from the last pixel on, it alone is read
    high_weight = np.where(between, at - low, 0).astype(np.float32)
    low_weight = np.where(inside, 1 - high_weight, 0).astype(np.float32)
    low = np.minimum(low.astype(np.int64), limit - 1)
    first = np.where(inside, low, limit).min((1, 2))
    band = max(int((np.where(inside, low + between, -1).max((1, 2)) - first).max()) + 1, 1)
    first = np.clip(first, 0, limit - band)
    row = (np.arange(count)[:, None, None] * bins + np.arange(bins)[:, None]) * band
    offset = low - first[:, None, None]
    weights = (np.bincount((row + np.clip(offset, 0, band - 1)).ravel(), low_weight.ravel(),
                           count * bins * band)
               + np.bincount((row + np.clip(offset + between, 0, band - 1)).ravel(),
                             high_weight.ravel(), count * bins * band))
    return first, (weights.reshape(count, bins, band) / per_side).astype(np.float32)
