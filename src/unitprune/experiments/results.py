"""Sweep results: in-memory points, the ``results.json`` document, ``results.csv``.

``results.json`` (schema version 1) holds::

    dataset, model, baseline_accuracy, baseline_val_accuracy, num_test_samples, num_val_samples,
    dense_macs_per_sample, budget_points, layers, knobs {method: knob name}, config, timing_s,
    methods {method: [point, ...]}, summary {method: {...}}, pareto [...],
    environment {python, platform, cpu_model, cpu_count, torch_cpu_capability, torch_threads,
                 packages {name: version}, unitprune_c_kernels, env {numeric environment variables}}

``environment`` (:mod:`.provenance`) says what produced the numbers; everything except
``timing_s`` is identical when the same sweep runs again on the same machine and software.

Each point: ``method``, ``knob``, ``accuracy`` (test), ``accuracy_drop`` (points vs the unpruned
model on test), ``val_accuracy``, ``val_accuracy_drop``, ``macs_skipped_fraction``,
``macs_remaining_fraction`` (= executed / dense; the two add up to 1), ``skipped_fraction_by_cause``
(zero_weight, zero_activation, threshold: fractions of dense), ``counts`` (all MAC counters
summed over the test set, whole model), ``per_layer`` ({UnIT layer: counters + ``skipped_fraction``}),
``other_layers`` (the same for the MACs outside UnIT layers: dense = executed),
``num_samples``, ``correct`` and method ``details`` (thresholds, percentiles, sparsity...).

``summary[method]`` holds ``max_skipped_fraction_at_1pt_drop`` (read off the test curve, like the
paper's Figure 5; ``None`` if no point is within 1 point), the knob and drop of that point, the
same at ``budget_points``, and ``selected_on_validation``: the point an engineer would deploy,
chosen on validation only (most skipped MACs with validation drop <= budget), with its test numbers.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..counts import CAUSES, COUNT_FIELDS, MacCounts
from .evaluation import Evaluation
from .pareto import max_skipped_within_drop, pareto_frontier

__all__ = ["Point", "build_results", "point_record", "summarize", "write_json", "write_csv", "load_results",
           "SCHEMA_VERSION", "CSV_COLUMNS"]

SCHEMA_VERSION = 1
SKIP_CAUSES = tuple(cause for cause in CAUSES if cause != "executed")
CSV_COLUMNS = ("method", "knob", "accuracy", "accuracy_drop", "val_accuracy", "val_accuracy_drop",
               "macs_skipped_fraction", "macs_remaining_fraction", "skipped_zero_weight",
               "skipped_zero_activation", "skipped_threshold", *COUNT_FIELDS, "on_pareto_frontier")


@dataclass
class Point:
    """One measured setting of one method.

    Attributes:
        method: method name (e.g. ``"unit-exact"``).
        knob: the swept value (percentile, sparsity, budget) or ``None``.
        test: accuracy and MAC counters on the test split.
        val_accuracy: accuracy on the validation split (used only to choose settings).
        details: method-specific facts (thresholds, per-layer percentiles, sparsity...).
    """

    method: str
    knob: float | None
    test: Evaluation
    val_accuracy: float
    details: dict = field(default_factory=dict)


def _fraction(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _counts_dict(counts: MacCounts) -> dict:
    values = counts.to_dict()
    values["skipped_fraction"] = counts.skipped_fraction
    return values


def point_record(point: Point, baseline: Evaluation, baseline_val_accuracy: float) -> dict:
    """The JSON record of ``point`` (drops in accuracy points vs ``baseline``)."""
    total = point.test.total
    n = point.test.num_samples
    if n != baseline.num_samples:
        raise ValueError(f"point {point.method}/{point.knob} evaluated on {n} samples, baseline on "
                         f"{baseline.num_samples}")
    return {
        "method": point.method,
        "knob": point.knob,
        "accuracy": point.test.accuracy,
        "accuracy_drop": 100.0 * (baseline.correct - point.test.correct) / n,
        "val_accuracy": point.val_accuracy,
        "val_accuracy_drop": 100.0 * (baseline_val_accuracy - point.val_accuracy),
        "macs_skipped_fraction": _fraction(total.skipped, total.dense),
        "macs_remaining_fraction": _fraction(total.executed, total.dense),
        "skipped_fraction_by_cause": {cause: _fraction(getattr(total, cause), total.dense) for cause in SKIP_CAUSES},
        "counts": total.to_dict(),
        "per_layer": {name: _counts_dict(counts) for name, counts in point.test.per_layer.items()},
        "other_layers": {name: _counts_dict(counts) for name, counts in point.test.other_layers.items()},
        "num_samples": n,
        "correct": point.test.correct,
        "details": point.details,
    }


def summarize(methods: dict[str, list[dict]], budget: float) -> tuple[dict, list[dict]]:
    """``(summary, pareto)`` computed from the point records of every method."""
    summary = {}
    for name, records in methods.items():
        drops = [r["accuracy_drop"] for r in records]
        skipped = [r["macs_skipped_fraction"] for r in records]
        at_1pt = max_skipped_within_drop(drops, skipped, 1.0)
        at_budget = max_skipped_within_drop(drops, skipped, budget)
        on_val = max_skipped_within_drop([r["val_accuracy_drop"] for r in records], skipped, budget)
        summary[name] = {
            "max_skipped_fraction_at_1pt_drop": None if at_1pt is None else skipped[at_1pt],
            "knob_at_1pt_drop": None if at_1pt is None else records[at_1pt]["knob"],
            "accuracy_drop_at_1pt_point": None if at_1pt is None else drops[at_1pt],
            "max_skipped_fraction_within_budget": None if at_budget is None else skipped[at_budget],
            "knob_within_budget": None if at_budget is None else records[at_budget]["knob"],
            "selected_on_validation": None if on_val is None else {
                "knob": records[on_val]["knob"],
                "val_accuracy_drop": records[on_val]["val_accuracy_drop"],
                "accuracy_drop": drops[on_val],
                "macs_skipped_fraction": skipped[on_val],
            },
        }
    flat = [(name, r) for name, records in methods.items() for r in records]
    frontier = pareto_frontier([(r["accuracy"], r["macs_skipped_fraction"]) for _, r in flat])
    pareto = [{"method": flat[i][0], "knob": flat[i][1]["knob"], "accuracy": flat[i][1]["accuracy"],
               "accuracy_drop": flat[i][1]["accuracy_drop"],
               "macs_skipped_fraction": flat[i][1]["macs_skipped_fraction"]} for i in frontier]
    return summary, pareto


def build_results(*, dataset: str, model: str, baseline: Evaluation, baseline_val_accuracy: float,
                  points: dict[str, list[Point]], knobs: dict[str, str], budget: float,
                  config: dict | None = None, timing: dict | None = None, extra: dict | None = None) -> dict:
    """Assemble the ``results.json`` document."""
    methods = {name: [point_record(p, baseline, baseline_val_accuracy) for p in method_points]
               for name, method_points in points.items()}
    summary, pareto = summarize(methods, budget)
    dense = baseline.total.dense
    return {
        "schema_version": SCHEMA_VERSION,
        "dataset": dataset,
        "model": model,
        "baseline_accuracy": baseline.accuracy,
        "baseline_val_accuracy": baseline_val_accuracy,
        "num_test_samples": baseline.num_samples,
        "dense_macs_per_sample": dense // baseline.num_samples,
        "budget_points": budget,
        "layers": list(baseline.per_layer),
        "knobs": dict(knobs),
        "config": config or {},
        "timing_s": timing or {},
        "methods": methods,
        "summary": summary,
        "pareto": pareto,
        **(extra or {}),
    }


def write_json(results: dict, path: Path) -> None:
    path.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")


def load_results(path: str | Path) -> dict:
    """Read a ``results.json`` (a run folder is accepted too); raise ValueError if it is not one."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"no results file at {path} (run `unitprune sweep` or `unitprune demo` first)")
    try:
        results = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    missing = [key for key in ("dataset", "model", "baseline_accuracy", "methods", "summary") if key not in results]
    if not isinstance(results, dict) or missing:
        raise ValueError(f"{path} is not a unitprune results file (missing {missing})")
    return results


def write_csv(results: dict, path: Path) -> None:
    """One row per point of every method."""
    frontier = {(p["method"], _knob_key(p["knob"])) for p in results.get("pareto", [])}
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for name, records in results["methods"].items():
            for r in records:
                causes = r["skipped_fraction_by_cause"]
                writer.writerow({
                    "method": name, "knob": "" if r["knob"] is None else r["knob"],
                    "accuracy": r["accuracy"], "accuracy_drop": r["accuracy_drop"],
                    "val_accuracy": r["val_accuracy"], "val_accuracy_drop": r["val_accuracy_drop"],
                    "macs_skipped_fraction": r["macs_skipped_fraction"],
                    "macs_remaining_fraction": r["macs_remaining_fraction"],
                    "skipped_zero_weight": causes["zero_weight"],
                    "skipped_zero_activation": causes["zero_activation"],
                    "skipped_threshold": causes["threshold"],
                    **{key: r["counts"][key] for key in COUNT_FIELDS},
                    "on_pareto_frontier": (name, _knob_key(r["knob"])) in frontier,
                })


def _knob_key(knob):
    return json.dumps(knob, sort_keys=True)
