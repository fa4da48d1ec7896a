"""LeNet-5 as the chapter draws it: conv(6) → pool → conv(16) → pool → fc 120 → fc 84 → output."""
from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from dlkit.errors import ConfigError
from dlkit.models.mlp import dense_unit
from dlkit.models.parts import LayerParts, conv_output_size
from dlkit.registry import register

POOLS = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


@register("model", "lenet5")
def lenet5(
    input_shape: Sequence[int],
    num_outputs: int,
    parts: LayerParts,
    channels: Sequence[int] = (6, 16),
    fc: Sequence[int] = (120, 84),
    kernel: int = 5,
    pool: str = "max",
) -> nn.Module:
    if len(input_shape) != 3:
        raise ConfigError(f"lenet5 needs images (channels, height, width); the data has shape {tuple(input_shape)}.")
    if pool not in POOLS:
        raise ConfigError(f"lenet5 pool '{pool}' is unknown; available: {', '.join(POOLS)}.")
    in_ch, size, _ = input_shape
    layers: list[nn.Module] = []
    for i, out_ch in enumerate(channels, start=1):
        size = conv_output_size(size, kernel, layer=f"lenet5 conv{i}")
        size = conv_output_size(size, 2, stride=2, layer=f"lenet5 pool{i}")
        layers += [nn.Conv2d(in_ch, out_ch, kernel), parts.norm_layer(out_ch, 2), parts.act(), POOLS[pool](2)]
        in_ch = out_ch
    widths = [in_ch * size * size, *fc]
    layers.append(nn.Flatten())
    layers += [dense_unit(parts, a, b) for a, b in zip(widths, widths[1:])]
    layers.append(nn.Linear(widths[-1], num_outputs))
    return nn.Sequential(*layers)
