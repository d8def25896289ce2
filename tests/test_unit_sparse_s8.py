"""The UnIT convolution over the static-sparse layout (``unit_conv2d_unit_sparse_s8``, host build,
counted) against the explicit per-connection oracle of tests/test_kernels_s8.py: the same outputs
and cause counters as the per-position UnIT kernel, ``compares`` equal to a hand count of the list
entries it visits, and the same for every block of accumulator rows."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given

from unitprune.geometry import ConvGeometry
from unitprune.kernels.unit_sparse_s8 import DEAD_LEVEL, conv2d_unit_sparse, unit_sparse_tables
from tests.test_kernels_s8 import FAST, conv_cases, conv_oracle, make_conv, sparse_int8, draw_requant


def row_visits(x, weight, tau, geometry: ConvGeometry) -> int:
    """Entries the kernel visits: per sample and nonzero weight with tau < 128, per output row whose
    input row (for the weight's kernel row) lies inside the input, the activations of that whole
    input row with |x| > tau."""
    group_in = weight.shape[1]
    group_out = weight.shape[0] // geometry.groups
    (sy, _), (dy, _), top = geometry.stride, geometry.dilation, geometry.padding[0]
    out_h, _ = geometry.output_size(x.shape[2], x.shape[3])
    magnitudes = np.abs(x.astype(np.int64))
    visits = 0
    for n in range(x.shape[0]):
        for o, c, ky, kx in zip(*np.nonzero(weight)):
            t = int(tau[o, c, ky, kx])
            if t >= 128:
                continue
            plane = magnitudes[n, (o // group_out) * group_in + c]
            for oy in range(out_h):
                iy = oy * sy - top + ky * dy
                if 0 <= iy < x.shape[2]:
                    visits += int(np.count_nonzero(plane[iy] > t))
    return visits


@FAST
@given(conv_cases())
def test_unit_sparse_conv_equals_the_oracle_with_its_visits(case):
    x, weight, tau, requant = make_conv(case)
    geometry = case["geometry"]
    expected, expected_counts = conv_oracle("unit", x, weight, tau, requant, geometry)
    visits = row_visits(x, weight, tau, geometry)
    out_h, _ = geometry.output_size(x.shape[2], x.shape[3])
    for block_rows in sorted({0, 1, max(1, out_h // 2)}):
        actual, counts = conv2d_unit_sparse(x, weight, tau, requant, geometry, block_rows=block_rows)
        np.testing.assert_array_equal(actual, expected)
        assert counts == dataclasses.replace(expected_counts, compares=visits), (block_rows, counts, expected_counts)
        counts.check()


def test_unit_sparse_conv_edge_values_saturated_tau_and_tables():
    """-128 activations (|x| = 128 > tau = 127), +-127 weights, tau 0 (zero skipping), tau >= 128
    (stored, keeps nothing); the tables hold only the nonzero weights with their levels."""
    rng = np.random.default_rng(7)
    geometry = ConvGeometry((3, 3), (1, 1), (1, 1), (1, 1, 1, 1), 1)
    x = sparse_int8(rng, (2, 3, 9, 10), 0.4)
    x.reshape(-1)[:6] = (-128, 127, -128, 1, -1, -128)
    weight = sparse_int8(rng, (4, 3, 3, 3), 0.6, low=-127)
    weight.reshape(-1)[:4] = (-127, 127, -127, 5)
    tau = rng.integers(0, 20, size=weight.shape).astype(np.uint8)
    tau.reshape(-1)[:4] = (127, 0, 200, 3)
    tau[weight == 0] = 255
    tables = unit_sparse_tables(weight, tau)
    assert tables.stored == np.count_nonzero(weight)
    assert list(tables.counts) == [np.count_nonzero(w) for w in weight]
    assert tables.levels.tolist() == sorted(set(tau[(weight != 0) & (tau < 128)].tolist()))
    first = tables.records[0]
    assert first.tolist() == [0, 0, 0, 256 - 127, tables.levels.tolist().index(127)]
    assert tables.records[2].tolist()[4] == DEAD_LEVEL
    requant = draw_requant(rng, 4, 128 * 127 * 27, relu=False, with_bias=True)
    expected, expected_counts = conv_oracle("unit", x, weight, tau, requant, geometry)
    actual, counts = conv2d_unit_sparse(x, weight, tau, requant, geometry, tables=tables, block_rows=4)
    np.testing.assert_array_equal(actual, expected)
    assert counts == dataclasses.replace(expected_counts, compares=row_visits(x, weight, tau, geometry))


def test_unit_sparse_conv_rejects_bad_tables():
    geometry = ConvGeometry((3, 3), (1, 1), (1, 1), (0, 0, 0, 0), 1)
    weight = np.ones((2, 1, 3, 3), np.int8)
    tau = np.full(weight.shape, 4, np.uint8)
    with pytest.raises(ValueError, match="tau the same shape"):
        unit_sparse_tables(weight, tau[:1])
    with pytest.raises(ValueError, match="channels per group"):
        unit_sparse_tables(np.ones((1, 300, 1, 1), np.int8), np.zeros((1, 300, 1, 1), np.uint8))
