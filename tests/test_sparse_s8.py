"""The static-sparse int8 kernels (unit_conv2d_sparse_s8, unit_linear_sparse_s8; host build, the
portable C run) bit-exact against the NumPy integer reference (unitprune.mcu.reference, zeroskip
semantics: the same outputs as dense, zero weights and zero activations counted) on
hypothesis-drawn geometries and weight densities; their tables against a hand count.
The AVR / MSP430 assembly runs: tests/test_mcu_sparse_s8.py."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import qmodels
from tests.test_kernels_s8 import conv_cases
from unitprune.kernels import sparse_s8
from unitprune.mcu import reference
from unitprune.torch_reference import ConvGeometry

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def conv_layers(draw):
    """tests/test_kernels_s8.py's geometries as a QConv (weight density 1, 0.6 or 0.2; inputs with
    0, 30 % or 70 % zeros, or 95 %: mostly zero fields) and a block_rows (1: one row of scratch)."""
    case = draw(conv_cases())
    g = case["geometry"]
    rng = np.random.default_rng(case["seed"])
    op = qmodels.conv(rng, "drawn", (case["channels"], case["height"], case["width"]), case["out_channels"],
                      g.kernel_size, g.stride, g.dilation, g.padding, g.groups, relu=case["relu"],
                      sparsity=case["w_zeros"], conv1d=case["height"] == 1 and g.kernel_size[0] == 1)
    zeros = draw(st.sampled_from([case["x_zeros"], 0.95]))
    x = qmodels.random_input(rng, case["batch"], (op.in_channels, case["height"], case["width"]), zeros)
    return op, x, draw(st.sampled_from([0, 1]))


def geometry(op) -> ConvGeometry:
    return ConvGeometry((op.kernel_height, op.kernel_width), op.stride, op.dilation, op.padding, op.groups)


@FAST
@given(conv_layers())
def test_sparse_conv_equals_the_integer_reference(layer):
    op, x, block_rows = layer  # block_rows 1: the scratch holds one output row's sums exactly
    expected, expected_counts = reference._conv(op, x, "zeroskip")
    y, counts = sparse_s8.conv2d_sparse(x, op.weight, op.requant, geometry(op), block_rows=block_rows)
    np.testing.assert_array_equal(y, expected)
    assert counts == expected_counts
    counts.check()


@FAST
@given(st.integers(1, 40), st.integers(1, 12), st.sampled_from([0.0, 0.15, 0.5, 1.0]), st.integers(0, 2**31),
       st.integers(1, 3))
def test_sparse_linear_equals_the_integer_reference(in_features, out_features, density, seed, batch):
    rng = np.random.default_rng(seed)
    op = qmodels.linear(rng, "drawn", in_features, out_features, relu=bool(seed % 2), sparsity=1.0 - density)
    x = qmodels.random_input(rng, batch, (in_features,))
    expected, expected_counts = reference._linear(op, x, "zeroskip", "bitshift")
    y, counts = sparse_s8.linear_sparse(x, op.weight, op.requant)
    np.testing.assert_array_equal(y, expected)
    assert counts == expected_counts


def test_outputs_whose_field_is_all_zero_are_the_bias_alone():
    """An input zero but for one pixel (a FATReLU-like input): every output equals the reference,
    those whose field misses the pixel the requantized bias."""
    rng = np.random.default_rng(8)
    op = qmodels.conv(rng, "zeros", (2, 9, 11), 3, (3, 3), padding=(1, 0, 0, 1), relu=False, sparsity=0.5)
    x = np.zeros((1, 2, 9, 11), np.int8)
    x[0, 1, 4, 5] = -128
    expected, expected_counts = reference._conv(op, x, "zeroskip")
    y, counts = sparse_s8.conv2d_sparse(x, op.weight, op.requant, geometry(op))
    np.testing.assert_array_equal(y, expected)
    assert counts == expected_counts
    assert len(np.unique(y[0, 0])) > 1


def test_edge_values_and_an_all_zero_output_channel():
    """-128/127 inputs, -127/127 weights, one output channel without a nonzero weight (the bias
    alone), one with every weight nonzero, padding on every side."""
    rng = np.random.default_rng(5)
    op = qmodels.conv(rng, "edges", (3, 6, 7), 4, (3, 3), padding=(1, 2, 2, 1), relu=False, sparsity=0.5)
    weight = op.weight.copy()
    weight[0] = 0
    weight[1] = rng.choice(np.array([-127, 127], np.int8), size=weight[1].shape)
    op = qmodels.dataclasses.replace(op, weight=weight)
    x = rng.choice(np.array([-128, 127, 0, 1], np.int8), size=(1, 3, 6, 7))
    expected, _ = reference._conv(op, x, "zeroskip")
    y, _ = sparse_s8.conv2d_sparse(x, op.weight, op.requant, geometry(op))
    np.testing.assert_array_equal(y, expected)
    assert np.all(y[0, 0] == expected[0, 0])


def test_tables_hold_each_nonzero_weight_at_its_input_offset():
    """A hand count: offset = c*H*W + ky*dilation_y*W + kx*dilation_x, channel by channel."""
    weight = np.zeros((2, 2, 2, 3), np.int8)
    weight[0, 1, 1, 2] = -127
    weight[0, 0, 0, 1] = 5
    weight[1, 1, 0, 0] = 127
    tables = sparse_s8.conv_sparse_tables(weight, in_height=4, in_width=6, dilation=(2, 1), padded=True)
    assert tables.nonzeros.tolist() == [2, 1]
    assert tables.records.tolist() == [[1, 5], [24 + 2 * 6 + 2, -127], [24, 127]]
    assert tables.taps.tolist() == [[0, 1], [1, 2], [0, 0]]
    assert tables.flash_bytes == 2 * 2 + 4 * 3 + 2 * 3
    assert sparse_s8.linear_sparse_tables(np.array([[0, 3], [0, 0]], np.int8)).records.tolist() == [[1, 3]]


def test_a_field_beyond_the_uint16_offsets_is_refused():
    with pytest.raises(ValueError, match="conv1: the receptive field spans"):
        sparse_s8.conv_sparse_tables(np.ones((1, 2, 1, 1), np.int8), 300, 300, what="conv1")


def test_a_record_outside_the_input_is_an_error_not_a_wrong_answer():
    rng = np.random.default_rng(1)
    op = qmodels.conv(rng, "bad", (2, 5, 5), 2, (3, 3), sparsity=0.3)
    x = qmodels.random_input(rng, 1, (2, 5, 5))
    tables = sparse_s8.conv_sparse_tables(op.weight, 5, 5)
    records = tables.records.copy()
    records[0, 0] = 50  # beyond the 2*5*5 inputs of the group
    bad = sparse_s8.SparseTables(tables.nonzeros, records, None)
    with pytest.raises(ValueError, match="unit_conv2d_sparse_s8"):
        sparse_s8.conv2d_sparse(x, op.weight, op.requant, geometry(op), tables=bad)
