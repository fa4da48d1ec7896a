"""Losses, called as loss(outputs, targets) on the model's raw outputs (logits).

Each loss owns its output function (softmax for cross entropy), so a model never applies one twice.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlkit.registry import register


@register("loss", "cross_entropy")
class CrossEntropy(nn.Module):
    """−(1/n) Σᵢ log softmax(zᵢ)[yᵢ]: the cross entropy of softmax outputs against one-hot labels."""

    def __init__(self, label_smoothing: float = 0.0):
        super().__init__()
        self.label_smoothing = label_smoothing

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(logits, target, label_smoothing=self.label_smoothing)


@register("loss", "mse")
class MeanSquaredError(nn.Module):
    """MSE(y, ŷ) = (1/n) Σᵢ (yᵢ − ŷᵢ)², averaged over every output.

    For class labels, ŷ is the softmax probability vector and y the one-hot label.
    """

    def forward(self, outputs: Tensor, target: Tensor) -> Tensor:
        if target.dtype in (torch.int64, torch.int32) and outputs.dim() == 2:
            prediction = outputs.softmax(dim=1)
            target = F.one_hot(target, outputs.shape[1]).to(prediction.dtype)
            return F.mse_loss(prediction, target)
        return F.mse_loss(outputs, target.to(outputs.dtype))

