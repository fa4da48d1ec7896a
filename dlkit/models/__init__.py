"""Networks built from the layer options. Importing this package registers them all."""

from dlkit.models import cnn, lenet5, mlp, resnet, rnn  # noqa: F401
