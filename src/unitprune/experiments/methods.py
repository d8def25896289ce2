"""One function per method of a sweep: each returns the measured :class:`Point` of every knob value.

Every method ends the same way: the model variant (dense, TTP-pruned, FATReLU) is converted to
UnIT layers, calibrated on validation data if it is a UnIT method (``T = 0`` otherwise), and
measured by :func:`measure` on validation (accuracy, to choose settings) and test (final numbers).
Intermediate results that other methods reuse (TTP steps, FATReLU points, global UnIT points)
are cached on the :class:`SweepContext`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch.nn as nn
from torch import Tensor
from tqdm.auto import tqdm

from ..baselines import (TTPConfig, TTPStep, calibrate_fatrelu, iterative_magnitude_pruning, weight_sparsity,
                         with_fatrelu)
from ..accuracy_budget import paired_outcome, select_operating_point
from ..calibrate import calibrate
from ..config import UnITConfig
from ..convert import convert, unit_layers
from .autotune import AutotuneConfig, autotune_percentiles
from .sweep_config import SweepConfig
from .evaluation import Evaluation, dataset_tensors, evaluate_unit_model
from .results import Point

logger = logging.getLogger(__name__)

__all__ = ["SweepContext", "measure", "METHOD_RUNNERS"]


@dataclass
class SweepContext:
    """Everything the method functions share.

    Attributes:
        model: the trained dense model (never modified).
        splits: ``.train`` (may be empty), ``.val``, ``.test`` TensorDatasets (DatasetSplits).
        config: the sweep settings.
        baseline_val_accuracy: accuracy of the unpruned model on validation.
    """

    model: nn.Module
    splits: object
    config: SweepConfig
    baseline_val_accuracy: float = 0.0
    _ttp_steps: list[TTPStep] | None = None
    _cache: dict[str, list[Point]] = field(default_factory=dict)
    _baseline_val_correct: Tensor | None = None

    @property
    def baseline_val_correct(self) -> Tensor:
        """Per validation sample: the unpruned model classifies it correctly (computed once)."""
        if self._baseline_val_correct is None:
            evaluation = evaluate_unit_model(convert(self.model, UnITConfig()), self.splits.val,
                                             self.config.eval_batch_size)
            self._baseline_val_correct = evaluation.sample_correct
        return self._baseline_val_correct

    def within_budget(self, points: list[Point], budget: float) -> Point:
        """The budget rule (:mod:`unitprune.accuracy_budget`, ``config.confidence``) over ``points`` by knob;
        the mildest knob when none is admitted."""
        ordered = sorted(points, key=lambda p: p.knob)
        outcomes = [paired_outcome(self.baseline_val_correct.numpy(), p.val_correct.numpy()) for p in ordered]
        return ordered[select_operating_point(outcomes, budget, self.config.confidence).index]

    @property
    def calibration_inputs(self) -> Tensor:
        x, _ = dataset_tensors(self.splits.val)
        n = self.config.calibration_samples
        return x if n is None else x[:n]

    def bar(self, iterable, desc: str):
        return tqdm(iterable, desc=desc, disable=not self.config.progress, leave=False)


def measure(context: SweepContext, unit_model: nn.Module, method: str, knob, details: dict | None = None) -> Point:
    """Evaluate a converted (and calibrated) model on validation and test."""
    batch = context.config.eval_batch_size
    val = evaluate_unit_model(unit_model, context.splits.val, batch)
    test = evaluate_unit_model(unit_model, context.splits.test, batch)
    logger.info("%s knob=%s: val %.4f, test %.4f, skipped %.4f", method, knob, val.accuracy, test.accuracy,
                test.total.skipped_fraction)
    return Point(method=method, knob=knob, test=test, val_accuracy=val.accuracy, details=details or {},
                 val_correct=val.sample_correct)


def _thresholds(thresholds: dict[str, Tensor]) -> dict[str, list[float]]:
    return {name: [float(t) for t in values] for name, values in thresholds.items()}


def baseline_evaluations(context: SweepContext) -> tuple[Evaluation, float]:
    """Test evaluation and validation accuracy of the unpruned model (UnIT layers, ``T = 0``)."""
    unit_model = convert(context.model, UnITConfig())
    batch = context.config.eval_batch_size
    val = evaluate_unit_model(unit_model, context.splits.val, batch)
    test = evaluate_unit_model(unit_model, context.splits.test, batch)
    context._baseline_val_correct = val.sample_correct
    return test, val.accuracy


# ----------------------------------------------------------------------------------------------
# Baselines
# ----------------------------------------------------------------------------------------------

def run_unpruned(context: SweepContext) -> list[Point]:
    return [measure(context, convert(context.model, UnITConfig()), "unpruned", None)]


def ttp_steps(context: SweepContext) -> list[TTPStep]:
    """The TTP schedule's models (pruned and fine-tuned once per sweep, then reused)."""
    if context._ttp_steps is None:
        if len(context.splits.train) == 0:
            raise ValueError("train-time pruning needs training data for fine-tuning; the data has no train split")
        config = context.config
        context._ttp_steps = iterative_magnitude_pruning(context.model, context.splits, TTPConfig(
            schedule=config.ttp_sparsities, finetune_epochs=config.ttp_finetune_epochs, lr=config.ttp_lr,
            seed=config.seed, num_threads=config.num_threads, progress=False, allocation=config.ttp_allocation))
    return context._ttp_steps


def run_ttp(context: SweepContext) -> list[Point]:
    if "ttp" not in context._cache:
        points = []
        for step in context.bar(ttp_steps(context), "ttp"):
            details = {"target_sparsity": step.target_sparsity, "weight_sparsity": step.sparsity}
            points.append(measure(context, convert(step.model, UnITConfig()), "ttp", step.target_sparsity, details))
        context._cache["ttp"] = points
    return context._cache["ttp"]


def _fatrelu_model(context: SweepContext, percentile: float) -> tuple[nn.Module, dict[str, float]]:
    model = with_fatrelu(context.model)
    thresholds = calibrate_fatrelu(model, context.calibration_inputs, percentile)
    return model, thresholds


def run_fatrelu(context: SweepContext) -> list[Point]:
    if "fatrelu" not in context._cache:
        points = []
        for percentile in context.bar(context.config.fatrelu_percentiles, "fatrelu"):
            model, thresholds = _fatrelu_model(context, percentile)
            points.append(measure(context, convert(model, UnITConfig()), "fatrelu", percentile,
                                  {"fatrelu_thresholds": thresholds}))
        context._cache["fatrelu"] = points
    return context._cache["fatrelu"]


# ----------------------------------------------------------------------------------------------
# UnIT, alone and on top of the baselines
# ----------------------------------------------------------------------------------------------

def _unit_sweep(context: SweepContext, base_model: nn.Module, approx: str, method: str, percentiles,
                details: dict | None = None) -> list[Point]:
    unit_model = convert(base_model, UnITConfig(approx=approx))
    points = []
    for percentile in context.bar(percentiles, method):
        thresholds = calibrate(unit_model, context.calibration_inputs, percentile=percentile)
        point_details = dict(details or {}, approx=approx, thresholds=_thresholds(thresholds))
        points.append(measure(context, unit_model, method, percentile, point_details))
    return points


def run_unit(context: SweepContext, approx: str) -> list[Point]:
    method = f"unit-{approx}"
    if method not in context._cache:
        context._cache[method] = _unit_sweep(context, context.model, approx, method, context.config.unit_percentiles)
    return context._cache[method]


def run_ttp_unit(context: SweepContext) -> list[Point]:
    steps = ttp_steps(context)
    chosen = context.within_budget(run_ttp(context), context.config.combo_base_budget)
    step = next(s for s in steps if s.target_sparsity == chosen.knob)
    logger.info("ttp+unit: UnIT on the %.0f%% sparse TTP model", 100 * step.target_sparsity)
    return _unit_sweep(context, step.model, context.config.combo_approx, "ttp+unit",
                       context.config.percentiles_under_combos,
                       {"ttp_sparsity": step.target_sparsity, "weight_sparsity": weight_sparsity(step.model)})


def run_fatrelu_unit(context: SweepContext) -> list[Point]:
    chosen = context.within_budget(run_fatrelu(context), context.config.combo_base_budget)
    model, thresholds = _fatrelu_model(context, chosen.knob)
    logger.info("fatrelu+unit: UnIT on FATReLU at percentile %g", chosen.knob)
    return _unit_sweep(context, model, context.config.combo_approx, "fatrelu+unit",
                       context.config.percentiles_under_combos,
                       {"fatrelu_percentile": chosen.knob, "fatrelu_thresholds": thresholds})


def run_autotuned(context: SweepContext) -> list[Point]:
    config = context.config
    approx = config.combo_approx
    global_points = run_unit(context, approx) if f"unit-{approx}" in config.methods else []
    points = []
    for budget in context.bar(config.autotune_budgets, "unit-autotuned"):
        tune = AutotuneConfig(budget=budget, grid=config.autotune_grid, batch_size=config.eval_batch_size,
                              confidence=config.confidence, progress=config.progress)
        # start from the sweep's global points: the budget rule at start_fraction * budget (None: none admitted)
        start = None
        if global_points:
            ordered = sorted(global_points, key=lambda p: p.knob)
            outcomes = [paired_outcome(context.baseline_val_correct.numpy(), p.val_correct.numpy()) for p in ordered]
            selection = select_operating_point(outcomes, tune.start_fraction * budget, config.confidence,
                                               fallback_to_mildest=False)
            start = None if selection.index is None else ordered[selection.index].knob
        unit_model = convert(context.model, UnITConfig(approx=approx))
        val = context.splits.val
        if config.calibration_samples is not None:
            x, y = dataset_tensors(val)
            val = (x[:config.calibration_samples], y[:config.calibration_samples])
        result = autotune_percentiles(unit_model, val, context.baseline_val_accuracy, tune, start=start)
        thresholds = {name: [float(t) for t in layer.threshold] for name, layer in unit_layers(unit_model)}
        details = {"approx": approx, "percentiles": result.percentiles, "thresholds": thresholds,
                   "start_percentile": result.start_percentile, "autotune_val_accuracy": result.val_accuracy,
                   "autotune_val_skipped_fraction": result.val_skipped_fraction,
                   "evaluations": result.evaluations, "history": result.history}
        points.append(measure(context, unit_model, "unit-autotuned", budget, details))
    return points


METHOD_RUNNERS = {
    "unpruned": run_unpruned,
    "ttp": run_ttp,
    "fatrelu": run_fatrelu,
    "unit-exact": lambda context: run_unit(context, "exact"),
    "unit-bitshift": lambda context: run_unit(context, "bitshift"),
    "unit-bintree": lambda context: run_unit(context, "bintree"),
    "unit-bitmask": lambda context: run_unit(context, "bitmask"),
    "ttp+unit": run_ttp_unit,
    "fatrelu+unit": run_fatrelu_unit,
    "unit-autotuned": run_autotuned,
}
