"""The int8 kernels on a simulated AVR (benchmarks/kernels_s8_mcu.py, small layers): constants in
flash (PROGMEM through UNIT_FLASH / UNIT_READ_*), no counters, and every output byte equal to the
host library's (checked inside measure(), which raises on a mismatch); simavr's cycle counts show
the skipping variants doing less work than the dense loops."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # kernels_s8_mcu imports division_mcu by name
    spec.loader.exec_module(module)
    return module


division_mcu = _load("division_mcu")
kernels_s8_mcu = _load("kernels_s8_mcu")


@pytest.fixture(scope="module")
def tools():
    try:
        return division_mcu.check_tools()
    except division_mcu.ToolMissing as error:
        pytest.skip(f"AVR toolchain or simavr missing: {error}")


def test_int8_kernels_on_avr_equal_the_host_and_skip_work(tools, tmp_path, monkeypatch):
    monkeypatch.setattr(kernels_s8_mcu, "CONV", dict(n=1, c=2, h=6, w=7, o=3, k=3, pad=1))
    monkeypatch.setattr(kernels_s8_mcu, "LINEAR", dict(inputs=40, outputs=12))
    result = kernels_s8_mcu.measure("atmega2560", ("O2",), 1, tmp_path)
    cycles = result["builds"]["O2"]["cycles"]
    assert set(cycles) == {f"conv_{v}" for v in ("dense", "zeroskip", "unit")} | {
        f"linear_{v}" for v in ("dense", "zeroskip", "bitshift", "bintree", "table")}
    counts = result["counts"]
    assert counts["conv_unit"]["executed"] <= counts["conv_zeroskip"]["executed"] < counts["conv_dense"]["executed"]
    assert cycles["conv_zeroskip"] < cycles["conv_dense"] and cycles["linear_table"] < cycles["linear_dense"]
    assert result["builds"]["O2"]["requantize_cycles"] > 0


def test_a_wrong_avr_output_is_detected():
    layers = kernels_s8_mcu.make_layers(0)
    expected = {"linear_dense": (np.array([[1, 2, 3]], np.int8), {})}
    good = {"label": "linear_dense", "data": bytes([0, 1, 2, 3]).hex(), "cycles": 10}
    kernels_s8_mcu.check_record(good, layers, expected, "O2")
    for data in (bytes([0, 1, 2, 4]), bytes([255, 1, 2, 3]), bytes([0, 1, 2])):  # value, status, length
        with pytest.raises(RuntimeError, match="differs from the host"):
            kernels_s8_mcu.check_record(dict(good, data=data.hex()), layers, expected, "O2")
