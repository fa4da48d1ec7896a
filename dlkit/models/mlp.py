"""A fully connected network: a = f(Wx + b) per hidden layer, then a linear output layer."""
from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from dlkit.components.residual import Residual
from dlkit.models.parts import LayerParts
from dlkit.registry import register


def dense_unit(parts: LayerParts, n_in: int, n_out: int) -> nn.Module:
    """Linear → norm → activation → dropout, with a skip around it when residual is on."""
    body = nn.Sequential(nn.Linear(n_in, n_out), parts.norm_layer(n_out, 1), parts.act(), parts.drop())
    return Residual(body, parts.skip(n_in, n_out, dim=1))


@register("model", "mlp")
def mlp(input_shape: Sequence[int], num_outputs: int, parts: LayerParts, hidden: Sequence[int] = (128,)) -> nn.Module:
    widths = [math.prod(input_shape), *hidden]
    units = [dense_unit(parts, a, b) for a, b in zip(widths, widths[1:])]
    return nn.Sequential(nn.Flatten(), *units, nn.Linear(widths[-1], num_outputs))
