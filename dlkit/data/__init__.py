"""Data sets, held in memory as tensors. Importing this package registers them all."""
from dlkit.data import digits  # noqa: F401
from dlkit.data.tensors import Dataset, Split, TensorBatches  # noqa: F401
