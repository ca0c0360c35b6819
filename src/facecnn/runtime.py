"""Where and how tensors run, for training and inference alike: device, normalisation, mixed
precision, memory format, denormal flushing."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import ContextManager, Sequence

import torch

from facecnn.errors import FacecnnError


def select_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """`auto` picks CUDA (this rank's GPU), then Apple's MPS, then the CPU. A device this
    machine does not have is a one-line error here rather than a driver traceback later."""
    if name != "auto":
        try:
            device = torch.device(name)
        except RuntimeError:
            raise FacecnnError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") \
                from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise FacecnnError(f"--device {name}: no CUDA GPU is usable here; use --device cpu "
                               "or auto")
        if device.type == "mps" and not (getattr(torch.backends, "mps", None)
                                         and torch.backends.mps.is_available()):
            raise FacecnnError(f"--device {name}: Apple's MPS is not available here")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank)
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def flush_denormals() -> None:
    """Treat subnormal floats (below ~1e-38) as zero, process-wide. Nets trained from scratch
    can produce them in activations, and x86 CPUs handle them much slower while they change
    no prediction."""
    torch.set_flush_denormal(True)


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True on x86 CPUs with bf16 instructions (AVX512-BF16, AMX), where bf16 autocast trains
    faster; elsewhere oneDNN emulates bf16 and it would be slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def amp_dtype_for(device: torch.device, wanted: bool | None) -> torch.dtype | None:
    """bf16 where the hardware has it (GPU, or a CPU with bf16 instructions), else fp16 on
    older GPUs (with loss scaling); `wanted` True/False overrides the automatic choice."""
    if wanted is None:
        wanted = device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())
    if not wanted:
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
        flush_denormals()
        return cls(device, torch.tensor(mean, device=device).view(shape),
                   torch.tensor(std, device=device).view(shape), amp_dtype_for(device, amp),
                   device.type in ("cuda", "cpu"))

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
