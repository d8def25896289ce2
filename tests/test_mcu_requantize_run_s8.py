"""The dense kernels' output stage as the kernels run it (one output channel's constants computed
once by unit__requant_run_init_s8, a run of accumulators requantized in one assembly loop:
unit__requantize_run_fast_s8_avr, __unit_requantize_run_fast_s8) on AVR, MSP430 and MSP430 +
hardware multiplier, bit for bit against the NumPy integer reference, with its exact cycles per
output (benchmarks/requantize_run_s8_mcu.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.mcu_tools import load_benchmark, require_target
from unitprune.mcu import reference

bench = load_benchmark("requantize_run_s8_mcu")


def _single_rounding(acc: int, multiplier: int, shift: int) -> int:
    """The fast form of unit_internal_requant_s8.h in Python integers: |y| = floor((A*mm + K - s) / 2**48)
    with mm = m * 2**(17-e), K = 2**47 + 2**(47-e), s = 1 for acc < 0 (X - 1: the tie correction)."""
    e = -shift
    magnitude = (abs(acc) * (multiplier << (17 - e)) + 2**47 + 2**(47 - e) - (acc < 0)) >> 48
    return -magnitude if acc < 0 else magnitude


@settings(max_examples=400, deadline=None)
@given(acc=st.integers(-(2**23), 2**23), multiplier=st.integers(2**30, 2**31 - 1), shift=st.integers(-15, -8))
def test_the_single_rounding_equals_tflites_two(acc, multiplier, shift):
    assert _single_rounding(acc, multiplier, shift) == int(bench._requantize([acc], multiplier, shift)[0])


def test_the_single_rounding_holds_at_the_ties_of_the_negative_nudge():
    ties = 0
    for multiplier in (2**30, 2**30 + 2**20, 3 * 2**29, 2**31 - 2**14, 2**31 - 1):
        for shift in range(-15, -7):
            for tie in bench._ties(multiplier, shift):
                for acc in (tie - 1, tie, tie + 1, -tie):
                    want = int(reference.requantize(np.array([acc]), np.array([multiplier]), np.array([shift]))[0])
                    assert _single_rounding(acc, multiplier, shift) == want
                e = -shift
                assert (-tie * (multiplier << (17 - e)) + 2**47 + 2**(47 - e)) % 2**48 == 0
                ties += 1
    assert ties >= 10


def test_the_cases_hold_the_edges():
    rows = bench.channels(0)
    fast = [r for r in rows if bench.is_fast(r["multiplier"], r["shift"])]
    general = [r for r in rows if not bench.is_fast(r["multiplier"], r["shift"])]
    assert {r["shift"] for r in fast} == {-8, -9, -10, -12, -15} and {r["act_min"] for r in fast} >= {-128, 0, -7}
    assert {-7, -16, -17, -31, 0, 3} <= {r["shift"] for r in general}
    assert {0, 1, 2**29} <= {r["multiplier"] for r in general}
    row = next(r for r in fast if r["multiplier"] == 2**30 and r["shift"] == -9)
    edge = bench._smallest_reaching(2**30, -9, 128, 1)  # the first accumulator the clamp saturates
    assert int(bench._requantize([edge], 2**30, -9)[0]) == 128 > int(bench._requantize([edge - 1], 2**30, -9)[0])
    assert {edge - 1, edge, edge + 1, -2**31, 2**31 - 1, 2**24, -(2**24 - 1)} <= set(row["acc"])
    assert any(t in row["acc"] for t in bench._ties(2**30, -9))


# (target, exact cycles one output adds to a run) for classes of the fast form, measured in the
# simulators: the ReLU shortcut, a saturated |acc| >= 2**24, the worst positive and negative products
# (each the maximum over the timed cases of the class)
CYCLES = {
    "avr": {"relu": 27, "saturated": 28, "negative_saturated": 38, "positive_worst": 121, "negative_worst": 142},
    # hwmult's 148: a negative result clamped to a negative act_max (145 with the quantizer's act_max 127)
    "msp430-hwmult": {"relu": 30, "saturated": 32, "negative_saturated": 43, "positive_worst": 115,
                      "negative_worst": 148},
}


def _classes(per_output: list[dict]) -> dict[str, int]:
    fast = [c for c in per_output if c["fast"]]
    return {
        "relu": max(c["cycles"] for c in fast if c["acc"] < 0 and c["act_min"] >= 0),
        "saturated": max(c["cycles"] for c in fast if c["acc"] >= 2**24),
        "negative_saturated": max(c["cycles"] for c in fast if c["acc"] <= -(2**24) and c["act_min"] < 0),
        "positive_worst": max(c["cycles"] for c in fast if 0 <= c["acc"] < 2**24),
        "negative_worst": max(c["cycles"] for c in fast if c["act_min"] < 0 and -(2**24) < c["acc"] < 0),
    }


@pytest.mark.parametrize("target", ["avr", "msp430", "msp430-hwmult"])
def test_the_output_stage_on_the_mcu_equals_the_reference(target, tmp_path):
    require_target(target)
    rows = [r for r in bench.channels(0)
            if (r["multiplier"] == 2**30 and r["shift"] in (-8, -9)) or r["multiplier"] == 2**31 - 1
            or not bench.is_fast(r["multiplier"], r["shift"]) or r["act_min"] == -7 or r["act_max"] < 0]
    result = bench.measure_cases(target, rows, tmp_path)  # raises naming the first output that differs
    assert result["outputs_checked"] >= 600
    if target in CYCLES:  # the requantization target: <= 150 cycles per output in the worst case
        assert result["fast_worst"] <= 150
        assert _classes(result["per_output"]) == CYCLES[target]
    else:  # without a multiplier the fast form is not taken (the general shift-and-add routine)
        assert result["fast_worst"] > 150


def test_a_wrong_output_is_detected(monkeypatch, tmp_path):
    require_target("avr")
    rows = [r for r in bench.channels(0) if r["multiplier"] == 2**30 and r["shift"] == -9 and r["act_min"] == 0]
    real = bench.expected

    def off_by_one(groups, acc):
        out = real(groups, acc)
        out[3] ^= 1
        return out

    monkeypatch.setattr(bench, "expected", off_by_one)
    with pytest.raises(RuntimeError, match="outputs differ"):
        bench.measure_cases("avr", rows, tmp_path, timed_every=1000)


conv_bench = load_benchmark("conv_dense_s8_mcu")
#: One input channel per output over a whole 3x3 field: the AVR run keeps the 9 weights in registers
#: (UNIT__DOT_DW3); edge inputs -128/127 and weights -127/127, padding on every side, stride 2.
DEPTHWISE = (conv_bench.Layer("dw3_pad", 5, 7, 9, 5, (3, 3), padding=(1, 1, 1, 1), groups=5),
             conv_bench.Layer("dw3_stride", 3, 9, 11, 6, (3, 3), stride=(2, 2), padding=(0, 1, 1, 0), groups=3),
             conv_bench.Layer("one_channel_3x3", 1, 6, 8, 2, (3, 3)),
             conv_bench.Layer("dw3_max", 2, 5, 5, 2, (3, 3), groups=2, weights="max"),
             # inputs in [0, 127]: MSP430+hwmult's DW3 loop without the activations' SXT
             conv_bench.Layer("dw3_nonneg", 4, 6, 7, 4, (3, 3), padding=(1, 1, 1, 1), groups=4, inputs="nonneg"))


@pytest.mark.parametrize("target", ["avr", "msp430", "msp430-hwmult"])
def test_depthwise_3x3_and_its_output_stage_equal_the_reference(target, tmp_path):
    require_target(target)
    result = conv_bench.measure(DEPTHWISE, (target,), seed=3, build_dir=tmp_path)  # raises on any mismatch
    layers = result["builds"][target]["layers"]
    assert set(layers) == {layer.name for layer in DEPTHWISE}
    assert all(layer["requantize_cycles"] > 0 for layer in layers.values())
