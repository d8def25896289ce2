"""The int8 kernels' output stage on AVR, MSP430 and MSP430 + hardware multiplier (the per-target
requantization routines and unit__requantize_clamp_s8, with and without ReLU's shortcut) against
the NumPy integer reference over edge multipliers, shifts and accumulators, including the ties of
the negative nudge (benchmarks/requantize_s8_mcu.py)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.mcu_tools import load_benchmark, require_target

bench = load_benchmark("requantize_s8_mcu")


def test_the_cases_hold_the_edges():
    acc, multiplier, shift = (column[::5] for column in bench.cases(0, 60))
    assert {0, 1, 2**30, 2**31 - 1} <= set(multiplier.tolist())
    assert {-31, -17, -16, -1, 0, 30} <= set(shift.tolist())
    assert {0, -1, 2**15, -2**16 - 1, 2**31 - 1, -2**31} <= set(acc.tolist())
    ties = (acc < 0) & ((np.abs(acc) * multiplier) % 2**31 == 2**30)
    assert ties.sum() >= 20


def test_raw_contract_rejects_a_wrong_value():
    exact = np.array([5, 300, -300, 7])
    shift = np.array([-1, -1, -1, 0])
    assert bench.raw_ok(np.array([5, 2**15, -256, 7]), exact, shift).all()
    assert not bench.raw_ok(np.array([6, 255, 300, 8]), exact, shift).any()


@pytest.mark.parametrize("target", ["avr", "msp430", "msp430-hwmult"])
def test_requantization_on_the_mcu_equals_the_reference(target, tmp_path):
    require_target(target)
    result = bench.measure((target,), seed=0, random_count=60, build_dir=tmp_path, every=5)  # raises on a mismatch
    assert result["cases"] >= 1000
    assert result["builds"][target]["cycles_per_case"]["clamp"] > 0
