"""The int8 C kernels (unit_kernels_s8.h) against an independent NumPy / Python-int oracle.

The oracle below is written from docs/fixed_point.md alone: explicit per-connection decisions
(zero weight, zero activation or padding, the UnIT test from the tau table for convolutions and
from Python-int ``T_q >> max(bit_length(|x|), shift_start)`` for linear layers), int64 sums, and
TFLite's MultiplyByQuantizedMultiplier in exact Python integers. Outputs must be bit-exact and
every counter equal, over hypothesis-drawn geometries, sparsities and requantization constants.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import unitprune
from unitprune import MacCounts, kernels
from unitprune.approx import BinTree
from unitprune.kernels import s8
from unitprune.torch_reference import ConvGeometry

INT32_MIN, INT32_MAX = -2**31, 2**31 - 1
UNIT_ERR_ARGUMENT, UNIT_ERR_SCRATCH = -1, -2
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ----------------------------------------------------------------------------------------
# The oracle
# ----------------------------------------------------------------------------------------

def rounding_doubling_high_mul(a: int, b: int) -> int:
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    v = ab + (2**30 if ab >= 0 else 1 - 2**30)
    return abs(v) // 2**31 * (1 if v >= 0 else -1)  # division truncating toward zero


def rounding_divide_by_pot(x: int, exponent: int) -> int:
    mask = 2**exponent - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def requantize_oracle(acc: int, multiplier: int, shift: int) -> int:
    left, right = max(shift, 0), max(-shift, 0)
    return rounding_divide_by_pot(rounding_doubling_high_mul(acc * 2**left, multiplier), right)


def quantize_multiplier(m: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier as in docs/fixed_point.md."""
    if m == 0:
        return 0, 0
    frac, exponent = np.frexp(m)
    q = int(np.sign(frac) * np.floor(abs(frac) * 2**31 + 0.5))
    if q == 2**31:
        q, exponent = q // 2, exponent + 1
    if exponent < -31:
        return 0, 0
    return q, int(exponent)


class Requant:
    """The attributes of unitprune.mcu.qmodel.Requant."""

    def __init__(self, bias, multiplier, shift, act_min, act_max):
        self.bias, self.multiplier, self.shift = bias, multiplier, shift
        self.act_min, self.act_max = act_min, act_max


def output_stage(acc: np.ndarray, requant: Requant, channel_axis: int) -> np.ndarray:
    """clamp(requantize(acc + bias)) with the per-output constants along channel_axis."""
    out = np.empty(acc.shape, dtype=np.int8)
    for index in np.ndindex(acc.shape):
        o = index[channel_axis]
        bias = 0 if requant.bias is None else int(requant.bias[o])
        v = requantize_oracle(int(acc[index]) + bias, int(requant.multiplier[o]), int(requant.shift[o]))
        out[index] = min(max(v, requant.act_min), requant.act_max)
    return out


def counts_of(zero_weight, zero_activation, threshold, executed, compares=0, divisions=0) -> MacCounts:
    zw, za, th, ex = (int(np.sum(v)) for v in (zero_weight, zero_activation, threshold, executed))
    return MacCounts.from_ints(zw + za + th + ex, zw, za, th, ex, int(compares), int(divisions))


def conv_oracle(variant, x, weight, tau, requant, geometry: ConvGeometry):
    """Per-connection decisions on the explicitly padded input: [N, O, Cg, KH, KW, OH, OW]."""
    batch, channels, height, width = x.shape
    out_channels, group_in, kh, kw = weight.shape
    group_out = out_channels // geometry.groups
    top, bottom, left, right = geometry.padding
    out_h, out_w = geometry.output_size(height, width)
    padded = np.zeros((batch, channels, height + top + bottom, width + left + right), dtype=np.int64)
    padded[:, :, top:top + height, left:left + width] = x
    inside = np.zeros(padded.shape[2:], dtype=bool)
    inside[top:top + height, left:left + width] = True
    rows = (np.arange(out_h)[None, :] * geometry.stride[0] + np.arange(kh)[:, None] * geometry.dilation[0])
    cols = (np.arange(out_w)[None, :] * geometry.stride[1] + np.arange(kw)[:, None] * geometry.dilation[1])
    # patches[n, c, ky, kx, oy, ox]
    patches = padded[:, :, rows[:, None, :, None], cols[None, :, None, :]]
    real = inside[rows[:, None, :, None], cols[None, :, None, :]]  # [KH, KW, OH, OW]: not padding
    group_of = np.arange(out_channels) // group_out
    channel_index = group_of[:, None] * group_in + np.arange(group_in)[None, :]  # [O, Cg]
    xs = patches[:, channel_index]  # [N, O, Cg, KH, KW, OH, OW]
    w = weight.astype(np.int64)[None, :, :, :, :, None, None]
    t = tau.astype(np.int64)[None, :, :, :, :, None, None] if tau is not None else None
    zero_weight = np.broadcast_to(w == 0, xs.shape)
    zero_activation = ~zero_weight & ((xs == 0) | ~real[None, None, None])
    both = ~zero_weight & ~zero_activation
    if variant == "unit":
        threshold = both & (np.abs(xs) <= t)
    else:
        threshold = np.zeros(xs.shape, dtype=bool)
    kept = both & ~threshold
    acc = np.sum(np.where(kept, xs * w, 0), axis=(2, 3, 4))  # [N, O, OH, OW]
    if variant == "dense":  # every connection multiplied (padding reads nothing: zeros)
        acc = np.sum(xs * w, axis=(2, 3, 4))
        dense = xs.size
        counts = MacCounts.from_ints(dense, 0, 0, 0, dense, 0, 0)
    else:
        compares = batch * out_h * out_w * np.count_nonzero(weight) if variant == "unit" else 0
        counts = counts_of(zero_weight, zero_activation, threshold, kept, compares)
    return output_stage(acc, requant, 1), counts


def bitshift_quotient(threshold_q: int, magnitude: int, shift_start: int) -> int:
    return min(threshold_q >> max(int(magnitude).bit_length(), shift_start), 255)


def linear_oracle(variant, x, weight, requant, threshold_q=0, shift_start=0):
    """Per-connection decisions [batch, out, in]; UnIT t_i from Python ints."""
    xs = x.astype(np.int64)[:, None, :]
    w = weight.astype(np.int64)[None, :, :]
    shape = (x.shape[0], weight.shape[0], weight.shape[1])
    zero_weight = np.broadcast_to(w == 0, shape)
    zero_activation = ~zero_weight & np.broadcast_to(xs == 0, shape)
    both = ~zero_weight & ~zero_activation
    if variant in ("bitshift", "bintree", "table"):
        t = np.array([bitshift_quotient(threshold_q, abs(int(v)), shift_start) for v in x.reshape(-1)],
                     dtype=np.int64).reshape(x.shape)[:, None, :]
        threshold = both & (np.abs(w) <= t)
    else:
        threshold = np.zeros(shape, dtype=bool)
    kept = both & ~threshold
    if variant == "dense":
        acc = np.sum(xs * w, axis=2)
        counts = MacCounts.from_ints(int(np.prod(shape)), 0, 0, 0, int(np.prod(shape)), 0, 0)
    else:
        acc = np.sum(np.where(kept, xs * w, 0), axis=2)
        nonzero_inputs = int(np.count_nonzero(x))
        if variant == "zeroskip":
            counts = counts_of(zero_weight, zero_activation, threshold, kept)
        else:
            counts = counts_of(zero_weight, zero_activation, threshold, kept,
                               x.size + nonzero_inputs * weight.shape[0], nonzero_inputs)
    return output_stage(acc, requant, 1), counts


# ----------------------------------------------------------------------------------------
# Drawing layers
# ----------------------------------------------------------------------------------------

def sparse_int8(rng: np.random.Generator, shape, zero_fraction: float, low: int = -128) -> np.ndarray:
    values = rng.integers(low, 128, size=shape)
    values[rng.random(shape) < zero_fraction] = 0
    return values.astype(np.int8)


def draw_requant(rng: np.random.Generator, out: int, acc_bound: int, relu: bool, with_bias: bool) -> Requant:
    """Constants that map the accumulator range onto int8 (some saturate), shifts over [-31, 30]."""
    multiplier = np.empty(out, dtype=np.int32)
    shift = np.empty(out, dtype=np.int8)
    for o in range(out):
        scale = float(np.exp(rng.uniform(np.log(0.3), np.log(4.0)))) * 127.0 / max(acc_bound, 1)
        multiplier[o], shift[o] = quantize_multiplier(scale)
    bias = rng.integers(-acc_bound // 4 - 1, acc_bound // 4 + 2, size=out).astype(np.int32) if with_bias else None
    return Requant(bias, multiplier, shift, 0 if relu else -128, 127)


def tau_table(rng: np.random.Generator, weight: np.ndarray) -> np.ndarray:
    """uint8 tau per weight: mostly small (partial skipping), some >= 128 (whole taps skipped)."""
    tau = rng.integers(0, 64, size=weight.shape)
    tau[rng.random(weight.shape) < 0.15] = rng.integers(64, 256)
    tau[weight == 0] = 255
    return tau.astype(np.uint8)


@st.composite
def conv_cases(draw):
    conv1d = draw(st.booleans())
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    group_in, group_out = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kh = 1 if conv1d else draw(st.integers(1, 4))
    kw = draw(st.integers(1, 4))
    stride = (1 if conv1d else draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (1 if conv1d else draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pads = [0, 0] if conv1d else [draw(st.integers(0, 2)), draw(st.integers(0, 2))]
    pads += [draw(st.integers(0, 2)), draw(st.integers(0, 2))]
    height = 1 if conv1d else draw(st.integers(max(1, dilation[0] * (kh - 1) + 1 - pads[0] - pads[1]), 7))
    width = draw(st.integers(max(1, dilation[1] * (kw - 1) + 1 - pads[2] - pads[3]), 9))
    geometry = ConvGeometry((kh, kw), stride, dilation, tuple(pads), groups)
    return dict(batch=draw(st.integers(1, 2)), channels=groups * group_in, out_channels=groups * group_out,
                height=height, width=width, geometry=geometry, seed=draw(st.integers(0, 2**31)),
                x_zeros=draw(st.sampled_from([0.0, 0.3, 0.7])), w_zeros=draw(st.sampled_from([0.0, 0.4, 0.8])),
                relu=draw(st.booleans()), bias=draw(st.booleans()))


def make_conv(case):
    rng = np.random.default_rng(case["seed"])
    geometry = case["geometry"]
    group_in = case["channels"] // geometry.groups
    x = sparse_int8(rng, (case["batch"], case["channels"], case["height"], case["width"]), case["x_zeros"])
    weight = sparse_int8(rng, (case["out_channels"], group_in, *geometry.kernel_size), case["w_zeros"], low=-127)
    bound = 128 * 127 * group_in * geometry.kernel_size[0] * geometry.kernel_size[1] // 8
    requant = draw_requant(rng, case["out_channels"], bound, case["relu"], case["bias"])
    return x, weight, tau_table(rng, weight), requant


# ----------------------------------------------------------------------------------------
# Convolution
# ----------------------------------------------------------------------------------------

def test_host_library_counts_int8_macs():
    assert s8.counts_compiled()  # setup.py builds with UNIT_S8_COUNTS=1


@FAST
@given(conv_cases())
def test_conv2d_s8_variants_match_the_oracle(case):
    x, weight, tau, requant = make_conv(case)
    for variant in s8.CONV_VARIANTS:
        expected, expected_counts = conv_oracle(variant, x, weight, tau, requant, case["geometry"])
        actual, counts = s8.conv2d(variant, x, weight, requant, case["geometry"], tau=tau)
        np.testing.assert_array_equal(actual, expected, err_msg=variant)
        assert counts == expected_counts, (variant, counts, expected_counts)
        counts.check()


def test_conv2d_s8_unit_with_zero_tau_equals_zeroskip_and_saturated_tau_skips_everything():
    rng = np.random.default_rng(3)
    geometry = ConvGeometry((3, 3), (1, 1), (1, 1), (1, 1, 1, 1), 1)
    x = sparse_int8(rng, (1, 2, 6, 6), 0.3)
    weight = sparse_int8(rng, (3, 2, 3, 3), 0.3, low=-127)
    requant = draw_requant(rng, 3, 5000, False, True)
    zeroskip, zeroskip_counts = s8.conv2d("zeroskip", x, weight, requant, geometry)
    unit, unit_counts = s8.conv2d("unit", x, weight, requant, geometry, tau=np.zeros(weight.shape, np.uint8))
    np.testing.assert_array_equal(unit, zeroskip)
    assert unit_counts.executed == zeroskip_counts.executed and unit_counts.threshold == 0
    for saturated in (128, 255):  # no |x| <= 128 exceeds tau >= 128: only the bias is left
        y, counts = s8.conv2d("unit", x, weight, requant, geometry, tau=np.full(weight.shape, saturated, np.uint8))
        assert counts.executed == 0
        expected = output_stage(np.zeros((1, 3, 6, 6), np.int64), requant, 1)
        np.testing.assert_array_equal(y, expected)


# ----------------------------------------------------------------------------------------
# Linear
# ----------------------------------------------------------------------------------------

def tree_arrays(tree: BinTree, threshold_q: int, shift_start: int) -> s8.QuotientTree:
    quotient = [bitshift_quotient(threshold_q, 2**(leaf - 1), shift_start) if left < 0 else 0
                for leaf, left in zip(tree.leaf, tree.left)]
    return s8.QuotientTree(np.array(tree.split, np.int8), np.array(tree.left, np.int8),
                           np.array(tree.right, np.int8), np.array(quotient, np.uint8))


def quotient_table(threshold_q: int, shift_start: int) -> np.ndarray:
    return np.array([0] + [bitshift_quotient(threshold_q, a, shift_start) for a in range(1, 129)], np.uint8)


@st.composite
def linear_cases(draw):
    return dict(batch=draw(st.integers(0, 3)), in_features=draw(st.integers(1, 40)),
                out_features=draw(st.integers(1, 24)), seed=draw(st.integers(0, 2**31)),
                x_zeros=draw(st.sampled_from([0.0, 0.3, 0.7])), w_zeros=draw(st.sampled_from([0.0, 0.4, 0.8])),
                threshold_q=draw(st.one_of(st.integers(0, 4000), st.integers(0, 2**31 - 1))),
                shift_start=draw(st.one_of(st.just(0), st.integers(0, 9), st.integers(0, 31))),
                relu=draw(st.booleans()), bias=draw(st.booleans()))


@FAST
@given(linear_cases())
def test_linear_s8_variants_match_the_oracle(case):
    rng = np.random.default_rng(case["seed"])
    x = sparse_int8(rng, (case["batch"], case["in_features"]), case["x_zeros"])
    weight = sparse_int8(rng, (case["out_features"], case["in_features"]), case["w_zeros"], low=-127)
    requant = draw_requant(rng, case["out_features"], 128 * 127 * case["in_features"] // 8, case["relu"], case["bias"])
    t_q, start = case["threshold_q"], case["shift_start"]
    balanced = BinTree.balanced(1, 8)
    skewed = BinTree.from_counts(1, 8, rng.random(8) ** 4 + 1e-3)  # a calibrated (unbalanced) shape
    arguments = dict(threshold_q=t_q, shift_start=start, quotient_table=quotient_table(t_q, start))
    bitshift_result = None
    for variant in s8.LINEAR_VARIANTS:
        expected, expected_counts = linear_oracle(variant, x, weight, requant, t_q, start)
        trees = [balanced, skewed] if variant == "bintree" else [None]
        for tree in trees:
            tree_struct = None if tree is None else tree_arrays(tree, t_q, start)
            actual, counts = s8.linear(variant, x, weight, requant, tree=tree_struct, **arguments)
            np.testing.assert_array_equal(actual, expected, err_msg=variant)
            assert counts == expected_counts, (variant, counts, expected_counts)
            if variant == "bitshift":
                bitshift_result = (actual, counts)
            elif variant in ("bintree", "table"):  # the same quotients as the paper's loop
                np.testing.assert_array_equal(actual, bitshift_result[0])
                assert counts == bitshift_result[1]


def test_linear_s8_keeps_exactly_the_connections_above_the_quotient():
    # One input x = 5 (bit length 3), T_q = 40 -> t = 40 >> 3 = 5: |w| in {6, 7} kept, {1..5} skipped.
    weight = np.array([[1, 2, 3, 4, 5, 6, 7, -5, -6]], np.int8).T  # [out=9, in=1]
    requant = Requant(None, np.full(9, 2**30, np.int32), np.full(9, 1, np.int8), -128, 127)  # y = acc
    y, counts = s8.linear("bitshift", np.array([[5]], np.int8), weight, requant, threshold_q=40)
    np.testing.assert_array_equal(y[0], [0, 0, 0, 0, 0, 30, 35, 0, -30])
    assert (counts.executed, counts.threshold, counts.divisions, counts.compares) == (3, 6, 1, 1 + 9)


# ----------------------------------------------------------------------------------------
# Requantization, ReLU, max-pool
# ----------------------------------------------------------------------------------------

REQUANT_EDGES = [(0, 0, 0), (1, 2**30, 0), (-1, 2**30, 0), (INT32_MIN, 2**31 - 1, 0), (INT32_MAX, 2**31 - 1, 0),
                 (INT32_MIN, 2**30, 0), (INT32_MAX, 2**30, -31), (INT32_MIN, 2**31 - 1, -31), (3, 2**30, -1),
                 (-3, 2**30, -1), (5, 2**30, -2), (-5, 2**30, -2), (6, 2**30, -2), (-6, 2**30, -2), (1, 2**31 - 1, 30),
                 (-1, 2**31 - 1, 30), (1, 2**30, 30), (-2, 2**30, 29), (123456, 0, 5), (2**15, 1, 0), (-2**15, 1, 0),
                 (INT32_MAX, 2**31 - 1, -31), (INT32_MAX, 2**31 - 1, -2), (INT32_MAX, 2**31 - 1, -1),  # near overflow
                 (-65537, 65537, -5), (65535, 2**31 - 1, -16), (-65536, 2**31 - 2, -17),  # 16-bit limb carries
                 # negative multipliers (outside the kernels' range, the function's int64 path)
                 (5, -2**30, 0), (INT32_MIN, INT32_MIN, 0), (-7, -2**31 + 1, -3), (123, -1, 4)]


def test_requantize_s8_edge_cases():
    for acc, multiplier, shift in REQUANT_EDGES:
        actual = int(s8.requantize(acc, multiplier, shift))
        assert actual == requantize_oracle(acc, multiplier, shift), (acc, multiplier, shift)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.integers(0, 2**31 - 1), st.integers(2**31 - 2**16, 2**31 - 1)), st.integers(-31, 30), st.data())
def test_requantize_s8_matches_tflite_in_python_ints(multiplier, shift, data):
    left = max(shift, 0)
    acc = data.draw(st.integers(-(2**31 >> left), (2**31 >> left) - 1))  # acc * 2**left fits int32
    actual = int(s8.requantize(acc, multiplier, shift))
    assert actual == requantize_oracle(acc, multiplier, shift)
    assert abs(actual - acc * multiplier * 2.0**(shift - 31)) <= 1.0  # and it is the scaled value


def test_requantize_of_quantize_multiplier_is_the_scaled_value():
    # Within 1 of acc * M (TFLite rounds twice: the high multiply, then the shift), exact for
    # even multiples of a power-of-two scale.
    for m in (0.5, 0.25, 0.1, 1e-3, 0.75, 1.5, 3.0):
        multiplier, shift = quantize_multiplier(m)
        for acc in (-1000, -7, -1, 0, 1, 7, 999, 12345):
            assert abs(int(s8.requantize(acc, multiplier, shift)) - acc * m) <= 1.0
    assert [int(s8.requantize(a, *quantize_multiplier(0.25))) for a in (-8, -4, 0, 4, 400)] == [-2, -1, 0, 1, 100]


def test_relu_and_maxpool_s8():
    rng = np.random.default_rng(5)
    x = sparse_int8(rng, (2, 3, 7, 8), 0.2)
    np.testing.assert_array_equal(s8.relu(x), np.maximum(x, 0))
    for kernel, stride in (((2, 2), (2, 2)), ((2, 2), (1, 3)), ((2, 2), (3, 1)), ((3, 2), (1, 3)), ((1, 3), (1, 1)),
                           ((7, 8), (1, 1))):
        out_h, out_w = (7 - kernel[0]) // stride[0] + 1, (8 - kernel[1]) // stride[1] + 1
        expected = np.empty((2, 3, out_h, out_w), np.int8)
        for oy in range(out_h):
            for ox in range(out_w):
                window = x[:, :, oy * stride[0]:oy * stride[0] + kernel[0], ox * stride[1]:ox * stride[1] + kernel[1]]
                expected[:, :, oy, ox] = window.max(axis=(2, 3))
        np.testing.assert_array_equal(s8.maxpool2d(x, kernel, stride), expected)


def _avgpool_oracle(x: np.ndarray, kernel, stride) -> np.ndarray:
    """TFLite's reference average pool with explicit loops and C's truncating division."""
    n_, c_, h, w = x.shape
    out_h, out_w = (h - kernel[0]) // stride[0] + 1, (w - kernel[1]) // stride[1] + 1
    count = kernel[0] * kernel[1]
    y = np.empty((n_, c_, out_h, out_w), np.int8)
    for b in range(n_):
        for c in range(c_):
            for oy in range(out_h):
                for ox in range(out_w):
                    acc = 0
                    for ky in range(kernel[0]):
                        for kx in range(kernel[1]):
                            acc += int(x[b, c, oy * stride[0] + ky, ox * stride[1] + kx])
                    shifted = acc + count // 2 if acc > 0 else acc - count // 2
                    mean = abs(shifted) // count * (1 if shifted >= 0 else -1)  # C division: toward zero
                    y[b, c, oy, ox] = min(max(mean, -128), 127)
    return y


def test_avgpool_s8_matches_an_integer_oracle():
    rng = np.random.default_rng(6)
    x = rng.integers(-128, 128, (2, 3, 6, 7)).astype(np.int8)
    for kernel, stride in (((1, 1), (1, 1)), ((2, 2), (2, 2)), ((2, 3), (1, 2)), ((3, 3), (3, 3)), ((1, 4), (1, 1)),
                           ((5, 2), (1, 1)), ((6, 7), (1, 1))):  # window sizes 1..42, the last a global pool
        np.testing.assert_array_equal(s8.avgpool2d(x, kernel, stride), _avgpool_oracle(x, kernel, stride))
    # ties round away from zero: sums 3, -3, 1, -1 over 2 values -> 2, -2, 1, -1; sums 5, -5 over 4 -> 1, -1
    pairs = np.array([[1, 2], [-1, -2], [0, 1], [0, -1], [-128, -128], [127, 127]], np.int8).reshape(6, 1, 1, 2)
    assert s8.avgpool2d(pairs, (1, 2), (1, 1)).ravel().tolist() == [2, -2, 1, -1, -128, 127]
    quads = np.array([[2, 1, 1, 1], [-2, -1, -1, -1], [1, 0, 0, 0], [2, 0, 0, 0]], np.int8).reshape(4, 1, 2, 2)
    assert s8.avgpool2d(quads, (2, 2), (1, 1)).ravel().tolist() == [1, -1, 0, 1]  # 5/4, -5/4, 1/4, 2/4
    assert (_avgpool_oracle(quads, (2, 2), (1, 1)).ravel() == [1, -1, 0, 1]).all()
    lib = kernels.load_library().lib
    yp = np.full(4, 77, np.int8)
    assert lib.unit_avgpool2d_s8(x.ctypes.data, 1, 2, 5, 5, 6, 1, 1, 1, yp.ctypes.data) == UNIT_ERR_ARGUMENT
    assert lib.unit_avgpool2d_s8(x.ctypes.data, 1, 2, 5, 5, 2, 2, 0, 1, yp.ctypes.data) == UNIT_ERR_ARGUMENT
    assert lib.unit_avgpool2d_s8(x.ctypes.data, 1, 2, 5, 5, 2, 2, 1, 1, None) == UNIT_ERR_ARGUMENT
    assert (yp == 77).all()


def test_threshold_relu_s8_matches_numpy_for_every_value_and_threshold():
    every = np.arange(-128, 128, dtype=np.int16).astype(np.int8)  # all 256 int8 values
    for threshold_q in range(128):
        expected = np.array([v if int(v) > threshold_q else 0 for v in every], dtype=np.int8)  # Python ints
        np.testing.assert_array_equal(s8.threshold_relu(every, threshold_q), expected)
    np.testing.assert_array_equal(s8.threshold_relu(every, 0), s8.relu(every))  # threshold 0 is ReLU
    assert not s8.threshold_relu(every, 127).any()
    lib = kernels.load_library().lib
    y = every.copy()
    for n, threshold_q in ((-1, 3), (256, -1), (256, 128)):
        assert lib.unit_threshold_relu_s8(y.ctypes.data, n, threshold_q) == UNIT_ERR_ARGUMENT
    assert lib.unit_threshold_relu_s8(None, 5, 3) == UNIT_ERR_ARGUMENT
    assert lib.unit_threshold_relu_s8(None, 0, 3) == 0
    np.testing.assert_array_equal(y, every)  # nothing written on refusal
    with pytest.raises(ValueError, match="unit_threshold_relu_s8 returned -1"):
        s8.threshold_relu(every, 200)


# ----------------------------------------------------------------------------------------
# Invalid arguments: UNIT_ERR_ARGUMENT / UNIT_ERR_SCRATCH, nothing written
# ----------------------------------------------------------------------------------------

def test_invalid_arguments_are_refused_and_nothing_is_written():
    lib = kernels.load_library().lib
    geometry = ConvGeometry((3, 3), (1, 1), (1, 1), (0, 0, 0, 0), 1)
    x = np.ones((1, 2, 5, 5), np.int8)
    weight = np.ones((4, 2, 3, 3), np.int8)
    tau = np.zeros(weight.shape, np.uint8)
    bias, multiplier = np.zeros(4, np.int32), np.full(4, 2**30, np.int32)
    shift = np.zeros(4, np.int8)
    y = np.full((1, 4, 3, 3), 77, np.int8)
    scratch = np.empty(9, np.int32)
    counts = kernels.CCounts()
    p = kernels.conv_params(x.shape, weight.shape, geometry)

    def requant(act_min=-128, act_max=127, shifts=shift, multipliers=multiplier):
        return kernels.CRequantS8(bias.ctypes.data, multipliers.ctypes.data, shifts.ctypes.data, act_min, act_max)

    def conv(params=p, r=None, t=tau.ctypes.data, s=scratch.ctypes.data, w=weight.ctypes.data):
        r = requant() if r is None else r
        return lib.unit_conv2d_unit_s8(ctypes.byref(params), x.ctypes.data, w, t, ctypes.byref(r), y.ctypes.data, s,
                                       ctypes.byref(counts))

    assert conv() == 0 and (y != 77).any()  # the valid call works
    y[...] = 77
    bad_groups = kernels.conv_params(x.shape, weight.shape, ConvGeometry((3, 3), (1, 1), (1, 1), (0, 0, 0, 0), 3))
    too_big_kernel = kernels.conv_params((1, 2, 2, 2), weight.shape, geometry)
    assert conv(params=bad_groups) == UNIT_ERR_ARGUMENT
    assert conv(params=too_big_kernel) == UNIT_ERR_ARGUMENT
    assert conv(t=None) == UNIT_ERR_ARGUMENT
    assert conv(w=None) == UNIT_ERR_ARGUMENT
    assert conv(s=None) == UNIT_ERR_SCRATCH
    assert conv(r=requant(act_min=10, act_max=5)) == UNIT_ERR_ARGUMENT
    assert conv(r=requant(act_min=-129)) == UNIT_ERR_ARGUMENT
    assert conv(r=requant(shifts=np.array([0, 0, 31, 0], np.int8))) == UNIT_ERR_ARGUMENT
    assert conv(r=requant(shifts=np.array([0, -32, 0, 0], np.int8))) == UNIT_ERR_ARGUMENT
    assert conv(r=requant(multipliers=np.array([1, 1, -1, 1], np.int32))) == UNIT_ERR_ARGUMENT
    for variant in ("dense", "zeroskip"):
        function = getattr(lib, f"unit_conv2d_{variant}_s8")
        r = requant()
        assert function(ctypes.byref(bad_groups), x.ctypes.data, weight.ctypes.data, ctypes.byref(r), y.ctypes.data,
                        scratch.ctypes.data, ctypes.byref(counts)) == UNIT_ERR_ARGUMENT
        assert function(ctypes.byref(p), x.ctypes.data, weight.ctypes.data, ctypes.byref(r), y.ctypes.data, None,
                        ctypes.byref(counts)) == UNIT_ERR_SCRATCH
    assert (y == 77).all()  # nothing was written by any refused call
    assert lib.unit_conv2d_s8_scratch_size(ctypes.byref(p)) == 4 * 3 * 3
    assert lib.unit_conv2d_s8_scratch_size(ctypes.byref(bad_groups)) == UNIT_ERR_ARGUMENT

    # Linear
    xl = np.ones((2, 4), np.int8)
    wt = np.ones((4, 4), np.int8)
    yl = np.full((2, 4), 77, np.int8)
    r = requant()
    acc = np.empty(4, np.int32)

    def bitshift(threshold_q=10, shift_start=0, batch=2, in_features=4, out_features=4, s=acc.ctypes.data):
        return lib.unit_linear_unit_bitshift_s8(xl.ctypes.data, batch, in_features, out_features, wt.ctypes.data,
                                                threshold_q, shift_start, ctypes.byref(r), yl.ctypes.data, s,
                                                ctypes.byref(counts))

    assert bitshift(threshold_q=-1) == UNIT_ERR_ARGUMENT
    assert bitshift(shift_start=32) == UNIT_ERR_ARGUMENT
    assert bitshift(shift_start=-1) == UNIT_ERR_ARGUMENT
    assert bitshift(batch=-1) == UNIT_ERR_ARGUMENT
    assert bitshift(in_features=0) == UNIT_ERR_ARGUMENT
    assert bitshift(out_features=0) == UNIT_ERR_ARGUMENT
    assert bitshift(s=None) == UNIT_ERR_SCRATCH
    assert lib.unit_linear_unit_table_s8(xl.ctypes.data, 2, 4, 4, wt.ctypes.data, None, ctypes.byref(r),
                                         yl.ctypes.data, acc.ctypes.data, ctypes.byref(counts)) == UNIT_ERR_ARGUMENT
    for split, left, right in (([2, 0, 0], [1, -1, -1], [0, -1, -1]),   # right child 0 <= parent: a cycle
                               ([2, 0, 0], [1, -1, -1], [3, -1, -1]),   # child outside the tree
                               ([0, 0, 0], [1, -1, -1], [2, -1, -1]),   # split 0
                               ([10, 0, 0], [1, -1, -1], [2, -1, -1])):  # split 10
        arrays = [np.array(split, np.int8), np.array(left, np.int8), np.array(right, np.int8), np.zeros(3, np.uint8)]
        tree = kernels.CQuotientTreeS8(3, *(a.ctypes.data for a in arrays))
        assert lib.unit_linear_unit_bintree_s8(xl.ctypes.data, 2, 4, 4, wt.ctypes.data, ctypes.byref(tree),
                                               ctypes.byref(r), yl.ctypes.data, acc.ctypes.data,
                                               ctypes.byref(counts)) == UNIT_ERR_ARGUMENT, (split, left, right)
    assert lib.unit_linear_dense_s8(xl.ctypes.data, 2, 4, 4, None, ctypes.byref(r), yl.ctypes.data, acc.ctypes.data,
                                    ctypes.byref(counts)) == UNIT_ERR_ARGUMENT
    bad = requant(act_min=1, act_max=0)
    assert lib.unit_linear_zeroskip_s8(xl.ctypes.data, 2, 4, 4, wt.ctypes.data, ctypes.byref(bad), yl.ctypes.data,
                                       acc.ctypes.data, ctypes.byref(counts)) == UNIT_ERR_ARGUMENT
    assert (yl == 77).all()
    assert lib.unit_linear_s8_scratch_size(5) == 20 and lib.unit_linear_s8_scratch_size(0) == UNIT_ERR_ARGUMENT

    # ReLU, max-pool
    assert lib.unit_relu_s8(xl.ctypes.data, -1) == UNIT_ERR_ARGUMENT
    yp = np.full(4, 77, np.int8)
    assert lib.unit_maxpool2d_s8(x.ctypes.data, 1, 2, 5, 5, 6, 1, 1, 1, yp.ctypes.data) == UNIT_ERR_ARGUMENT
    assert lib.unit_maxpool2d_s8(x.ctypes.data, 1, 2, 5, 5, 2, 2, 0, 1, yp.ctypes.data) == UNIT_ERR_ARGUMENT
    assert (yp == 77).all()
    with pytest.raises(ValueError, match="unit_linear_unit_bitshift_s8 returned -1"):
        s8.linear("bitshift", xl, wt, Requant(None, multiplier, shift, -128, 127), threshold_q=-5)


# ----------------------------------------------------------------------------------------
# The MCU build: without UNIT_S8_COUNTS the same results and no counters
# ----------------------------------------------------------------------------------------

def test_build_without_counts_gives_the_same_outputs(tmp_path):
    compiler = shutil.which("gcc") or shutil.which("cc")
    assert compiler, "a C compiler (gcc or cc) is needed to build the uncounted variant of the kernels"
    csrc = Path(unitprune.__file__).parent / "csrc"
    output = tmp_path / "libunit_nocounts.so"
    subprocess.run([compiler, "-std=c99", "-O0", "-Wall", "-Werror", "-fPIC", "-shared",  # -O0: fast to build
                    *sorted(str(p) for p in csrc.glob("*.c")), "-o", str(output)], check=True)
    library = kernels.KernelLibrary(output)
    assert not s8.counts_compiled(library)
    rng = np.random.default_rng(11)
    geometry = ConvGeometry((3, 2), (2, 1), (1, 2), (1, 0, 2, 1), 2)
    x = sparse_int8(rng, (2, 4, 7, 8), 0.4)
    weight = sparse_int8(rng, (6, 2, 3, 2), 0.4, low=-127)
    tau = tau_table(rng, weight)
    requant = draw_requant(rng, 6, 3000, True, True)
    for variant in s8.CONV_VARIANTS:
        for block_rows in (0, 1, 2):  # the MCU build of the row-blocked loop too
            y, counts = s8.conv2d(variant, x, weight, requant, geometry, tau=tau, library=library,
                                  block_rows=block_rows)
            assert counts is None
            np.testing.assert_array_equal(y, s8.conv2d(variant, x, weight, requant, geometry, tau=tau)[0])
    xl = sparse_int8(rng, (3, 20), 0.4)
    wl = sparse_int8(rng, (7, 20), 0.4, low=-127)
    rl = draw_requant(rng, 7, 30000, False, True)
    tree = tree_arrays(BinTree.balanced(1, 8), 900, 2)
    for variant in s8.LINEAR_VARIANTS:
        arguments = dict(threshold_q=900, shift_start=2, tree=tree, quotient_table=quotient_table(900, 2))
        y, counts = s8.linear(variant, xl, wl, rl, library=library, **arguments)
        assert counts is None
        np.testing.assert_array_equal(y, s8.linear(variant, xl, wl, rl, **arguments)[0])


# ----------------------------------------------------------------------------------------
# Row-blocked accumulators: any block_rows gives the whole-plane result and counters
# ----------------------------------------------------------------------------------------

# (name, batch, channels, out_channels, height, width, geometry): one of each kind the loop nest
# handles differently (tap ranges clipped by padding, strides and dilation; groups and depthwise).
BLOCK_CASES = [
    ("conv2d", 1, 2, 3, 7, 6, ConvGeometry((3, 3), (1, 1), (1, 1), (0, 0, 0, 0), 1)),
    ("conv1d", 2, 3, 4, 1, 17, ConvGeometry((1, 5), (1, 1), (1, 1), (0, 0, 2, 1), 1)),
    ("strided", 1, 2, 2, 11, 9, ConvGeometry((3, 2), (2, 3), (1, 1), (0, 0, 0, 0), 1)),
    ("padded", 2, 2, 3, 6, 5, ConvGeometry((3, 3), (1, 1), (1, 1), (2, 1, 1, 2), 1)),
    ("dilated", 1, 2, 2, 9, 8, ConvGeometry((3, 2), (1, 1), (2, 3), (1, 2, 0, 1), 1)),
    ("grouped", 1, 6, 4, 8, 7, ConvGeometry((2, 3), (1, 2), (1, 1), (1, 0, 1, 1), 2)),
    ("depthwise", 1, 4, 4, 9, 6, ConvGeometry((3, 3), (2, 1), (1, 1), (1, 1, 1, 1), 4)),
]


def _block_sizes(out_height: int) -> list[int]:
    """1, 2, OH - 1 (not dividing OH when OH > 2), OH, and past OH (clipped to OH)."""
    return sorted({1, min(2, out_height), max(out_height - 1, 1), out_height, out_height + 3})


@pytest.mark.parametrize("case", BLOCK_CASES, ids=[c[0] for c in BLOCK_CASES])
def test_conv2d_s8_row_blocks_match_the_oracle_for_every_block_size(case):
    name, batch, channels, out_channels, height, width, geometry = case
    rng = np.random.default_rng(sum(map(ord, name)))
    x = sparse_int8(rng, (batch, channels, height, width), 0.3)
    weight = sparse_int8(rng, (out_channels, channels // geometry.groups, *geometry.kernel_size), 0.3, low=-127)
    tau = tau_table(rng, weight)
    requant = draw_requant(rng, out_channels, 4000, False, True)
    out_h, out_w = geometry.output_size(height, width)
    lib = kernels.load_library().lib
    assert out_h >= 3 and out_h % (out_h - 1) != 0 or name == "conv1d"  # OH - 1 does not divide OH
    for block_rows in [0, *_block_sizes(out_h)]:
        params = kernels.conv_params(x.shape, weight.shape, geometry, block_rows)
        rows = out_h if block_rows in (0,) or block_rows > out_h else block_rows
        assert lib.unit_conv2d_s8_scratch_size(ctypes.byref(params)) == 4 * rows * out_w
        for variant in s8.CONV_VARIANTS:
            expected, expected_counts = conv_oracle(variant, x, weight, tau, requant, geometry)
            actual, counts = s8.conv2d(variant, x, weight, requant, geometry, tau=tau, block_rows=block_rows)
            np.testing.assert_array_equal(actual, expected, err_msg=f"{variant} block_rows={block_rows}")
            assert counts == expected_counts, (variant, block_rows, counts, expected_counts)


@FAST
@given(conv_cases(), st.integers(1, 8))
def test_conv2d_s8_any_block_size_matches_the_oracle(case, block_rows):
    x, weight, tau, requant = make_conv(case)
    for variant in s8.CONV_VARIANTS:
        expected, expected_counts = conv_oracle(variant, x, weight, tau, requant, case["geometry"])
        actual, counts = s8.conv2d(variant, x, weight, requant, case["geometry"], tau=tau, block_rows=block_rows)
        np.testing.assert_array_equal(actual, expected, err_msg=f"{variant} block_rows={block_rows}")
        assert counts == expected_counts, (variant, block_rows, counts, expected_counts)


def test_conv2d_s8_negative_block_rows_is_refused():
    geometry = ConvGeometry((3, 3), (1, 1), (1, 1), (0, 0, 0, 0), 1)
    x, weight = np.ones((1, 1, 5, 5), np.int8), np.ones((1, 1, 3, 3), np.int8)
    params = kernels.conv_params(x.shape, weight.shape, geometry, -1)
    lib = kernels.load_library().lib
    assert lib.unit_conv2d_s8_scratch_size(ctypes.byref(params)) == UNIT_ERR_ARGUMENT
    assert lib.unit_conv2d_output_size(ctypes.byref(params), ctypes.byref(ctypes.c_int32()),
                                       ctypes.byref(ctypes.c_int32())) == UNIT_ERR_ARGUMENT
    requant = Requant(None, np.full(1, 2**30, np.int32), np.zeros(1, np.int8), -128, 127)
    with pytest.raises(ValueError, match="block_rows must be an int >= 0"):
        s8.conv2d("dense", x, weight, requant, geometry, block_rows=-1)
