"""In-memory data: a data set is three tensor splits; batches are cut by an index permutation.

No DataLoader, no per-sample indexing, no worker processes: for data that fits in memory this is
the cheapest way to feed a small model, and it stays on the device the tensors live on.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

PAD = 0  # the padding token of sequence data; losses and metrics ignore it


@dataclass
class Split:
    x: Tensor
    y: Tensor

    def __len__(self) -> int:
        return len(self.y)

    def digest(self) -> str:
        """The split's identity: a hash of its inputs and targets (the same data, the same digest)."""
        content = hashlib.sha256()
        for tensor in (self.x, self.y):
            content.update(str((tuple(tensor.shape), tensor.dtype)).encode())
            content.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return content.hexdigest()[:16]


@dataclass
class Dataset:
    """Three splits and what a task and a model need to know about them.

    target: "class" (integer labels, num_classes of them), "value" (real numbers) or
    "sequence" (token ids, num_classes is the vocabulary, PAD-padded).
    input_vocab > 0 when the inputs are token ids rather than real numbers.
    """

    name: str
    train: Split
    val: Split
    test: Split
    target: str = "class"
    num_classes: int = 0
    input_vocab: int = 0

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])

    def inputs(self, config: Mapping[str, Any]) -> list[dict[str, str]]:
        """The three splits as MLflow dataset inputs (plain values): name, digest, source, context, size.
        config: the data section that made them (its name and parameters are the source)."""
        source = json.dumps({k: v for k, v in config.items()}, sort_keys=True, default=str)
        contexts = {"train": "training", "val": "validation", "test": "testing"}
        return [
            {
                "name": f"{self.name}/{part}",
                "digest": split.digest(),
                "source": source,
                "context": contexts[part],
                "rows": str(len(split)),
            }
            for part, split in (("train", self.train), ("val", self.val), ("test", self.test))
        ]

    def describe(self) -> str:
        kinds = {"class": f"{self.num_classes} classes", "value": "real-valued targets", "sequence": "token sequences"}
        kind = kinds[self.target]
        return f"data '{self.name}' (inputs {self.input_shape}, {kind})"


def split(
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    *,
    val_fraction: float,
    test_fraction: float | None = None,
    test: tuple[np.ndarray, np.ndarray] | None = None,
    seed: int | None = None,
    limit: int | None = None,
    **meta,
) -> Dataset:
    """The Dataset of arrays: every data set's train/validation/test cut, made here and nowhere else.

    - test_fraction and a seed: one seeded shuffle cut in these proportions, stratified for class
      targets (split_indices); the seed is the data's own, so the split does not change with a run's seed.
    - test_fraction, no seed: the arrays cut in their order, train first, test last, each boundary
      rounded down (a generated set needs no shuffle: its samples are already independent).
    - test, a given (x, y) test set: the last round(n × val_fraction) training samples, at least one,
      are the validation split (a published set's test split stays the published one).
    limit keeps the first N samples of each split (for quick tests). meta goes to the Dataset.
    Each mode keeps the rounding its data sets have always used, so that their splits stay the same.
    """
    if (test is None) == (test_fraction is None):
        raise ValueError("split needs exactly one of test_fraction and a given test set")
    n = len(y)
    if test is not None:
        if seed is not None:
            raise ValueError("a given test set's validation split is the end of the training arrays: no seed to use")
        n_val = max(1, round(n * val_fraction))
        parts = [slice(0, n - n_val), slice(n - n_val, n)]
    elif seed is None:
        # The boundaries reverse has always used, float quirks included: 10 × (1 - 0.3 - 0.3) is 3.99…, so 3.
        train_end, val_end = int(n * (1 - val_fraction - test_fraction)), int(n * (1 - test_fraction))
        parts = [slice(0, train_end), slice(train_end, val_end), slice(val_end, n)]
    else:
        stratify = meta.get("target", "class") == "class"
        parts = split_indices(y if stratify else None, n, val_fraction, test_fraction, seed)
    arrays = [(x[part], y[part]) for part in parts] + ([test] if test is not None else [])
    return Dataset(name, *(to_split(a, b, limit) for a, b in arrays), **meta)


def split_indices(classes: np.ndarray | None, n: int, val_fraction: float, test_fraction: float, seed: int):
    """Train, validation and test indices: one seeded shuffle, cut in these proportions; with classes,
    each class is cut in the same proportions (stratified)."""
    generator = np.random.default_rng(seed)
    order = generator.permutation(n)
    part = np.zeros(n, dtype=np.int8)  # per sample: 0 train, 1 validation, 2 test
    for group in [order[classes[order] == c] for c in np.unique(classes)] if classes is not None else [order]:
        n_test, n_val = round(len(group) * test_fraction), round(len(group) * val_fraction)
        part[group[:n_test]] = 2
        part[group[n_test : n_test + n_val]] = 1
    # Each split in a second, independent order: its first N samples (data.limit) are a fair sample of it.
    mix = generator.permutation(n)
    return [mix[part[mix] == k] for k in (0, 1, 2)]


def to_split(x, y, limit: int | None = None) -> Split:
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    x = x.float() if x.is_floating_point() else x.long()
    y = y.float() if y.is_floating_point() else y.long()
    return Split(x[:limit], y[:limit])


def resize_images(data: Dataset, size: int) -> Dataset:
    """Scale every split's images to size×size (bilinear), e.g. to LeNet-5's 32×32 input."""
    import torch.nn.functional as F

    for split in (data.train, data.val, data.test):
        split.x = F.interpolate(split.x, size=(size, size), mode="bilinear", align_corners=False)
    return data


class TensorBatches:
    """An iterable of (x, y) batches over a split; a fresh seeded permutation each epoch when shuffling.

    batch_size None means the whole split in one batch (full-batch gradient descent). Under DDP each
    process takes every world-th sample of the same permutation (its shard); a training shard drops the
    permutation's last few samples so that every process takes the same number of steps. smallest: a last
    batch with fewer samples is left out (batch norm cannot normalize a batch of one).
    """

    def __init__(self, split: Split, batch_size: int | None, shuffle: bool = False, seed: int = 0, smallest: int = 1):
        self.split, self.shuffle, self.smallest = split, shuffle, smallest
        self.batch_size = batch_size or len(split)
        self.generator = torch.Generator().manual_seed(seed)

    def to(self, device: torch.device) -> TensorBatches:
        """Hold the split on the device (a GPU): batches are then cut there, with no copy from the host."""
        self.split = Split(self.split.x.to(device), self.split.y.to(device))
        return self

    def _shard_size(self) -> int:
        n, (rank, world) = len(self.split), _rank_and_world()
        if world == 1:
            return n
        return n // world if self.shuffle else len(range(rank, n, world))

    def __len__(self) -> int:
        full, rest = divmod(self._shard_size(), self.batch_size)
        return full + (rest >= self.smallest)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        n, (rank, world) = len(self.split), _rank_and_world()
        order = torch.randperm(n, generator=self.generator) if self.shuffle else None
        if world > 1:  # this process's shard
            order = (order[: n // world * world] if order is not None else torch.arange(n))[rank::world]
        if order is not None:
            order = order.to(self.split.y.device)
        size = self._shard_size()
        for start in range(0, size, self.batch_size):
            if size - start < self.smallest:
                break
            if order is None:
                yield self.split.x[start : start + self.batch_size], self.split.y[start : start + self.batch_size]
            else:
                idx = order[start : start + self.batch_size]
                yield self.split.x[idx], self.split.y[idx]


def _rank_and_world() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class Chunks:
    """Consecutive batches of a loader in lists of up to `size`: one list per Lightning training step.

    limit: only the first batches of each epoch, a number or a fraction (Lightning's limit_train_batches,
    which would otherwise count lists)."""

    def __init__(self, loader: TensorBatches, size: int, limit: int | float | None = None):
        self.loader, self.size, self.limit = loader, size, limit

    def batches(self) -> int:
        """The batches an epoch trains (asked each time: under DDP a shard is known only once the processes are up)."""
        n, limit = len(self.loader), self.limit
        return n if limit is None else min(n, limit if isinstance(limit, int) else int(limit * n))

    def __len__(self) -> int:
        return -(-self.batches() // self.size)

    def __iter__(self) -> Iterator[list[tuple[Tensor, Tensor]]]:
        chunk: list[tuple[Tensor, Tensor]] = []
        for _, batch in zip(range(self.batches()), self.loader, strict=False):  # stops at the limit
            chunk.append(batch)
            if len(chunk) == self.size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk
