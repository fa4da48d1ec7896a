"""A convolutional network described in the config: blocks of conv/norm/activation/dropout/pool,
then fully connected layers. 1-D for signals, 2-D for images, by the data's shape."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from dlkit.errors import ConfigError, did_you_mean
from dlkit.models.conv import ROUNDING, Block, conv_block, image_dims
from dlkit.models.mlp import dense_unit
from dlkit.models.parts import LayerParts, head
from dlkit.registry import register
from dlkit.schema import PositiveInt


def conv_net(
    model: str,
    input_shape: Sequence[int],
    output_shape: Sequence[int],
    parts: LayerParts,
    blocks: Sequence[Mapping[str, Any]],
    fc: Sequence[PositiveInt],
    size_rounding: str = "exact",
) -> nn.Module:
    """size_rounding: 'exact' (the chapter's formula, a size that is not whole is an error) or 'floor'
    (PyTorch's rounding down); the network's `rounded` lists the layers it rounded, for dlkit check."""
    if size_rounding not in ROUNDING:
        raise ConfigError(
            f"{model}: size_rounding '{size_rounding}' is unknown;{did_you_mean(size_rounding, ROUNDING)}"
            " use exact or floor."
        )
    dim = image_dims(input_shape, model)
    channels, size = input_shape[0], input_shape[-1]
    layers: list[nn.Module] = []
    rounded: list[str] = []
    for i, block in enumerate(blocks, start=1):
        block_layers, channels, size = conv_block(parts, dim, channels, size, block, model, i, size_rounding, rounded)
        layers += block_layers
    widths = [channels * size**dim, *fc]
    layers.append(nn.Flatten())
    layers += [dense_unit(parts, a, b) for a, b in zip(widths, widths[1:], strict=False)]
    layers.append(head(widths[-1], output_shape))
    net = nn.Sequential(*layers)
    net.rounded = rounded
    return net


@register("model", "cnn")
def cnn(
    input_shape: Sequence[int],
    output_shape: Sequence[int],
    parts: LayerParts,
    blocks: Sequence[Block] = (
        {"channels": 16, "kernel": 3, "padding": 1, "pool": "max"},
        {"channels": 32, "kernel": 3, "padding": 1, "pool": "max"},
    ),
    fc: Sequence[PositiveInt] = (64,),
    size_rounding: str = "exact",
) -> nn.Module:
    return conv_net("cnn", input_shape, output_shape, parts, blocks, fc, size_rounding)
