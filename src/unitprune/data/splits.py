"""The :class:`DatasetSplits` container and the seeded split helpers shared by all loaders.

Protocol (paper, section 3.2): the training pool is split 90 % train / 10 % validation, the test
set is separate. The validation set is used only for early stopping and for calibrating pruning
thresholds; the test set only for final numbers. All splits here are deterministic functions of
an integer ``seed`` (no global random state is touched).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import TensorDataset

__all__ = ["DatasetSplits", "make_tensor_dataset", "stratified_split"]

logger = logging.getLogger(__name__)


@dataclass
class DatasetSplits:
    """Train / validation / test splits of one dataset, ready for a model.

    Attributes:
        name: dataset name as passed to :func:`unitprune.data.load_dataset`.
        train, val, test: ``TensorDataset(inputs, labels)`` with float32 inputs shaped
            ``(N, C, H, W)`` (already normalised) and int64 labels in ``[0, num_classes)``.
        num_classes: number of classes the model must output.
        input_shape: ``(C, H, W)`` of one example.
        class_names: name of each class index.
        normalization: how inputs were normalised (e.g. ``{"mean": ..., "std": ...}`` applied as
            ``(x - mean) / std`` after scaling to [0, 1]); needed to feed new data or firmware.
        info: free-form provenance (source files, split rule, counts).
    """

    name: str
    train: TensorDataset
    val: TensorDataset
    test: TensorDataset
    num_classes: int
    input_shape: tuple[int, ...]
    class_names: tuple[str, ...]
    normalization: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def sizes(self) -> dict[str, int]:
        """Number of examples per split, e.g. ``{"train": 3600, "val": 400, "test": 1000}``."""
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}

    def describe(self) -> str:
        """One line summary: name, split sizes, input shape and number of classes."""
        sizes = self.sizes()
        return (
            f"{self.name}: train={sizes['train']} val={sizes['val']} test={sizes['test']} "
            f"input={tuple(self.input_shape)} classes={self.num_classes}"
        )


def make_tensor_dataset(x: np.ndarray, y: np.ndarray) -> TensorDataset:
    """Wrap numpy inputs ``(N, C, H, W)`` and labels ``(N,)`` as float32 / int64 tensors."""
    if len(x) != len(y):
        raise ValueError(f"inputs and labels differ in length: {len(x)} vs {len(y)}")
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    yt = torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64))
    return TensorDataset(xt, yt)


def stratified_split(
    labels: np.ndarray, holdout: float | int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices ``0..len(labels)-1`` into (keep, holdout), stratified by label.

    Args:
        labels: int labels, shape ``(N,)``.
        holdout: fraction in (0, 1) or an absolute number of held-out examples.
        seed: seed of the shuffle; the same seed gives the same split.

    Returns:
        Two sorted int64 index arrays, disjoint, covering all of ``range(N)``.

    Falls back to a plain seeded (unstratified) split, with a warning, when some class has
    too few members to be stratified.
    """
    from sklearn.model_selection import train_test_split  # here: a process that only unpickles splits skips sklearn

    labels = np.asarray(labels)
    index = np.arange(len(labels))
    try:
        keep, held = train_test_split(index, test_size=holdout, stratify=labels, random_state=seed)
    except ValueError as exc:  # a class with a single member cannot be stratified
        logger.warning("stratified split impossible (%s); using an unstratified seeded split", exc)
        keep, held = train_test_split(index, test_size=holdout, random_state=seed)
    return np.sort(keep), np.sort(held)
