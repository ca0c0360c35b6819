"""MTCNN (Zhang et al., 2016) face detector run by PyTorch, with the three networks' weights
that the `mtcnn` package (MIT) ships, read without its TensorFlow code.

What MTCNN does, and this module after it:
1. P-Net, fully convolutional, scans an image pyramid: scales 12 / min_face, then x0.709 while
   the shorter side stays >= 12 px. Each output cell (stride 2) scores a 12 x 12 window; the
   windows above the first threshold are thinned by NMS (IoU 0.5) per level, then (IoU 0.7)
   over all levels, moved by the cell's box regression and made square.
2. R-Net scores a 24 x 24 crop of each of those boxes (all images' candidates in batches):
   above the second threshold, NMS (IoU 0.7), regression, square again.
3. O-Net does the same with 48 x 48 crops and also gives five landmarks, relative to its
   input box; above the third threshold and after regression, a box lying mostly inside a
   better one (intersection over the smaller area > 0.7) is dropped. Boxes are clipped to
   the image.

Pixels enter every network as (value - 127.5) / 128; crops reaching outside the image read
black there, as MTCNN's zero-padded crops do. The weights fit untransposed RGB images (the
`mtcnn` package converted the Caffe originals, which saw transposed ones). Boxes and points
are continuous image coordinates: pixel (i, j) covers [i, i + 1) x [j, j + 1).
"""

from __future__ import annotations

import importlib.util
import math
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facecnn.data.decode import as_rgb
from facecnn.errors import FacecnnError
from facecnn.models.box_ops import batched_nms, nms, roi_align
from facecnn.models.dlib_port import cached_conversion

INSTALL_HINT = "pip install mtcnn"
REINSTALL_HINT = "pip install --force-reinstall mtcnn"
CELL, STRIDE = 12, 2  # P-Net's window and its step, in pyramid pixels
PYRAMID_FACTOR = 0.709
MEAN, SCALE = 127.5, 128.0
PNET_NMS, PYRAMID_NMS, RNET_NMS, ONET_NMS = 0.5, 0.7, 0.7, 0.7
CROP_BATCH = 1024  # R-Net / O-Net crops per forward pass: bounds memory on large batches

Box = tuple[float, float, float, float]
Detection = tuple[Box, float, np.ndarray]


@dataclass(frozen=True)
class NetSpec:
    """One network: (filters, kernel, max-pool kernel or 0) per convolution, each followed
    by a per-channel PReLU and the pool (stride 2); the width of the PReLU'd dense layer
    (0 for fully convolutional P-Net) and its crop side; the heads' widths, face score last."""

    convs: tuple[tuple[int, int, int], ...]
    dense: int
    crop: int
    heads: tuple[int, ...]


# Keras' "same" pools match ceil_mode here: every pooled map is even-sized or the kernel is 2
SPECS = {
    "pnet": NetSpec(((10, 3, 2), (16, 3, 0), (32, 3, 0)), 0, CELL, (4, 2)),
    "rnet": NetSpec(((28, 3, 3), (48, 3, 3), (64, 2, 0)), 128, 24, (4, 2)),
    "onet": NetSpec(((32, 3, 3), (64, 3, 3), (64, 3, 2), (128, 2, 0)), 256, 48, (4, 10, 2)),
}


class MTCNNNet(nn.Module):
    """(N, 3, H, W) normalised pixels -> [box offsets, (landmarks,) face probability];
    `crop` is the input side R-Net and O-Net take (P-Net's window for P-Net). Parameters are
    registered in the order of the Keras weight list."""

    def __init__(self, spec: NetSpec) -> None:
        super().__init__()
        self.crop = spec.crop
        layers: list[nn.Module] = []
        channels = 3
        for filters, kernel, pool in spec.convs:
            layers += [nn.Conv2d(channels, filters, kernel), nn.PReLU(filters)]
            if pool:
                layers.append(nn.MaxPool2d(pool, 2, ceil_mode=True))
            channels = filters
        self.features = nn.Sequential(*layers)
        self.dense: nn.Module | None = None
        if spec.dense:
            flat = self.features(torch.zeros(1, 3, spec.crop, spec.crop)).numel()
            self.dense = nn.Sequential(nn.Linear(flat, spec.dense), nn.PReLU(spec.dense))
            self.heads = nn.ModuleList(nn.Linear(spec.dense, n) for n in spec.heads)
        else:
            self.heads = nn.ModuleList(nn.Conv2d(channels, n, 1) for n in spec.heads)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        # channels last: PyTorch's CPU max pooling and oneDNN's convolutions are faster so
        # (R-Net and O-Net most); results move by float rounding only
        x = self.features(x.contiguous(memory_format=torch.channels_last))
        if self.dense is not None:  # Keras flattens (N, W, H, C): Permute((2, 1, 3)) of NHWC
            x = self.dense(x.permute(0, 3, 2, 1).flatten(1))
        *regressions, face = (head(x) for head in self.heads)
        return [*regressions, face.softmax(1)[:, 1]]


def weights_dir() -> Path:
    """The `mtcnn` package's weight folder, found without importing it (it needs
    TensorFlow)."""
    spec = importlib.util.find_spec("mtcnn")
    if spec is None or not spec.submodule_search_locations:
        raise FacecnnError(f"the mtcnn package (MTCNN's weights) is not installed: "
                           f"{INSTALL_HINT}")
    return Path(list(spec.submodule_search_locations)[0]) / "assets" / "weights"


def _damaged(path: Path, why: str) -> FacecnnError:
    return FacecnnError(f"{path} is not usable MTCNN weights ({why}): {REINSTALL_HINT}")


def _keras_to_torch(array: object, param: torch.Tensor, path: Path) -> torch.Tensor:
    """A Keras array in PyTorch's layout: conv (kh, kw, in, out) -> (out, in, kh, kw),
    dense (in, out) -> (out, in), PReLU (1, 1, C) -> (C,)."""
    if not isinstance(array, np.ndarray) or array.dtype != np.float32:
        raise _damaged(path, f"a {type(array).__name__} where float32 weights belong")
    if array.ndim == 4:
        array = array.transpose(3, 2, 0, 1)
    elif array.ndim == 2:
        array = array.T
    if array.squeeze().shape != param.squeeze().shape:
        raise _damaged(path, f"weights of shape {array.shape} where {tuple(param.shape)} "
                             f"belong")
    return torch.from_numpy(np.ascontiguousarray(array).reshape(param.shape))


def _converted(name: str, path: Path) -> dict[str, torch.Tensor]:
    import joblib

    try:
        arrays = joblib.load(path)
    except Exception as exc:  # joblib/lz4/pickle each fail their own way on a bad file
        raise _damaged(path, f"{type(exc).__name__} reading it") from None
    state = MTCNNNet(SPECS[name]).state_dict()
    if not isinstance(arrays, list) or len(arrays) != len(state):
        raise _damaged(path, f"not the {len(state)} arrays of {name}")
    return {key: _keras_to_torch(array, param, path)
            for (key, param), array in zip(state.items(), arrays)}


def load_net(name: str, folder: Path | None = None) -> MTCNNNet:
    """One of "pnet", "rnet", "onet" (eval mode), converted from `folder` (default: the
    mtcnn package's weights) once and cached as safetensors in facecnn's cache directory."""
    path = Path(folder or weights_dir()) / f"{name}.lz4"
    if not path.is_file():
        raise FacecnnError(f"MTCNN weights {path} are missing: {REINSTALL_HINT}")
    net = MTCNNNet(SPECS[name])
    net.load_state_dict(cached_conversion(path, "mtcnn", lambda: _converted(name, path)))
    return net.eval()


def pyramid_scales(height: int, width: int, min_face: int) -> list[float]:
    """The scales at which P-Net's 12 px window covers faces from `min_face` px up."""
    scales: list[float] = []
    scale = CELL / min_face
    while min(height, width) * scale >= CELL:
        scales.append(scale)
        scale *= PYRAMID_FACTOR
    return scales


def regress(boxes: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Move each corner by its offset times the box's width or height."""
    size = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)
    return boxes + offsets * size


def square(boxes: torch.Tensor) -> torch.Tensor:
    """The square on each box's centre with the box's longer side."""
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = (boxes[:, 2:] - boxes[:, :2]).amax(1, keepdim=True) / 2
    return torch.cat([centre - half, centre + half], 1)


@contextmanager
def _exact() -> Iterator[None]:
    """Inference without TF32 convolutions, which would cost the agreement between GPU and
    CPU scores."""
    with torch.inference_mode(), torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        yield


def _place(points: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """O-Net's points (n, 10: five x then five y, relative to its input box) in image
    coordinates (n, 5, 2)."""
    size = boxes[:, 2:] - boxes[:, :2]
    return boxes[:, None, :2] + torch.stack([points[:, :5], points[:, 5:]], 2) * size[:, None]


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
    `weights`: a folder with pnet.lz4, rnet.lz4 and onet.lz4 in the mtcnn package's format
    (joblib files are pickles: point it only at files you trust).
    """

    def __init__(self, device: str = "auto", min_face: int = 20,
                 thresholds: Sequence[float] = (0.6, 0.7, 0.7),
                 weights: Path | None = None) -> None:
        from facecnn.runtime import flush_denormals, select_device

        if min_face < 1:
            raise FacecnnError(f"min_face must be 1 px or more, not {min_face}")
        if len(thresholds) != 3 or not all(0 <= t < 1 for t in thresholds):
            raise FacecnnError(f"thresholds must be three scores in [0, 1), not {thresholds}")
        flush_denormals()
        self.device = select_device(device)
        self.min_face, self.thresholds = min_face, tuple(float(t) for t in thresholds)
        self.pnet, self.rnet, self.onet = (load_net(name, weights).to(self.device)
                                           for name in SPECS)

    def __call__(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        if not len(images):
            return []
        arrays, pixels = self._pixels(images)
        with _exact():
            proposals = [self._propose(x) for x in pixels]
            owner = torch.cat([torch.full((len(b),), i, device=self.device)
                               for i, b in enumerate(proposals)])
            if not len(owner):
                return [[] for _ in arrays]
            boxes, owner = self._refine(pixels, torch.cat(proposals), owner)
            return self._output(pixels, boxes, owner, [a.shape[:2] for a in arrays])

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
        arrays, pixels = self._pixels(images)
        counts = [len(b) for b in boxes]
        if not sum(counts):
            return [(np.zeros((0, 5, 2), np.float32), np.zeros((0, 4), np.float32),
                     np.zeros(0, np.float32)) for _ in arrays]
        flat = torch.tensor([list(box) for image_boxes in boxes for box in image_boxes],
                            dtype=torch.float32, device=self.device)
        owner = torch.repeat_interleave(torch.arange(len(counts), device=self.device),
                                        torch.tensor(counts, device=self.device))
        with _exact():
            offsets, _, _ = self._run(self.onet, pixels, square(flat), owner)
            moved = square(regress(square(flat), offsets))
            refined, points, scores = self._run(self.onet, pixels, moved, owner)
            placed = _place(points, moved).cpu().numpy().astype(np.float32)
            boxes = regress(moved, refined).cpu().numpy().astype(np.float32)
        cuts = np.cumsum(counts)[:-1]
        return list(zip(np.split(placed, cuts), np.split(boxes, cuts),
                        np.split(scores.cpu().numpy().astype(np.float32), cuts)))

    def _pixels(self, images: Sequence[np.ndarray]
                ) -> tuple[list[np.ndarray], list[torch.Tensor]]:
        """The RGB arrays and their pixels / 128 on the device (zero, black, outside; each
        net subtracts the mean)."""
        arrays = [as_rgb(np.asarray(image)) for image in images]
        return arrays, [torch.tensor(a, device=self.device).permute(2, 0, 1)[None].float()
                        / SCALE for a in arrays]

    def _propose(self, x: torch.Tensor) -> torch.Tensor:
        """P-Net's squared candidate boxes (n, 4) for one image."""
        height, width = x.shape[-2:]
        found: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        for scale in pyramid_scales(height, width, self.min_face):
            size = (math.ceil(height * scale), math.ceil(width * scale))
            level = F.interpolate(x, size=size, mode="area" if scale <= 1 else "bilinear")
            offsets, face = self.pnet(level - MEAN / SCALE)
            rows, cols = torch.nonzero(face[0] > self.thresholds[0], as_tuple=True)
            corner = torch.stack([cols, rows], 1).float() * STRIDE
            boxes = torch.cat([corner, corner + CELL], 1) / scale
            scores, offsets = face[0, rows, cols], offsets[0, :, rows, cols].T
            keep = nms(boxes, scores, PNET_NMS)
            found.append((boxes[keep], scores[keep], offsets[keep]))
        if not found:
            return x.new_zeros((0, 4))
        boxes, scores, offsets = (torch.cat(parts) for parts in zip(*found))
        keep = nms(boxes, scores, PYRAMID_NMS)
        return square(regress(boxes[keep], offsets[keep]))

    def _run(self, net: MTCNNNet, pixels: list[torch.Tensor], boxes: torch.Tensor,
             owner: torch.Tensor) -> list[torch.Tensor]:
        """`net` on crops of `boxes` (grouped by image, `owner` ascending), in batches."""
        outputs = []
        for start in range(0, len(boxes), CROP_BATCH):
            chunk, whose = boxes[start:start + CROP_BATCH], owner[start:start + CROP_BATCH]
            crops = torch.cat([roi_align(pixels[i], [chunk[whose == i]], net.crop,
                                         aligned=True) for i in torch.unique(whose).tolist()])
            outputs.append(net(crops - MEAN / SCALE))
        return [torch.cat(parts) for parts in zip(*outputs)]

    def _refine(self, pixels: list[torch.Tensor], boxes: torch.Tensor, owner: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """R-Net's squared boxes and their images, grouped by image."""
        offsets, scores = self._run(self.rnet, pixels, boxes, owner)
        hit = scores > self.thresholds[1]
        boxes, owner, offsets, scores = boxes[hit], owner[hit], offsets[hit], scores[hit]
        keep = batched_nms(boxes, scores, owner, RNET_NMS).sort().values
        return square(regress(boxes[keep], offsets[keep])), owner[keep]

    def _output(self, pixels: list[torch.Tensor], boxes: torch.Tensor, owner: torch.Tensor,
                shapes: list[tuple[int, int]]) -> list[list[Detection]]:
        """O-Net's faces per image: clipped boxes, scores and landmarks, best first."""
        found: list[list[Detection]] = [[] for _ in shapes]
        if not len(boxes):
            return found
        offsets, points, scores = self._run(self.onet, pixels, boxes, owner)
        landmarks = _place(points, boxes)
        boxes = regress(boxes, offsets)
        hit = (scores > self.thresholds[2]).cpu().numpy()
        boxes, landmarks, scores, owner = (t.cpu().numpy()[hit]
                                           for t in (boxes, landmarks, scores, owner))
        for i, (height, width) in enumerate(shapes):
            mine = np.flatnonzero(owner == i)
            for k in mine[nms_over_smaller(boxes[mine], scores[mine], ONET_NMS)]:
                box = np.clip(boxes[k], 0, [width, height, width, height])
                found[i].append((tuple(float(v) for v in box), float(scores[k]),
                                 landmarks[k].astype(np.float32)))
        return found
