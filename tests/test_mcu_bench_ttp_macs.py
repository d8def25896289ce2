"""Both TTP allocations as mcu-bench candidates (``ttp`` global, ``ttp-macs`` by |w| per MAC saved, and
UnIT on each) on a trained digits model in simavr: each has its own operating point, the budget rule
applied by hand to its int8 validation curve (the models pruned here with ``TTPConfig`` and run on the
NumPy integer reference); the fastest firmware within the budget is the admitted row with the fewest
cycles (min over the rows by hand), and a faster row outside the budget is never chosen."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from tests.mcu_tools import require_target
from unitprune.baselines import TTPConfig, iterative_magnitude_pruning
from unitprune.data import load_dataset
from unitprune.experiments.mcu_bench.bench import DEFAULT_SWEEP, METHODS, BenchConfig, OperatingPoint, run_bench
from unitprune.experiments.mcu_bench.fastest import fastest_plan, fastest_rows
from unitprune.mcu.quantize import quantize
from unitprune.mcu.reference import quantize_input, run_reference
from unitprune.models import build_model
from unitprune.training import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BUDGET = 1.0
#: On this model the int8 validation curves differ: global within 1 point up to 70 %, macs up to 50 % (91.7 % at 70 %
#: against dense's 93.1 %), neither at 80 % (test_each_allocation_... checks the knobs by hand, whatever they are).
SWEEP = replace(DEFAULT_SWEEP, ttp_sparsities=(0.3, 0.5, 0.7, 0.8), ttp_finetune_epochs=2, ttp_lr=5e-3,
                unit_percentiles=(20.0, 60.0), progress=False)
METHOD_NAMES = ("dense", "ttp", "ttp-macs", "ttp+unit", "ttp-macs+unit")


@pytest.fixture(scope="module")
def trained():
    splits = load_dataset("digits", seed=0)
    model = build_model("digits", seed=0)
    train(model, splits, TrainConfig(epochs=4, lr=5e-3, patience=None, progress=False, num_threads=1))
    return model.eval(), splits


@pytest.fixture(scope="module")
def bench(trained, tmp_path_factory):
    require_target("avr")
    model, splits = trained
    config = BenchConfig(targets=("avr",), methods=METHOD_NAMES, samples=2, layer_samples=1, budget=BUDGET,
                         confidence=0.0, sweep=SWEEP, progress=False)
    return run_bench(model, splits, config, run_dir=tmp_path_factory.mktemp("bench"))


def int8_val_accuracy(model, splits, variant: str) -> float:
    """The model quantized with ``variant``, classified on validation by the NumPy integer reference."""
    x, y = splits.val.tensors
    qmodel = quantize(model, x, variant=variant)
    outputs, _ = run_reference(qmodel, quantize_input(qmodel, x))
    return float(np.mean(outputs.reshape(len(x), -1).argmax(axis=1) == y.numpy()))


def by_hand(knobs, accuracies, reference: float) -> float:
    """Confidence 0: the most aggressive knob whose drop is within the budget, else the mildest."""
    admitted = [k for k, a in zip(knobs, accuracies) if 100 * (reference - a) <= BUDGET + 1e-9]
    return max(admitted) if admitted else min(knobs)


def test_each_allocation_is_a_candidate_with_its_own_knob_chosen_on_validation(trained, bench):
    model, splits = trained
    rows = {row["method"]: row for row in bench["rows"]}
    details = {d["method"]: d for d in bench["details"]}
    assert list(rows) == list(METHOD_NAMES)
    assert {m: METHODS[m].ttp_allocation for m in METHOD_NAMES[1:]} == {
        "ttp": None, "ttp-macs": "macs", "ttp+unit": None, "ttp-macs+unit": "macs"}
    dense = int8_val_accuracy(model, splits, "dense")
    assert details["dense"]["quantized_val_accuracy"] == pytest.approx(dense)
    for method, allocation in (("ttp", "global"), ("ttp-macs", "macs")):
        steps = iterative_magnitude_pruning(model, splits, TTPConfig(
            schedule=SWEEP.ttp_sparsities, finetune_epochs=SWEEP.ttp_finetune_epochs, lr=SWEEP.ttp_lr,
            seed=SWEEP.seed, num_threads=1, progress=False, allocation=allocation))
        curve = [int8_val_accuracy(step.model, splits, "zeroskip") for step in steps]
        tried = details[method]["point"]["tried"]
        assert [t["knob"] for t in tried] == list(SWEEP.ttp_sparsities)
        assert [t["quantized_val_accuracy"] for t in tried] == pytest.approx(curve)  # the allocation's models
        assert rows[method]["knob"] == by_hand(SWEEP.ttp_sparsities, curve, dense)
    assert {s["knob"]: s["quantized_val_accuracy"] for s in details["ttp"]["point"]["tried"]} != \
        {s["knob"]: s["quantized_val_accuracy"] for s in details["ttp-macs"]["point"]["tried"]}
    for method in ("ttp+unit", "ttp-macs+unit"):  # UnIT on a model of its own allocation's schedule
        point = details[method]["point"]
        assert point["ttp_sparsity"] in SWEEP.ttp_sparsities
        assert rows[method]["knob"] == by_hand([t["knob"] for t in point["tried"]],
                                               [t["quantized_val_accuracy"] for t in point["tried"]], dense)
    assert all(row["bit_exact"] for row in bench["rows"])


def test_the_fastest_is_the_admitted_row_with_the_fewest_cycles(bench):
    choice = bench["fastest"]["avr"]
    candidates = choice["candidates"]
    assert [c["method"] for c in candidates] == list(METHOD_NAMES)
    dense_val = candidates[0]["quantized_val_accuracy"]
    cycles = {row["method"]: row["cycles"] for row in bench["rows"]}
    admitted = [c["method"] for c in candidates if 100 * (dense_val - c["quantized_val_accuracy"]) <= BUDGET + 1e-9]
    assert [c["method"] for c in candidates if c["admitted"]] == admitted
    assert choice["cycles"] == min(cycles[m] for m in admitted)
    assert choice["method"] == min(admitted, key=cycles.get)
    # whatever was faster than the choice was outside the budget
    assert all(m not in admitted for m in METHOD_NAMES if cycles[m] < choice["cycles"])


def _point(method: str, correct: list[bool]) -> OperatingPoint:
    return OperatingPoint(METHODS[method], None if method == "dense" else 0.8, qmodel=None,
                          quantized_val_accuracy=float(np.mean(correct)), quantized_accuracy=0.9,
                          macs_skipped_fraction=0.5, val_correct=np.array(correct))


def test_a_faster_row_outside_the_budget_is_not_chosen():
    """ttp-macs is the fastest row but loses 4 of 100 validation samples (4 points > 1); ttp loses 1."""
    correct = [True] * 100
    points = {"dense": _point("dense", correct), "ttp": _point("ttp", [False] + correct[1:]),
              "ttp-macs": _point("ttp-macs", [False] * 4 + correct[4:])}
    cycles = {"dense": 3_000_000, "ttp": 2_000_000, "ttp-macs": 1_400_000}
    rows = [{"method": m, "target": "avr", "knob": points[m].knob, "cycles": c, "bit_exact": True,
             "quantized_accuracy": 0.9, "energy_uj_estimate": c * 2.4e-3} for m, c in cycles.items()]
    document = {"config": {"targets": ["avr"]}, "rows": rows,
                "details": [{"checks": {"kernels": {"fc": "unit_linear_sparse_s8"}}} for _ in rows]}
    choice = fastest_rows(document, points, splits=None, budget=BUDGET, confidence=0.0)["avr"]
    assert [c["admitted"] for c in choice["candidates"]] == [True, True, False]
    assert (choice["method"], choice["cycles"]) == ("ttp", 2_000_000)


def test_export_plan_fastest_considers_the_macs_allocation(trained, bench, tmp_path):
    """``export --plan fastest``'s search (fastest_plan) has ttp-macs among its candidates, at the knob mcu-bench chose."""
    model, splits = trained
    choice = fastest_plan(model, splits, "avr", tmp_path, budget=BUDGET, confidence=0.0,
                          methods=("dense", "ttp", "ttp-macs"), samples=1, sweep=SWEEP)
    knobs = {c["method"]: c["knob"] for c in choice.candidates}
    rows = {row["method"]: row["knob"] for row in bench["rows"]}
    assert knobs == {m: rows[m] for m in ("dense", "ttp", "ttp-macs")}
    measured = {c["method"]: c["cycles"] for c in choice.candidates if c["admitted"]}
    assert choice.method == min(measured, key=measured.get) and choice.cycles == min(measured.values())


def test_the_table_compares_ttp_macs_unit_with_ttp_macs():
    """benchmarks/mcu_bench_table.py on a hand-written run: UnIT on each allocation against that allocation's TTP
    row (cycles ratio by hand), with the plan's kernels named (static, sparse_tau included)."""
    from tests.mcu_tools import load_benchmark

    def row(method: str, cycles: int, layers: dict) -> dict:
        return {"method": method, "target": "avr", "knob": None if method == "dense" else 0.7,
                "quantized_accuracy": 0.96, "macs_skipped_fraction": 0.8, "cycles": cycles, "bit_exact": True,
                "energy_uj_estimate": cycles * 2.4e-3, "cycles_per_layer": layers}

    plan = {"layers": {"conv1": {"kernel": "static", "predicted_cycles": {}},
                       "conv2": {"kernel": "sparse_tau", "predicted_cycles": {}}}}
    rows = [row("dense", 3_000_000, {"conv1": 1_000_000}), row("ttp", 2_000_000, {"conv1": 800_000}),
            row("ttp-macs", 1_500_000, {"conv1": 600_000}), row("ttp-macs+unit", 2_000_000, {"conv1": 900_000})]
    document = {"model": "mnist", "dataset": "mnist", "seconds": 1.0,
                "config": {"targets": ["avr"], "samples": 2, "budget_points": 1.0}, "rows": rows,
                "details": [{"method": r["method"], "target": "avr",
                             "checks": {"unit_kernel_plan": plan} if r["method"] == "ttp-macs+unit" else {}}
                            for r in rows], "not_fitted": []}
    lines = load_benchmark("mcu_bench_table").tables(document, kernels=None).splitlines()
    assert "* avr: ttp-macs+unit slower than ttp-macs (0.75x: 2.00 M against 1.50 M)." in lines
    assert "  ttp-macs+unit per layer (conv1 static, conv2 sparse_tau): conv1 0.90 M against 0.60 M." in lines


def test_cli_sets_the_combination_base_budget():
    from unitprune.cli.mcu_bench_commands import _bench_config
    from unitprune.cli.parser import build_parser

    parse = build_parser().parse_args
    assert _bench_config(parse(["mcu-bench"])).sweep.combo_base_budget == DEFAULT_SWEEP.combo_base_budget
    config = _bench_config(parse(["mcu-bench", "--combo-base-budget", "1", "--methods", "ttp-macs,ttp-macs+unit"]))
    assert config.sweep.combo_base_budget == 1.0 and config.methods == ("ttp-macs", "ttp-macs+unit")
