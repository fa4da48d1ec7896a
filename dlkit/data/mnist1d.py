"""MNIST-1D (Greydanus, 2020): 4,000 train / 1,000 test signals of length 40, ten classes.

Generated offline by the `mnist1d` package's `make_dataset` with its default arguments (the same
procedure as the published set), then cached as .npz so later runs skip the ~1 s of generation.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from dlkit.data.tensors import Dataset, to_split
from dlkit.registry import register
from dlkit.schema import PositiveInt, SplitFraction


def _generate(seed: int) -> dict[str, np.ndarray]:
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed = seed
    made = make_dataset(args)
    return {k: made[k] for k in ("x", "y", "x_test", "y_test")}


@register("data", "mnist1d")
def mnist1d(
    val_fraction: SplitFraction = 0.1,
    seed: int = 42,
    cache_dir: str | None = None,
    limit: PositiveInt | None = None,
) -> Dataset:
    """The last val_fraction of the 4,000 training signals is the validation split; inputs are (1, 40)."""
    cache = Path(cache_dir) / f"mnist1d-seed{seed}.npz" if cache_dir else None
    if cache is not None and cache.is_file():
        arrays = dict(np.load(cache))
    else:
        arrays = _generate(seed)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cache, **arrays)
    x, y = arrays["x"][:, None, :].astype(np.float32), arrays["y"].astype(np.int64)
    n_val = int(round(len(y) * val_fraction))
    train, val = to_split(x[:-n_val], y[:-n_val], limit), to_split(x[-n_val:], y[-n_val:], limit)
    test = to_split(arrays["x_test"][:, None, :].astype(np.float32), arrays["y_test"].astype(np.int64), limit)
    return Dataset("mnist1d", train, val, test, num_classes=10)
