"""In-memory data: a data set is three tensor splits; batches are cut by an index permutation.

No DataLoader, no per-sample indexing, no worker processes: for data that fits in memory this is
the cheapest way to feed a small model, and it stays on the device the tensors live on.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Split:
    x: Tensor
    y: Tensor

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class Dataset:
    name: str
    train: Split
    val: Split
    test: Split
    input_shape: tuple[int, ...]
    num_classes: int


class TensorBatches:
    """An iterable of (x, y) batches over a split; a fresh seeded permutation each epoch when shuffling."""

    def __init__(self, split: Split, batch_size: int, shuffle: bool = False, seed: int = 0):
        self.split, self.batch_size, self.shuffle = split, batch_size, shuffle
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return -(-len(self.split) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        n = len(self.split)
        order = torch.randperm(n, generator=self.generator).to(self.split.y.device) if self.shuffle else None
        for start in range(0, n, self.batch_size):
            if order is None:
                yield self.split.x[start : start + self.batch_size], self.split.y[start : start + self.batch_size]
            else:
                idx = order[start : start + self.batch_size]
                yield self.split.x[idx], self.split.y[idx]
