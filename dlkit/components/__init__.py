"""Plain-PyTorch building blocks. Importing this package registers them all."""

from dlkit.components import activations, dropout, losses, norms, optimizers, residual  # noqa: F401
