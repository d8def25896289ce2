"""The zero-activation static-sparse convolution (unit_conv2d_sparse_zeroact_s8; host build, the
portable C run) bit-exact against the NumPy integer reference (unitprune.mcu.reference, zeroskip
semantics: outputs, and counters by cause: a skipped product of a stored weight with x == 0 is
counted zero_activation) on hypothesis-drawn geometries (stride, padding, dilation, groups, Conv1d),
weight densities and input sparsities, including inputs whose nonzeros sit in a few rows and columns
(MNIST-like: many fields wholly zero); its row table against a hand count. The AVR / MSP430 runs:
tests/test_mcu_sparse_zeroact_s8.py."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests import qmodels
from tests.test_sparse_s8 import FAST, conv_layers, geometry
from unitprune.kernels import sparse_zeroact_s8
from unitprune.mcu import reference


def blob_input(rng, x: np.ndarray) -> np.ndarray:
    """``x`` with everything outside one random box per sample and channel set to zero."""
    x = x.copy()
    _, _, height, width = x.shape
    for sample in x:
        for plane in sample:
            top, left = rng.integers(0, height), rng.integers(0, width)
            bottom, right = rng.integers(top, height + 1), rng.integers(left, width + 1)
            mask = np.zeros_like(plane, dtype=bool)
            mask[top:bottom, left:right] = True
            plane[~mask] = 0
    return x


@FAST
@given(conv_layers(), st.booleans())
def test_zeroact_conv_equals_the_integer_reference(layer, blob):
    op, x, _ = layer
    if op.in_channels // op.groups * op.kernel_height > sparse_zeroact_s8.MAX_KERNEL_ROWS:
        return
    if blob:
        x = blob_input(np.random.default_rng(x.size), x)
    expected, expected_counts = reference._conv(op, x, "zeroskip")
    y, counts = sparse_zeroact_s8.conv2d_sparse_zeroact(x, op.weight, op.requant, geometry(op))
    np.testing.assert_array_equal(y, expected)
    assert counts == expected_counts
    counts.check()


def test_row_starts_are_the_records_of_each_kernel_row_by_hand():
    weight = np.zeros((2, 2, 3, 4), dtype=np.int8)
    weight[0, 0, 0, [0, 3]] = 5  # o0: c0 ky0 two, c1 ky2 one
    weight[0, 1, 2, 1] = -7
    weight[1, 1, 1, :] = 1  # o1: c1 ky1 four
    starts = sparse_zeroact_s8.conv_row_starts(weight)
    # o0 rows (c0 ky0..2, c1 ky0..2): 2 0 0 0 0 1; o1: 0 0 0 0 4 0
    assert starts.tolist() == [0, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 7, 7]
    assert starts.dtype == np.uint16
    assert sparse_zeroact_s8.row_starts_bytes(2, 2, 3) == 2 * 13


def test_too_many_kernel_rows_are_refused_by_name():
    with pytest.raises(ValueError, match="conv9: 255 kernel rows"):
        sparse_zeroact_s8.conv_row_starts(np.ones((1, 85, 3, 1), dtype=np.int8), "conv9")


def test_a_row_table_not_matching_the_records_is_refused_by_the_host_check():
    rng = np.random.default_rng(0)
    op = qmodels.conv(rng, "c", (1, 8, 8), 2, (3, 3), (1, 1), (1, 1), (0, 0, 0, 0), 1, relu=True, sparsity=0.3)
    x = qmodels.random_input(rng, 1, (1, 8, 8), 0.5)
    starts = sparse_zeroact_s8.conv_row_starts(op.weight)
    starts[-1] += 1  # one record more than stored
    with pytest.raises(ValueError, match="unit_conv2d_sparse_zeroact_s8 returned"):
        sparse_zeroact_s8.conv2d_sparse_zeroact(x, op.weight, op.requant, geometry(op), row_starts=starts)
