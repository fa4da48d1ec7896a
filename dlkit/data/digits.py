"""scikit-learn's handwritten digits: 1,797 real 8×8 grey images of 0-9, shipped with the package."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from dlkit.data.tensors import Dataset, Split
from dlkit.registry import register


@register("data", "digits")
def digits(
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    split_seed: int = 0,
    resize: int | None = None,
    limit: int | None = None,
) -> Dataset:
    """A stratified train/val/test split, fixed by split_seed (not by the run's seed), pixels in [0, 1].

    resize=32 scales the images to 32×32 (bilinear), the input size LeNet-5 was drawn for;
    limit keeps only the first N samples of each split (for quick tests).
    """
    x, y = load_digits(return_X_y=True)
    x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=test_fraction, stratify=y, random_state=split_seed)
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=val_fraction / (1 - test_fraction), stratify=y_rest, random_state=split_seed
    )

    def split(xs, ys) -> Split:
        images = torch.tensor(xs, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0
        if resize:
            images = F.interpolate(images, size=(resize, resize), mode="bilinear", align_corners=False)
        labels = torch.tensor(ys, dtype=torch.long)
        return Split(images[:limit], labels[:limit])

    train, val, test = split(x_train, y_train), split(x_val, y_val), split(x_test, y_test)
    return Dataset("digits", train, val, test, input_shape=tuple(train.x.shape[1:]), num_classes=10)
