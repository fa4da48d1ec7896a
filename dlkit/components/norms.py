"""Normalization layers, built for a number of features and a layout (dim 1: vectors, dim 2: images)."""

from torch import nn

from dlkit.registry import register
from dlkit.schema import Fraction, PositiveFloat


@register("norm", "none")
def no_norm(num_features: int, dim: int) -> nn.Module:
    return nn.Identity()


@register("norm", "batch")
def batch_norm(num_features: int, dim: int, momentum: Fraction = 0.1, eps: PositiveFloat = 1e-5) -> nn.Module:
    """BN(x) = γ (x − μ) / σ + β with μ, σ over the batch (and the positions, for images)."""
    layer = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}[dim]
    return layer(num_features, momentum=momentum, eps=eps)


@register("norm", "layer")
def layer_norm(num_features: int, dim: int, eps: PositiveFloat = 1e-5) -> nn.Module:
    """Normalizes each sample over its own features (over channels and positions for images)."""
    return nn.LayerNorm(num_features, eps=eps) if dim == 1 else nn.GroupNorm(1, num_features, eps=eps)
