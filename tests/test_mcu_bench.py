"""unitprune.experiments.mcu_bench.bench and ``unitprune mcu-bench`` on the digits model: the exported C runs on the
host, in simavr and in mspdebug (with and without the hardware multiplier); every output equals the
integer reference (unitprune.mcu.reference, NumPy) bit for bit, cycle counts repeat exactly, the
per-layer regions fit inside the per-inference total, and the CLI writes mcu.json with the issue's
keys."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.mcu_tools import require_target
from unitprune import UnITConfig, calibrate, convert
from unitprune.data import load_dataset
from unitprune.mcu import targets
from unitprune.experiments.mcu_bench.bench import _build, measure_target
from unitprune.mcu.export import export_c
from unitprune.mcu.host_runner import run_exported
from unitprune.mcu.qmodel import QFlatten
from unitprune.mcu.quantize import quantize
from unitprune.mcu.reference import quantize_input, run_reference
from unitprune.models import build_model

#: The row keys issue 9 asks for, written out (not imported from the module under test).
ISSUE_KEYS = {"model", "target", "method", "knob", "quantized_accuracy", "macs_skipped_fraction", "cycles",
              "cycles_per_layer", "energy_uj_estimate", "flash_bytes", "sram_bytes", "samples_checked", "bit_exact"}
SAMPLES = 3


@pytest.fixture(scope="module")
def digits_case():
    """A random-weight digits model, UnIT at percentile 50 (int8 UnIT kernels), and 3 test inputs."""
    splits = load_dataset("digits", seed=0)
    model = build_model("digits", seed=0).eval()
    unit_model = convert(model, UnITConfig(approx="bitshift"))
    x_val = splits.val.tensors[0]
    calibrate(unit_model, x_val, percentile=50.0)
    qmodel = quantize(unit_model, x_val, variant="unit", linear_quotient="bitshift")
    x_q = quantize_input(qmodel, splits.test.tensors[0][:SAMPLES])
    expected, counts = run_reference(qmodel, x_q)
    assert sum(c.threshold for c in counts.values()) > 0  # UnIT really skips something here
    return qmodel, x_q, expected.reshape(SAMPLES, -1)


def _timed_ops(qmodel) -> list[str]:
    """The ops that get a region with markers (Flatten is no code: [C][H][W] is already flat)."""
    return [op.name for op in qmodel.ops if not isinstance(op, QFlatten)]


def _outputs(run: targets.RunResult) -> np.ndarray:
    return np.stack([np.frombuffer(bytes(r.data), dtype=np.int8) for r in run.regions if r.data])


def test_host_run_is_bit_exact(tmp_path, digits_case):
    qmodel, x_q, expected = digits_case
    export_c(qmodel, tmp_path, target="host")
    outputs, _ = run_exported(tmp_path, x_q)
    assert np.array_equal(outputs, expected)


@pytest.mark.parametrize("target", ["avr", "msp430", "msp430-hwmult"])
def test_simulated_runs_bit_exact_deterministic_and_layers_within_total(tmp_path, digits_case, target):
    require_target(target)
    qmodel, x_q, expected = digits_case
    export_c(qmodel, tmp_path / "export", target="avr" if target == "avr" else "msp430", samples=x_q)
    inference_fw = _build(target, tmp_path / "export", tmp_path / "inference", markers=False)
    layers_fw = _build(target, tmp_path / "export", tmp_path / "layers", markers=True)
    first, second = targets.run(inference_fw), targets.run(inference_fw)
    layers = targets.run(layers_fw)
    for run in (first, second, layers):
        assert np.array_equal(_outputs(run), expected)
    cycles = [r.cycles for r in first.regions]
    assert [r.label for r in first.regions] == ["inference"] * SAMPLES
    assert cycles == [r.cycles for r in second.regions]  # exact and repeatable
    names = _timed_ops(qmodel)
    assert len(layers.regions) == SAMPLES * len(names)
    per_sample = [layers.regions[i * len(names):(i + 1) * len(names)] for i in range(SAMPLES)]
    for sample, regions in enumerate(per_sample):
        assert [r.label for r in regions] == names
        assert sum(r.cycles for r in regions) <= cycles[sample]
        assert all(r.cycles > 0 for r in regions)


def test_measure_target_row_matches_direct_runs(tmp_path, digits_case):
    require_target("avr")
    qmodel, x_q, _ = digits_case
    row = measure_target(qmodel, "avr", x_q, tmp_path / "work", layer_samples=2)
    export_c(qmodel, tmp_path / "export", target="avr", samples=x_q)
    run = targets.run(_build("avr", tmp_path / "export", tmp_path / "inference", markers=False))
    assert row["cycles"] == sorted(r.cycles for r in run.regions)[(SAMPLES - 1) // 2]
    assert row["bit_exact"] is True and row["samples_checked"] == SAMPLES
    assert list(row["cycles_per_layer"]) == _timed_ops(qmodel)
    assert row["energy_uj_estimate"] == pytest.approx(row["cycles"] * 2.4e-3)  # 2.4 nJ/cycle, ATmega2560 at 4 MHz
    assert row["flash_bytes"] == row["checks"]["flash_with_samples_bytes"] - x_q.size


def test_max_cycles_is_per_sample(tmp_path, digits_case):
    """A firmware of 3 samples may run 3 x max_cycles (ten KWS samples on AVR exceed 2 G cycles in all)."""
    require_target("avr")
    qmodel, x_q, _ = digits_case
    export_c(qmodel, tmp_path / "export", target="avr", samples=x_q)
    run = targets.run(_build("avr", tmp_path / "export", tmp_path / "inference", markers=False))
    one = max(r.cycles for r in run.regions)  # one inference, the most expensive sample
    row = measure_target(qmodel, "avr", x_q, tmp_path / "fits", layer_samples=0, max_cycles=one * 3 // 2)
    assert row["bit_exact"] is True and row["samples_checked"] == SAMPLES  # 4.5 x one inference in all
    with pytest.raises(targets.FirmwareError, match="limit"):
        measure_target(qmodel, "avr", x_q, tmp_path / "short", layer_samples=0, max_cycles=one // 2)


def test_cli_writes_mcu_json_with_the_issue_keys(tmp_path, capsys):
    require_target("avr")
    from unitprune.cli import main

    weights = tmp_path / "weights.pt"
    torch.save(build_model("digits", seed=0).state_dict(), weights)
    run_dir = tmp_path / "run"
    argv = ["mcu-bench", "--model", "digits", "--weights", str(weights), "--data", "digits", "--targets", "avr",
            "--methods", "dense,unit-bitshift,fatrelu,fatrelu+unit", "--unit-percentiles", "20,60",
            "--fatrelu-percentiles", "30,70", "--samples", "2", "--layer-samples", "1", "--run-dir", str(run_dir),
            "--no-progress"]
    assert main(argv) == 0
    document = json.loads((run_dir / "mcu.json").read_text())
    assert [(r["method"], r["target"]) for r in document["rows"]] == [
        ("dense", "avr"), ("unit-bitshift", "avr"), ("fatrelu", "avr"), ("fatrelu+unit", "avr")]
    for row in document["rows"]:
        assert set(row) == ISSUE_KEYS
        assert row["bit_exact"] and row["samples_checked"] == 2
    assert document["rows"][1]["knob"] in (20.0, 60.0)
    assert document["rows"][2]["knob"] in (30.0, 70.0) and document["rows"][3]["knob"] in (20.0, 60.0)
    assert [d["variant"] for d in document["details"][2:]] == ["zeroskip", "unit"]
    assert document["details"][3]["point"]["fatrelu_percentile"] in (30.0, 70.0)
    assert document["not_measured"] == {}
    assert "estimate" in document["energy"]["avr"]["source"].lower()
    for name in ("mcu.md", "mcu_latency.png", "mcu_energy.png"):
        assert (run_dir / name).stat().st_size > 0
    assert "estimate" in (run_dir / "mcu.md").read_text().lower()
    capsys.readouterr()
    assert main(argv) == 2  # a non-empty run dir is never overwritten without --overwrite
    assert "not empty" in capsys.readouterr().err


def test_cli_missing_toolchain_names_the_packages(tmp_path, monkeypatch, capsys):
    from unitprune.cli import main

    monkeypatch.setenv("PATH", str(tmp_path))  # no avr-gcc, no simavr harness compiler
    assert main(["mcu-bench", "--targets", "avr", "--run-dir", str(tmp_path / "run")]) == 2
    assert "gcc-avr" in capsys.readouterr().err


def test_batches_of_samples_give_the_rows_of_one_batch(tmp_path):
    """mcu-bench runs the samples in batches (one task each): 2 + 2 samples per firmware give the rows
    of one 4-sample firmware (median over every sample, flash without the embedded samples). (The
    first inference of an AVR firmware takes one cycle more than the same sample later in the loop,
    e.g. digits sample 4: 75,170 alone, 75,169 fourth, on main too: 83,755 / 83,754; so the median
    sample, here the 4th, must not be first in its batch.)"""
    require_target("avr")
    from unitprune.experiments.mcu_bench.bench import BenchConfig, run_bench

    splits = load_dataset("digits", seed=0)
    model = build_model("digits", seed=0)
    config = BenchConfig(targets=("avr",), methods=("dense",), samples=4, layer_samples=1, progress=False)
    whole = run_bench(model, splits, config, run_dir=tmp_path / "whole", batch_samples=4)
    batched = run_bench(model, splits, config, run_dir=tmp_path / "batched", batch_samples=2)
    assert batched["rows"] == whole["rows"] and whole["rows"][0]["samples_checked"] == 4
    assert batched["details"][0]["checks"]["batches"] == 2 and "batches" not in whole["details"][0]["checks"]
    assert sorted(p.name for p in (tmp_path / "batched" / "work").iterdir()) == ["dense-avr-b0", "dense-avr-b1"]
