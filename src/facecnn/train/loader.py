"""Batches of cached uint8 images, in a per-epoch order fixed by (seed, epoch).

Because the order of epoch e depends only on the seed and e, a run resumed in the middle of
an epoch sees exactly the batches the uninterrupted run would have seen. Under DDP each rank
takes every world-th position of the same order.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from facecnn.data.datasets import ImageSet


class BatchLoader:
    def __init__(self, data: ImageSet, batch_size: int, *, shuffle: bool, seed: int = 0,
                 rank: int = 0, world: int = 1) -> None:
        self.data, self.batch_size, self.shuffle = data, batch_size, shuffle
        self.seed, self.rank, self.world = seed, rank, world

    def _positions(self, epoch: int) -> np.ndarray:
        n = len(self.data)
        if not self.shuffle:
            return np.arange(n)[self.rank::self.world]
        order = np.random.default_rng([self.seed, epoch]).permutation(n)
        pad = (-n) % self.world  # equal shards keep DDP ranks in step
        order = np.concatenate([order, order[:pad]])
        return order[self.rank::self.world]

    def __len__(self) -> int:
        return len(self._ranges(len(self._positions(0))))

    def _ranges(self, n: int) -> list[tuple[int, int]]:
        ranges = [(s, min(s + self.batch_size, n)) for s in range(0, n, self.batch_size)]
        if self.shuffle and len(ranges) > 1 and ranges[-1][1] - ranges[-1][0] == 1:
            ranges.pop()  # a batch of one breaks BatchNorm in training mode
        return ranges

    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(images uint8 NCHW in channels-last memory, labels) for batches start.. of `epoch`."""
        positions = self._positions(epoch)
        for begin, end in self._ranges(len(positions))[start:]:
            idx = positions[begin:end]
            images = torch.from_numpy(self.data.batch(idx)).permute(0, 3, 1, 2)
            yield images, torch.from_numpy(self.data.labels[idx])
