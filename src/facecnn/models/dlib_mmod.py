"""dlib's MMOD CNN face detector (`mmod_human_face_detector.dat`) run by PyTorch, giving the
boxes and scores of dlib's `cnn_face_detection_model_v1`, on whole batches and on CUDA.

What dlib does, and this module after it, for one image and `upsample` n:
1. n times 2x bilinear upsampling (`pyramid_up` with `pyramid_down<2>`): h x w -> (2h+1) x
   (2w+2), values truncated to integers as dlib stores uint8 pixels.
2. The input layer (`input_rgb_image_pyramid<pyramid_down<6>>`) maps pixels to
   (value - mean) / 256 and tiles an image pyramid into one tensor: levels of floor(5/6)
   the size of the level above, down to 5 rows; the first levels stacked in a column, the
   rest doubling back up along the right edge; `padding` zeros between levels and
   `outer_padding` around all (`tiled_layout`). Each level is a bilinear resize (corners
   aligned, edges clamped) of the level above, read from the tiled tensor itself.
3. The network runs once on that tensor: three 5x5/2 convolutions and three 5x5 ones (each
   with a per-channel affine and ReLU), then a 9x9 convolution giving one score per window.
4. Every output cell scoring above 0 is a window (80x80 in this file) centred on the cell's
   input point; its rectangle is mapped to the nearest pyramid level and scaled up to the
   image (`point_up`: p * 6/5 + 0.3 per level), then rounded to integers.
5. Windows by falling score are kept unless one overlaps a kept window: IoU (intersection
   over the bounding box of the pair, dlib's definition) above the file's threshold, or one
   covering more than its percent-covered threshold of the other.
6. Rectangles are mapped back through the upsampling (p / 2 - (1.25, 0.75) per level).

Boxes are dlib rectangles as (left, top, right, bottom), right and bottom inclusive - the
(x1, y1, x2, y2) facecnn's detectors return for dlib's detectors.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facecnn.data.decode import as_rgb
from facecnn.errors import FacecnnError
from facecnn.models.dlib_port import (
    PYRAMID_INPUTS,
    DlibFormatError,
    cached_conversion,
    model_file,
    read_dlib_net,
)
from facecnn.models.dlib_resnet import Affine, state_dict_from, to_input

MODEL_FILE = "mmod_human_face_detector.dat"
# (filters, kernel, stride, padding) of each convolution, input to output; all but the last
# are followed by an affine and a ReLU (dlib's cnn_face_detection_model_v1 net_type)
CONVS = ((16, 5, 2, 0), (32, 5, 2, 0), (32, 5, 2, 0), (45, 5, 1, 2), (45, 5, 1, 2),
         (45, 5, 1, 2), (1, 9, 1, 4))
PYRAMID_RATE = 5 / 6  # pyramid_down<6>: (N - 1) / N
MIN_LEVEL_ROWS = 5
UPSAMPLE_SHIFT = np.array([1.25, 0.75])  # pyramid_down<2>: down(p) = p / 2 - shift

Box = tuple[float, float, float, float]


class MMODNet(nn.Sequential):
    """(B, 3, H, W) tiled pyramid from `tile_pyramid` -> (B, 1, H', W') window scores."""

    def __init__(self) -> None:
        layers: list[nn.Module] = []
        channels = 3
        for i, (filters, kernel, stride, padding) in enumerate(CONVS):
            layers.append(nn.Conv2d(channels, filters, kernel, stride, padding))
            if i < len(CONVS) - 1:
                layers += [Affine(filters), nn.ReLU()]
            channels = filters
        super().__init__(*layers)


def folded(net: MMODNet) -> nn.Sequential:
    """The same function in fewer passes over memory: each affine folded into the
    convolution before it (conv(x) * g + b is a convolution with weights * g and bias
    * g + b) and ReLUs in place. Scores move by ~1e-5."""
    layers: list[nn.Module] = []
    for module in net:
        if isinstance(module, nn.Conv2d):
            layers.append(copy.deepcopy(module))
        elif isinstance(module, Affine):
            conv = layers[-1]
            with torch.no_grad():
                conv.weight.mul_(module.weight.view(-1, 1, 1, 1))
                conv.bias.mul_(module.weight).add_(module.bias)
        else:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers).eval()


def output_to_input(index: np.ndarray) -> np.ndarray:
    """dlib's output_tensor_to_input_tensor: the input row (or column) an output cell's
    window is centred on."""
    for _, kernel, stride, padding in reversed(CONVS):
        index = index * stride - padding + kernel // 2
    return index


def output_size(size: int) -> int:
    """Rows (or columns) of the score map for an input of `size`; <= 0 when too small."""
    for _, kernel, stride, padding in CONVS:
        size = (size + 2 * padding - kernel) // stride + 1
    return size


@dataclass(frozen=True)
class DetectorSettings:
    """The detector file's non-weight content: input mean (RGB, 0-255), the pyramid's
    (padding, outer padding), the window (width, height) and the NMS thresholds."""

    mean_rgb: tuple[float, float, float]
    padding: tuple[int, int]
    window: tuple[int, int]
    nms_iou: float
    nms_covered: float


@dataclass(frozen=True)
class Tiling:
    """Where each pyramid level lies in the tiled image: (left, top, right, bottom),
    inclusive, largest level first; and the tiled image's (rows, columns)."""

    rects: tuple[tuple[int, int, int, int], ...]
    size: tuple[int, int]


@lru_cache(maxsize=64)
def tiled_layout(rows: int, cols: int, padding: int, outer: int) -> Tiling:
    """dlib's compute_tiled_image_pyramid_details for pyramid_down<6>."""
    if rows * cols == 0:
        return Tiling((), (0, 0))
    sizes = [(rows, cols)]
    while True:
        rows, cols = math.floor(PYRAMID_RATE * rows), math.floor(PYRAMID_RATE * cols)
        if rows * cols == 0 or rows < MIN_LEVEL_ROWS:
            break
        sizes.append((rows, cols))
    (top_h, width) = sizes[0]
    total = sum(h + padding for h, _ in sizes) - 2 * padding
    height = prev_width = 0
    for h, w in sizes:  # the first column: until a level fits beside the one above it
        if w <= width - prev_width - padding and (height - top_h) * 2 >= total - top_h:
            break
        height += h + padding
        prev_width = w
    height -= padding
    rects: list[tuple[int, int, int, int]] = []
    y = outer
    while y < height + outer and len(rects) < len(sizes):
        h, w = sizes[len(rects)]
        rects.append((outer, y, outer + w - 1, y + h - 1))
        y += h + padding
    y -= padding
    first = rects[0]
    while len(rects) < len(sizes):  # the rest: up along the right edge, bottom first
        h, w = sizes[len(rects)]
        rect = (outer + width - w, y - h, outer + width - 1, y - 1)
        if (max(first[0], rect[0]) <= min(first[2], rect[2])
                and max(first[1], rect[1]) <= min(first[3], rect[3])):
            break  # it would overlap the largest level
        rects.append(rect)
        y -= h + padding
    return Tiling(tuple(rects), (height + 2 * outer, width + 2 * outer))


def tile_pyramid(x: torch.Tensor, tiling: Tiling) -> torch.Tensor:
    """(B, 3, h, w) input-layer values -> (B, 3, rows, cols) tiled pyramid, zeros between
    levels; each level resized from the one above (dlib's tt::resize_bilinear)."""
    out = x.new_zeros((*x.shape[:2], *tiling.size))
    left, top, right, bottom = tiling.rects[0]
    out[..., top:bottom + 1, left:right + 1] = x
    for (pl, pt, pr, pb), (x1, y1, x2, y2) in zip(tiling.rects, tiling.rects[1:]):
        out[..., y1:y2 + 1, x1:x2 + 1] = F.interpolate(out[..., pt:pb + 1, pl:pr + 1],
                                                       size=(y2 - y1 + 1, x2 - x1 + 1),
                                                       mode="bilinear", align_corners=True)
    return out


def upsample_2x(x: torch.Tensor) -> torch.Tensor:
    """dlib's pyramid_up (pyramid_down<2>, bilinear) of (B, 3, h, w) pixel values."""
    h, w = x.shape[-2:]
    return F.interpolate(x, size=(2 * h + 1, 2 * w + 2), mode="bilinear",
                         align_corners=True).floor()


def _round(v: np.ndarray) -> np.ndarray:
    """dlib's drectangle -> rectangle conversion."""
    return np.floor(v + 0.5)


def _nearest_level(rects: np.ndarray, points: np.ndarray) -> np.ndarray:
    """dlib's nearest_rect: the first level containing each point, else the closest."""
    nearest = np.clip(points[:, None, :], rects[None, :, :2], rects[None, :, 2:])
    return np.argmin(np.linalg.norm(nearest - points[:, None, :], axis=2), axis=1)


def windows_in(scores: np.ndarray, tiling: Tiling, settings: DetectorSettings,
               threshold: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(rectangles (n, 4) in the pyramid's base image, scores (n,)) of the score map's
    cells above `threshold`, as dlib's loss_mmod tensor_to_dets maps them."""
    rows, cols = np.nonzero(scores > threshold)
    confidence = scores[rows, cols].astype(np.float64)
    centre = np.stack([output_to_input(cols), output_to_input(rows)], axis=1).astype(float)
    half = (np.array(settings.window, dtype=float) - 1) / 2  # centered_drect
    corners = np.stack([centre - half, centre + half], axis=1)  # (n, 2 corners, xy)
    rects = np.array(tiling.rects, dtype=float)
    level = _nearest_level(rects, _round(corners.mean(axis=1)))
    corners -= rects[level, None, :2]
    for step in range(1, len(rects)):  # pyramid_down<6>::point_up, `level` times
        up = level >= step
        corners[up] = corners[up] * (6 / 5) + 0.3
    return _round(corners.reshape(-1, 4)), confidence


def _overlaps(kept: np.ndarray, box: np.ndarray, iou: float, covered: float) -> bool:
    """dlib's test_box_overlap between one rectangle and each kept one (inclusive pixels;
    IoU's denominator is the pair's bounding box)."""
    def area(lt: np.ndarray, rb: np.ndarray) -> np.ndarray:
        return np.prod(np.maximum(rb - lt + 1, 0), axis=-1)
    inner = area(np.maximum(kept[:, :2], box[:2]), np.minimum(kept[:, 2:], box[2:]))
    outer = area(np.minimum(kept[:, :2], box[:2]), np.maximum(kept[:, 2:], box[2:]))
    hit = ((inner / outer > iou) | (inner / area(kept[:, :2], kept[:, 2:]) > covered)
           | (inner / area(box[:2], box[2:]) > covered))
    return bool((hit & (inner > 0)).any())


def non_max_suppression(boxes: np.ndarray, scores: np.ndarray, iou: float,
                        covered: float) -> list[int]:
    """Indices kept by dlib's greedy NMS, highest score first."""
    kept: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        if not kept or not _overlaps(boxes[kept], boxes[i], iou, covered):
            kept.append(int(i))
    return kept


def _converted(source: Path) -> dict[str, torch.Tensor]:
    net = read_dlib_net(source)
    if net.mmod is None or net.input_kind not in PYRAMID_INPUTS:
        raise DlibFormatError(f"{source} is not a dlib MMOD detector (loss {net.loss!r}, "
                              f"input {net.input_kind!r})")
    if len(net.mmod.windows) != CONVS[-1][0]:
        raise DlibFormatError(f"{source} has {len(net.mmod.windows)} detector windows; "
                              f"this port runs one")
    return {**state_dict_from(net, MMODNet()),
            "input_mean": torch.tensor(net.mean_rgb, dtype=torch.float64),
            "padding": torch.tensor(net.pyramid_padding),
            "window": torch.tensor(net.mmod.windows[0]),
            "nms": torch.tensor((net.mmod.nms_iou, net.mmod.nms_covered), dtype=torch.float64)}


def load_mmod(source: Path | None = None) -> tuple[MMODNet, DetectorSettings]:
    """dlib's detector network (eval mode) and settings, converted from the model file once
    and cached as safetensors in facecnn's cache directory."""
    source = Path(source) if source is not None else model_file(MODEL_FILE)
    state = dict(cached_conversion(source, "mmod", lambda: _converted(source)))
    nms = state.pop("nms").tolist()
    settings = DetectorSettings(tuple(state.pop("input_mean").tolist()),
                                tuple(state.pop("padding").tolist()),
                                tuple(state.pop("window").tolist()), nms[0], nms[1])
    net = MMODNet()
    net.load_state_dict(state)
    return net.eval(), settings


class MMODDetector:
    """`MMODDetector()(images, upsample)` -> per image, [((x1, y1, x2, y2), score), ...] as
    dlib's `cnn_face_detection_model_v1(file)(image, upsample)` finds them, best first.

    Images of one size run as one batch (up to `batch_size`); others one size at a time.
    """

    def __init__(self, device: str = "auto", batch_size: int = 8,
                 source: Path | None = None) -> None:
        from facecnn.runtime import flush_denormals, select_device

        flush_denormals()
        self.device = select_device(device)
        self.batch_size = batch_size
        net, self.settings = load_mmod(source)
        self.net = folded(net).to(self.device, memory_format=torch.channels_last)

    def __call__(self, images: Sequence[np.ndarray], upsample: int = 0
                 ) -> list[list[tuple[Box, float]]]:
        if upsample < 0:
            raise FacecnnError(f"upsample must be 0 or more, not {upsample}")
        images = [as_rgb(np.asarray(image)) for image in images]
        by_size: dict[tuple[int, ...], list[int]] = {}
        for i, image in enumerate(images):
            by_size.setdefault(image.shape, []).append(i)
        found: list[list[tuple[Box, float]]] = [[] for _ in images]
        for indices in by_size.values():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start:start + self.batch_size]
                for i, faces in zip(chunk, self._detect(np.stack([images[i] for i in chunk]),
                                                        upsample)):
                    found[i] = faces
        return found

    def _detect(self, batch: np.ndarray, upsample: int) -> list[list[tuple[Box, float]]]:
        x = torch.from_numpy(batch).to(self.device).permute(0, 3, 1, 2).float()
        for _ in range(upsample):
            x = upsample_2x(x)
        tiling = tiled_layout(*x.shape[-2:], *self.settings.padding)
        if not tiling.rects or min(output_size(n) for n in tiling.size) <= 0:
            return [[] for _ in batch]  # too small to hold a single window
        # TF32 convolutions would cost the agreement with dlib's scores on recent GPUs
        with torch.inference_mode(), torch.backends.cudnn.flags(enabled=True,
                                                                 allow_tf32=False):
            tiled = tile_pyramid(to_input(x, self.settings.mean_rgb), tiling)
            scores = self.net(tiled.contiguous(memory_format=torch.channels_last))
        return [self._faces(s, tiling, upsample) for s in scores[:, 0].cpu().numpy()]

    def _faces(self, scores: np.ndarray, tiling: Tiling, upsample: int
               ) -> list[tuple[Box, float]]:
        boxes, confidence = windows_in(scores, tiling, self.settings)
        kept = non_max_suppression(boxes, confidence, self.settings.nms_iou,
                                   self.settings.nms_covered)
        corners = boxes[kept].reshape(-1, 2, 2)
        for _ in range(upsample):  # pyramid_down<2>::rect_down
            corners = corners / 2 - UPSAMPLE_SHIFT
        return [(tuple(float(v) for v in box), float(c))
                for box, c in zip(_round(corners).reshape(-1, 4), confidence[kept])]
