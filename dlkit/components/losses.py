"""Losses, called as loss(outputs, targets) on the model's raw outputs.

The task says which output function turns raw outputs into predictions: "softmax" (classes),
"sigmoid" (binary), "identity" (regression) or "sequence" (a softmax per time step). Each loss owns
that function, so a model never applies softmax twice, and a loss that cannot serve the task's output
is rejected before training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlkit.errors import ConfigError
from dlkit.registry import register
from dlkit.schema import Fraction, NonNegativeFloat


def _require(loss: str, output: str, supported: tuple[str, ...]) -> None:
    if output not in supported:
        tasks = {"softmax": "classification", "sigmoid": "binary", "identity": "regression", "sequence": "seq2seq"}
        raise ConfigError(
            f"loss '{loss}' does not fit a {tasks.get(output, output)} task ({output} output);"
            f" it serves: {', '.join(f'{tasks[o]} (task={tasks[o]})' for o in supported)}."
        )


def predictions(outputs: Tensor, target: Tensor, output: str) -> tuple[Tensor, Tensor]:
    """(ŷ, y) in the same space: probabilities against one-hot labels, or values against values."""
    if output == "softmax":
        return outputs.softmax(dim=1), F.one_hot(target, outputs.shape[1]).to(outputs.dtype)
    if output == "sigmoid":
        return torch.sigmoid(outputs), target.to(outputs.dtype)
    return outputs, target.to(outputs.dtype)


class _Distance(nn.Module):
    """A distance between predictions and targets in one space: probabilities against one-hot labels, or values."""

    key = ""
    distance = staticmethod(F.mse_loss)

    def __init__(self, output: str):
        super().__init__()
        _require(self.key, output, ("identity", "softmax", "sigmoid"))
        self.output = output

    def forward(self, outputs: Tensor, target: Tensor) -> Tensor:
        return self.distance(*predictions(outputs, target, self.output))


@register("loss", "mse")
class MeanSquaredError(_Distance):
    """MSE(y, ŷ) = (1/n) Σᵢ (yᵢ − ŷᵢ)², over every output."""

    key, distance = "mse", staticmethod(F.mse_loss)


@register("loss", "mae")
class MeanAbsoluteError(_Distance):
    """MAE(y, ŷ) = (1/n) Σᵢ |yᵢ − ŷᵢ|, over every output."""

    key, distance = "mae", staticmethod(F.l1_loss)


@register("loss", "bce")
class BinaryCrossEntropy(nn.Module):
    """−(y log ŷ + (1 − y) log(1 − ŷ)) with ŷ = σ(z), computed from the logit z for stability."""

    def __init__(self, output: str):
        super().__init__()
        _require("bce", output, ("sigmoid",))

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype))


@register("loss", "cross_entropy")
class CrossEntropy(nn.Module):
    """−Σᵢ yᵢ log ŷᵢ with ŷ = softmax(z) and y one-hot, averaged over the batch."""

    def __init__(self, output: str, label_smoothing: Fraction = 0.0):
        super().__init__()
        _require("cross_entropy", output, ("softmax",))
        self.label_smoothing = label_smoothing

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(logits, target, label_smoothing=self.label_smoothing)


@register("loss", "sequence_cross_entropy")
class SequenceCrossEntropy(nn.Module):
    """−(1/T) Σₜ Σᵢ yₜ,ᵢ log ŷₜ,ᵢ per sequence, T its own length (padding ignored), averaged over sequences."""

    def __init__(self, output: str, pad_index: int = 0):
        super().__init__()
        _require("sequence_cross_entropy", output, ("sequence",))
        self.pad_index = pad_index

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:  # logits (N, T, V), target (N, T)
        per_step = F.cross_entropy(logits.transpose(1, 2), target, reduction="none")  # (N, T)
        mask = (target != self.pad_index).to(per_step.dtype)
        per_sequence = (per_step * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
        return per_sequence.mean()


@register("loss", "focal")
class FocalLoss(nn.Module):
    """−(1 − ŷₜ)^γ log ŷₜ, ŷₜ the predicted probability of the true class (p if y = 1 else 1 − p).

    γ = 0 is cross entropy; a larger γ weighs down the examples already classified well.
    """

    def __init__(self, output: str, gamma: NonNegativeFloat = 2.0):
        super().__init__()
        _require("focal", output, ("softmax", "sigmoid"))
        self.output, self.gamma = output, gamma

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        if self.output == "sigmoid":
            y = target.to(logits.dtype)
            log_p_t = -F.binary_cross_entropy_with_logits(logits, y, reduction="none")
        else:
            log_p_t = -F.cross_entropy(logits, target, reduction="none")
        return (-((1 - log_p_t.exp()) ** self.gamma) * log_p_t).mean()
