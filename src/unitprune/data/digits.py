"""scikit-learn's 8x8 handwritten digits (``sklearn.datasets.load_digits``), for tiny runs and tests.

1,797 real digits, 10 classes, pixel values 0..16, shipped inside scikit-learn (offline).
There is no official test set: ``test_fraction`` (default 20 %) is held out, stratified and
seeded, and the rest is split 90 / 10 into train / validation (1,293 / 144 / 360 by default).

Inputs are ``(N, 1, 8, 8)`` float32: ``x = (pixel / 16 - DIGITS_MEAN) / DIGITS_STD`` with the
fixed mean / std of all 1,797 images after scaling to [0, 1] (0.3053 / 0.3760).
"""

from __future__ import annotations

import logging

import numpy as np

from .splits import DatasetSplits, make_tensor_dataset, stratified_split

__all__ = ["DIGITS_MEAN", "DIGITS_STD", "load_digits"]

logger = logging.getLogger(__name__)

DIGITS_MEAN = 0.3053
DIGITS_STD = 0.3760


def load_digits(*, seed: int = 0, val_fraction: float = 0.1, test_fraction: float = 0.2) -> DatasetSplits:
    """Load the sklearn digits as :class:`DatasetSplits` (inputs ``(N, 1, 8, 8)``, normalised).

    Args:
        seed: seed of the stratified splits.
        val_fraction: fraction of the training pool used for validation.
        test_fraction: fraction of all 1,797 digits held out as the test set.
    """
    from sklearn.datasets import load_digits as _sk_load_digits  # here: importing unitprune.data skips sklearn

    bunch = _sk_load_digits()
    pixels = bunch.data.astype(np.float32).reshape(-1, 1, 8, 8)
    labels = bunch.target.astype(np.int64)
    x = (pixels / 16.0 - DIGITS_MEAN) / DIGITS_STD

    pool_idx, test_idx = stratified_split(labels, test_fraction, seed)
    # positions inside the pool, mapped back to dataset indices
    train_pos, val_pos = stratified_split(labels[pool_idx], val_fraction, seed)
    train_idx, val_idx = pool_idx[train_pos], pool_idx[val_pos]

    splits = DatasetSplits(
        name="digits",
        train=make_tensor_dataset(x[train_idx], labels[train_idx]),
        val=make_tensor_dataset(x[val_idx], labels[val_idx]),
        test=make_tensor_dataset(x[test_idx], labels[test_idx]),
        num_classes=10,
        input_shape=(1, 8, 8),
        class_names=tuple(str(d) for d in range(10)),
        normalization={"scale": 1 / 16, "mean": DIGITS_MEAN, "std": DIGITS_STD},
        info={"source": "sklearn.datasets.load_digits", "seed": seed},
    )
    logger.info("loaded %s", splits.describe())
    return splits
