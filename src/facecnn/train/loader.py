"""Batches of cached uint8 images, in a per-epoch order fixed by (seed, epoch).

Because the order of epoch e depends only on the seed and e, a run resumed in the middle of
an epoch sees exactly the batches the uninterrupted run would have seen. Under DDP each rank
takes every world-th position of the same order. `PKBatchLoader` draws batches of P people x K
images instead, for losses that compare faces of the same person within a batch (triplet).
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
        return len(self._index_batches(0))

    def _ranges(self, n: int) -> list[tuple[int, int]]:
        ranges = [(s, min(s + self.batch_size, n)) for s in range(0, n, self.batch_size)]
        if self.shuffle and len(ranges) > 1 and ranges[-1][1] - ranges[-1][0] == 1:
            ranges.pop()  # a batch of one breaks BatchNorm in training mode
        return ranges

    def _index_batches(self, epoch: int) -> list[np.ndarray]:
        """This rank's batches of `epoch`, as positions in `data`."""
        positions = self._positions(epoch)
        return [positions[begin:end] for begin, end in self._ranges(len(positions))]

    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(images uint8 NCHW in channels-last memory, labels) for batches start.. of `epoch`."""
        for idx in self._index_batches(epoch)[start:]:
            images = torch.from_numpy(self.data.batch(idx)).permute(0, 3, 1, 2)
            yield images, torch.from_numpy(self.data.labels[idx])


class PKBatchLoader(BatchLoader):
    """Shuffled batches of P people x K images each, so every face in a batch has positives.

    P = batch_size // K (at most the number of people), so a batch may be a little smaller
    than batch_size; an epoch has enough batches to show about every image once. Each batch is
    drawn from (seed, epoch) alone (P people without replacement, then K images of each, with
    replacement only for people who have fewer), so resume stays exact. Under DDP the ranks
    take turns through one list of batches.
    """

    def __init__(self, data: ImageSet, batch_size: int, per_person: int, *, seed: int = 0,
                 rank: int = 0, world: int = 1) -> None:
        super().__init__(data, batch_size, shuffle=True, seed=seed, rank=rank, world=world)
        self.members = [np.flatnonzero(data.labels == c) for c in np.unique(data.labels)]
        self.per_person = per_person
        self.people = min(batch_size // per_person, len(self.members))

    def _index_batches(self, epoch: int) -> list[np.ndarray]:
        count = -(-len(self.data) // (self.world * self.people * self.per_person))
        rng = np.random.default_rng([self.seed, epoch])
        batches = []
        for _ in range(count * self.world):
            people = rng.choice(len(self.members), self.people, replace=False)
            batches.append(np.concatenate([
                rng.choice(self.members[p], self.per_person,
                           replace=len(self.members[p]) < self.per_person) for p in people]))
        return batches[self.rank::self.world]
