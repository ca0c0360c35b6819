"""Where and how tensors run: device, normalisation, mixed precision, memory format."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import ContextManager, Sequence

import torch


def select_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """`auto` picks CUDA (this rank's GPU), then Apple's MPS, then the CPU."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank)
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def amp_dtype_for(device: torch.device, wanted: bool | None) -> torch.dtype | None:
    """bf16 where the GPU has it, else fp16 (with loss scaling); off on CPU unless asked."""
    if not (wanted if wanted is not None else device.type == "cuda"):
        return None
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


@dataclass
class Runtime:
    device: torch.device
    mean: torch.Tensor
    std: torch.Tensor
    amp_dtype: torch.dtype | None = None
    channels_last: bool = False

    @classmethod
    def create(cls, device: torch.device, mean: Sequence[float], std: Sequence[float],
               amp: bool | None = None) -> "Runtime":
        shape = (1, len(mean), 1, 1)
        return cls(device, torch.tensor(mean, device=device).view(shape),
                   torch.tensor(std, device=device).view(shape), amp_dtype_for(device, amp),
                   device.type == "cuda")

    def normalize(self, x01: torch.Tensor) -> torch.Tensor:
        """Float images in [0, 1] -> the model's input (mean/std, memory format)."""
        x = (x01 - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def from_uint8(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 NCHW (any device) -> normalised float input on this device, no augmentation."""
        return self.normalize(images.to(self.device, non_blocking=True).float() / 255.0)

    def autocast(self) -> ContextManager:
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)
