"""MNIST-1D (Greydanus, 2020): 4,000 train / 1,000 test signals of length 40, ten classes.

Generated offline by the `mnist1d` package's `make_dataset` with its default arguments (the same
procedure as the published set), then cached as .npz so later runs skip the ~1 s of generation.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from dlkit.data.tensors import Dataset, split
from dlkit.folders import written_whole
from dlkit.registry import register
from dlkit.schema import PositiveInt, SplitFraction

log = logging.getLogger("dlkit")


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
        if cache is not None:  # a parallel job generating it too never reads half a file
            cache.parent.mkdir(parents=True, exist_ok=True)
            with written_whole(cache) as partial:
                np.savez(partial, **arrays)
            log.info("MNIST-1D (seed %d) generated and cached in %s", seed, cache)
    x, x_test = (arrays[key][:, None, :].astype(np.float32) for key in ("x", "x_test"))
    y, y_test = (arrays[key].astype(np.int64) for key in ("y", "y_test"))
    return split("mnist1d", x, y, val_fraction=val_fraction, test=(x_test, y_test), limit=limit, num_classes=10)
