"""The skip-free UnIT convolution and the early-exit UnIT linear kernels (host build, counted)
against the explicit per-connection oracle of tests/test_kernels_s8.py: the same outputs and cause
counters (zero weight, zero activation, threshold, executed) as the per-position UnIT kernels, and
``compares`` equal to a hand count of what these kernels visit."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given

from unitprune.approx import BinTree
from unitprune.kernels import s8, unit_fast_s8
from unitprune.geometry import ConvGeometry
from tests.test_kernels_s8 import (FAST, Requant, bitshift_quotient, conv_cases, conv_oracle, draw_requant,
                                   linear_cases, linear_oracle, make_conv, quotient_table, sparse_int8, tree_arrays)


def skipfree_visits(x, weight, tau, geometry: ConvGeometry) -> int:
    """Entries the skip-free kernel visits: per sample, output channel and nonzero-weight tap with
    tau < 128, the activations of the tap's input channel with |x| > tau (whole plane)."""
    group_in = weight.shape[1]
    group_out = weight.shape[0] // geometry.groups
    magnitudes = np.abs(x.astype(np.int64))
    visits = 0
    for n in range(x.shape[0]):
        for o in range(weight.shape[0]):
            for c in range(group_in):
                plane = magnitudes[n, (o // group_out) * group_in + c].reshape(-1)
                for w, t in zip(weight[o, c].reshape(-1), tau[o, c].reshape(-1)):
                    if w != 0 and t < 128:
                        visits += int(np.count_nonzero(plane > t))
    return visits


@FAST
@given(conv_cases())
def test_skipfree_conv_equals_the_oracle_with_its_visits(case):
    x, weight, tau, requant = make_conv(case)
    geometry = case["geometry"]
    expected, expected_counts = conv_oracle("unit", x, weight, tau, requant, geometry)
    actual, counts = unit_fast_s8.conv2d_skipfree(x, weight, tau, requant, geometry)
    np.testing.assert_array_equal(actual, expected)
    visits = skipfree_visits(x, weight, tau, geometry)
    assert counts == dataclasses.replace(expected_counts, compares=visits), (counts, expected_counts, visits)
    counts.check()
    per_position, _ = s8.conv2d("unit", x, weight, requant, geometry, tau=tau)
    np.testing.assert_array_equal(actual, per_position)


def test_skipfree_conv_edge_values_and_saturated_tau():
    """-128 activations (|x| = 128 > tau = 127), +-127 weights, tau 0 (zeroskip), tau >= 128 (nothing kept)."""
    rng = np.random.default_rng(5)
    geometry = ConvGeometry((3, 3), (2, 1), (1, 2), (1, 2, 2, 0), 1)
    x = sparse_int8(rng, (2, 3, 9, 10), 0.3)
    x.reshape(-1)[:6] = (-128, 127, -128, 1, -1, -128)
    weight = sparse_int8(rng, (4, 3, 3, 3), 0.2, low=-127)
    weight.reshape(-1)[:3] = (-127, 127, -127)
    requant = draw_requant(rng, 4, 30000, False, True)
    for tau in (np.zeros(weight.shape, np.uint8), np.full(weight.shape, 127, np.uint8),
                np.full(weight.shape, 128, np.uint8)):
        expected, expected_counts = conv_oracle("unit", x, weight, tau, requant, geometry)
        actual, counts = unit_fast_s8.conv2d_skipfree(x, weight, tau, requant, geometry)
        np.testing.assert_array_equal(actual, expected)
        assert counts.executed == expected_counts.executed and counts.threshold == expected_counts.threshold
    assert counts.executed == 0  # tau 128


def test_skipfree_conv_rejects_layers_beyond_its_limits():
    geometry = ConvGeometry((1, 1), (1, 1), (1, 1), (0, 0, 0, 0), 1)
    with pytest.raises(ValueError, match="skipfree"):
        unit_fast_s8.skipfree_scratch_size((1, 1, 2, 300), (1, 1, 1, 1), geometry)  # W > 256
    with pytest.raises(ValueError, match="skipfree"):
        unit_fast_s8.skipfree_scratch_size((1, 1, 130, 130), (1, 1, 1, 1), geometry)  # OH*OW > 16384


def test_sorted_columns_are_sorted_with_a_sentinel_and_a_bad_table_is_refused():
    weight = np.array([[3, -7, 0], [0, 7, -2], [-5, 1, 4]], np.int8)  # [out=3, in=3]
    weight_sorted, index = unit_fast_s8.sorted_columns(weight)
    np.testing.assert_array_equal(weight_sorted, [[-5, 3, 0, 0], [-7, 7, 1, 0], [4, -2, 0, 0]])
    np.testing.assert_array_equal(weight[index, np.arange(3)[:, None]], weight_sorted[:, :3])
    requant = Requant(None, np.full(3, 2**30, np.int32), np.full(3, 1, np.int8), -128, 127)
    x = np.array([[1, 1, 1]], np.int8)
    unsorted = weight_sorted.copy()
    unsorted[0, :2] = unsorted[0, 1::-1]
    no_sentinel = weight_sorted.copy()
    no_sentinel[2, 3] = 1
    bad_index = index.copy()
    bad_index[1, 0] = 3
    for table, idx in ((unsorted, index), (no_sentinel, index), (weight_sorted, bad_index)):
        with pytest.raises(ValueError, match="unit_linear_sorted_s8_check"):
            unit_fast_s8.linear_sorted("bitshift", x, table, idx, requant)


@FAST
@given(linear_cases())
def test_sorted_linear_equals_the_oracle_with_its_walk(case):
    rng = np.random.default_rng(case["seed"])
    x = sparse_int8(rng, (case["batch"], case["in_features"]), case["x_zeros"])
    weight = sparse_int8(rng, (case["out_features"], case["in_features"]), case["w_zeros"], low=-127)
    weight.reshape(-1)[:1] = -128  # |w| = 128 sorts first
    requant = draw_requant(rng, case["out_features"], 128 * 128 * case["in_features"] // 8, case["relu"],
                           case["bias"])
    t_q, start = case["threshold_q"], case["shift_start"]
    expected, expected_counts = linear_oracle("bitshift", x, weight, requant, t_q, start)
    # the walk: per input one zero test; per nonzero input with t < 128 its kept weights and the stop
    walk = x.size
    for v_row in x:
        for i, v in enumerate(v_row):
            if v != 0:
                t = bitshift_quotient(t_q, abs(int(v)), start)
                if t < 128:
                    walk += int(np.count_nonzero(np.abs(weight[:, i].astype(np.int64)) > t)) + 1
    expected_counts = dataclasses.replace(expected_counts, compares=walk)
    weight_sorted, index = unit_fast_s8.sorted_columns(weight)
    tree = tree_arrays(BinTree.from_counts(1, 8, rng.random(8) ** 4 + 1e-3), t_q, start)
    for method, extra in (("bitshift", dict(threshold_q=t_q, shift_start=start)), ("bintree", dict(tree=tree)),
                          ("table", dict(quotient_table=quotient_table(t_q, start)))):
        actual, counts = unit_fast_s8.linear_sorted(method, x, weight_sorted, index, requant, **extra)
        np.testing.assert_array_equal(actual, expected, err_msg=method)
        assert counts == expected_counts, (method, counts, expected_counts)


def test_the_cost_model_counts_what_the_skipfree_kernel_does():
    """unit_cost.conv_work's visits and kept multiplies (NumPy, from the layer and its inputs) equal
    the skip-free kernel's own counters (compares = entries visited, executed)."""
    from unitprune.mcu import unit_cost
    from unitprune.mcu.qmodel import QConv

    rng = np.random.default_rng(11)
    geometry = ConvGeometry((3, 3), (1, 2), (2, 1), (1, 0, 2, 1), 2)
    x = sparse_int8(rng, (2, 4, 9, 10), 0.4)
    weight = sparse_int8(rng, (6, 2, 3, 3), 0.3, low=-127)
    tau = rng.integers(0, 140, size=weight.shape).astype(np.uint8)
    requant = draw_requant(rng, 6, 20000, True, True)
    _, counts = unit_fast_s8.conv2d_skipfree(x, weight, tau, requant, geometry)
    oh, ow = geometry.output_size(9, 10)
    op = QConv("layer", 4, 9, 10, 6, 3, 3, (1, 2), (2, 1), (1, 0, 2, 1), 2, oh, ow, weight, requant,
               np.zeros(6, np.int64), tau, 1.0, 1.0, np.ones(6))
    work = unit_cost.conv_work(op, x)
    assert work.visits * 2 == counts.compares and work.kept * 2 == counts.executed
    assert work.compares * 2 == 2 * oh * ow * np.count_nonzero(weight)


@pytest.mark.parametrize("width,kernel,stride,dilation,left,right", [
    (9, 3, 1, 1, 2, 1), (11, 5, 2, 1, 3, 1), (30, 5, 2, 1, 2, 2), (4, 1, 1, 1, 0, 0), (600, 3, 1, 1, 1, 1),
    (5, 5, 1, 2, 4, 4)])
def test_the_dense_cost_counts_the_dense_kernels_runs(width, kernel, stride, dilation, left, right):
    """unit_cost's dense_runs: per output row, one run per column whose kernel row the padding clips,
    the columns whose whole kernel row lies inside the input in runs of at most 255 (a column-by-column
    count of unit_conv2d_dense_s8's loop)."""
    from unitprune.mcu import unit_cost
    from unitprune.mcu.qmodel import QConv

    span = (kernel - 1) * dilation
    out_width = (width + left + right - span - 1) // stride + 1
    runs, inner = 0, 0
    for ox in range(out_width):
        first = ox * stride - left
        if first >= 0 and first + span < width:
            inner += 1
            if inner == 1 or inner % 255 == 1:
                runs += 1
        else:
            runs += 1
    weight = np.ones((2, 1, 1, kernel), np.int8)
    op = QConv("layer", 1, 1, width, 2, 1, kernel, (1, stride), (1, dilation), (0, 0, left, right), 1, 1,
               out_width, weight, None, np.zeros(2, np.int64), np.zeros(weight.shape, np.uint8), 1.0, 1.0, np.ones(2))
    assert unit_cost._dense_runs_per_row(op) == runs
