"""Classification (softmax over C classes) and binary classification (one logit, sigmoid)."""

from __future__ import annotations

import torch
from torch import Tensor

from dlkit.data.tensors import Dataset
from dlkit.errors import ConfigError
from dlkit.registry import register
from dlkit.tasks.base import Supervised, majority_share


@register("task", "classification")
class Classification(Supervised):
    """Metrics: loss, accuracy, and the worst class's recall (recall_min: the minority-class question)."""

    output, target = "softmax", "class"

    @classmethod
    def output_shape(cls, data: Dataset) -> tuple[int, ...]:
        return (data.num_classes,)

    def predict(self, logits: Tensor) -> Tensor:
        return logits.argmax(dim=1)

    def sums(self, predicted: Tensor, y: Tensor) -> Tensor:
        """One bincount: entry 2c counts the misses of class c, entry 2c + 1 its hits."""
        hit = (predicted == y).long()
        return torch.bincount(y * 2 + hit, minlength=2 * self.shape[0])

    @classmethod
    def chance(cls, y: Tensor) -> dict[str, float]:
        return {"acc": majority_share(y)}

    def epoch_metrics(self, stats: list[float], n: float) -> dict[str, float]:
        misses, hits = stats[0::2], stats[1::2]
        recalls = [h / (h + m) for h, m in zip(hits, misses) if h + m]
        return {"acc": sum(hits) / n, "recall_min": min(recalls)}


@register("task", "binary")
class BinaryClassification(Supervised):
    """Two classes, one logit z, P(y = 1) = σ(z). Metrics: loss, accuracy, recall of class 1."""

    output, target = "sigmoid", "class"

    @classmethod
    def check_data(cls, data: Dataset) -> None:
        super().check_data(data)
        if data.num_classes != 2:
            raise ConfigError(f"task 'binary' needs two classes; {data.describe()}: use task=classification.")

    def predict(self, logits: Tensor) -> Tensor:
        return logits > 0

    def sums(self, predicted: Tensor, y: Tensor) -> Tensor:
        positive = y == 1
        return torch.stack([(predicted == positive).sum(), (predicted & positive).sum(), positive.sum()])

    @classmethod
    def chance(cls, y: Tensor) -> dict[str, float]:
        return {"acc": majority_share(y)}

    def epoch_metrics(self, stats: list[float], n: float) -> dict[str, float]:
        correct, true_positive, positives = stats
        return {"acc": correct / n, "recall": true_positive / positives if positives else 0.0}
