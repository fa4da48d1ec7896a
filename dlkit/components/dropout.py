"""Dropout forms. Both keep the expected activation the same in training and at test time."""

import torch
from torch import Tensor, nn

from dlkit.registry import register
from dlkit.schema import Fraction


@register("dropout", "none")
def no_dropout() -> nn.Module:
    return nn.Identity()


@register("dropout", "inverted")
def inverted_dropout(p: Fraction = 0.5) -> nn.Module:
    """Zero each unit with probability p in training and scale the rest by 1/(1 − p) (PyTorch's form)."""
    return nn.Dropout(p)


@register("dropout", "chapter")
class ChapterDropout(nn.Module):
    """The chapter's form: zero each unit with probability p in training, no scaling; multiply by 1 − p at test."""

    def __init__(self, p: Fraction = 0.5):
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            return x * (torch.rand_like(x) >= self.p).to(x.dtype)
        return x * (1.0 - self.p)
