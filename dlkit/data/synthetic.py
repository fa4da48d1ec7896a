"""Small data sets made for the chapter's questions, generated in memory from a fixed seed."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dlkit.data.tensors import PAD, Dataset, split
from dlkit.registry import register
from dlkit.schema import Fraction, NonNegativeFloat, PositiveInt, SplitFraction


@register("data", "spirals")
def spirals(
    samples: PositiveInt = 1000,
    arms: PositiveInt = 2,
    turns: float = 1.5,
    noise: NonNegativeFloat = 0.05,
    seed: int = 0,
    val_fraction: SplitFraction = 0.1,
    test_fraction: SplitFraction = 0.2,
    limit: PositiveInt | None = None,
) -> Dataset:
    """Interleaved spiral arms in the plane: no straight line separates them (a non-linear problem)."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, arms, samples)
    r = rng.uniform(0.05, 1.0, samples)
    angle = 2 * np.pi * (turns * r + label / arms)
    x = np.stack([r * np.cos(angle), r * np.sin(angle)], axis=1) + rng.normal(0, noise, (samples, 2))
    return split(
        "spirals",
        x.astype(np.float32),
        label,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
        limit=limit,
        num_classes=arms,
    )


@register("data", "moons")
def moons(
    samples: PositiveInt = 1000,
    noise: NonNegativeFloat = 0.15,
    seed: int = 0,
    val_fraction: SplitFraction = 0.1,
    test_fraction: SplitFraction = 0.2,
    limit: PositiveInt | None = None,
) -> Dataset:
    """scikit-learn's two interleaving half circles."""
    from sklearn.datasets import make_moons

    x, y = make_moons(samples, noise=noise, random_state=seed)
    return split(
        "moons",
        x.astype(np.float32),
        y,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
        limit=limit,
        num_classes=2,
    )


@register("data", "regression_outliers")
def regression_outliers(
    samples: PositiveInt = 1000,
    features: PositiveInt = 5,
    noise: NonNegativeFloat = 0.1,
    outlier_fraction: Fraction = 0.1,
    outlier_scale: float = 20.0,
    seed: int = 0,
    val_fraction: SplitFraction = 0.1,
    test_fraction: SplitFraction = 0.2,
    limit: PositiveInt | None = None,
) -> Dataset:
    """y = wᵀx + b + noise; a fraction of the training targets is corrupted by large one-sided errors.

    Validation and test targets stay clean, so they measure how far the outliers pulled the fit:
    the question of MSE (which squares them) against MAE.
    """
    rng = np.random.default_rng(seed)
    w, b = rng.normal(size=features), rng.normal()
    x = rng.uniform(-1, 1, (samples, features))
    y = x @ w + b + rng.normal(0, noise, samples)
    data = split(
        "regression_outliers",
        x.astype(np.float32),
        y.astype(np.float32),
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
        limit=limit,
        target="value",
    )
    bad = rng.random(len(data.train)) < outlier_fraction
    data.train.y[bad] += float(outlier_scale) * rng.uniform(0.5, 1.0, int(bad.sum())).astype(np.float32)
    return data


@register("data", "imbalanced")
def imbalanced(
    samples: PositiveInt = 2000,
    features: PositiveInt = 10,
    weights: Sequence[float] = (0.9, 0.1),
    separation: float = 0.8,
    seed: int = 0,
    val_fraction: SplitFraction = 0.1,
    test_fraction: SplitFraction = 0.2,
    limit: PositiveInt | None = None,
) -> Dataset:
    """Classes in the given proportions (default 90% / 10%): the focal-loss question is minority recall."""
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=samples,
        n_features=features,
        n_informative=max(2, features // 2),
        n_redundant=0,
        n_classes=len(weights),
        weights=list(weights),
        class_sep=separation,
        flip_y=0.0,
        random_state=seed,
    )
    return split(
        "imbalanced",
        x.astype(np.float32),
        y,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
        limit=limit,
        num_classes=len(weights),
    )


@register("data", "reverse")
def reverse(
    samples: PositiveInt = 4000,
    vocab: PositiveInt = 10,
    min_len: PositiveInt = 2,
    max_len: PositiveInt = 8,
    seed: int = 0,
    val_fraction: SplitFraction = 0.1,
    test_fraction: SplitFraction = 0.2,
    limit: PositiveInt | None = None,
) -> Dataset:
    """Sequence to sequence: reverse a token sequence of variable length (tokens 1..vocab-1, PAD = 0).

    The splits are cut in the order generated (no shuffle: the sequences are independent draws already).
    """
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_len, max_len + 1, samples)
    x = np.full((samples, max_len), PAD, dtype=np.int64)
    y = np.full((samples, max_len), PAD, dtype=np.int64)
    for i, length in enumerate(lengths):
        tokens = rng.integers(1, vocab, length)
        x[i, :length], y[i, :length] = tokens, tokens[::-1]
    return split(  # no seed: cut in the order generated
        "reverse",
        x,
        y,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        limit=limit,
        target="sequence",
        num_classes=vocab,
        input_vocab=vocab,
    )
