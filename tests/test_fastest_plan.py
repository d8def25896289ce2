"""The fastest firmware within an accuracy budget (unitprune.experiments.mcu_bench.fastest and
``unitprune export --plan fastest``) on the digits model in simavr: the choice is the admitted
configuration with the fewest measured cycles, admission follows the observed validation drop
(confidence 0, recomputed here from the candidates' accuracies), the emitted export is that
configuration, bit-exact; the refusals name the problem."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from tests.mcu_tools import require_target
from unitprune.data import load_dataset
from unitprune.experiments.mcu_bench.bench import DEFAULT_SWEEP
from unitprune.experiments.mcu_bench.fastest import NoPointWithinBudget, fastest_plan
from unitprune.models import build_model

SWEEP = replace(DEFAULT_SWEEP, unit_percentiles=(20.0, 60.0), progress=False)


@pytest.fixture(scope="module")
def digits():
    return build_model("digits", seed=0).eval(), load_dataset("digits", seed=0)


def test_the_fastest_is_the_admitted_configuration_with_the_fewest_cycles(tmp_path, digits):
    require_target("avr")
    model, splits = digits
    budget = 1.0
    choice = fastest_plan(model, splits, "avr", tmp_path, budget=budget, confidence=0.0,
                          methods=("dense", "unit-bitshift", "zeroskip"), samples=2, sweep=SWEEP)
    by_method = {c["method"]: c for c in choice.candidates}
    dense_val = by_method["dense"]["quantized_val_accuracy"]
    for candidate in choice.candidates:  # confidence 0: admitted iff the observed drop is within the budget
        assert candidate["admitted"] == (100 * (dense_val - candidate["quantized_val_accuracy"]) <= budget + 1e-9)
        assert ("cycles" in candidate) == candidate["admitted"]
    admitted = [c for c in choice.candidates if c["admitted"]]
    assert choice.cycles == min(c["cycles"] for c in admitted)
    assert choice.method == min(admitted, key=lambda c: c["cycles"])["method"]
    assert choice.kernels == by_method[choice.method]["kernels"]
    # the static-sparse kernel (its tables fit the AVR's flash), with or without zero-activation skipping;
    # without it, max-pooled on its accumulators (conv1 -> pool1: unitprune.mcu.export.pooled_conv)
    assert by_method["zeroskip"]["kernels"]["conv1"] in ("unit_conv2d_sparse_pool_s8", "unit_conv2d_sparse_zeroact_s8")
    assert by_method["unit-bitshift"]["kernels"]["conv1"] in ("unit_conv2d_unit_skipfree_s8", "unit_conv2d_unit_s8",
                                                              "unit_conv2d_unit_sparse_s8", "unit_conv2d_dense_pool_s8",
                                                              "unit_conv2d_sparse_pool_s8",
                                                              "unit_conv2d_sparse_zeroact_s8")


def test_no_configuration_within_the_budget_is_refused_naming_why(tmp_path, digits):
    require_target("avr")
    model, splits = digits
    # budget 0 at confidence 0.9: the bound of a pruned model's drop is above 0 on 144 validation samples
    with pytest.raises(NoPointWithinBudget, match=r"no configuration within 0 points on avr: unit-bitshift: "
                                                  r"validation drop .* \(bound"):
        fastest_plan(model, splits, "avr", tmp_path, budget=0.0, confidence=0.9, methods=("unit-bitshift",),
                     samples=1, sweep=SWEEP)
    with pytest.raises(ValueError, match="unknown MCU target 'pic16'"):
        fastest_plan(model, splits, "pic16", tmp_path)


def test_cli_export_plan_fastest_emits_that_firmware(tmp_path, capsys):
    require_target("avr")
    from unitprune.cli import main

    weights = tmp_path / "weights.pt"
    torch.save(build_model("digits", seed=0).state_dict(), weights)
    common = ["export", "--model", "digits", "--weights", str(weights), "--data", "digits", "--plan", "fastest",
              "--plan-samples", "1", "--samples", "2"]
    out = tmp_path / "fw"
    assert main([*common, "--target", "avr", "--budget", "1", "--plan-methods", "dense,unit-bitshift",
                 "--out-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    check = json.loads((out / "host_check.json").read_text())
    fastest = check["fastest"]
    assert f"fastest within 1 points on avr: {fastest['method']}" in printed and check["bit_exact"]
    manifest = json.loads((out / "memory_plan.json").read_text())
    assert {layer: v["kernel"] for layer, v in manifest["kernels"]["layers"].items()} == fastest["kernels"]
    assert main([*common, "--target", "host", "--out-dir", str(tmp_path / "h")]) == 2
    assert "--plan fastest measures the firmware on an MCU target; --target host is not one" in capsys.readouterr().err
    assert main([*common, "--target", "avr", "--budget", "0", "--plan-methods", "unit-bitshift",
                 "--out-dir", str(tmp_path / "none")]) == 2
    assert "no configuration within 0 points on avr" in capsys.readouterr().err
