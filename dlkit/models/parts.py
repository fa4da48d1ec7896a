"""What a model asks the config for: fresh activation, norm, dropout and skip layers."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from dlkit.errors import ConfigError
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
        """Look every name up once, so a typo fails before any layer is built."""
        for kind in ("activation", "norm", "dropout", "residual"):
            registry(kind).get(getattr(self, kind)["name"])


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0, *, layer: str) -> int:
    """The chapter's formula: output = (input − kernel + 2·padding) / stride + 1, checked to stay ≥ 1."""
    out = (size - kernel + 2 * padding) // stride + 1
    if out < 1:
        raise ConfigError(
            f"{layer}: output size (input {size} − kernel {kernel} + 2·padding {padding}) / stride {stride} + 1"
            f" = {out} is below 1; use a larger input (data.resize) or a smaller kernel."
        )
    return out
