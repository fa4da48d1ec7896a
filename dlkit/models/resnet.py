"""A small residual CNN: a stem, stages of two-conv blocks with skips, global pooling, a linear head.

With residual=none the skips are gone and nothing else changes, so depth studies compare like with like.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from dlkit.errors import ConfigError
from dlkit.models.parts import LayerParts, head
from dlkit.registry import register
from dlkit.schema import PositiveInt


class Block(nn.Module):
    """y = f(BN(conv(f(BN(conv(x))))) + skip(x))."""

    def __init__(self, parts: LayerParts, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False),
            parts.norm_layer(out_ch, 2),
            parts.act(),
            parts.drop(),
            nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
            parts.norm_layer(out_ch, 2),
        )
        self.skip = parts.skip(in_ch, out_ch, dim=2, stride=stride)
        self.act = parts.act()

    def forward(self, x: Tensor) -> Tensor:
        out = self.body(x)
        if self.skip is not None:
            out = out + self.skip(x)
        return self.act(out)


@register("model", "resnet")
def resnet(
    input_shape: Sequence[int],
    output_shape: Sequence[int],
    parts: LayerParts,
    channels: Sequence[PositiveInt] = (16, 32),
    blocks: PositiveInt = 2,
) -> nn.Module:
    """channels: one stage per entry (each later stage halves the resolution); blocks: per stage."""
    if len(input_shape) != 3:
        raise ConfigError(f"resnet needs images (channels, height, width); the data has shape {tuple(input_shape)}.")
    in_ch = input_shape[0]
    layers: list[nn.Module] = [
        nn.Conv2d(in_ch, channels[0], 3, padding=1, bias=False),
        parts.norm_layer(channels[0], 2),
        parts.act(),
    ]
    in_ch = channels[0]
    for stage, out_ch in enumerate(channels):
        for b in range(blocks):
            stride = 2 if stage > 0 and b == 0 else 1  # each later stage halves the resolution
            layers.append(Block(parts, in_ch, out_ch, stride))
            in_ch = out_ch
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), head(in_ch, output_shape)]
    return nn.Sequential(*layers)
