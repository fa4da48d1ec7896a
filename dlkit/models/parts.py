"""What a model asks the config for (fresh activation, norm, dropout and skip layers), and the
output head every model ends with."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from dlkit.registry import registry


@dataclass(frozen=True)
class LayerParts:
    activation: Mapping[str, Any]
    norm: Mapping[str, Any]
    dropout: Mapping[str, Any]
    residual: Mapping[str, Any]

    def act(self) -> nn.Module:
        return registry("activation").build(self.activation)

    def norm_layer(self, num_features: int, dim: int) -> nn.Module:
        return registry("norm").build(self.norm, num_features=num_features, dim=dim)

    def drop(self) -> nn.Module:
        return registry("dropout").build(self.dropout)

    def skip(self, in_features: int, out_features: int, dim: int, stride: int = 1) -> nn.Module | None:
        return registry("residual").build(
            self.residual, in_features=in_features, out_features=out_features, dim=dim, stride=stride
        )

    def check(self) -> None:
        """Build each option once, so a typo in a name or a parameter fails before any model is built."""
        self.act(), self.norm_layer(1, 1), self.drop(), self.skip(1, 1, 1)


class Reshape(nn.Module):
    def __init__(self, shape: Sequence[int]):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x: Tensor) -> Tensor:
        return x.view(len(x), *self.shape)


def head(in_features: int, output_shape: Sequence[int]) -> nn.Module:
    """The last linear layer, shaped for the task: (classes,), () for one value, (steps, vocabulary)."""
    return nn.Sequential(nn.Linear(in_features, math.prod(output_shape)), Reshape(output_shape))
