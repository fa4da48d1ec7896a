"""A recurrent network: an RNN, GRU or LSTM over the steps of a sequence, then a linear output layer.

Signals (channels, length) are read one step per position, images (channels, height, width) one row per step,
tokens through an embedding. A whole-sequence task (classes, one value) reads every step's output at once, as
MNIST-1D's published GRU baseline does; a sequence task (one output per step) reads each step's own.

The layer options mean what they can for recurrent layers: `activation` is a plain RNN's (tanh or relu; a GRU's
and an LSTM's are their own: tanh), `dropout=inverted` drops between stacked layers (PyTorch's, so 2 or more);
the others are rejected with the reason rather than silently ignored.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from dlkit.errors import ConfigError, did_you_mean
from dlkit.models.parts import LayerParts, Reshape, head
from dlkit.registry import register
from dlkit.schema import PositiveInt

CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


class Recurrent(nn.Module):
    def __init__(self, layer: nn.RNNBase, embed: nn.Module | None, out: nn.Module, per_step: bool):
        super().__init__()
        self.layer, self.embed, self.out, self.per_step = layer, embed, out, per_step

    def forward(self, x: Tensor) -> Tensor:
        if self.embed is not None:
            x = self.embed(x)  # (batch, steps) tokens -> (batch, steps, embed_dim)
        elif x.dim() == 3:
            x = x.transpose(1, 2)  # signals (batch, channels, length) -> (batch, steps, channels)
        else:
            x = x.permute(0, 2, 1, 3).flatten(2)  # images: one row a step -> (batch, height, channels · width)
        outputs, _ = self.layer(x)  # (batch, steps, hidden · directions)
        return self.out(outputs if self.per_step else outputs.flatten(1))


@register("model", "rnn")
def rnn(
    input_shape: Sequence[int],
    output_shape: Sequence[int],
    parts: LayerParts,
    cell: str = "gru",
    hidden: PositiveInt = 64,
    layers: PositiveInt = 1,
    bidirectional: bool = False,
    input_vocab: int = 0,
    embed_dim: PositiveInt = 16,
) -> nn.Module:
    if cell not in CELLS:
        raise ConfigError(f"rnn: cell '{cell}' is unknown;{did_you_mean(cell, CELLS)} use rnn, gru or lstm.")
    extra = _layer_options(parts, cell, layers)
    if input_vocab:
        steps, features, embed = input_shape[0], embed_dim, nn.Embedding(input_vocab, embed_dim)
    elif len(input_shape) in (2, 3):  # signals: (channels, length); images: (channels, height, width)
        steps = input_shape[1] if len(input_shape) == 3 else input_shape[-1]
        features, embed = math.prod(input_shape) // steps, None
    else:
        raise ConfigError(
            f"rnn reads sequences: signals (channels, length), images (row by row) or tokens; the data has shape"
            f" {tuple(input_shape)}, one vector per sample: use model=mlp."
        )
    width = hidden * (2 if bidirectional else 1)
    layer = CELLS[cell](features, hidden, layers, batch_first=True, bidirectional=bidirectional, **extra)
    per_step = len(output_shape) == 2  # (steps, vocabulary): one output per step
    if per_step and output_shape[0] != steps:
        raise ConfigError(f"rnn gives one output per input step ({steps}); the task wants {output_shape[0]} steps.")
    out = nn.Sequential(nn.Linear(width, output_shape[-1]), Reshape(output_shape)) if per_step else None
    return Recurrent(layer, embed, out or head(steps * width, output_shape), per_step)


def _layer_options(parts: LayerParts, cell: str, layers: int) -> dict:
    """The recurrent layer's arguments the layer options give, or a ConfigError for one that means nothing here."""
    extra: dict = {}
    activation = parts.activation.name
    if cell == "rnn" and activation in ("tanh", "relu"):
        extra["nonlinearity"] = activation
    elif activation != "tanh":
        able = "tanh or relu" if cell == "rnn" else "its own, tanh (its gates are sigmoids)"
        raise ConfigError(f"model=rnn with cell={cell}: activation={activation} cannot apply; a {cell}'s is {able}.")
    if parts.dropout.name == "inverted":
        if layers < 2:
            raise ConfigError("rnn: dropout applies between stacked recurrent layers: set model.layers=2 or more.")
        extra["dropout"] = parts.dropout.params["p"]
    elif parts.dropout.name != "none":
        raise ConfigError(
            f"rnn: dropout={parts.dropout.name} is for feed-forward layers; a recurrent stack takes dropout=inverted."
        )
    for kind, off in (("norm", "none"), ("residual", "none")):
        chosen = getattr(parts, kind).name
        if chosen != off:
            option = "none" if kind == "norm" else "off"
            raise ConfigError(f"rnn: {kind}={chosen} has no place in a recurrent layer here; use {kind}={option}.")
    return extra
