"""LeNet-5 as the chapter draws it: conv 5×5 (6) → pool → conv 5×5 (16) → pool → fc 120 → fc 84 → output."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from dlkit.errors import ConfigError
from dlkit.models.cnn import conv_net
from dlkit.models.parts import LayerParts
from dlkit.registry import register
from dlkit.schema import PositiveInt


@register("model", "lenet5")
def lenet5(
    input_shape: Sequence[int],
    output_shape: Sequence[int],
    parts: LayerParts,
    channels: Sequence[PositiveInt] = (6, 16),
    fc: Sequence[PositiveInt] = (120, 84),
    kernel: PositiveInt = 5,
    pool: str = "max",
    pool_kernel: PositiveInt = 2,
    size_rounding: str = "exact",
) -> nn.Module:
    if len(input_shape) != 3:
        raise ConfigError(f"lenet5 needs images (channels, height, width); the data has shape {tuple(input_shape)}.")
    blocks = [{"channels": c, "kernel": kernel, "pool": pool, "pool_kernel": pool_kernel} for c in channels]
    return conv_net("lenet5", input_shape, output_shape, parts, blocks, fc, size_rounding)
