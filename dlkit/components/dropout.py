"""Dropout forms."""
from torch import nn

from dlkit.registry import register


@register("dropout", "none")
def no_dropout() -> nn.Module:
    return nn.Identity()


@register("dropout", "inverted")
def inverted_dropout(p: float = 0.5) -> nn.Module:
    """Zero each unit with probability p in training and scale the rest by 1/(1 − p) (PyTorch's form)."""
    return nn.Dropout(p)
