"""CIFAR-10 from the official "python version" pickle batches, shape ``(N, 3, 32, 32)``.

Expected layout (what ``cifar-10-python.tar.gz`` extracts to)::

    root/cifar-10-batches-py/data_batch_1 ... data_batch_5, test_batch, batches.meta

``root`` may also be the ``cifar-10-batches-py`` folder itself. Each batch is a pickled dict
with ``b"data"`` (uint8, ``(10000, 3072)``, row = 1024 red, 1024 green, 1024 blue values of a
32x32 image in row-major order) and ``b"labels"`` (list of ints 0..9). ``batches.meta`` (optional)
gives ``b"label_names"``.

The 50,000 training images are split 90 / 10 (stratified, seeded) into train / validation;
``test_batch`` is the test set. Pixels are scaled to [0, 1] and normalised per channel with the
fixed, commonly used CIFAR-10 training-set statistics ``CIFAR10_MEAN`` / ``CIFAR10_STD``.

Pickles are read with a restricted unpickler that only allows the numpy array constructors
these files need, so a tampered file cannot run code.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DatasetFormatError, DatasetNotFoundError
from .splits import DatasetSplits, make_tensor_dataset, stratified_split

__all__ = ["CIFAR10_MEAN", "CIFAR10_STD", "CIFAR10_CLASSES", "load_cifar10", "read_cifar_batch"]

logger = logging.getLogger(__name__)

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
_DOWNLOAD_HINT = (
    "Download https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz, extract it "
    "(tar xzf cifar-10-python.tar.gz) and pass root=<the folder containing cifar-10-batches-py/>. "
    "unitprune never downloads data."
)

# The numpy reconstructors that appear in CIFAR pickles written by Python 2 or 3 / numpy 1 or 2.
_ndarray_reduce = np.zeros(1).__reduce__()[0]
_ndarray_frombuffer = np.zeros(1).__reduce_ex__(5)[0]
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _ndarray_reduce,
    ("numpy._core.multiarray", "_reconstruct"): _ndarray_reduce,
    ("numpy.core.numeric", "_frombuffer"): _ndarray_frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _ndarray_frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): __import__("codecs").encode,
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch") from None


def _get(batch: dict, key: str) -> Any:
    """Look a key up as bytes (official files) or str (re-pickled by Python 3 code)."""
    for k in (key.encode(), key):
        if k in batch:
            return batch[k]
    raise KeyError(key)


def read_cifar_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 batch file.

    Returns:
        ``(images, labels)``: uint8 ``(N, 3, 32, 32)`` and int64 ``(N,)``.

    Raises:
        DatasetFormatError: not a pickle, missing ``data``/``labels``, wrong shapes or labels.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            batch = _SafeUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise DatasetFormatError(f"cannot unpickle CIFAR-10 batch {path}: {exc}") from exc
    if not isinstance(batch, dict):
        raise DatasetFormatError(f"{path}: expected a pickled dict, got {type(batch).__name__}")
    try:
        data = np.asarray(_get(batch, "data"))
        labels = np.asarray(_get(batch, "labels"), dtype=np.int64)
    except KeyError as exc:
        raise DatasetFormatError(f"{path}: batch dict has no {exc.args[0]!r} entry") from None
    if data.ndim != 2 or data.shape[1] != 3072 or data.dtype != np.uint8:
        raise DatasetFormatError(
            f"{path}: data is {data.dtype} {data.shape}, expected uint8 (N, 3072)"
        )
    if labels.shape != (len(data),):
        raise DatasetFormatError(f"{path}: {len(data)} images but labels of shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DatasetFormatError(f"{path}: labels outside 0..9 (min {labels.min()}, max {labels.max()})")
    return data.reshape(-1, 3, 32, 32), labels


def _batch_folder(root: Path) -> Path:
    if not root.is_dir():
        raise DatasetNotFoundError(f"CIFAR-10 folder not found: {root}. {_DOWNLOAD_HINT}")
    nested = root / "cifar-10-batches-py"
    return nested if nested.is_dir() else root


def _class_names(folder: Path) -> tuple[str, ...]:
    meta = folder / "batches.meta"
    if not meta.is_file():
        return CIFAR10_CLASSES
    try:
        with open(meta, "rb") as f:
            names = _get(_SafeUnpickler(f, encoding="bytes").load(), "label_names")
        names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
    except Exception as exc:  # optional file: fall back to the known names
        logger.warning("ignoring unreadable %s (%s)", meta, exc)
        return CIFAR10_CLASSES
    return names if len(names) == 10 else CIFAR10_CLASSES


def _normalise(images: np.ndarray) -> np.ndarray:
    """uint8 ``(N, 3, 32, 32)`` -> float32, scaled to [0, 1] then per-channel standardised."""
    mean = np.asarray(CIFAR10_MEAN, dtype=np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(CIFAR10_STD, dtype=np.float32).reshape(1, 3, 1, 1)
    return (images.astype(np.float32) / 255.0 - mean) / std


def load_cifar10(root: str | Path, *, seed: int = 0, val_fraction: float = 0.1) -> DatasetSplits:
    """Load CIFAR-10 from the official pickle batches as :class:`DatasetSplits`.

    Args:
        root: folder containing ``cifar-10-batches-py/`` (or that folder itself).
        seed: seed of the stratified train / validation split.
        val_fraction: fraction of the 50,000 training images used for validation (paper: 0.1).
    """
    folder = _batch_folder(Path(root))
    paths = [folder / name for name in (*TRAIN_BATCHES, TEST_BATCH)]
    for path in paths:
        if not path.is_file():
            raise DatasetNotFoundError(f"CIFAR-10 file not found: {path}. {_DOWNLOAD_HINT}")

    train_parts = [read_cifar_batch(p) for p in paths[:-1]]
    x_pool = np.concatenate([x for x, _ in train_parts])
    y_pool = np.concatenate([y for _, y in train_parts])
    x_test, y_test = read_cifar_batch(paths[-1])

    train_idx, val_idx = stratified_split(y_pool, val_fraction, seed)
    splits = DatasetSplits(
        name="cifar10",
        train=make_tensor_dataset(_normalise(x_pool[train_idx]), y_pool[train_idx]),
        val=make_tensor_dataset(_normalise(x_pool[val_idx]), y_pool[val_idx]),
        test=make_tensor_dataset(_normalise(x_test), y_test),
        num_classes=10,
        input_shape=(3, 32, 32),
        class_names=_class_names(folder),
        normalization={"scale": 1 / 255, "mean": CIFAR10_MEAN, "std": CIFAR10_STD},
        info={"source": f"CIFAR-10 pickle batches in {folder}", "seed": seed},
    )
    logger.info("loaded %s", splits.describe())
    return splits
