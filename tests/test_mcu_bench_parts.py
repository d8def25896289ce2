"""mcu-bench's measure task: a firmware too large with its embedded test samples is measured on
halves of them, each its own firmware, and the halves joined exactly as batches are."""

from __future__ import annotations

import numpy as np
import pytest

from unitprune.experiments.mcu_bench import bench, bench_tasks
from unitprune.mcu.export import SamplesTooLarge
from unitprune.mcu.targets import FirmwareTooLarge


def _too_large(kind: str, samples: int, limit: int) -> Exception:
    if kind == "link":  # the linker's region overflow
        return FirmwareTooLarge(f"{samples} samples do not fit", "ROM", 100 * (samples - limit))
    return SamplesTooLarge(f"{samples} samples do not fit beside the tables; embed fewer")  # the export's check


def fake_measure(limit: int, calls: list, kind: str = "link"):
    """A stand-in for measure_target: the firmware fits at most ``limit`` samples; a sample's
    cycles are 1000 + its value (a hand-known oracle per sample)."""
    def measure(qmodel, target, x_q, work_dir, layer_samples, max_cycles):
        calls.append((str(work_dir), len(x_q), layer_samples))
        if len(x_q) > limit:
            raise _too_large(kind, len(x_q), limit)
        cycles = [1000 + int(v) for v in x_q[:, 0]]
        return {"cycles": int(np.median(cycles)), "cycles_per_layer": {}, "energy_uj_estimate": 0.0,
                "samples_checked": len(x_q), "bit_exact": True, "flash_bytes": 111, "sram_bytes": 10 + len(x_q),
                "checks": {"inference_cycles": cycles, "host_vs_reference": True, "mcu_vs_host": True,
                           "layer_samples": layer_samples}}
    return measure


@pytest.mark.parametrize("kind", ["link", "export"])
def test_samples_that_do_not_fit_are_measured_in_halves(monkeypatch, tmp_path, kind):
    calls = []
    monkeypatch.setattr(bench, "measure_target", fake_measure(3, calls, kind))
    x_q = np.arange(10, dtype=np.int8).reshape(10, 1)
    row = bench_tasks._measure_in_parts(None, "msp430", x_q, tmp_path, 2, 1000)
    assert row["checks"]["inference_cycles"] == [1000 + v for v in range(10)]  # every sample, in order
    assert row["samples_checked"] == 10 and row["bit_exact"]
    assert row["cycles"] == 1004  # median_low of 1000..1009
    assert row["checks"]["sample_parts"] == 4  # 10 -> 5 + 5 -> (3 + 2) + (3 + 2)
    assert row["flash_bytes"] == 111
    fitted = [(path, n, layers) for path, n, layers in calls if n <= 3]
    assert [n for _, n, _ in fitted] == [3, 2, 3, 2]
    assert [layers for _, _, layers in fitted] == [2, 0, 0, 0]  # the per-layer firmware once, with the first part
    assert len({path for path, _, _ in fitted}) == 4  # each part its own folder


@pytest.mark.parametrize("kind, error", [("link", FirmwareTooLarge), ("export", SamplesTooLarge)])
def test_a_firmware_that_does_not_fit_one_sample_raises(monkeypatch, tmp_path, kind, error):
    monkeypatch.setattr(bench, "measure_target", fake_measure(0, [], kind))
    with pytest.raises(error):
        bench_tasks._measure_in_parts(None, "msp430", np.zeros((4, 1), dtype=np.int8), tmp_path, 1, 1000)


def test_samples_that_fit_are_one_firmware(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(bench, "measure_target", fake_measure(25, calls))
    row = bench_tasks._measure_in_parts(None, "avr", np.ones((20, 1), dtype=np.int8), tmp_path, 3, 1000)
    assert calls == [(str(tmp_path), 20, 3)] and "sample_parts" not in row["checks"]
