"""Data sets, held in memory as tensors. Importing this package registers them all."""

from dlkit.data import digits, idx, mnist1d, synthetic  # noqa: F401
from dlkit.data.tensors import PAD, Dataset, Split, TensorBatches  # noqa: F401
