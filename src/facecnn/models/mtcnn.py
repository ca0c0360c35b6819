"""MTCNN (Zhang et al., 2016) face detector, with the three networks' weights that the `mtcnn`
package (MIT) ships (models/mtcnn_nets.py runs them: onnxruntime on the CPU, PyTorch on a
GPU). Everything between the networks is numpy: no PyTorch is imported on the CPU.

What MTCNN does, and this module after it:
1. P-Net, fully convolutional, scans an image pyramid: scales 12 / min_face, then x0.709 while
   the shorter side stays >= 12 px (each level an area average of the image, as PyTorch's
   adaptive average pooling makes it). Each output cell (stride 2) scores a 12 x 12 window;
   the windows above the first threshold are thinned by NMS (IoU 0.5) per level, then (IoU
   0.7) over all levels, moved by the cell's box regression and made square.
2. R-Net scores a 24 x 24 crop (RoIAlign) of each of those boxes (all images' candidates in
   batches): above the second threshold, NMS (IoU 0.7), regression, square again.
3. O-Net does the same with 48 x 48 crops and also gives five landmarks, relative to its
   input box; above the third threshold and after regression, a box lying mostly inside a
   better one (intersection over the smaller area > 0.7) is dropped. Boxes are clipped to
   the image.

Crops reaching outside the image read black there, as MTCNN's zero-padded crops do. The
weights fit untransposed RGB images (the `mtcnn` package converted the Caffe originals, which
saw transposed ones). Boxes and points are continuous image coordinates: pixel (i, j) covers
[i, i + 1) x [j, j + 1).
"""

from __future__ import annotations

import functools
import math
import multiprocessing
import sys
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Sequence

import numpy as np

from facecnn.data.decode import as_rgb
from facecnn.errors import FacecnnError
from facecnn.models.box_ops import nms, nms_per_group, roi_align
from facecnn.models.mtcnn_nets import (
    CELL,
    SPECS,
    Net,
    OnnxNet,
    load_weights,
    onnx_file,
    uses_gpu,
    weights_dir,
)

__all__ = ["MTCNNDetector", "nms_over_smaller", "pyramid_scales", "weights_dir"]

STRIDE = 2  # P-Net's step, in pyramid pixels
PYRAMID_FACTOR = 0.709
PNET_NMS, PYRAMID_NMS, RNET_NMS, ONET_NMS = 0.5, 0.7, 0.7, 0.7
CROP_BATCH = 1024  # R-Net / O-Net crops per run: bounds memory on large batches

Box = tuple[float, float, float, float]
Detection = tuple[Box, float, np.ndarray]


@functools.cache
def _blas_pools():  # threadpoolctl.ThreadpoolController (found once: a scan of the libraries)
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def one_blas_thread() -> AbstractContextManager:
    """numpy's BLAS held to one thread: MTCNN's matrix products are too small to share, and
    BLAS threads waiting for work slow onnxruntime's (0.21 -> 0.16 s a group photo)."""
    return _blas_pools().limit(limits=1, user_api="blas")


def load_nets(device: str = "auto", folder: Path | None = None) -> tuple[Net, Net, Net]:
    """P-Net, R-Net and O-Net, ready to run on `device`: PyTorch's on a GPU, else
    onnxruntime's."""
    if uses_gpu(device):
        return _torch_nets(device, folder)
    return tuple(OnnxNet(name, onnx_file(name, folder)) for name in SPECS)  # type: ignore


def _torch_nets(device: str, folder: Path | None) -> tuple[Net, Net, Net]:
    from facecnn.models.mtcnn_torch import torch_nets

    return torch_nets({name: load_weights(name, folder) for name in SPECS}, device)


def pyramid_scales(height: int, width: int, min_face: int) -> list[float]:
    """The scales at which P-Net's 12 px window covers faces from `min_face` px up."""
    scales: list[float] = []
    scale = CELL / min_face
    while min(height, width) * scale >= CELL:
        scales.append(scale)
        scale *= PYRAMID_FACTOR
    return scales


def area_table(image: np.ndarray) -> np.ndarray:
    """The summed-area table (H + 1, W + 1, C) of an image's integer pixels: exact sums of any
    rectangle, from which every pyramid level is read (int32 where no sum can overflow it)."""
    height, width, channels = image.shape
    dtype = np.int32 if height * width * 255 < 2 ** 31 else np.int64
    table = np.zeros((height + 1, width + 1, channels), dtype)
    np.cumsum(image, 0, dtype=dtype, out=table[1:, 1:])
    np.cumsum(table[1:, 1:], 1, out=table[1:, 1:])
    return table


def area_resized(table: np.ndarray, height: int, width: int) -> np.ndarray:
    """The image behind `table` at `height` x `width` (at most its size), each pixel the
    mean of the pixels from floor(i * H / h) to ceil((i + 1) * H / h) (PyTorch's adaptive
    average pooling), (1, C, height, width) float32."""
    def bounds(out: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        i = np.arange(out)
        return i * size // out, -(-(i + 1) * size // out)

    (r0, r1), (c0, c1) = bounds(height, table.shape[0] - 1), bounds(width, table.shape[1] - 1)
    rows = table[r1] - table[r0]  # each output row's band, summed down, over every column
    sums = (rows[:, c1] - rows[:, c0]).transpose(2, 0, 1)
    area = (r1 - r0)[:, None] * (c1 - c0)[None, :]
    return (sums / area.astype(np.float32))[None].astype(np.float32)


def regress(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Move each corner by its offset times the box's width or height."""
    size = np.tile(boxes[:, 2:] - boxes[:, :2], 2)
    return (boxes + offsets * size).astype(np.float32)


def square(boxes: np.ndarray) -> np.ndarray:
    """The square on each box's centre with the box's longer side."""
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = (boxes[:, 2:] - boxes[:, :2]).max(1, keepdims=True) / 2
    return np.concatenate([centre - half, centre + half], 1).astype(np.float32)


def _place(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """O-Net's points (n, 10: five x then five y, relative to its input box) in image
    coordinates (n, 5, 2)."""
    size = boxes[:, 2:] - boxes[:, :2]
    return (boxes[:, None, :2] + np.stack([points[:, :5], points[:, 5:]], 2)
            * size[:, None]).astype(np.float32)


def nms_over_smaller(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    """Greedy NMS with overlap = intersection / the smaller area (MTCNN's "Min"), so a box
    mostly inside a better one goes; indices kept, best first."""
    inner = np.clip(np.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
                    - np.maximum(boxes[:, None, :2], boxes[None, :, :2]), 0, None).prod(2)
    area = np.clip(boxes[:, 2:] - boxes[:, :2], 1e-6, None).prod(1)
    overlap = inner / np.minimum(area[:, None], area[None, :])
    kept: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        if not kept or overlap[i, kept].max() <= threshold:
            kept.append(int(i))
    return kept


class MTCNNDetector:
    """`MTCNNDetector()(images)` -> per image, [((x1, y1, x2, y2), score, landmarks), ...],
    best first; landmarks (5, 2) float32: the eye on the image's left, the other eye, nose
    tip, the mouth corner on the image's left, the other one.

    P-Net runs per image; R-Net and O-Net run the candidates of all images as batches.
    device: "cpu", "cuda" (PyTorch) or "auto" (a GPU where there is one); `nets` says which
    runtime runs the networks.
    `weights`: a folder with pnet.lz4, rnet.lz4 and onet.lz4 in the mtcnn package's format
    (joblib files are pickles: point it only at files you trust).
    """

    def __init__(self, device: str = "auto", min_face: int = 20,
                 thresholds: Sequence[float] = (0.6, 0.7, 0.7),
                 weights: Path | None = None) -> None:
        if min_face < CELL:
            raise FacecnnError(f"min_face must be {CELL} px or more (P-Net's window), "
                               f"not {min_face}")
        if len(thresholds) != 3 or not all(0 <= t < 1 for t in thresholds):
            raise FacecnnError(f"thresholds must be three scores in [0, 1), not {thresholds}")
        self.min_face, self.thresholds = min_face, tuple(float(t) for t in thresholds)
        self.on_gpu = uses_gpu(device)
        self._folder = weights
        self._loaded = load_nets(device, weights)  # onnxruntime's, or PyTorch's on a GPU
        self._torch_cpu: tuple[Net, Net, Net] | None = None

    @property
    def nets(self) -> tuple[Net, Net, Net]:
        """P-Net, R-Net and O-Net as this process runs them: on a GPU, PyTorch's; on the CPU,
        PyTorch's too where this process has loaded PyTorch anyway (an embedder) and is no
        forked worker (PyTorch after a fork can hang): its channels-last kernels take about
        a fifth less time a photo (0.103 against 0.128 s a 640 x 360 frame); elsewhere
        onnxruntime's, which need no PyTorch import. Both give the same faces (to 1e-4 px)."""
        if self.on_gpu or "torch" not in sys.modules or \
                multiprocessing.parent_process() is not None:
            return self._loaded
        if self._torch_cpu is None:
            self._torch_cpu = _torch_nets("cpu", self._folder)
        return self._torch_cpu

    def __call__(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        with one_blas_thread():
            return self._detect([as_rgb(np.asarray(image)) for image in images])

    def _detect(self, arrays: list[np.ndarray]) -> list[list[Detection]]:
        pnet, rnet, onet = self.nets
        proposals = [self._propose(a, pnet) for a in arrays]
        owner = np.repeat(np.arange(len(arrays)), [len(b) for b in proposals])
        if not len(owner):
            return [[] for _ in arrays]
        pixels = [a.astype(np.float32) for a in arrays]
        boxes, owner = self._refine(pixels, np.concatenate(proposals), owner, rnet)
        return self._output(pixels, boxes, owner, onet)

    def landmarks(self, images: Sequence[np.ndarray], boxes: Sequence[Sequence[Box]]
                  ) -> list[np.ndarray]:
        """O-Net's five points (k, 5, 2) for the given boxes of each image (another
        detector's faces)."""
        return [points for points, _, _ in self.look_at(images, boxes)]

    def look_at(self, images: Sequence[np.ndarray], boxes: Sequence[Sequence[Box]]
                ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """O-Net on given boxes: per image, the five points (k, 5, 2), the face's box (k, 4;
        as MTCNN cuts its own) and O-Net's face score (k,). O-Net moves the square on each box
        to where MTCNN's own boxes sit, then looks at that square: its points, and how sure it
        is that a face is there at all (how a crop with no face is told from one)."""
        pixels = [as_rgb(np.asarray(image)).astype(np.float32) for image in images]
        counts = [len(b) for b in boxes]
        if not sum(counts):
            return [(np.zeros((0, 5, 2), np.float32), np.zeros((0, 4), np.float32),
                     np.zeros(0, np.float32)) for _ in pixels]
        flat = np.array([list(box) for image_boxes in boxes for box in image_boxes],
                        np.float32)
        owner = np.repeat(np.arange(len(counts)), counts)
        onet = self.nets[2]
        with one_blas_thread():
            offsets, _, _ = self._run(onet, pixels, square(flat), owner)
            moved = square(regress(square(flat), offsets))
            refined, points, scores = self._run(onet, pixels, moved, owner)
        cuts = np.cumsum(counts)[:-1]
        return list(zip(np.split(_place(points, moved), cuts),
                        np.split(regress(moved, refined), cuts),
                        np.split(scores.astype(np.float32), cuts)))

    def _propose(self, image: np.ndarray, pnet: Net) -> np.ndarray:
        """P-Net's squared candidate boxes (n, 4) for one image."""
        height, width = image.shape[:2]
        table = None
        found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for scale in pyramid_scales(height, width, self.min_face):
            size = (math.ceil(height * scale), math.ceil(width * scale))
            if size == (height, width):
                level = image.astype(np.float32).transpose(2, 0, 1)[None]
            else:
                table = area_table(image) if table is None else table
                level = area_resized(table, *size)
            offsets, face = pnet(level)
            rows, cols = np.nonzero(face[0] > self.thresholds[0])
            corner = np.stack([cols, rows], 1).astype(np.float32) * STRIDE
            boxes = (np.concatenate([corner, corner + CELL], 1) / scale).astype(np.float32)
            scores, offsets = face[0, rows, cols], offsets[0][:, rows, cols].T
            keep = nms(boxes, scores, PNET_NMS)
            found.append((boxes[keep], scores[keep], offsets[keep]))
        if not found:
            return np.zeros((0, 4), np.float32)
        boxes, scores, offsets = (np.concatenate(parts) for parts in zip(*found))
        keep = nms(boxes, scores, PYRAMID_NMS)
        return square(regress(boxes[keep], offsets[keep]))

    def _run(self, net: Net, pixels: list[np.ndarray], boxes: np.ndarray, owner: np.ndarray
             ) -> list[np.ndarray]:
        """`net` on crops of `boxes` (grouped by image, `owner` ascending), in batches."""
        crops = np.concatenate([roi_align(pixels[i], boxes[owner == i], net.crop)
                                for i in np.unique(owner)])
        outputs = [net(crops[start:start + CROP_BATCH])
                   for start in range(0, len(crops), CROP_BATCH)]
        return [np.concatenate(parts) for parts in zip(*outputs)]

    def _refine(self, pixels: list[np.ndarray], boxes: np.ndarray, owner: np.ndarray,
                rnet: Net) -> tuple[np.ndarray, np.ndarray]:
        """R-Net's squared boxes and their images, grouped by image."""
        offsets, scores = self._run(rnet, pixels, boxes, owner)
        hit = scores > self.thresholds[1]
        boxes, owner, offsets, scores = boxes[hit], owner[hit], offsets[hit], scores[hit]
        keep = nms_per_group(boxes, scores, owner, RNET_NMS)
        return square(regress(boxes[keep], offsets[keep])), owner[keep]

    def _output(self, pixels: list[np.ndarray], boxes: np.ndarray, owner: np.ndarray,
                onet: Net) -> list[list[Detection]]:
        """O-Net's faces per image: clipped boxes, scores and landmarks, best first."""
        found: list[list[Detection]] = [[] for _ in pixels]
        if not len(boxes):
            return found
        offsets, points, scores = self._run(onet, pixels, boxes, owner)
        landmarks = _place(points, boxes)
        boxes = regress(boxes, offsets)
        hit = scores > self.thresholds[2]
        boxes, landmarks, scores, owner = boxes[hit], landmarks[hit], scores[hit], owner[hit]
        for i, image in enumerate(pixels):
            height, width = image.shape[:2]
            mine = np.flatnonzero(owner == i)
            for k in mine[nms_over_smaller(boxes[mine], scores[mine], ONET_NMS)]:
                box = np.clip(boxes[k], 0, [width, height, width, height])
                found[i].append((tuple(float(v) for v in box), float(scores[k]), landmarks[k]))
        return found
