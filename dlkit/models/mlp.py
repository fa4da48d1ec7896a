"""A fully connected network: a = f(Wx + b) per hidden layer, then a linear output layer.

With no hidden layer it is the single layer a = Wx + b (one output: the single neuron wᵀx + b,
whose f is the output function the loss applies).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from dlkit.components.residual import Residual
from dlkit.models.parts import LayerParts, head
from dlkit.registry import register
from dlkit.schema import PositiveInt


def dense_unit(parts: LayerParts, n_in: int, n_out: int) -> nn.Module:
    """Linear → norm → activation → dropout, with a skip around it when residual is on."""
    body = nn.Sequential(nn.Linear(n_in, n_out), parts.norm_layer(n_out, 1), parts.act(), parts.drop())
    return Residual(body, parts.skip(n_in, n_out, dim=1))


@register("model", "mlp")
def mlp(
    input_shape: Sequence[int],
    output_shape: Sequence[int],
    parts: LayerParts,
    hidden: Sequence[PositiveInt] = (256, 128),
    input_vocab: int = 0,
    embed_dim: PositiveInt = 16,
) -> nn.Module:
    """Token inputs (input_vocab > 0) are embedded first, embed_dim numbers per token."""
    layers: list[nn.Module] = []
    if input_vocab:
        layers.append(nn.Embedding(input_vocab, embed_dim))
        input_shape = (*input_shape, embed_dim)
    widths = [math.prod(input_shape), *hidden]
    layers += [nn.Flatten(), *(dense_unit(parts, a, b) for a, b in zip(widths, widths[1:], strict=False))]
    layers.append(head(widths[-1], output_shape))
    return nn.Sequential(*layers)
