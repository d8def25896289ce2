"""Division approximations: definitions, proven bounds, edge values, integer versions, BinTree."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from unitprune import approx
from tests.oracle import approx_scalar

positive_f32 = st.floats(min_value=0.0, max_value=float(np.finfo(np.float32).max), allow_nan=False, allow_infinity=False, width=32,
                         exclude_min=True)
threshold_f32 = st.floats(min_value=0.0, max_value=float(np.finfo(np.float32).max), allow_nan=False, allow_infinity=False, width=32)
SMALLEST_NORMAL = 2.0 ** -126
EDGE_VALUES = [0.0, 2.0 ** -149, 3 * 2.0 ** -149, 2.0 ** -127, SMALLEST_NORMAL, 0.5, 1.0, 1.5, 2.0, 3.0,
               1e-20, 1e20, 2.0 ** 127, float(np.finfo(np.float32).max)]


def run(method, threshold, control, shift_start=None):
    t = torch.tensor([threshold], dtype=torch.float32)
    c = torch.tensor([control], dtype=torch.float32)
    if method == "bitmask":
        return float(approx.bitmask(t, c)[0])
    if method == "exact":
        return float(approx.exact(t, c)[0])
    return float(approx.quotient(method, t, c, shift_start)[0])


@pytest.mark.parametrize("method", ["exact", "bitshift", "bintree", "bitmask"])
def test_edge_values_match_definition(method):
    for threshold, control in itertools.product(EDGE_VALUES, EDGE_VALUES):
        expected = float(approx_scalar(method, threshold, control))
        assert run(method, threshold, control) == expected, (method, threshold, control)


@pytest.mark.parametrize("method", ["exact", "bitshift", "bitmask"])
def test_zero_control_gives_infinity_and_zero_threshold_gives_zero(method):
    assert run(method, 1.0, 0.0) == math.inf
    assert run(method, 0.0, 0.0) == math.inf  # a zero control term skips, whatever T
    assert run(method, 0.0, 3.0) == 0.0


@settings(max_examples=400, deadline=None)
@given(threshold=threshold_f32, control=positive_f32)
def test_exact_is_ieee_division(threshold, control):
    with np.errstate(over="ignore"):
        expected = np.float32(threshold) / np.float32(control)
    assert run("exact", threshold, control) == float(expected)


@settings(max_examples=400, deadline=None)
@given(threshold=threshold_f32, control=positive_f32, shift_start=st.one_of(st.none(), st.integers(-150, 130)))
def test_bitshift_definition_and_bound(threshold, control, shift_start):
    result = run("bitshift", threshold, control, shift_start)
    assert result == float(approx_scalar("bitshift", threshold, control, shift_start))
    assert result == run("bintree", threshold, control, shift_start)
    quotient = Fraction(threshold) / Fraction(control)
    if math.isinf(result) or (result < SMALLEST_NORMAL and threshold > 0):
        return  # overflow / subnormal rounding: outside the proven range
    if threshold > 0:
        assert Fraction(result) < quotient  # never skips more than exact division would
    exponent = math.frexp(control)[1]
    if threshold > 0 and (shift_start is None or exponent >= shift_start):
        assert Fraction(result) >= quotient / 2
        assert (Fraction(result) == quotient / 2) == (math.frexp(control)[0] == 0.5)  # iff c is a power of 2


@settings(max_examples=400, deadline=None)
@given(threshold=threshold_f32, control=positive_f32)
def test_bitmask_definition_and_bound(threshold, control):
    result = run("bitmask", threshold, control)
    assert result == float(approx_scalar("bitmask", threshold, control))
    if threshold == 0:
        assert result == 0.0
        return
    # independent exponent extraction from the IEEE-754 bit pattern
    def unbiased_exponent(value: float) -> int:
        bits = int(np.float32(value).view(np.uint32))
        field = (bits >> 23) & 0xFF
        if field == 0:  # subnormal: leading mantissa bit
            return (bits & 0x7FFFFF).bit_length() - 1 - 149
        return field - 127
    power = unbiased_exponent(threshold) - unbiased_exponent(control)
    if power > 127:
        assert result == math.inf
    elif power < -149:
        assert result == 0.0
    else:
        assert result == 2.0 ** power
        quotient = Fraction(threshold) / Fraction(control)
        assert quotient / 2 < Fraction(result) < 2 * quotient


def test_approximations_reject_other_dtypes():
    with pytest.raises(TypeError, match="float32"):
        approx.exact(torch.ones(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="unknown approximation"):
        approx.quotient("newton", torch.ones(1), torch.ones(1))


# ----------------------------------------------------------------------------------------
# Integer / fixed-point versions
# ----------------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.integers(0, 2**62), min_size=1, max_size=20))
def test_bit_length_matches_python(values):
    assert list(approx.bit_length(np.array(values, dtype=np.int64))) == [v.bit_length() for v in values]
    assert approx.bit_length(values[0]) == values[0].bit_length()


@settings(max_examples=400, deadline=None)
@given(threshold=st.integers(0, 2**31 - 1), control=st.integers(1, 2**31 - 1), shift_start=st.integers(0, 20),
       operand=st.integers(-(2**15), 2**15))
def test_integer_versions_bounds_and_decisions(threshold, control, shift_start, operand):
    assert approx.exact_int(threshold, control) == threshold // control
    # exact integer decision equals the multiply-and-compare decision
    assert (abs(operand) <= approx.exact_int(threshold, control)) == (abs(operand * control) <= threshold)

    shift = max(control.bit_length(), shift_start)
    result = approx.bitshift_int(threshold, control, shift_start)
    assert result == threshold >> shift
    quotient = Fraction(threshold, control)
    real = Fraction(threshold, 2 ** shift)
    if threshold > 0:
        assert real < quotient
    if control.bit_length() >= shift_start and threshold > 0:
        assert real >= quotient / 2
    # comparing with the floored integer makes the same decision as with T / 2**n
    assert (abs(operand) <= result) == (abs(operand) <= real)
    # conservative: whatever bitshift skips, exact division skips too
    if abs(operand) <= result:
        assert abs(operand * control) <= threshold


def test_integer_versions_are_vectorized_and_reject_bad_input():
    t = np.array([100, 7, 0, 1 << 20])
    c = np.array([3, 8, 5, 1])
    np.testing.assert_array_equal(approx.bitshift_int(t, c), [100 >> 2, 7 >> 4, 0, (1 << 20) >> 1])
    np.testing.assert_array_equal(approx.exact_int(t, c), t // c)
    with pytest.raises(ZeroDivisionError):
        approx.bitshift_int(5, 0)
    with pytest.raises(ValueError, match="non-negative"):
        approx.exact_int(-5, 2)
    with pytest.raises(TypeError, match="integers"):
        approx.bitshift_int(1.5, 2)


# ----------------------------------------------------------------------------------------
# BinTree
# ----------------------------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.integers(1, 2**16 - 1), min_size=1, max_size=50), shift_start=st.integers(0, 16))
def test_bintree_finds_the_bitshift_exponent(values, shift_start):
    lo = max(1, shift_start)
    tree = approx.BinTree.from_samples(np.array(values), lo=lo, hi=16)
    exponents, comparisons = tree.search(np.array(values))
    np.testing.assert_array_equal(exponents, [max(v.bit_length(), lo) for v in values])
    assert np.all(comparisons >= 1) or tree.lo == tree.hi
    t = np.full(len(values), 1 << 20)
    np.testing.assert_array_equal(approx.bintree_int(t, np.array(values), tree),
                                  approx.bitshift_int(t, np.array(values), lo))


@settings(max_examples=200, deadline=None)
@given(values=st.lists(positive_f32, min_size=1, max_size=30))
def test_float_bintree_over_the_full_range_equals_frexp(values):
    tree = approx.BinTree.balanced(approx.FLOAT32_MIN_EXP, approx.FLOAT32_MAX_EXP)
    exponents, comparisons = tree.search(np.array(values, dtype=np.float32))
    np.testing.assert_array_equal(exponents, [math.frexp(v)[1] for v in values])
    assert comparisons.max() <= math.ceil(math.log2(approx.FLOAT32_MAX_EXP - approx.FLOAT32_MIN_EXP + 1))


def _brute_force_cost(weights: list[float]) -> float:
    """Minimal sum(weight * depth) over all alphabetic binary trees (exponential; tiny inputs)."""
    if len(weights) == 1:
        return 0.0
    return sum(weights) + min(_brute_force_cost(weights[:r]) + _brute_force_cost(weights[r:])
                              for r in range(1, len(weights)))


@settings(max_examples=100, deadline=None)
@given(weights=st.lists(st.integers(0, 50), min_size=1, max_size=7))
def test_bintree_from_counts_is_optimal(weights):
    tree = approx.BinTree.from_counts(0, len(weights) - 1, weights)
    depths = tree.depth_of_exponents()
    assert float(np.dot(depths, weights)) == pytest.approx(_brute_force_cost([float(w) for w in weights]))


def test_calibrated_tree_puts_frequent_magnitudes_shallow():
    rng = np.random.default_rng(0)
    magnitudes = np.concatenate([rng.integers(64, 128, 1000), rng.integers(1, 1 << 15, 20)])  # mostly e = 7
    calibrated = approx.BinTree.from_samples(magnitudes, lo=1, hi=16)
    balanced = approx.BinTree.balanced(1, 16)
    depths = calibrated.depth_of_exponents()
    assert depths[7 - 1] == depths.min() == 2  # an inner leaf of an alphabetic tree sits at depth >= 2
    assert calibrated.expected_comparisons(magnitudes) < balanced.expected_comparisons(magnitudes)
    assert balanced.expected_comparisons(magnitudes) == pytest.approx(4.0)


def test_bintree_rejects_bad_arguments():
    with pytest.raises(ValueError, match="lo <= hi"):
        approx.BinTree.balanced(5, 4)
    with pytest.raises(ValueError, match="weights"):
        approx.BinTree.from_counts(0, 2, [1, -1, 1])
    with pytest.raises(ValueError, match="nonzero"):
        approx.BinTree.from_samples(np.zeros(3, dtype=np.int64), 1, 16)
