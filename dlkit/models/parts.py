"""What a model asks the config for (fresh activation, norm, dropout and skip layers), and the
output head every model ends with."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from dlkit.registry import Spec, registry

# What dlkit passes each layer option when a model asks for one: the config may not set these.
CONTEXT = {
    "activation": (),
    "norm": ("num_features", "dim"),
    "dropout": (),
    "residual": ("in_features", "out_features", "dim", "stride"),
}


@dataclass(frozen=True)
class LayerParts:
    """The layer options a config chose (checked Specs); a model asks for fresh layers of each."""

    activation: Spec
    norm: Spec
    dropout: Spec
    residual: Spec

    @classmethod
    def from_configs(cls, **sections: Mapping[str, Any]) -> LayerParts:
        """From config sections ({'name': 'relu'}, ...), each checked against its registry entry."""
        return cls(**{kind: registry(kind).spec(sections[kind], CONTEXT[kind]) for kind in CONTEXT})

    def act(self) -> nn.Module:
        return self.activation()

    def norm_layer(self, num_features: int, dim: int) -> nn.Module:
        return self.norm(num_features=num_features, dim=dim)

    def drop(self) -> nn.Module:
        return self.dropout()

    def skip(self, in_features: int, out_features: int, dim: int, stride: int = 1) -> nn.Module | None:
        return self.residual(in_features=in_features, out_features=out_features, dim=dim, stride=stride)


class Reshape(nn.Module):
    def __init__(self, shape: Sequence[int]):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x: Tensor) -> Tensor:
        return x.view(x.shape[0], *self.shape)  # not len(x): torch.export keeps the batch size symbolic


def head(in_features: int, output_shape: Sequence[int]) -> nn.Module:
    """The last linear layer, shaped for the task: (classes,), () for one value, (steps, vocabulary)."""
    return nn.Sequential(nn.Linear(in_features, math.prod(output_shape)), Reshape(output_shape))
