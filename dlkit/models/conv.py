"""Convolution and pooling blocks, 1-D or 2-D, with every output size checked by the chapter's formula.

    output = (input − kernel + 2·padding) / stride + 1

A size below 1, or a division that is not whole (rows silently dropped), is rejected before training,
naming the layer, the formula's numbers and what would make it whole. Published models that rely on PyTorch's
rounding down (MNIST-1D's CNN: kernel 5, stride 2, padding 1 on length 40 gives 19.5, used as 19) are reproduced
with `model.size_rounding=floor`: opt-in, and each rounded layer is listed by `dlkit check`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

from torch import nn

from dlkit.errors import ConfigError, did_you_mean
from dlkit.models.parts import LayerParts
from dlkit.schema import NonNegativeInt, PositiveInt

CONV = {1: nn.Conv1d, 2: nn.Conv2d}
POOL = {("max", 1): nn.MaxPool1d, ("max", 2): nn.MaxPool2d, ("avg", 1): nn.AvgPool1d, ("avg", 2): nn.AvgPool2d}
ROUNDING = ("exact", "floor")


class Block(TypedDict, total=False):
    """One block of a config's `blocks` list: what each key may be, checked when the job is planned."""

    channels: PositiveInt
    kernel: PositiveInt
    stride: PositiveInt
    padding: NonNegativeInt
    bias: bool
    pool: str | None
    pool_kernel: PositiveInt
    pool_stride: PositiveInt | None


BLOCK_KEYS = tuple(Block.__annotations__)


def output_size(
    size: int, kernel: int, stride: int = 1, padding: int = 0, *, layer: str, rounding: str = "exact", notes=None
) -> int:
    """The chapter's formula, exact: a result below 1 is a configuration error, and so is one not whole unless
    rounding is 'floor' (PyTorch's), which appends a note on the rounded layer to `notes`."""
    span = size - kernel + 2 * padding
    numbers = f"(input {size} − kernel {kernel} + 2·padding {padding}) / stride {stride} + 1"
    if span < 0:
        raise ConfigError(
            f"{layer}: output size {numbers} = {span / stride + 1:g} is below 1; use a larger input (data.resize) or a "
            "smaller kernel."
        )
    if span % stride and rounding == "floor":
        if notes is not None:
            notes.append(f"{layer}: {numbers} = {span / stride + 1:g}, rounded down to {span // stride + 1}")
    elif span % stride:
        mend = _whole_sizes(size, kernel, stride, padding)
        raise ConfigError(f"{layer}: output size {numbers} = {span / stride + 1:g} is not whole; {mend}")
    return span // stride + 1


def _whole_sizes(size: int, kernel: int, stride: int, padding: int) -> str:
    """What would make the size whole: a padding (when one can), a stride, or PyTorch's rounding down."""
    paddings = [p for p in range(padding + 1, padding + stride + 1) if (size - kernel + 2 * p) % stride == 0]
    span = size - kernel + 2 * padding
    strides = [s for s in range(2, stride + 3) if s != stride and span % s == 0] or [1]
    ways = [f"padding {paddings[0]}"] if paddings else []
    if not paddings:  # 2·padding is even: with an even stride no padding can mend an odd (input − kernel)
        ways.append(f"a kernel of {kernel + 1} or {kernel - 1}" if kernel > 1 else f"a kernel of {kernel + 1}")
    ways.append(f"stride {strides[0]}")
    none = "" if paddings else f" (no padding can: input − kernel = {size - kernel} is odd and stride {stride} even)"
    return (
        f"use {' or '.join(ways)}{none}; or model.size_rounding=floor to round down as PyTorch does (published"
        " models that rely on it)."
    )


def conv_block(
    parts: LayerParts,
    dim: int,
    in_ch: int,
    size: int,
    block: Mapping[str, Any],
    model: str,
    index: int,
    rounding: str = "exact",
    notes: list[str] | None = None,
) -> tuple[list[nn.Module], int, int]:
    """conv → norm → activation → dropout → pool; returns the layers, the channels out and the size out."""
    name = f"{model} block {index}"
    unknown = [k for k in block if k not in BLOCK_KEYS]
    if unknown:
        raise ConfigError(
            f"{name}: unknown key '{unknown[0]}';{did_you_mean(unknown[0], BLOCK_KEYS)} a block takes: "
            f"{', '.join(BLOCK_KEYS)}."
        )
    if "channels" not in block or "kernel" not in block:
        raise ConfigError(f"{name}: a block needs 'channels' and 'kernel', got {dict(block)}.")
    out_ch, kernel = int(block["channels"]), int(block["kernel"])
    stride, padding = int(block.get("stride", 1)), int(block.get("padding", 0))
    size = output_size(size, kernel, stride, padding, layer=f"{model} conv{index}", rounding=rounding, notes=notes)
    layers = [
        CONV[dim](in_ch, out_ch, kernel, stride=stride, padding=padding, bias=bool(block.get("bias", True))),
        parts.norm_layer(out_ch, dim),
        parts.act(),
        parts.drop(),
    ]
    pool = block.get("pool", "none")
    if pool not in ("none", None):
        if (pool, dim) not in POOL:
            raise ConfigError(
                f"{name}: pool '{pool}' is unknown;{did_you_mean(pool, ['max', 'avg'])} use max, avg or none."
            )
        pool_kernel = int(block.get("pool_kernel", 2))
        pool_stride = int(block.get("pool_stride") or pool_kernel)
        size = output_size(size, pool_kernel, pool_stride, layer=f"{model} pool{index}", rounding=rounding, notes=notes)
        layers.append(POOL[pool, dim](pool_kernel, stride=pool_stride))
    return layers, out_ch, size


def image_dims(input_shape, model: str) -> int:
    """1 for signals (channels, length), 2 for images (channels, height, width)."""
    if len(input_shape) not in (2, 3):
        raise ConfigError(
            f"{model} needs signals (channels, length) or images (channels, height, width); the data has shape "
            f"{tuple(input_shape)}."
        )
    if len(input_shape) == 3 and input_shape[1] != input_shape[2]:
        raise ConfigError(f"{model} expects square images; the data has shape {tuple(input_shape)}.")
    return len(input_shape) - 1
