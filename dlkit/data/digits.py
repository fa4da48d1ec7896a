"""scikit-learn's handwritten digits: 1,797 real 8×8 grey images of 0-9, shipped with the package."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from dlkit.data.tensors import Dataset, split
from dlkit.registry import register
from dlkit.schema import PositiveInt, SplitFraction


@register("data", "digits")
def digits(
    val_fraction: SplitFraction = 0.1,
    test_fraction: SplitFraction = 0.2,
    split_seed: int = 0,
    limit: PositiveInt | None = None,
) -> Dataset:
    """A stratified train/val/test split, fixed by split_seed (not by the run's seed), pixels in [0, 1].

    limit keeps only the first N samples of each split (for quick tests).
    """
    # The file load_digits reads, read without importing scikit-learn (half a second of a run's start-up).
    csv = Path(importlib.util.find_spec("sklearn").origin).parent / "datasets" / "data" / "digits.csv.gz"
    table = np.loadtxt(csv, delimiter=",")
    x, y = table[:, :-1].reshape(-1, 1, 8, 8) / 16.0, table[:, -1].astype(np.int64)
    return split(
        "digits",
        x,
        y,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=split_seed,
        limit=limit,
        num_classes=10,
    )
