"""Activation functions f in h = f(wᵀx + b). Softmax is not here: the loss owns the output function."""

from torch import nn

from dlkit.registry import register

register("activation", "sigmoid")(nn.Sigmoid)  # σ(x) = 1 / (1 + e^-x)
register("activation", "tanh")(nn.Tanh)  # tanh(x) = (e^x - e^-x) / (e^x + e^-x)
register("activation", "relu")(nn.ReLU)  # max(0, x)
register("activation", "leaky_relu")(nn.LeakyReLU)  # max(0, x) + slope * min(0, x)
register("activation", "gelu")(nn.GELU)
register("activation", "identity")(nn.Identity)  # no non-linearity: stacked layers collapse to one linear map
