"""Regression: one real output. Both MSE and MAE are measured whatever the training loss."""

from __future__ import annotations

import torch
from torch import Tensor

from dlkit.registry import register
from dlkit.tasks.base import Supervised


@register("task", "regression")
class Regression(Supervised):
    output, target = "identity", "value"

    def sums(self, predicted: Tensor, y: Tensor) -> Tensor:
        error = predicted - y
        return torch.stack([(error**2).sum(), error.abs().sum()])

    guess = "always predicting the mean"

    @classmethod
    def chance(cls, y: Tensor) -> dict[str, float]:
        return {"mse": float(y.float().var(unbiased=False))}  # the mean's MSE

    @classmethod
    def at_chance(cls, value: float, level: float, n: int) -> bool:
        return value >= level

    def epoch_metrics(self, stats: list[float], n: float) -> dict[str, float]:
        return {"mse": stats[0] / n, "mae": stats[1] / n}
