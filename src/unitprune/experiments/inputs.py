"""Load a user's model and data for the CLI (and for scripts), with clear errors.

Models (one of):

* ``model_name`` (a Table-1 architecture: mnist, cifar10, kws, widar, digits) plus ``weights``,
  a ``state_dict`` file. Loaded with ``torch.load(weights_only=True)``: only tensors are read,
  no code can run. This is the safe route.
* ``model_file``: a whole pickled ``nn.Module`` (``torch.save(model, path)``), for any
  architecture. Unpickling imports and runs code named in the file, so ``torch.load`` refuses it
  with ``weights_only=True``; it is loaded with ``weights_only=False`` only when the caller passes
  ``trust_model_file=True`` (CLI: ``--trust-model-file``). The model's class must be importable.
  TorchScript archives are rejected: their layers are compiled and cannot be swapped for UnIT
  layers (save the ``nn.Module`` or its ``state_dict`` instead).

Data (``--data``): a built-in dataset name (see :func:`unitprune.data.load_dataset`; ``root``
for the ones not shipped in packages), or a file of tensors, ``.pt`` (a dict of tensors saved with
``torch.save``, read with ``weights_only=True``) or ``.npz`` (``numpy.savez``, read with
``allow_pickle=False``), holding ``x_val, y_val, x_test, y_test`` and optionally
``x_train, y_train`` (needed only by train-time pruning). ``x_*`` are float inputs shaped
``(N, *input_shape)`` as the model expects them (already normalised); ``y_*`` are integer class
labels shaped ``(N,)``.
"""

from __future__ import annotations

import logging
import os
import pickle
import sys
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import TensorDataset

from ..data import DATASET_NAMES, DatasetSplits, load_dataset
from ..models import MODEL_NAMES, build_model

logger = logging.getLogger(__name__)

__all__ = ["load_model", "load_weights", "load_data", "DATA_FILE_KEYS", "InputError"]

#: Required keys of a data file (x_train / y_train are optional).
DATA_FILE_KEYS = ("x_val", "y_val", "x_test", "y_test")
_DATA_SUFFIXES = (".pt", ".pth", ".npz")


class InputError(ValueError):
    """A model or data file that cannot be used, with a message saying what to do."""


def load_model(model_name: str | None = None, weights: str | Path | None = None, model_file: str | Path | None = None,
               *, trust_model_file: bool = False, num_classes: int | None = None) -> tuple[nn.Module, str]:
    """Return ``(model in eval mode, display name)`` from a built-in architecture + weights or a model file."""
    if model_name is None and model_file is None:
        raise InputError("no model given: pass --model NAME --weights STATE_DICT.pt or --model-file MODEL.pt")
    if model_name is not None and model_file is not None:
        raise InputError("give either --model NAME --weights STATE_DICT.pt or --model-file MODEL.pt, not both")
    if model_file is not None:
        if weights is not None:
            raise InputError("--weights goes with --model NAME; a --model-file already holds its weights")
        return _load_model_file(Path(model_file), trust_model_file), Path(model_file).stem
    if model_name not in MODEL_NAMES:
        raise InputError(f"unknown model {model_name!r}; built-in models: {', '.join(MODEL_NAMES)}")
    if weights is None:
        raise InputError(f"--model {model_name} needs --weights STATE_DICT.pt (an untrained model has nothing to "
                         "prune; train one with `unitprune train`)")
    kwargs = {"num_classes": num_classes} if num_classes is not None else {}
    model = build_model(model_name, **kwargs)
    load_weights(model, weights, model_name)
    return model.eval(), model_name


def load_weights(model: nn.Module, weights: str | Path, model_name: str) -> nn.Module:
    """Load the state_dict file ``weights`` into ``model`` (read with ``weights_only=True``);
    :class:`InputError` for a file that is not a state_dict of this architecture."""
    try:
        state = _torch_load_safe(Path(weights))
    except _PickledObject:
        raise InputError(f"--weights {weights} is not a state_dict file: it holds pickled Python objects (a whole "
                         "nn.Module?) or is not a torch file. Pass a file saved with torch.save(model.state_dict()), "
                         "or a whole module with --model-file FILE --trust-model-file") from None
    if not isinstance(state, dict):
        raise InputError(f"{weights} does not hold a state_dict (got {type(state).__name__})")
    if "state_dict" in state and isinstance(state["state_dict"], dict):  # a training checkpoint
        state = state["state_dict"]
    if not all(isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in state.items()):
        raise InputError(f"{weights} does not hold a state_dict (a dict of parameter names to tensors)")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        detail = "; ".join(line.strip() for line in str(exc).strip().splitlines()[1:2])
        raise InputError(f"{weights} does not fit the {model_name!r} model: {first} {detail}".strip()) from None
    return model


def _torch_load_safe(path: Path):
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    if _is_torchscript(path):
        raise InputError(f"{path} is a TorchScript archive; UnIT needs the Python nn.Module (its Linear/Conv layers "
                         "are swapped), so save torch.save(model) or torch.save(model.state_dict()) instead")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  (torch raises many types for bad files)
        if "weights only load failed" in str(exc).lower() or isinstance(exc, pickle.UnpicklingError):
            raise _PickledObject(path) from None
        raise InputError(f"cannot read {path} as a torch file: {type(exc).__name__}: {exc}") from None


class _PickledObject(Exception):
    def __init__(self, path: Path):
        super().__init__(str(path))
        self.path = path


@contextmanager
def _current_folder_importable():
    """Make modules of the current folder importable while unpickling (``python -m unitprune`` has
    it on ``sys.path``; the ``unitprune`` console script does not)."""
    folder = os.getcwd()
    added = folder not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        yield
    finally:
        if added and folder in sys.path:
            sys.path.remove(folder)


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("constants.pkl") or "/code/" in name for name in archive.namelist())


def _load_model_file(path: Path, trust: bool) -> nn.Module:
    try:
        obj = _torch_load_safe(path)
    except _PickledObject:
        if not trust:
            raise InputError(
                f"{path} holds a pickled Python object (a whole nn.Module). Loading it runs code named in the file "
                "(torch.load weights_only=False), so unitprune only does it with --trust-model-file. Safer: save "
                "model.state_dict() and pass --model NAME --weights FILE.") from None
        logger.warning("loading %s with torch.load(weights_only=False) because --trust-model-file was given", path)
        try:
            with _current_folder_importable():
                obj = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"cannot unpickle {path}: {type(exc).__name__}: {exc} (is the model's class "
                             "importable from the current folder?)") from None
    if isinstance(obj, dict):
        raise InputError(f"{path} holds a state_dict, not a model: pass --model NAME --weights {path}")
    if not isinstance(obj, nn.Module):
        raise InputError(f"{path} holds a {type(obj).__name__}, not a torch nn.Module")
    return obj.float().eval()


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------

def load_data(spec: str, root: str | Path | None = None, *, seed: int = 0) -> DatasetSplits:
    """A built-in dataset by name, or a ``.pt`` / ``.npz`` file of tensors (see module docs)."""
    path = Path(spec)
    if path.is_dir():
        raise InputError(f"--data {spec!r} is a folder: pass a dataset name with --data-root {spec}, or a "
                         f"{'/'.join(_DATA_SUFFIXES)} file")
    if path.suffix.lower() in _DATA_SUFFIXES or path.exists():
        if not path.is_file():
            raise FileNotFoundError(f"data file not found: {path}")
        return _load_data_file(path)
    names = set(DATASET_NAMES) | {"kws", "cifar-10"}
    if spec.lower() not in names:
        raise InputError(f"--data {spec!r} is neither a built-in dataset ({', '.join(DATASET_NAMES)}) nor an "
                         f"existing {'/'.join(_DATA_SUFFIXES)} file")
    return load_dataset(spec, root, seed=seed)


def _load_data_file(path: Path) -> DatasetSplits:
    if path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {key: torch.from_numpy(np.array(archive[key])) for key in archive.files}
        except (ValueError, OSError, zipfile.BadZipFile) as exc:
            raise InputError(f"cannot read {path} as an .npz file: {exc}") from None
    else:
        try:
            arrays = _torch_load_safe(path)
        except _PickledObject:
            raise InputError(f"{path} must hold a dict of tensors (saved with torch.save({{'x_val': ...}})), "
                             "not pickled Python objects") from None
    if not isinstance(arrays, dict):
        raise InputError(f"{path} must hold a dict with keys {', '.join(DATA_FILE_KEYS)}; got {type(arrays).__name__}")
    missing = [key for key in DATA_FILE_KEYS if key not in arrays]
    if missing:
        raise InputError(f"{path} misses {', '.join(missing)} (needs {', '.join(DATA_FILE_KEYS)}; "
                         "x_train/y_train optional)")
    splits = {name: _split(path, arrays, name) for name in ("val", "test")}
    if "x_train" in arrays or "y_train" in arrays:
        splits["train"] = _split(path, arrays, "train")
    else:
        x = splits["val"].tensors[0]
        splits["train"] = TensorDataset(x[:0], splits["val"].tensors[1][:0])
    labels = torch.cat([splits[name].tensors[1] for name in ("train", "val", "test")])
    shape = tuple(splits["val"].tensors[0].shape[1:])
    for name in ("train", "test"):
        if len(splits[name]) and tuple(splits[name].tensors[0].shape[1:]) != shape:
            raise InputError(f"{path}: x_{name} samples are {tuple(splits[name].tensors[0].shape[1:])}, x_val "
                             f"samples are {shape}")
    num_classes = int(labels.max()) + 1
    return DatasetSplits(name=path.stem, train=splits["train"], val=splits["val"], test=splits["test"],
                         num_classes=num_classes, input_shape=shape,
                         class_names=tuple(str(i) for i in range(num_classes)), info={"source": str(path)})


def _split(path: Path, arrays: dict, name: str) -> TensorDataset:
    x, y = arrays.get(f"x_{name}"), arrays.get(f"y_{name}")
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise InputError(f"{path}: x_{name} and y_{name} must both be present and be tensors/arrays")
    if not (x.is_floating_point() or x.dtype in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)):
        raise InputError(f"{path}: x_{name} must be numeric, got {x.dtype}")
    if y.dim() != 1 or y.is_floating_point() or y.dtype == torch.bool:
        raise InputError(f"{path}: y_{name} must be integer class labels of shape (N,), got {y.dtype} {tuple(y.shape)}")
    if len(x) != len(y):
        raise InputError(f"{path}: x_{name} has {len(x)} samples but y_{name} has {len(y)}")
    if len(x) == 0 and name != "train":
        raise InputError(f"{path}: x_{name} is empty")
    if len(y) and int(y.min()) < 0:
        raise InputError(f"{path}: y_{name} has negative labels")
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).reshape(len(x), -1).any(dim=1).nonzero()[0, 0])
        raise InputError(f"{path}: x_{name} contains NaN or Inf (first in sample {bad})")
    return TensorDataset(x.float().contiguous(), y.long())
