"""Sweeps and reports: Pareto frontier, autotuner budget, results schema, folding, protocol."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch
import torch.nn as nn

import unitprune
from unitprune.data import load_dataset
from unitprune.experiments import (AutotuneConfig, SweepConfig, autotune_percentiles, evaluate_unit_model,
                                   max_skipped_within_drop, pareto_frontier, run_sweep)
from unitprune.experiments.folding import fold_input_normalization
from unitprune.models import build_model
from unitprune.training import TrainConfig, train

CAUSES = ("zero_weight", "zero_activation", "threshold", "executed")
COUNTERS = ("dense",) + CAUSES + ("compares", "divisions")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits():
    """sklearn digits and the tiny digits CNN, trained for a few seconds."""
    splits = load_dataset("digits", seed=0)
    model = build_model("digits", seed=0)
    train(model, splits, TrainConfig(epochs=12, lr=5e-3, patience=None, progress=False, num_threads=1))
    return splits, model


# ---------------------------------------------------------------------------------------------
# Pareto frontier
# ---------------------------------------------------------------------------------------------

def test_pareto_frontier_hand_made():
    points = [  # (accuracy, skipped)
        (0.95, 0.10),  # 0 frontier: most accurate
        (0.94, 0.50),  # 1 frontier
        (0.93, 0.40),  # 2 dominated by 1
        (0.94, 0.50),  # 3 duplicate of 1: dropped
        (0.90, 0.80),  # 4 frontier
        (0.90, 0.70),  # 5 dominated by 4 (equal accuracy, fewer skipped)
        (0.50, 0.95),  # 6 frontier: most skipped
        (0.95, 0.05),  # 7 dominated by 0 (equal accuracy)
    ]
    assert pareto_frontier(points) == [0, 1, 4, 6]


def test_pareto_frontier_edge_cases():
    assert pareto_frontier([]) == []
    assert pareto_frontier([(0.5, 0.5)]) == [0]
    assert pareto_frontier([(0.9, 0.1), (0.8, 0.2), (0.7, 0.3)]) == [0, 1, 2]  # a pure trade-off
    assert pareto_frontier([(0.7, 0.1), (0.8, 0.2), (0.9, 0.3)]) == [2]  # one point dominates all


def test_max_skipped_within_drop():
    drops = [0.0, 0.5, 1.0000000000000009, 1.2, -0.3]
    skipped = [0.2, 0.6, 0.7, 0.9, 0.1]
    assert max_skipped_within_drop(drops, skipped, 1.0) == 2  # float noise on the budget is absorbed
    assert max_skipped_within_drop(drops, skipped, 0.4) == 0
    assert max_skipped_within_drop(drops, skipped, -1.0) is None


# ---------------------------------------------------------------------------------------------
# Autotuner
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("budget", [0.0, 1.5])
def test_autotuner_respects_its_budget_on_validation(digits, budget):
    splits, model = digits
    unit_model = unitprune.convert(model)
    baseline = evaluate_unit_model(unit_model, splits.val).accuracy
    result = autotune_percentiles(unit_model, splits.val, baseline,
                                  AutotuneConfig(budget=budget, grid=(0, 20, 40, 60, 80, 90)))
    assert 100 * (baseline - result.val_accuracy) <= budget + 1e-9
    # the model is left at the result, and the result is what the model does
    again = evaluate_unit_model(unit_model, splits.val)
    assert again.accuracy == pytest.approx(result.val_accuracy)
    assert again.total.skipped_fraction == pytest.approx(result.val_skipped_fraction)
    assert 100 * (baseline - again.accuracy) <= budget + 1e-9
    assert set(result.percentiles) == {"conv1", "fc"}
    assert result.val_skipped_fraction >= result.start_val_skipped_fraction
    for step in result.history:
        assert 100 * (baseline - step["val_accuracy"]) <= budget + 1e-9


def test_autotuner_per_layer_beats_or_equals_its_global_start(digits):
    splits, model = digits
    unit_model = unitprune.convert(model)
    baseline = evaluate_unit_model(unit_model, splits.val).accuracy
    result = autotune_percentiles(unit_model, splits.val, baseline, AutotuneConfig(budget=2.0, grid=(0, 30, 60, 90)))
    assert result.start_percentile in (0, 30, 60, 90)
    assert result.val_skipped_fraction >= result.start_val_skipped_fraction
    assert result.evaluations >= 1


# ---------------------------------------------------------------------------------------------
# Sweep: results schema, accounting, protocol
# ---------------------------------------------------------------------------------------------

SMALL = dict(unit_percentiles=(20, 60), fatrelu_percentiles=(30, 70), ttp_sparsities=(0.5, 0.8), ttp_finetune_epochs=1,
             autotune_budgets=(1.0,), autotune_grid=(0, 40, 80), progress=False)


@pytest.fixture(scope="module")
def sweep_run(digits, tmp_path_factory):
    splits, model = digits
    run_dir = tmp_path_factory.mktemp("sweep")
    results = run_sweep(model, splits, SweepConfig(**SMALL), dataset="digits", model_name="digits", run_dir=run_dir)
    return results, run_dir


def _is_fraction(value) -> bool:
    return isinstance(value, float) and 0.0 <= value <= 1.0


def test_sweep_writes_the_run_folder(sweep_run):
    results, run_dir = sweep_run
    for name in ("results.json", "results.csv", "report.md", "accuracy_vs_macs.png"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "accuracy_vs_macs.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((run_dir / "results.json").read_text()) == json.loads(json.dumps(results))
    report = (run_dir / "report.md").read_text()
    assert "## Summary" in report and "accuracy_vs_macs.png" in report and "autotuned" in report
    rows = list(csv.DictReader((run_dir / "results.csv").open()))
    assert len(rows) == sum(len(points) for points in results["methods"].values())


def test_results_json_schema(sweep_run):
    results, _ = sweep_run
    for key, kind in [("dataset", str), ("model", str), ("baseline_accuracy", float), ("methods", dict),
                      ("summary", dict), ("pareto", list), ("budget_points", float), ("num_test_samples", int),
                      ("dense_macs_per_sample", int), ("knobs", dict), ("layers", list)]:
        assert isinstance(results[key], kind), key
    assert set(results["methods"]) == {"unpruned", "ttp", "fatrelu", "unit-exact", "unit-bitshift", "unit-bintree",
                                       "unit-bitmask", "ttp+unit", "fatrelu+unit", "unit-autotuned"}
    assert _is_fraction(results["baseline_accuracy"])
    for method, points in results["methods"].items():
        assert points, method
        for p in points:
            for key in ("knob", "accuracy", "accuracy_drop", "val_accuracy", "val_accuracy_drop",
                        "macs_skipped_fraction", "macs_remaining_fraction", "skipped_fraction_by_cause", "counts",
                        "per_layer", "num_samples", "correct", "details"):
                assert key in p, (method, key)
            for key in ("accuracy", "val_accuracy", "macs_skipped_fraction", "macs_remaining_fraction"):
                assert _is_fraction(p[key]), (method, key, p[key])
            assert isinstance(p["accuracy_drop"], float) and isinstance(p["val_accuracy_drop"], float)
            assert p["accuracy_drop"] == pytest.approx(100 * (results["baseline_accuracy"] - p["accuracy"]))
            assert p["macs_skipped_fraction"] + p["macs_remaining_fraction"] == pytest.approx(1.0, abs=1e-12)
            counts = p["counts"]
            assert set(counts) == set(COUNTERS) and all(isinstance(v, int) for v in counts.values())
            assert sum(counts[c] for c in CAUSES) == counts["dense"]
            assert counts["dense"] == results["dense_macs_per_sample"] * p["num_samples"]
            by_cause = p["skipped_fraction_by_cause"]
            assert set(by_cause) == {"zero_weight", "zero_activation", "threshold"}
            assert all(_is_fraction(v) for v in by_cause.values())
            assert sum(by_cause.values()) == pytest.approx(p["macs_skipped_fraction"])
            assert list(p["per_layer"]) == results["layers"]
            for counter in COUNTERS:
                assert sum(layer[counter] for layer in p["per_layer"].values()) == counts[counter]
    for method, info in results["summary"].items():
        assert set(info) >= {"max_skipped_fraction_at_1pt_drop", "knob_at_1pt_drop", "selected_on_validation"}
        value = info["max_skipped_fraction_at_1pt_drop"]
        assert value is None or _is_fraction(value)
        if value is not None:
            within = [p["macs_skipped_fraction"] for p in results["methods"][method] if p["accuracy_drop"] <= 1 + 1e-9]
            assert value == max(within)
    assert results["summary"]["unpruned"]["max_skipped_fraction_at_1pt_drop"] is not None


def test_one_accounting_for_all_methods(sweep_run):
    results, _ = sweep_run
    methods = results["methods"]
    unpruned = methods["unpruned"][0]
    assert unpruned["accuracy_drop"] == 0.0
    assert unpruned["counts"]["threshold"] == 0 and unpruned["counts"]["zero_weight"] == 0
    for p in methods["ttp"]:  # zero weights, no threshold skips
        assert p["counts"]["threshold"] == 0 and p["counts"]["zero_weight"] > 0
        assert p["details"]["weight_sparsity"] == pytest.approx(p["knob"], abs=1e-3)
    for p in methods["fatrelu"]:  # only zero activations, more of them than with ReLU
        assert p["counts"]["threshold"] == 0 and p["counts"]["zero_weight"] == 0
        assert p["counts"]["zero_activation"] >= unpruned["counts"]["zero_activation"]
    for p in methods["unit-exact"]:
        assert p["counts"]["threshold"] > 0 and p["counts"]["zero_weight"] == 0
    assert all(p["counts"]["zero_weight"] > 0 for p in methods["ttp+unit"])
    # bintree makes the same decisions as bitshift (different cost only)
    for a, b in zip(methods["unit-bitshift"], methods["unit-bintree"]):
        assert a["counts"]["executed"] == b["counts"]["executed"] and a["correct"] == b["correct"]


def test_pareto_in_results_is_non_dominated(sweep_run):
    results, _ = sweep_run
    everything = [(p["accuracy"], p["macs_skipped_fraction"]) for pts in results["methods"].values() for p in pts]
    for entry in results["pareto"]:
        a, s = entry["accuracy"], entry["macs_skipped_fraction"]
        assert not any(o_a >= a and o_s >= s and (o_a > a or o_s > s) for o_a, o_s in everything)


def test_test_labels_never_choose_anything(digits):
    """Thresholds and choices come from validation only: scrambling the test labels changes
    test accuracies but no threshold, percentile or selection."""
    splits, model = digits
    config = SweepConfig(**dict(SMALL, methods=("unit-exact", "fatrelu", "fatrelu+unit", "unit-autotuned")))
    first = run_sweep(model, splits, config)
    x, y = splits.test.tensors
    scrambled = type(splits)(**{**splits.__dict__, "test": torch.utils.data.TensorDataset(x, y.roll(1))})
    second = run_sweep(model, scrambled, config)
    for method in config.methods:
        assert [p["details"] for p in first["methods"][method]] == [p["details"] for p in second["methods"][method]]
        assert [p["val_accuracy"] for p in first["methods"][method]] == \
               [p["val_accuracy"] for p in second["methods"][method]]
    assert first["baseline_accuracy"] != second["baseline_accuracy"]


def test_sweep_config_validation():
    with pytest.raises(ValueError, match="unknown method"):
        SweepConfig(methods=("unit-exact", "magic"))
    with pytest.raises(ValueError, match=r"\[0, 100\]"):
        SweepConfig(unit_percentiles=(20, 120))
    with pytest.raises(ValueError, match="increasing"):
        SweepConfig(ttp_sparsities=(0.8, 0.5))
    with pytest.raises(ValueError, match="must be a list"):
        SweepConfig(unit_percentiles=20)


# ---------------------------------------------------------------------------------------------
# Folding the input normalisation
# ---------------------------------------------------------------------------------------------

def test_fold_input_normalization_is_exact_and_exposes_zeros(digits):
    splits, model = digits
    folded, raw = fold_input_normalization(model, splits)
    assert torch.allclose(model(splits.test.tensors[0]), folded(raw.test.tensors[0]), atol=1e-4)
    x = raw.test.tensors[0]
    assert float((x == 0).float().mean()) > 0.3  # digits' background is exactly zero again
    assert float(x.min()) >= 0 and float(x.max()) <= 1 + 1e-6
    assert torch.equal(raw.test.tensors[1], splits.test.tensors[1])
    assert not torch.equal(folded.conv1.weight, model.conv1.weight)  # the original is untouched


def test_fold_input_normalization_refuses_padding(digits):
    splits, _ = digits
    padded = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Flatten(), nn.Linear(2 * 8 * 8, 10))
    with pytest.raises(ValueError, match="padding"):
        fold_input_normalization(padded, splits)
    no_stats = type(splits)(**{**splits.__dict__, "normalization": {}})
    with pytest.raises(ValueError, match="records none"):
        fold_input_normalization(digits[1], no_stats)


def test_evaluate_unit_model_sums_counters_over_batches(digits):
    splits, model = digits
    unit_model = unitprune.convert(model)
    unitprune.calibrate(unit_model, splits.val.tensors[0], percentile=50)
    whole = evaluate_unit_model(unit_model, splits.test, batch_size=10_000)
    batched = evaluate_unit_model(unit_model, splits.test, batch_size=7)
    assert whole.correct == batched.correct
    assert whole.total == batched.total
    report = unitprune.mac_report(unit_model, splits.test.tensors[0])
    assert report.total == whole.total
    assert math.isclose(whole.accuracy, whole.correct / len(splits.test))


def test_points_carry_paired_validation_counts_and_the_selection_its_bound(sweep_run):
    results, _ = sweep_run
    n = results["num_val_samples"]
    assert results["confidence"] == 0.9
    for method, points in results["methods"].items():
        for p in points:
            paired = p["val_paired"]
            assert paired["n"] == n
            # the paired counts give the same drop as the two accuracies (independent computations)
            assert 100 * (paired["losses"] - paired["gains"]) / n == pytest.approx(p["val_accuracy_drop"], abs=1e-9)
        chosen = results["summary"][method]["selected_on_validation"]
        if chosen is not None:
            assert chosen["confidence"] == 0.9
            assert chosen["val_drop_bound"] <= results["budget_points"]
            assert chosen["val_drop_bound"] >= min(chosen["val_accuracy_drop"], 0.0)
            assert chosen["knob"] in chosen["knobs_admitted"]
