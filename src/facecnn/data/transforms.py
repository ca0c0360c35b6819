"""Batched, reproducible training augmentation on uint8 image batches.

Batches come straight from the decoded uint8 cache as (B, C, H, W) tensors with H == W, on CPU
or CUDA. Every op works on the whole batch with per-sample parameters (no per-image loop, no
PIL), and every random number comes from the caller's CPU `torch.Generator`, so the same
generator state gives the same batch on any device and a resumed run replays exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Callable

import torch
import torch.nn.functional as F

from facecnn.data.augment_presets import AUGMENT_CHOICES

_LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, as torchvision's rgb_to_grayscale

_Op = Callable[[torch.Tensor], torch.Tensor]
_HFLIP: _Op = partial(torch.flip, dims=(-1,))
_VFLIP: _Op = partial(torch.flip, dims=(-2,))
_TRANSPOSE: _Op = partial(torch.transpose, dim0=-2, dim1=-1)


def to_float(batch_uint8: torch.Tensor) -> torch.Tensor:
    """Evaluation transform: uint8 (B, C, H, W) -> float32 in [0, 1], nothing random."""
    if batch_uint8.dtype != torch.uint8:
        raise TypeError(f"expected a uint8 batch, got {batch_uint8.dtype}")
    return batch_uint8.float().div_(255)


@dataclass(frozen=True)
class Augment:
    """One augmentation preset; call it on a uint8 batch with a CPU generator.

    Ops run in a fixed order: quarter turns, flips, transpose, one affine warp (rotation, zoom,
    shift and crop together, so the image is resampled once), then colour jitter.
    """

    hflip_p: float = 0.0
    vflip_p: float = 0.0
    transpose_p: float = 0.0
    rot90_p: float = 0.0  # probability of each of k = 1, 2, 3 quarter turns
    rotate_deg: float = 0.0  # angle uniform in [-rotate_deg, rotate_deg]
    zoom: tuple[float, float] = (1.0, 1.0)  # magnification range; > 1 zooms in
    shift: float = 0.0  # max translation along each axis, as a fraction of the side
    crop_scale: tuple[float, float] = (1.0, 1.0)  # random crop side fraction, resized back
    brightness: float = 0.0  # factors uniform in [1 - v, 1 + v], as torchvision's ColorJitter
    contrast: float = 0.0
    saturation: float = 0.0
    grayscale_p: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.rot90_p <= 1 / 3:
            raise ValueError(f"rot90_p is per quarter turn and must be in [0, 1/3], "
                             f"got {self.rot90_p}")

    @property
    def has_affine(self) -> bool:
        return (self.rotate_deg != 0 or self.shift != 0
                or self.zoom != (1.0, 1.0) or self.crop_scale != (1.0, 1.0))

    @property
    def has_colour(self) -> bool:
        return any((self.brightness, self.contrast, self.saturation, self.grayscale_p))

    def __call__(self, batch_uint8: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment a uint8 (B, C, H, W) batch into float32 in [0, 1] on the batch's device."""
        x = to_float(batch_uint8)
        n = x.shape[0]
        if self.rot90_p:
            u = torch.rand(n, generator=generator)
            turns = sum((u < k * self.rot90_p).int() for k in (1, 2, 3))  # each k w.p. rot90_p
            for k in (1, 2, 3):
                _apply_where(x, turns == k, partial(torch.rot90, k=k, dims=(-2, -1)))
        for p, op in ((self.hflip_p, _HFLIP), (self.vflip_p, _VFLIP),
                      (self.transpose_p, _TRANSPOSE)):
            if p:
                _apply_where(x, torch.rand(n, generator=generator) < p, op)
        if self.has_affine:
            x = self._affine(x, generator)
        if self.has_colour:
            x = self._colour(x, generator)
        return x.clamp_(0.0, 1.0)

    def _affine(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Warp each sample by its own rotation/zoom/shift/crop with one grid_sample."""
        n = x.shape[0]
        angle = _uniform(g, n, -math.radians(self.rotate_deg), math.radians(self.rotate_deg))
        crop = _uniform(g, n, *self.crop_scale)
        scale = crop / _uniform(g, n, *self.zoom)  # output -> input coordinate scale
        # Normalised coordinates span [-1, 1], so a shift of f of the side is 2f, and a crop of
        # side c may sit anywhere within 1 - c of the centre: both are just a translation.
        reach = 2 * self.shift + (1 - crop)
        tx, ty = _uniform(g, (2, n), -1.0, 1.0) * reach
        cos, sin = scale * angle.cos(), scale * angle.sin()
        theta = torch.stack([cos, -sin, tx, sin, cos, ty], dim=1).view(n, 2, 3)
        grid = _affine_grid(theta.to(x.device), x.shape[-2], x.shape[-1])
        # Reflection: the band uncovered at the edges continues the background and hair texture
        # instead of black wedges (a shortcut the net could learn) or the smeared streaks of
        # "border"; with these small angles, shifts and zoom-outs that band is a few pixels of
        # an aligned crop's margin, so it rarely mirrors a facial feature.
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection",
                             align_corners=False)

    def _colour(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Per-sample brightness, contrast, saturation and random grayscale."""
        n = x.shape[0]
        b = _uniform(g, n, 1 - self.brightness, 1 + self.brightness)
        c = _uniform(g, n, 1 - self.contrast, 1 + self.contrast)
        s = _uniform(g, n, 1 - self.saturation, 1 + self.saturation)
        s = s.masked_fill(torch.rand(n, generator=g) < self.grayscale_p, 0.0)  # grayscale = s 0
        # Brightness then contrast around the brightened image's mean grey, fused into one
        # multiply-add: c * (b x - b m) + b m = (b c) x + b (1 - c) m.
        mean = _gray(x.mean(dim=(-2, -1), keepdim=True))
        x = x.mul_(_per_sample(b * c, x)).add_(_per_sample(b * (1 - c), x) * mean)
        if x.shape[1] == 3:
            x = torch.lerp(_gray(x), x, _per_sample(s, x))
        return x


def build_augmentation(name: str) -> Augment:
    """The preset called `name` (augment_presets.py); an unknown name is a one-line error."""
    return Augment(**AUGMENT_CHOICES.get(name))


def _uniform(g: torch.Generator, size: int | tuple[int, ...], lo: float,
             hi: float) -> torch.Tensor:
    """Uniform draws on the CPU generator, so a CPU generator drives batches on any device."""
    return torch.rand(size, generator=g) * (hi - lo) + lo


def _per_sample(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A (B,) CPU vector as (B, 1, 1, 1) on x's device, to broadcast over each sample."""
    return v.to(x.device).view(-1, 1, 1, 1)


def _gray(x: torch.Tensor) -> torch.Tensor:
    """Luma of (B, C, ...) as (B, 1, ...); a 1-channel input is already grey."""
    if x.shape[1] == 1:
        return x
    return (x * x.new_tensor(_LUMA).view(3, 1, 1)).sum(dim=1, keepdim=True)


def _apply_where(x: torch.Tensor, mask: torch.Tensor, op: _Op) -> None:
    """Replace, in place, the samples selected by the CPU bool mask with op(sample)."""
    idx = mask.nonzero().flatten().to(x.device)  # indices from the CPU mask: no device sync
    if len(idx):
        x[idx] = op(x[idx])


def _affine_grid(theta: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """`F.affine_grid(theta, ..., align_corners=False)` built by broadcasting: the same grid,
    faster on CPU, where the grid was the slowest step of augmentation."""
    xs = (torch.arange(width, device=theta.device, dtype=theta.dtype) * 2 + 1) / width - 1
    ys = (torch.arange(height, device=theta.device, dtype=theta.dtype) * 2 + 1) / height - 1
    t = theta[:, None, None, :, :]  # (B, 1, 1, 2, 3)
    return (t[..., 0] * xs[None, None, :, None] + t[..., 1] * ys[None, :, None, None]
            + t[..., 2])
