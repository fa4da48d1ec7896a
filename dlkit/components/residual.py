"""Skip connections: y = F(x) + skip(x), where skip is the identity or, where shapes differ, a projection."""

from __future__ import annotations

from torch import Tensor, nn

from dlkit.registry import register


class Residual(nn.Module):
    """Wraps a body F with a skip path; with no skip it is just F, the same network without the shortcut."""

    def __init__(self, body: nn.Module, skip: nn.Module | None):
        super().__init__()
        self.body, self.skip = body, skip

    def forward(self, x: Tensor) -> Tensor:
        out = self.body(x)
        return out if self.skip is None else out + self.skip(x)


@register("residual", "none")
def no_skip(in_features: int, out_features: int, dim: int, stride: int = 1) -> nn.Module | None:
    return None


@register("residual", "identity")
def identity_skip(in_features: int, out_features: int, dim: int, stride: int = 1) -> nn.Module | None:
    """The identity where shapes match; a learned projection (linear map or strided 1×1 conv) where not."""
    if in_features == out_features and stride == 1:
        return nn.Identity()
    if dim == 1:
        return nn.Linear(in_features, out_features, bias=False)
    return nn.Conv2d(in_features, out_features, kernel_size=1, stride=stride, bias=False)
