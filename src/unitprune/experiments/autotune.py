"""Per-layer UnIT percentiles under an accuracy budget (beyond the paper).

The paper calibrates every layer at one percentile (e.g. the 20th). Layers differ in how much
pruning they tolerate and in how many MACs they hold, so one global percentile leaves MACs on
the table. :func:`autotune_percentiles` searches per-layer percentiles that skip as many MACs as
possible while the *validation* accuracy stays within ``budget`` points of the unpruned model.

Algorithm (greedy sensitivity search over a percentile grid):

1. Start: every layer at one global percentile ``p0``: the caller's ``start``, or else the
   largest grid value whose validation drop is within ``start_fraction`` (default half) of the
   budget, scanning the grid upwards and stopping at the first value over it. Starting below
   the budget leaves room for step 2 to spend the rest where MACs are cheapest: a uniform start
   at the full budget spends it on every layer alike.
2. Step: for every layer not yet frozen, try raising its percentile to the next grid value
   (all layers recalibrated with :func:`unitprune.calibrate`, sequentially, on validation data)
   and measure validation accuracy and skipped MACs. A trial over budget *freezes* that layer:
   assuming that raising other layers never makes the model more accurate, it stays over budget.
   Among the trials within budget that skip more MACs, take the one with the best ratio
   ``MACs saved / damage``. The damage is, by default (``criterion="kl"``), the increase of the
   mean KL divergence between the unpruned and the pruned model's predicted class distributions
   on validation: a smooth measure, where accuracy on a few hundred samples moves in steps of
   whole samples and often not at all. With ``criterion="accuracy"`` it is the accuracy lost,
   floored at one validation sample (free gains are then ranked by MACs saved).
3. Repeat until every layer is frozen or at the top of the grid, no trial saves MACs, or
   ``max_evaluations`` is reached. The model is left calibrated at the result.

Cost: about ``(number of layers) x (steps)`` calibrations + validation passes. The result is
tuned on validation data; its test accuracy may drop by more than the budget (small validation
sets are noisy), which the sweep report shows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from ..calibrate import calibrate, set_thresholds
from ..config import validate_percentile
from ..convert import unit_layers
from .evaluation import Evaluation, dataset_tensors, evaluate_unit_model

logger = logging.getLogger(__name__)

__all__ = ["AutotuneConfig", "AutotuneResult", "autotune_percentiles", "DEFAULT_AUTOTUNE_GRID"]

DEFAULT_AUTOTUNE_GRID = (0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 75.0, 80.0, 85.0, 90.0, 93.0, 95.0,
                         97.0, 98.0, 99.0)


@dataclass(frozen=True)
class AutotuneConfig:
    """Settings of :func:`autotune_percentiles`.

    Attributes:
        budget: largest allowed validation accuracy drop vs the unpruned model, in points.
        grid: increasing percentiles a layer may take.
        start_fraction: without an explicit start, begin at the largest global grid percentile
            whose validation drop is within ``start_fraction * budget``.
        max_evaluations: cap on calibrate+evaluate trials.
        batch_size: evaluation batch size.
        criterion: how a trial's damage is measured when ranking trials: ``"kl"`` or ``"accuracy"``
            (the budget is always on accuracy).
        progress: show a progress bar.
    """

    budget: float = 1.0
    grid: tuple[float, ...] = DEFAULT_AUTOTUNE_GRID
    start_fraction: float = 0.5
    max_evaluations: int = 200
    batch_size: int = 500
    criterion: str = "kl"
    progress: bool = False

    def __post_init__(self) -> None:
        grid = tuple(validate_percentile(p, "AutotuneConfig.grid") for p in self.grid)
        object.__setattr__(self, "grid", grid)
        if not grid or any(b <= a for a, b in zip(grid, grid[1:])):
            raise ValueError(f"AutotuneConfig.grid must be non-empty and strictly increasing, got {grid}")
        if not self.budget >= 0:
            raise ValueError(f"AutotuneConfig.budget must be >= 0 points, got {self.budget}")
        if not 0.0 <= self.start_fraction <= 1.0:
            raise ValueError(f"AutotuneConfig.start_fraction must be in [0, 1], got {self.start_fraction}")
        if self.criterion not in ("kl", "accuracy"):
            raise ValueError(f"AutotuneConfig.criterion must be 'kl' or 'accuracy', got {self.criterion!r}")
        if self.max_evaluations < 1:
            raise ValueError(f"AutotuneConfig.max_evaluations must be >= 1, got {self.max_evaluations}")


@dataclass
class AutotuneResult:
    """Outcome of the search (all accuracies and MAC fractions measured on validation data).

    Attributes:
        percentiles: the chosen ``{layer name: percentile}``.
        val_accuracy / val_skipped_fraction: at the chosen percentiles.
        baseline_val_accuracy: the unpruned model's validation accuracy.
        start_percentile: the global percentile the search started from.
        start_val_accuracy / start_val_skipped_fraction: at the start.
        history: one dict per accepted step (``layer``, ``percentiles``, ``val_accuracy``,
            ``val_skipped_fraction``).
        evaluations: calibrate+evaluate trials run.
    """

    percentiles: dict[str, float]
    val_accuracy: float
    val_skipped_fraction: float
    baseline_val_accuracy: float
    start_percentile: float
    start_val_accuracy: float
    start_val_skipped_fraction: float
    history: list[dict] = field(default_factory=list)
    evaluations: int = 0


class _Trials:
    """Calibrate at given per-layer percentiles and evaluate on validation, counting trials."""

    def __init__(self, model: nn.Module, val, config: AutotuneConfig, progress_bar) -> None:
        self.model = model
        self.x, self.y = dataset_tensors(val)
        self.config = config
        self.count = 0
        self.progress_bar = progress_bar
        set_thresholds(model, 0.0)  # the unpruned model's outputs: the reference of the divergence
        self.reference = torch.log_softmax(
            evaluate_unit_model(model, (self.x, self.y), config.batch_size, keep_logits=True).logits, dim=1)

    def run(self, percentiles: dict[str, float]) -> Evaluation:
        self.count += 1
        calibrate(self.model, self.x, per_layer=percentiles)
        evaluation = evaluate_unit_model(self.model, (self.x, self.y), self.config.batch_size, keep_logits=True)
        self.progress_bar.update(1)
        self.progress_bar.set_postfix(acc=f"{evaluation.accuracy:.4f}", skipped=f"{evaluation.total.skipped_fraction:.3f}")
        return evaluation

    def divergence(self, evaluation: Evaluation) -> float:
        """Mean KL(unpruned || pruned) of the predicted class distributions on validation."""
        log_q = torch.log_softmax(evaluation.logits, dim=1)
        return float((self.reference.exp() * (self.reference - log_q)).sum(dim=1).mean())


def autotune_percentiles(model: nn.Module, val, baseline_accuracy: float, config: AutotuneConfig | None = None,
                         *, start: float | None = None) -> AutotuneResult:
    """Search per-layer percentiles of a converted ``model`` within an accuracy budget.

    Args:
        model: a model converted with :func:`unitprune.convert` (any approximation); it is left
            calibrated at the returned percentiles.
        val: validation data, a ``TensorDataset`` or ``(inputs, labels)``; used both to calibrate
            and to measure accuracy. Never pass test data.
        baseline_accuracy: validation accuracy of the unpruned model, in [0, 1].
        config: budget, grid and limits.
        start: global percentile to start from (must be within budget); default: found on ``val``.
    """
    config = config or AutotuneConfig()
    names = [name for name, _ in unit_layers(model)]
    if not names:
        raise ValueError("autotune_percentiles: the model has no UnIT layers; call unitprune.convert(model) first")
    x, _ = dataset_tensors(val)
    floor = 100.0 / len(x)  # one validation sample, in points

    def drop(evaluation: Evaluation) -> float:
        return 100.0 * (baseline_accuracy - evaluation.accuracy)

    with tqdm(desc="autotune", total=None, disable=not config.progress, leave=False) as bar:
        trials = _Trials(model, val, config, bar)
        if start is None:
            start, current_eval = _global_start(trials, names, config, drop)
        else:
            start = validate_percentile(start, "start")
            current_eval = trials.run({name: start for name in names})
        current = {name: start for name in names}
        start_eval = current_eval
        frozen: set[str] = set()
        history: list[dict] = []
        while trials.count < config.max_evaluations:
            best = None  # (score, gain, name, percentiles, evaluation)
            for name in names:
                if name in frozen or trials.count >= config.max_evaluations:
                    continue
                higher = [p for p in config.grid if p > current[name]]
                if not higher:
                    frozen.add(name)
                    continue
                trial = dict(current, **{name: higher[0]})
                evaluation = trials.run(trial)
                if drop(evaluation) > config.budget + 1e-9:
                    frozen.add(name)
                    logger.info("autotune: %s -> %g is over budget (drop %.2f); frozen at %g", name, higher[0],
                                drop(evaluation), current[name])
                    continue
                gain = evaluation.total.skipped_fraction - current_eval.total.skipped_fraction
                if config.criterion == "accuracy":
                    loss = max(100.0 * (current_eval.accuracy - evaluation.accuracy), floor)
                else:
                    loss = max(trials.divergence(evaluation) - trials.divergence(current_eval), 1e-9)
                if gain > 0 and (best is None or (gain / loss, gain) > (best[0], best[1])):
                    best = (gain / loss, gain, name, trial, evaluation)
            if best is None:
                break
            _, _, name, current, current_eval = best
            history.append({"layer": name, "percentiles": dict(current), "val_accuracy": current_eval.accuracy,
                            "val_skipped_fraction": current_eval.total.skipped_fraction})
            logger.info("autotune: %s -> %g (val acc %.4f, skipped %.4f)", name, current[name],
                        current_eval.accuracy, current_eval.total.skipped_fraction)
        calibrate(model, x, per_layer=current)  # leave the model at the result
    return AutotuneResult(
        percentiles=current, val_accuracy=current_eval.accuracy,
        val_skipped_fraction=current_eval.total.skipped_fraction, baseline_val_accuracy=baseline_accuracy,
        start_percentile=start, start_val_accuracy=start_eval.accuracy,
        start_val_skipped_fraction=start_eval.total.skipped_fraction, history=history, evaluations=trials.count)


def _global_start(trials: _Trials, names: list[str], config: AutotuneConfig, drop) -> tuple[float, Evaluation]:
    """Largest grid percentile (same for all layers) within ``start_fraction * budget``, scanning upwards."""
    chosen = None
    for percentile in config.grid:
        evaluation = trials.run({name: percentile for name in names})
        if drop(evaluation) > config.start_fraction * config.budget + 1e-9:
            break
        chosen = (percentile, evaluation)
    if chosen is None:  # even the lowest grid value is over budget: start there anyway
        percentile = config.grid[0]
        chosen = (percentile, trials.run({name: percentile for name in names}))
    return chosen
