"""Run a model over a loader: logits for prediction, loss and confusion counts for metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facecnn.runtime import Runtime
from facecnn.train.distributed import DistContext
from facecnn.train.loader import BatchLoader


@dataclass
class EvalResult:
    loss: float
    cm: np.ndarray
    count: int


@torch.inference_mode()
def iterate_logits(model: nn.Module, loader: BatchLoader,
                   rt: Runtime) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(float32 logits, labels) per batch, in the loader's order, with the model in eval mode."""
    model.eval()
    for images, labels in loader.batches(0):
        with rt.autocast():
            logits = model(rt.from_uint8(images))
        yield logits.float(), labels.to(rt.device)


def evaluate(model: nn.Module, loader: BatchLoader, rt: Runtime, num_classes: int,
             dist: DistContext | None = None) -> EvalResult:
    """Mean cross-entropy and confusion matrix over the loader (summed across DDP ranks)."""
    cm = torch.zeros(num_classes * num_classes, dtype=torch.int64, device=rt.device)
    sums = torch.zeros(2, dtype=torch.float64, device=rt.device)
    for logits, labels in iterate_logits(model, loader, rt):
        sums[0] += F.cross_entropy(logits, labels, reduction="sum").double()
        sums[1] += len(labels)
        cm += torch.bincount(labels * num_classes + logits.argmax(1),
                             minlength=num_classes * num_classes)
    if dist is not None:
        sums, cm = dist.all_sum(sums.cpu()), dist.all_sum(cm.cpu())
    count = int(sums[1])
    return EvalResult(float(sums[0]) / max(count, 1), cm.cpu().view(num_classes, -1).numpy(),
                      count)
