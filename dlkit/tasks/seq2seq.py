"""Sequence to sequence: a softmax over the vocabulary at every time step; padding is ignored."""

from __future__ import annotations

import torch
from torch import Tensor

from dlkit.data.tensors import PAD, Dataset
from dlkit.registry import register
from dlkit.tasks.base import Supervised, majority_share


@register("task", "seq2seq")
class Seq2Seq(Supervised):
    """Metrics: loss, token accuracy and whole-sequence accuracy, over real (non-PAD) tokens."""

    output, target = "sequence", "sequence"

    @classmethod
    def output_shape(cls, data: Dataset) -> tuple[int, ...]:
        return (*data.train.y.shape[1:], data.num_classes)

    def predict(self, logits: Tensor) -> Tensor:
        return logits.argmax(dim=-1)

    def sums(self, predicted: Tensor, y: Tensor) -> Tensor:
        real = y != PAD
        right = (predicted == y) & real
        whole = (right | ~real).all(dim=1)
        return torch.stack([right.sum(), real.sum(), whole.sum()])

    guess = "always predicting the most frequent token"

    @classmethod
    def chance(cls, y: Tensor) -> dict[str, float]:
        return {"token_acc": majority_share(y[y != PAD])}

    def epoch_metrics(self, stats: list[float], n: float) -> dict[str, float]:
        right, real, whole = stats
        return {"token_acc": right / real, "seq_acc": whole / n}
