"""A dlkit plugin: the Swish activation, f(x) = x · σ(βx) (β = 1 is PyTorch's SiLU).

Everything a plugin needs: register the component, ship its YAML option in conf/<group>/.
Use it with `dlkit activation=swish` or `dlkit activation=swish activation.beta=2`.
"""

import torch
from torch import nn

from dlkit.registry import register


@register("activation", "swish")
class Swish(nn.Module):
    def __init__(self, beta: float = 1.0):
        super().__init__()
        self.beta = beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.beta * x)
