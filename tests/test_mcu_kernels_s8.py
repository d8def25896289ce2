"""The int8 kernels on simulated MCUs (benchmarks/kernels_s8_mcu.py, small layers): constants in
flash (UNIT_FLASH / UNIT_READ_*: PROGMEM on AVR), no counters, and every output byte equal to the
host library's (checked inside measure(), which raises on a mismatch), on AVR (simavr) and MSP430
(mspdebug sim); the counts show the skipping variants doing less work than the dense loops, the
exact cycle counts the zero-skipping convolution's gain."""

from __future__ import annotations


import numpy as np
import pytest

from tests.mcu_tools import load_benchmark, require_target





kernels_s8_mcu = load_benchmark("kernels_s8_mcu")


@pytest.mark.parametrize("target", ["avr", "msp430"])
def test_int8_kernels_on_the_mcu_equal_the_host_and_skip_work(target, tmp_path, monkeypatch):
    require_target(target)
    monkeypatch.setattr(kernels_s8_mcu, "CONV", dict(n=1, c=2, h=6, w=7, o=3, k=3, pad=1))
    monkeypatch.setattr(kernels_s8_mcu, "LINEAR", dict(inputs=40, outputs=12))
    result = kernels_s8_mcu.measure((target,), 1, tmp_path, opts={target: ("O2",)})
    build = result["builds"][f"{target} -O2"]
    cycles = build["cycles"]
    assert set(cycles) == {f"conv_{v}" for v in ("dense", "zeroskip", "unit")} | {
        f"linear_{v}" for v in ("dense", "zeroskip", "bitshift", "bintree", "table")}
    counts = result["counts"]
    assert counts["conv_unit"]["executed"] <= counts["conv_zeroskip"]["executed"] < counts["conv_dense"]["executed"]
    assert cycles["conv_zeroskip"] < cycles["conv_dense"]
    # the linear UnIT kernel skips MACs; the output-stationary dense linear (accumulator in registers)
    # can still be the faster of the two on AVR, so the linear comparison is on the executed MACs
    assert counts["linear_table"]["executed"] < counts["linear_dense"]["executed"]
    assert build["requantize_cycles"] > 0


def test_a_wrong_mcu_output_is_detected():
    layers = kernels_s8_mcu.make_layers(0)
    expected = {"linear_dense": (np.array([[1, 2, 3]], np.int8), {})}
    good = {"label": "linear_dense", "data": bytes([0, 1, 2, 3]).hex(), "cycles": 10}
    kernels_s8_mcu.check_record(good, layers, expected, "avr -O2")
    for data in (bytes([0, 1, 2, 4]), bytes([255, 1, 2, 3]), bytes([0, 1, 2])):  # value, status, length
        with pytest.raises(RuntimeError, match="differs from the host"):
            kernels_s8_mcu.check_record(dict(good, data=data.hex()), layers, expected, "avr -O2")
