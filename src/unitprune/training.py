"""Training, evaluation and prediction for the Table-1 models on CPU.

``train(model, splits, config)`` runs Adam on cross-entropy, evaluates validation accuracy after
each epoch, stops early after ``config.patience`` epochs without improvement and restores the
best weights (a real copy taken at the best epoch).

Determinism: the only randomness during training is the order of training examples, drawn from
a local ``torch.Generator`` seeded with ``config.seed`` (the global RNG is not touched). Weight
initialisation is seeded separately by ``unitprune.models.build_model(name, seed=...)``. With the
same initial weights, data and config, two runs on the same machine give identical weights.
``torch.set_num_threads(config.num_threads)`` is applied for the duration of ``train`` and the
previous value restored afterwards.

Augmentation (``TrainConfig.augment``, off by default): an :class:`Augment` perturbs every
training batch of spectrogram-like inputs ``(B, C, F, T)`` (log-mel: ``F`` mel bands, ``T``
frames) with a random time shift and SpecAugment-style time / frequency masks
(:func:`augment_batch`). Its draws come from a second local generator seeded with
``config.seed + AUGMENT_SEED_OFFSET``, so the example order is the same with and without it and
training stays deterministic. Validation and test data are never augmented.

With ``run_dir`` the run writes ``model.pt`` (final = best ``state_dict``), ``checkpoint_best.pt``
(``{"state_dict", "optimizer", "epoch", "val_accuracy"}``, rewritten at each improvement) and
``metadata.json`` (model, dataset, config, accuracies, history, versions, timestamps).
"""

from __future__ import annotations

import copy
import json
import logging
import platform
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from tqdm.auto import tqdm

from .data.splits import DatasetSplits

__all__ = ["TrainConfig", "TrainResult", "Augment", "AugmentDraw", "augment_batch", "draw_augment", "apply_augment",
           "train", "evaluate", "predict"]

logger = logging.getLogger(__name__)

#: The augmentation generator is seeded with ``TrainConfig.seed`` plus this offset.
AUGMENT_SEED_OFFSET = 7919


@dataclass(frozen=True)
class Augment:
    """Training-time augmentation of ``(B, C, F, T)`` inputs (see :func:`augment_batch`).

    Attributes:
        time_shift: each example is shifted along the last axis by a whole number of frames drawn
            uniformly from ``[-time_shift, time_shift]`` (positive: later); vacated frames get ``fill``.
        time_masks / time_mask_width: number of time masks per example and their maximum width:
            each mask sets ``w`` consecutive frames (``w`` uniform in ``[0, time_mask_width]``, start
            uniform among the ``T - w + 1`` positions) of every band to ``fill``.
        freq_masks / freq_mask_width: the same along the band axis (``F``, second to last).
        fill: value of vacated and masked cells (0: the mean of standardised features).
    """

    time_shift: int = 0
    time_masks: int = 0
    time_mask_width: int = 0
    freq_masks: int = 0
    freq_mask_width: int = 0
    fill: float = 0.0

    def __post_init__(self) -> None:
        for name in ("time_shift", "time_masks", "time_mask_width", "freq_masks", "freq_mask_width"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"Augment.{name} must be an integer >= 0, got {value!r}")


@dataclass
class AugmentDraw:
    """The random choices of one :func:`augment_batch` call (int64 tensors).

    ``shift``: ``(B,)`` frames; ``time_start`` / ``time_width``: ``(B, time_masks)``;
    ``freq_start`` / ``freq_width``: ``(B, freq_masks)``.
    """

    shift: torch.Tensor
    time_start: torch.Tensor
    time_width: torch.Tensor
    freq_start: torch.Tensor
    freq_width: torch.Tensor


def _draw_masks(batch: int, count: int, max_width: int, length: int, generator: torch.Generator
                ) -> tuple[torch.Tensor, torch.Tensor]:
    width = torch.randint(0, min(max_width, length) + 1, (batch, count), generator=generator)
    start = (torch.rand((batch, count), generator=generator) * (length - width + 1)).floor().long()
    return start, width


def draw_augment(shape: tuple[int, ...], augment: Augment, generator: torch.Generator) -> AugmentDraw:
    """Draw the shifts and masks for a batch of ``shape`` ``(B, ..., F, T)``, in a fixed order."""
    batch, bands, frames = shape[0], shape[-2], shape[-1]
    shift = torch.randint(-augment.time_shift, augment.time_shift + 1, (batch,), generator=generator)
    time_start, time_width = _draw_masks(batch, augment.time_masks, augment.time_mask_width, frames, generator)
    freq_start, freq_width = _draw_masks(batch, augment.freq_masks, augment.freq_mask_width, bands, generator)
    return AugmentDraw(shift, time_start, time_width, freq_start, freq_width)


def _band(start: torch.Tensor, width: torch.Tensor, length: int) -> torch.Tensor:
    """``(B, length)`` bool: position inside any of the ``(B, k)`` intervals ``[start, start + width)``."""
    pos = torch.arange(length)
    inside = (pos >= start[..., None]) & (pos < (start + width)[..., None])  # (B, k, length)
    return inside.any(dim=1)


def apply_augment(x: torch.Tensor, draw: AugmentDraw, fill: float = 0.0) -> torch.Tensor:
    """``x`` ``(B, ..., F, T)`` shifted by ``draw.shift`` frames, then masked; a new tensor.

    ``out[b, ..., f, t] = x[b, ..., f, t - shift[b]]`` where ``0 <= t - shift[b] < T``, else ``fill``;
    then every masked frame / band of example ``b`` is set to ``fill``.
    """
    frames, bands = x.shape[-1], x.shape[-2]
    lead = (x.shape[0],) + (1,) * (x.dim() - 2)  # broadcast over the middle axes
    source = torch.arange(frames) - draw.shift[:, None]  # (B, T)
    valid = (source >= 0) & (source < frames)
    index = source.clamp(0, frames - 1).reshape(lead[:-1] + (1, frames)).expand_as(x)
    out = torch.gather(x, -1, index)
    masked_t = ~valid
    if draw.time_start.shape[1]:
        masked_t |= _band(draw.time_start, draw.time_width, frames)
    out = out.masked_fill(masked_t.reshape(lead[:-1] + (1, frames)), fill)
    if draw.freq_start.shape[1]:
        masked_f = _band(draw.freq_start, draw.freq_width, bands)
        out = out.masked_fill(masked_f.reshape(lead[:-1] + (bands, 1)), fill)
    return out


def augment_batch(x: torch.Tensor, augment: Augment, generator: torch.Generator) -> torch.Tensor:
    """Randomly shifted and masked copy of ``x`` ``(B, ..., F, T)`` (draws from ``generator``)."""
    if x.dim() < 3:
        raise ValueError(f"augmentation needs inputs (B, ..., F, T) with bands and frames, got shape {tuple(x.shape)}")
    return apply_augment(x, draw_augment(tuple(x.shape), augment, generator), augment.fill)


@dataclass
class TrainConfig:
    """Hyper-parameters of :func:`train`.

    Attributes:
        epochs: maximum number of passes over the training split.
        batch_size: examples per optimisation step.
        lr: Adam learning rate.
        weight_decay: Adam (L2) weight decay.
        patience: stop after this many epochs without a strictly better validation accuracy;
            ``None`` disables early stopping.
        restore_best: load the best-validation weights at the end (default ``True``).
        seed: seed of the local generator that shuffles the training data.
        num_threads: torch intra-op threads used while training.
        progress: show tqdm progress bars.
        eval_batch_size: batch size for validation / test evaluation.
        augment: training-batch augmentation (:class:`Augment`; ``None``: off).
        label_smoothing: label smoothing of the cross-entropy loss (0: plain cross-entropy).
    """

    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int | None = 5
    restore_best: bool = True
    seed: int = 0
    num_threads: int = 2
    progress: bool = True
    eval_batch_size: int = 256
    augment: Augment | None = None
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be >= 1 or None, got {self.patience}")
        if self.num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {self.num_threads}")


@dataclass
class TrainResult:
    """Outcome of :func:`train`.

    Attributes:
        best_val_accuracy: best validation accuracy in [0, 1].
        best_epoch: 1-based epoch that reached it (weights restored from there if requested).
        epochs_run: epochs actually run.
        stopped_early: whether patience ran out before ``config.epochs``.
        test_accuracy: accuracy of the final model on the test split (``None`` if it is empty).
        history: one dict per epoch: ``epoch``, ``train_loss``, ``train_accuracy``,
            ``val_accuracy``, ``seconds`` (train loss / accuracy are on the augmented batches when
            ``config.augment`` is set).
        wall_time_s: total training time in seconds.
    """

    best_val_accuracy: float
    best_epoch: int
    epochs_run: int
    stopped_early: bool
    test_accuracy: float | None
    history: list[dict[str, float]] = field(default_factory=list)
    wall_time_s: float = 0.0


def batches(
    data: Dataset | DataLoader, batch_size: int, generator: torch.Generator | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(inputs, labels)`` batches; shuffled iff ``generator`` is given.

    ``TensorDataset``s are sliced directly (fast); other datasets go through a ``DataLoader``.
    A ``DataLoader`` is iterated as is.
    """
    if isinstance(data, DataLoader):
        yield from data
        return
    if isinstance(data, TensorDataset):
        x, y = data.tensors[0], data.tensors[1]
        n = len(x)
        order = torch.randperm(n, generator=generator) if generator is not None else None
        for start in range(0, n, batch_size):
            if order is None:
                yield x[start : start + batch_size], y[start : start + batch_size]
            else:
                idx = order[start : start + batch_size]
                yield x[idx], y[idx]
        return
    yield from DataLoader(data, batch_size=batch_size, shuffle=generator is not None, generator=generator)


@torch.no_grad()
def predict(model: nn.Module, data: Dataset | DataLoader, batch_size: int = 256) -> torch.Tensor:
    """Predicted class indices (int64, shape ``(N,)``) of ``model`` on ``data``.

    Runs in eval mode under ``no_grad`` and restores the model's previous train/eval mode.
    """
    was_training = model.training
    model.eval()
    try:
        preds = [model(x).argmax(dim=1) for x, _ in batches(data, batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(preds) if preds else torch.empty(0, dtype=torch.int64)


def evaluate(model: nn.Module, data: Dataset | DataLoader, batch_size: int = 256) -> float:
    """Accuracy in [0, 1] of ``model`` on ``data`` (a dataset of ``(input, label)`` or a loader).

    Runs in eval mode under ``no_grad`` and restores the model's previous train/eval mode.
    Raises ``ValueError`` on an empty dataset.
    """
    was_training = model.training
    model.eval()
    correct = total = 0
    try:
        with torch.no_grad():
            for x, y in batches(data, batch_size):
                correct += int((model(x).argmax(dim=1) == y).sum())
                total += len(y)
    finally:
        model.train(was_training)
    if total == 0:
        raise ValueError("cannot evaluate on an empty dataset")
    return correct / total


def _copy_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Detached clones of all parameters and buffers (not views of the live tensors)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _train_epoch(model: nn.Module, splits: DatasetSplits, config: TrainConfig, epoch: int,
                 optimizer: torch.optim.Optimizer, loss_fn: nn.Module, generator: torch.Generator,
                 augment_generator: torch.Generator) -> tuple[float, int]:
    """One epoch over ``splits.train`` (shuffled by ``generator``, augmented if configured);
    returns the summed loss and the number of correct predictions."""
    loss_sum, correct = 0.0, 0
    n_batches = -(-len(splits.train) // config.batch_size)
    epoch_batches = tqdm(batches(splits.train, config.batch_size, generator), total=n_batches,
                         desc=f"epoch {epoch}", leave=False, disable=not config.progress)
    for x, y in epoch_batches:
        if config.augment is not None:
            x = augment_batch(x, config.augment, augment_generator)
        optimizer.zero_grad(set_to_none=True)
        logits = model(x)
        loss = loss_fn(logits, y)
        loss.backward()
        optimizer.step()
        loss_sum += loss.item() * len(y)
        correct += int((logits.argmax(dim=1) == y).sum())
    return loss_sum, correct


def train(
    model: nn.Module,
    splits: DatasetSplits,
    config: TrainConfig | None = None,
    run_dir: str | Path | None = None,
) -> TrainResult:
    """Train ``model`` on ``splits.train`` with early stopping on ``splits.val`` accuracy.

    Args:
        model: any classifier mapping ``(B, *splits.input_shape)`` to ``(B, num_classes)``
            logits; modified in place (left in eval mode, holding the best weights if
            ``config.restore_best``).
        splits: the dataset (see :mod:`unitprune.data`).
        config: hyper-parameters (defaults: ``TrainConfig()``).
        run_dir: if given, a folder (created) receiving ``model.pt``, ``checkpoint_best.pt`` and
            ``metadata.json``.
    """
    config = config or TrainConfig()
    run_dir = Path(run_dir) if run_dir is not None else None
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
    if len(splits.train) == 0 or len(splits.val) == 0:
        raise ValueError(f"{splits.name}: train and validation splits must be non-empty ({splits.sizes()})")

    started_at = _utc_now()
    t0 = time.perf_counter()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.num_threads)
    generator = torch.Generator().manual_seed(config.seed)
    augment_generator = torch.Generator().manual_seed(config.seed + AUGMENT_SEED_OFFSET)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)

    best_acc, best_epoch, best_state = -1.0, 0, None
    history: list[dict[str, float]] = []
    stale = 0
    stopped_early = False
    n_train = len(splits.train)
    try:
        epochs = tqdm(range(1, config.epochs + 1), desc=f"train {splits.name}", disable=not config.progress)
        for epoch in epochs:
            epoch_t0 = time.perf_counter()
            model.train()
            loss_sum, correct = _train_epoch(model, splits, config, epoch, optimizer, loss_fn, generator,
                                             augment_generator)
            val_acc = evaluate(model, splits.val, config.eval_batch_size)
            record = {
                "epoch": epoch,
                "train_loss": loss_sum / n_train,
                "train_accuracy": correct / n_train,
                "val_accuracy": val_acc,
                "seconds": time.perf_counter() - epoch_t0,
            }
            history.append(record)
            epochs.set_postfix(loss=f"{record['train_loss']:.4f}", val=f"{val_acc:.4f}")
            logger.info(
                "epoch %d/%d loss %.4f train acc %.4f val acc %.4f (%.1f s)",
                epoch, config.epochs, record["train_loss"], record["train_accuracy"], val_acc, record["seconds"],
            )
            if val_acc > best_acc:
                best_acc, best_epoch, stale = val_acc, epoch, 0
                best_state = _copy_state(model)
                if run_dir is not None:
                    torch.save(
                        {"state_dict": best_state, "optimizer": copy.deepcopy(optimizer.state_dict()),
                         "epoch": epoch, "val_accuracy": val_acc},
                        run_dir / "checkpoint_best.pt",
                    )
            else:
                stale += 1
                if config.patience is not None and stale >= config.patience:
                    stopped_early = epoch < config.epochs
                    logger.info(
                        "no improvement for %d epochs: stopping after epoch %d (best %.4f at epoch %d)",
                        stale, epoch, best_acc, best_epoch,
                    )
                    break
    finally:
        torch.set_num_threads(previous_threads)

    if config.restore_best and best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    test_acc = evaluate(model, splits.test, config.eval_batch_size) if len(splits.test) else None
    result = TrainResult(
        best_val_accuracy=best_acc,
        best_epoch=best_epoch,
        epochs_run=len(history),
        stopped_early=stopped_early,
        test_accuracy=test_acc,
        history=history,
        wall_time_s=time.perf_counter() - t0,
    )
    logger.info(
        "trained %s on %s: best val %.4f (epoch %d), test %s, %.1f s",
        getattr(model, "name", type(model).__name__), splits.name, best_acc, best_epoch,
        "n/a" if test_acc is None else f"{test_acc:.4f}", result.wall_time_s,
    )
    if run_dir is not None:
        _write_run(run_dir, model, splits, config, result, started_at)
    return result


def _write_run(
    run_dir: Path, model: nn.Module, splits: DatasetSplits, config: TrainConfig,
    result: TrainResult, started_at: str,
) -> None:
    torch.save(model.state_dict(), run_dir / "model.pt")
    metadata: dict[str, Any] = {
        "model": getattr(model, "name", type(model).__name__),
        "model_class": type(model).__name__,
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "dataset": splits.name,
        "dataset_sizes": splits.sizes(),
        "input_shape": list(splits.input_shape),
        "num_classes": splits.num_classes,
        "normalization": splits.normalization,
        "config": asdict(config),
        "result": asdict(result),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "started_at": started_at,
        "finished_at": _utc_now(),
    }
    (run_dir / "metadata.json").write_text(json.dumps(metadata, indent=2, default=str))
    logger.info("wrote %s", run_dir)
