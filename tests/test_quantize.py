"""int8 quantization and the integer reference against independent oracles.

Oracles: exact rational arithmetic (``fractions``) for TFLite's QuantizeMultiplier and
requantization; torch's own float64 convolution / ``F.unfold`` on the integer values for the
layer geometry; explicit per-connection Python-int tests (``|x_q * w_q| > T_q``, ``T_q >> max(n, s)``)
for the UnIT decisions; torch's eval output for BatchNorm folding; FlopCounterMode for ``dense``.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

import unitprune
from unitprune import UnITConfig
from unitprune.mcu import QuantConfig, QuantizedModel, decision_agreement, quantize
from unitprune.mcu.qmodel import QConv, QLinear
from unitprune.mcu.graph import plan_model
from unitprune.mcu.quantize import quantize_multiplier
from unitprune.mcu.reference import (conv_columns, conv_keep, dequantize_output, linear_keep, quantize_input,
                                     requantize, run_reference, saturating_rounding_doubling_high_mul)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


# ----------------------------------------------------------------------------------------
# Exact rational oracles
# ----------------------------------------------------------------------------------------

def round_half_away_exact(value: Fraction) -> int:
    magnitude = math.floor(abs(value) + Fraction(1, 2))
    return magnitude if value >= 0 else -magnitude


def quantize_multiplier_oracle(real: float) -> tuple[int, int]:
    if real == 0:
        return 0, 0
    value = Fraction(real)
    exponent = 0  # find e with 1/2 <= value / 2**e < 1
    while value / Fraction(2) ** exponent >= 1:
        exponent += 1
    while value / Fraction(2) ** exponent < Fraction(1, 2):
        exponent -= 1
    q = round_half_away_exact(value / Fraction(2) ** exponent * 2**31)
    if q == 2**31:
        q, exponent = q // 2, exponent + 1
    if exponent < -31:
        return 0, 0
    return q, exponent


def requantize_oracle(acc: int, multiplier: int, shift: int) -> int:
    shifted = acc * 2 ** max(shift, 0)
    if shifted == multiplier == INT32_MIN:
        high = INT32_MAX
    else:  # gemmlowp's nudge-and-truncate is floor(a*b / 2**31 + 1/2)
        high = math.floor(Fraction(shifted * multiplier, 2**31) + Fraction(1, 2))
    return round_half_away_exact(Fraction(high, 2 ** max(-shift, 0)))


@settings(max_examples=200, deadline=None)
@given(real=st.floats(min_value=0, max_value=2.0**29, allow_subnormal=True))
@example(real=1 - 2.0**-40)  # rounds up to 2**31: (2**30, 1)
@example(real=2.0**-32)  # exponent -31: kept
@example(real=2.0**-33)  # exponent -32: flushed to (0, 0)
@example(real=0.5)
@example(real=0.0)
def test_quantize_multiplier_matches_exact_arithmetic(real):
    assert quantize_multiplier(real) == quantize_multiplier_oracle(real)
    multiplier, shift = quantize_multiplier(real)
    assert 0 <= multiplier <= INT32_MAX and -31 <= shift <= 30
    if multiplier:
        assert abs(multiplier * 2.0 ** (shift - 31) - real) <= 2.0 ** (shift - 32)


def test_quantize_multiplier_edges():
    assert quantize_multiplier(1 - 2.0**-40) == (2**30, 1)
    assert quantize_multiplier(2.0**-33) == (0, 0)
    assert quantize_multiplier(2.0**30 * (1 - 2.0**-31)) == (2**31 - 1, 30)  # the largest with shift 30
    for too_large in (2.0**30, 2.0**30 * (1 - 2.0**-33)):  # the second rounds up to 2**30
        with pytest.raises(ValueError, match="2\\*\\*30"):
            quantize_multiplier(too_large)
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            quantize_multiplier(bad)


@st.composite
def requantize_cases(draw):
    shift = draw(st.integers(-31, 30))
    limit = INT32_MAX >> max(shift, 0)
    acc = draw(st.integers(-limit - 1 if shift <= 0 else -limit, limit))
    multiplier = draw(st.one_of(st.integers(0, INT32_MAX), st.integers(2**30, INT32_MAX), st.just(INT32_MAX)))
    return acc, multiplier, shift


@settings(max_examples=200, deadline=None)
@given(case=requantize_cases())
@example(case=(INT32_MIN, INT32_MAX, 0))
@example(case=(INT32_MIN, 2**30, -31))
@example(case=(INT32_MAX, INT32_MAX, 0))
@example(case=(1, 2**30, 30))
@example(case=(-1, 2**30, -31))
@example(case=(-3, 2**30, -1))  # ties: -0.75 -> -1, and half away from zero
def test_requantize_matches_exact_arithmetic(case):
    acc, multiplier, shift = case
    assert int(requantize(acc, multiplier, shift)) == requantize_oracle(acc, multiplier, shift)


def test_requantize_vectorized_and_saturating_case():
    rng = np.random.default_rng(0)
    shift = rng.integers(-31, 1, size=2000)
    acc = rng.integers(INT32_MIN, INT32_MAX, size=2000, endpoint=True)
    multiplier = rng.integers(2**30, INT32_MAX, size=2000, endpoint=True)
    expected = [requantize_oracle(int(a), int(m), int(s)) for a, m, s in zip(acc, multiplier, shift)]
    assert requantize(acc, multiplier, shift).tolist() == expected
    assert int(saturating_rounding_doubling_high_mul(INT32_MIN, INT32_MIN)) == INT32_MAX
    with pytest.raises(OverflowError):
        requantize(2**30, 2**30, 1)


# ----------------------------------------------------------------------------------------
# Small models
# ----------------------------------------------------------------------------------------

def conv_model(dims, in_channels, out_channels, kernel, stride, padding, dilation, groups, length, relu=True):
    conv_type = nn.Conv1d if dims == 1 else nn.Conv2d
    conv = conv_type(in_channels, out_channels, kernel, stride=stride, padding=padding, dilation=dilation,
                     groups=groups)
    shape = (in_channels, length) if dims == 1 else (in_channels, length, length)
    with torch.no_grad():
        out_shape = conv(torch.zeros(1, *shape)).shape[1:]
    layers = [conv] + ([nn.ReLU()] if relu else []) + [nn.Flatten(), nn.Linear(int(np.prod(out_shape)), 3)]
    return nn.Sequential(*layers), shape


@st.composite
def conv_layers(draw):
    dims = draw(st.sampled_from([1, 2]))
    groups = draw(st.sampled_from([1, 2]))
    in_channels = groups * draw(st.integers(1, 2))
    out_channels = groups * draw(st.integers(1, 3))
    kernel = draw(st.integers(1, 3))
    stride = draw(st.integers(1, 2))
    dilation = draw(st.integers(1, 2))
    padding = draw(st.sampled_from([0, 1, 2] + (["same"] if stride == 1 else [])))
    length = draw(st.integers(dilation * (kernel - 1) + 1, 7))
    return dict(dims=dims, in_channels=in_channels, out_channels=out_channels, kernel=kernel, stride=stride,
                padding=padding, dilation=dilation, groups=groups, length=length)


def sparse_data(generator, shape, count=24):
    x = torch.randn((count, *shape), generator=generator) * torch.exp(torch.randn((count, *shape), generator=generator))
    return torch.where(torch.rand(x.shape, generator=generator) < 0.3, torch.zeros_like(x), x)


def unit_model(model, approx, generator, shift_start=None, scale=0.3, conv_group_size=None):
    """UnIT twin with random thresholds; the conv (layer "0") may have threshold groups."""
    converted = unitprune.convert(model, UnITConfig(approx=approx, shift_start=shift_start,
                                                    group_size=conv_group_size), ignored_layers=["3"])
    converted = unitprune.convert(converted, UnITConfig(approx=approx, shift_start=shift_start)).eval()
    for _, layer in unitprune.unit_layers(converted):
        layer.threshold.copy_(torch.rand(layer.threshold.shape, generator=generator) * scale)
    return converted


def captured_inputs(qmodel, x_q, variant=None):
    inputs = {}
    y_q, counts = run_reference(qmodel, x_q, variant=variant,
                                capture=lambda op, x: inputs.__setitem__(op.name, (op, x)))
    return y_q, counts, inputs


def torch_columns(op: QConv, x: np.ndarray) -> np.ndarray:
    """im2col by torch (independent of the reference's sliding windows), int64 (n, C*K, L)."""
    top, bottom, left, right = op.padding
    x4 = torch.from_numpy(x.reshape(x.shape[0], op.in_channels, op.in_height, op.in_width).astype(np.float64))
    padded = F.pad(x4, (left, right, top, bottom))
    columns = F.unfold(padded, (op.kernel_height, op.kernel_width), dilation=op.dilation, stride=op.stride)
    return columns.numpy().astype(np.int64)


def python_int_keep(approx, z, c, threshold_q, shift_start):
    """One connection's decision by Python ints: control term ``c`` (conv: weight, linear: activation)."""
    z, c = abs(int(z)), abs(int(c))
    if z == 0 or c == 0:
        return False
    if approx == "exact":
        return z * c > threshold_q
    return z > threshold_q >> max(c.bit_length(), shift_start)


# ----------------------------------------------------------------------------------------
# Integer decisions, outputs and counters against the oracles (hypothesis-drawn layers)
# ----------------------------------------------------------------------------------------

@SETTINGS
@given(layer=conv_layers(), approx=st.sampled_from(["exact", "bitshift"]), shift_start=st.sampled_from([None, 3]),
       group_size=st.sampled_from([None, 1, 2]), seed=st.integers(0, 2**31 - 1))
def test_conv_and_linear_match_the_oracles(layer, approx, shift_start, group_size, seed):
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model, shape = conv_model(**layer)
    model = unit_model(model, approx, generator, shift_start, conv_group_size=group_size)
    thresholds = model[0].threshold.double().numpy()
    x = sparse_data(generator, shape)
    qmodel = quantize(model, x, linear_quotient="table" if approx == "exact" else "bitshift")
    x_q = quantize_input(qmodel, x[:6])
    y_q, counts, inputs = captured_inputs(qmodel, x_q)
    s = shift_start or 0

    conv, conv_in = inputs["0"]
    group_of_output = np.arange(conv.out_channels) // (group_size or conv.out_channels)
    assert np.array_equal(conv.threshold_q, np.floor(thresholds[group_of_output]
                                                     / (conv.input_scale * conv.weight_scale)))
    columns = torch_columns(conv, conv_in)  # (n, C*K, L)
    n, _, positions = columns.shape
    taps = conv.weight[0].size
    weight = conv.weight.reshape(conv.out_channels, taps).astype(np.int64)
    per_group = conv.out_channels // conv.groups
    cols = columns.reshape(n, conv.groups, taps, positions)[:, np.arange(conv.out_channels) // per_group]
    oracle_keep = np.zeros((n, conv.out_channels, taps, positions), dtype=bool)  # (n, O, K, L)
    for i, o, k, l in np.ndindex(oracle_keep.shape):
        oracle_keep[i, o, k, l] = python_int_keep(approx, cols[i, o, k, l], weight[o, k], int(conv.threshold_q[o]), s)
    reference_columns = conv_columns(conv, conv_in.reshape(n, conv.in_channels, conv.in_height, conv.in_width))
    reference_keep = np.concatenate([conv_keep(conv, reference_columns[:, g], g, "unit")
                                     for g in range(conv.groups)], axis=1)
    assert np.array_equal(reference_keep, oracle_keep)
    conv_counts = counts["0"]
    conv_counts.check()
    both_nonzero = (cols != 0) & (weight != 0)[None, :, :, None]
    assert conv_counts.executed == int(oracle_keep.sum())
    assert conv_counts.threshold == int((both_nonzero & ~oracle_keep).sum())
    assert conv_counts.zero_weight == int((weight == 0).sum()) * n * positions
    acc = (oracle_keep * cols * weight[None, :, :, None]).sum(axis=2)
    expected = np.clip(requantize(acc + conv.requant.bias.reshape(1, -1, 1), conv.requant.multiplier.reshape(1, -1, 1),
                                  conv.requant.shift.reshape(1, -1, 1)), conv.requant.act_min, conv.requant.act_max)
    assert np.array_equal(inputs["2"][1].reshape(n, -1), expected.reshape(n, -1))  # Flatten's input

    linear, linear_in = inputs["3"]
    xs = linear_in.astype(np.int64)
    oracle = np.array([[[python_int_keep(approx, linear.weight[j, i], xs[r, i], linear.threshold_q, s)
                         for i in range(linear.in_features)] for j in range(linear.out_features)]
                       for r in range(n)])
    assert np.array_equal(linear_keep(linear, xs, "unit", qmodel.linear_quotient), oracle)
    acc = np.einsum("nji,ji,ni->nj", oracle, linear.weight.astype(np.int64), xs)
    expected = np.clip(requantize(acc + linear.requant.bias, linear.requant.multiplier, linear.requant.shift),
                       linear.requant.act_min, linear.requant.act_max)
    assert np.array_equal(y_q, expected)
    assert counts["3"].executed == int(oracle.sum())


@SETTINGS
@given(layer=conv_layers(), seed=st.integers(0, 2**31 - 1))
def test_dense_conv_matches_torch_conv_on_integers(layer, seed):
    """The reference's geometry (stride, padding, dilation, groups, Conv1d) against torch's conv."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model, shape = conv_model(**layer, relu=False)
    x = sparse_data(generator, shape)
    qmodel = quantize(model, x, variant="dense")
    _, counts, inputs = captured_inputs(qmodel, quantize_input(qmodel, x))
    conv, conv_in = inputs["0"]
    torch_conv = model[0]
    conv_fn = F.conv1d if layer["dims"] == 1 else F.conv2d
    weight = torch.from_numpy(conv.weight.astype(np.float64))
    if layer["dims"] == 1:
        weight = weight.squeeze(2)
    acc = conv_fn(torch.from_numpy(conv_in.astype(np.float64)), weight, stride=torch_conv.stride,
                  padding=torch_conv.padding, dilation=torch_conv.dilation, groups=torch_conv.groups)
    acc = acc.numpy().astype(np.int64).reshape(len(x), conv.out_channels, -1)
    expected = np.clip(requantize(acc + conv.requant.bias.reshape(1, -1, 1), conv.requant.multiplier.reshape(1, -1, 1),
                                  conv.requant.shift.reshape(1, -1, 1)), -128, 127)
    _, _, after = captured_inputs(qmodel, quantize_input(qmodel, x))
    assert np.array_equal(after["1"][1].reshape(len(x), -1), expected.reshape(len(x), -1))
    with FlopCounterMode(display=False) as counter:
        torch_conv(x)
    assert counts["0"].dense == counter.get_total_flops() // 2 == counts["0"].executed


@pytest.mark.parametrize("method", ["bitshift", "bintree", "table"])
def test_linear_quotient_kernels_agree(method):
    generator = torch.Generator().manual_seed(3)
    torch.manual_seed(3)
    model = unitprune.convert(nn.Sequential(nn.Linear(20, 12), nn.ReLU(), nn.Linear(12, 5)),
                              UnITConfig(approx="bitshift", shift_start=2))
    x = sparse_data(generator, (20,), count=64)
    unitprune.calibrate(model, x, percentile=40)
    reference = quantize(model, x, linear_quotient="bitshift")
    qmodel = quantize(model, x, linear_quotient=method)
    y_ref, counts_ref = run_reference(reference, quantize_input(reference, x))
    y_q, counts = run_reference(qmodel, quantize_input(qmodel, x))
    assert np.array_equal(y_q, y_ref) and counts == counts_ref
    assert counts["0"].threshold > 0


# ----------------------------------------------------------------------------------------
# The digits model
# ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits():
    from unitprune.data import load_dataset
    from unitprune.models import build_model
    from unitprune.training import TrainConfig, train

    splits = load_dataset("digits", seed=0)
    model = build_model("digits", seed=0)
    train(model, splits, TrainConfig(epochs=4, progress=False, num_threads=1, patience=None))
    return model.eval(), splits.train.tensors[0], splits.test.tensors[0], splits.test.tensors[1]


def test_dense_outputs_close_to_float(digits):
    model, calibration, _, _ = digits
    qmodel = quantize(model, calibration, variant="dense")
    with torch.no_grad():
        expected = model(calibration)
    actual = qmodel(calibration)
    # Rounding errors of half a step (input, weights, conv output, final output) add up through conv
    # (9 taps), pool and linear (54 taps); measured here: at most 2.1 output steps, 0.4 on average.
    error = (actual - expected).abs()
    assert float(error.max()) <= 4 * qmodel.output_scale
    assert float(error.mean()) <= 0.75 * qmodel.output_scale
    assert float((actual.argmax(1) == expected.argmax(1)).float().mean()) >= 0.97


def test_variants_and_counters_on_digits(digits):
    model, calibration, test, _ = digits
    converted = unitprune.convert(model, UnITConfig(approx="bitshift"))
    unitprune.calibrate(converted, calibration, percentile=0)  # T = 0 everywhere
    at_zero = quantize(converted, calibration)
    x_q = quantize_input(at_zero, test)
    y_dense, c_dense = run_reference(at_zero, x_q, variant="dense")
    y_zero, c_zero = run_reference(at_zero, x_q, variant="zeroskip")
    y_unit, c_unit = run_reference(at_zero, x_q, variant="unit")
    assert np.array_equal(y_dense, y_zero) and np.array_equal(y_dense, y_unit)
    assert all(op.threshold_q == 0 for op in at_zero.ops if isinstance(op, QLinear))
    for name in c_dense:
        assert c_unit[name].threshold == 0 and c_unit[name].executed == c_zero[name].executed
        assert c_zero[name].compares == 0 == c_zero[name].divisions
        assert c_dense[name].executed == c_dense[name].dense
    assert c_zero["fc"].zero_activation > 0  # after the ReLU (the normalised input has no zeros)
    with FlopCounterMode(display=False) as counter:
        model(test)
    assert sum(c.dense for c in c_dense.values()) == counter.get_total_flops() // 2

    unitprune.calibrate(converted, calibration, percentile=30)
    qmodel = quantize(converted, calibration, linear_quotient="bintree")
    y_unit, counts = run_reference(qmodel, x_q)
    for name, c in counts.items():
        c.check()
        assert c.threshold > 0 and c.dense == c_dense[name].dense
    # conv1 sees the same input in both models, so the same zero operands
    assert counts["conv1"].zero_activation == c_zero["conv1"].zero_activation
    assert counts["fc"].zero_weight == len(test) * int((qmodel.ops[-1].weight == 0).sum())
    fc = qmodel.ops[-1]
    nonzero = int(np.count_nonzero(captured_inputs(qmodel, x_q)[2]["fc"][1]))
    assert counts["fc"].divisions == nonzero
    assert counts["fc"].compares == len(test) * fc.in_features + nonzero * fc.out_features
    conv = qmodel.ops[0]
    assert counts["conv1"].compares == len(test) * conv.out_height * conv.out_width * np.count_nonzero(conv.weight)
    report = unitprune.mac_report(qmodel, test)
    assert report.per_layer == counts and report.num_samples == len(test)
    assert torch.equal(qmodel(test), torch.from_numpy(dequantize_output(qmodel, y_unit)))


def test_quotient_tree_is_shaped_by_calibration(digits):
    model, calibration, _, _ = digits
    converted = unitprune.convert(model, UnITConfig(approx="bitshift", shift_start=3))
    unitprune.calibrate(converted, calibration, percentile=30)
    qmodel = quantize(converted, calibration, linear_quotient="bintree")
    fc = qmodel.ops[-1]
    magnitudes = np.abs(captured_inputs(qmodel, quantize_input(qmodel, calibration))[2]["fc"][1].astype(int)).ravel()
    magnitudes = magnitudes[magnitudes > 0]

    def walk(c: int) -> tuple[int, int]:  # (quotient, comparisons), reading the stored arrays
        node = steps = 0
        while fc.tree_left[node] >= 0:
            node = fc.tree_left[node] if c < (1 << (int(fc.tree_split[node]) - 1)) else fc.tree_right[node]
            steps += 1
        return int(fc.tree_quotient[node]), steps

    walks = [walk(int(c)) for c in range(1, 129)]
    assert [q for q, _ in walks] == [min(fc.threshold_q >> max(c.bit_length(), 3), 255) for c in range(1, 129)]
    mean_steps = np.mean([walks[c - 1][1] for c in magnitudes])
    assert mean_steps < 3.0  # a balanced tree over 8 bit lengths takes 3 comparisons


def test_unit_accuracy_close_to_float_unit(digits):
    model, calibration, test, labels = digits
    converted = unitprune.convert(model, UnITConfig(approx="bitshift"))
    unitprune.calibrate(converted, calibration, percentile=20)
    qmodel = quantize(converted, calibration)
    with torch.no_grad():
        float_predictions = converted(test).argmax(1)
    assert float((qmodel(test).argmax(1) == float_predictions).float().mean()) >= 0.95


def test_decision_agreement(digits):
    model, calibration, test, _ = digits
    converted = unitprune.convert(model, UnITConfig(approx="exact"))
    unitprune.calibrate(converted, calibration, percentile=25)
    exact = quantize(converted, calibration, linear_quotient="table")
    # exact: |x_q * w_q| > floor(T / (s_in * s_w)) is the float test on the dequantized values, up
    # to float32 rounding of those values
    detailed = decision_agreement(converted, exact, test[:100], detailed=True)
    for name, tally in detailed.items():
        assert tally["fraction"] >= 0.999
        assert tally["agreeing"] + tally["kept_by_integer_only"] + tally["kept_by_float_only"] == tally["connections"]
    x_q = quantize_input(exact, test[:100])
    _, counts = run_reference(exact, x_q)
    nonzero_inputs = np.count_nonzero(captured_inputs(exact, x_q)[2]["fc"][1])
    assert detailed["fc"]["connections"] == counts["fc"].executed + counts["fc"].threshold
    assert nonzero_inputs > 0
    # bitshift: the float exponent of s_w * |w_q| is not the bit length of |w_q|: some disagree
    converted = unitprune.convert(model, UnITConfig(approx="bitshift"))
    unitprune.calibrate(converted, calibration, percentile=25)
    fractions = decision_agreement(converted, quantize(converted, calibration), test[:100])
    assert set(fractions) == {"conv1", "fc"} and all(0.8 < f < 1.0 for f in fractions.values())
    # T = 0: both keep every connection of nonzero operands
    unitprune.calibrate(converted, calibration, percentile=0)
    assert decision_agreement(converted, quantize(converted, calibration), test[:50]) == {"conv1": 1.0, "fc": 1.0}


@SETTINGS
@given(layer=conv_layers(), approx=st.sampled_from(["bitshift", "bitmask", "exact"]),
       shift_start=st.sampled_from([None, -1, 3]), seed=st.integers(0, 2**31 - 1))
def test_float_matched_tables_reproduce_the_float_decisions(layer, approx, shift_start, seed):
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model, shape = conv_model(**layer)
    model = unit_model(model, approx, generator, None if approx == "bitmask" else shift_start)
    x = sparse_data(generator, shape)
    qmodel = quantize(model, x, QuantConfig(unit_decisions="float"), linear_quotient="table")
    assert decision_agreement(model, qmodel, x) == {"0": 1.0, "3": 1.0}


def test_unit_decisions_option_errors():
    with pytest.raises(ValueError, match="unit_decisions"):
        QuantConfig(unit_decisions="fuzzy")
    model = nn.Sequential(nn.Flatten(), nn.Linear(36, 4))
    with pytest.raises(ValueError, match="unit_decisions='float' needs linear_quotient='table'"):
        quantize(model, torch.randn(4, 1, 6, 6), QuantConfig(unit_decisions="float"), linear_quotient="bitshift")
    assert quantize(model, torch.randn(4, 1, 6, 6), QuantConfig(unit_decisions="float")).linear_quotient == "table"
    qmodel = quantize(model, torch.randn(4, 1, 6, 6), QuantConfig(unit_decisions="float"), linear_quotient="table")
    qmodel.linear_quotient = "bitshift"
    with pytest.raises(ValueError, match="unit_decisions='float'"):
        qmodel(torch.randn(2, 1, 6, 6))


def test_percentile_activation_range(digits):
    model, calibration, _, _ = digits
    by_max = quantize(model, calibration, variant="dense")
    full = quantize(model, calibration, QuantConfig(activation_range="percentile", activation_percentile=100))
    clipped = quantize(model, calibration, QuantConfig(activation_range="percentile", activation_percentile=90))
    assert full.input_scale == by_max.input_scale and full.output_scale == by_max.output_scale
    assert clipped.input_scale < by_max.input_scale
    saturated = (quantize_input(clipped, calibration) == 127).mean()
    assert saturated > (quantize_input(by_max, calibration) == 127).mean() and 0.05 < saturated < 0.2


# ----------------------------------------------------------------------------------------
# BatchNorm folding
# ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("dims", [1, 2])
def test_batchnorm_folding_is_exact_in_float(dims):
    torch.manual_seed(0)
    conv = nn.Conv1d(2, 4, 3, padding=1) if dims == 1 else nn.Conv2d(2, 4, 3, padding=1)
    bn = nn.BatchNorm1d(4) if dims == 1 else nn.BatchNorm2d(4)
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(-2, 2)
        bn.bias.uniform_(-1, 1)
    model = nn.Sequential(conv, bn, nn.ReLU()).eval()
    shape = (5, 2, 6) if dims == 1 else (5, 2, 6, 6)
    x = torch.randn(shape)
    (layer,) = plan_model(model)
    assert layer.relu and [step.name for step in layer.steps] == ["0", "1", "2"]
    weight = torch.from_numpy(layer.weight if dims == 2 else layer.weight.squeeze(2))
    conv_fn = F.conv1d if dims == 1 else F.conv2d
    folded = torch.relu(conv_fn(x.double(), weight, torch.from_numpy(layer.bias), padding=1))
    with torch.no_grad():
        expected = model.double()(x.double())
    torch.testing.assert_close(folded, expected, rtol=0, atol=1e-12)


def test_batchnorm_folded_model_quantizes_and_scales_thresholds():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(48, 4))
    with torch.no_grad():
        model[1].running_var.copy_(torch.tensor([0.25, 1.0, 4.0]))
        model[1].weight.copy_(torch.tensor([1.0, -2.0, 0.5]))
    model.eval()
    x = torch.randn(32, 1, 6, 6)
    converted = unitprune.convert(model, UnITConfig(approx="bitshift"))
    converted[0].threshold.fill_(0.2)
    conv = plan_model(converted)[0]
    assert np.allclose(conv.threshold, 0.2 * np.array([2.0, 2.0, 0.25]) / np.sqrt(1 + 1e-5 / np.array([0.25, 1, 4])),
                       rtol=1e-6)
    qmodel = quantize(model, x, variant="dense")
    with torch.no_grad():
        expected = model(x)
    assert float((qmodel(x) - expected).abs().max()) <= 8 * qmodel.output_scale


@pytest.mark.parametrize("dims", [1, 2])
def test_maxpool_and_relu_match_torch_on_integers(dims):
    torch.manual_seed(4)
    conv, bn, pool = ((nn.Conv1d(2, 3, 3), nn.BatchNorm1d(3), nn.MaxPool1d(3, stride=2)) if dims == 1 else
                      (nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.MaxPool2d((2, 3), stride=(2, 1))))
    model = nn.Sequential(conv, bn, pool, nn.ReLU(), nn.Flatten(), nn.Dropout(), nn.Identity())
    model.eval()
    x = torch.randn((20, 2, 11) if dims == 1 else (20, 2, 9, 9))
    qmodel = quantize(model, x)
    assert [type(op).__name__ for op in qmodel.ops] == ["QConv", "QMaxPool", "QReLU", "QFlatten"]
    y_q, _, inputs = captured_inputs(qmodel, quantize_input(qmodel, x))
    pool_in = torch.from_numpy(inputs["2"][1].astype(np.float64)).reshape(20, 3, *((-1,) if dims == 1 else (7, 7)))
    pool_fn = F.max_pool1d if dims == 1 else F.max_pool2d
    expected = torch.relu(pool_fn(pool_in, pool.kernel_size, pool.stride)).flatten(1)
    assert np.array_equal(y_q, expected.numpy().astype(np.int8))
    with torch.no_grad():
        reference = model(x)
    assert float((qmodel(x) - reference).abs().max()) <= 2 * qmodel.output_scale


def _avgpool_oracle(x: np.ndarray, kernel, stride) -> np.ndarray:
    """The int8 average pool by explicit loops: round half away from zero of the window mean, as
    TFLite's (acc +- n/2) / n with C's truncating division."""
    n_, c_, h, w = x.shape
    out_h, out_w = (h - kernel[0]) // stride[0] + 1, (w - kernel[1]) // stride[1] + 1
    count = kernel[0] * kernel[1]
    y = np.empty((n_, c_, out_h, out_w), np.int64)
    for index in np.ndindex(n_, c_, out_h, out_w):
        b, c, oy, ox = index
        acc = int(x[b, c, oy * stride[0]:oy * stride[0] + kernel[0], ox * stride[1]:ox * stride[1] + kernel[1]].sum())
        magnitude = (abs(acc) + count // 2) // count
        y[index] = min(max(magnitude if acc > 0 else -magnitude, -128), 127)
    return y


@pytest.mark.parametrize("pool, dims, window", [
    (nn.AvgPool1d(3, stride=2), 1, ((1, 3), (1, 2))),
    (nn.AdaptiveAvgPool1d(1), 1, ((1, 9), (1, 9))),
    (nn.AvgPool2d((2, 3), stride=(2, 1)), 2, ((2, 3), (2, 1))),
    (nn.AdaptiveAvgPool2d(1), 2, ((7, 7), (7, 7))),
    (nn.AdaptiveAvgPool2d((None, 7)), 2, ((1, 1), (1, 1))),
], ids=["avg1d", "adaptive1d-global", "avg2d", "adaptive2d-global", "adaptive2d-none"])
def test_avgpool_matches_an_integer_oracle_and_torch(pool, dims, window):
    torch.manual_seed(5)
    conv, bn = ((nn.Conv1d(2, 3, 3), nn.BatchNorm1d(3)) if dims == 1 else (nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3)))
    model = nn.Sequential(conv, bn, pool, nn.Flatten()).eval()  # no ReLU: negative sums and ties too
    x = torch.randn((20, 2, 11) if dims == 1 else (20, 2, 9, 9))
    qmodel = quantize(model, x)
    assert [type(op).__name__ for op in qmodel.ops] == ["QConv", "QAvgPool", "QFlatten"]
    assert (qmodel.ops[1].kernel, qmodel.ops[1].stride) == window
    y_q, _, inputs = captured_inputs(qmodel, quantize_input(qmodel, x))
    pool_in = inputs["2"][1].reshape(20, 3, *((1, 9) if dims == 1 else (7, 7)))
    assert (pool_in < 0).any() and (pool_in > 0).any()
    assert np.array_equal(y_q, _avgpool_oracle(pool_in, *window).reshape(20, -1))
    # the integer pool is the float pool of the integer inputs rounded: within half a step
    float_pool = pool(torch.from_numpy(pool_in.astype(np.float64)).reshape(20, 3, -1) if dims == 1 else
                      torch.from_numpy(pool_in.astype(np.float64))).flatten(1).numpy()
    assert np.abs(y_q - float_pool).max() <= 0.5
    assert qmodel.output_scale == qmodel.ops[0].output_scale  # same scale in and out
    with torch.no_grad():
        reference = model(x)
    assert float((qmodel(x) - reference).abs().max()) <= 2 * qmodel.output_scale  # conv rounding + pool rounding


# ----------------------------------------------------------------------------------------
# FATReLU: the QThresholdReLU op
# ----------------------------------------------------------------------------------------

def test_fatrelu_on_digits_matches_a_numpy_threshold_and_the_float_model(digits):
    from unitprune.baselines.fatrelu import calibrate_fatrelu, with_fatrelu

    model, calibration, test, _ = digits
    fat = with_fatrelu(model).eval()
    thresholds = calibrate_fatrelu(fat, calibration, percentile=60)
    qmodel = quantize(fat, calibration, variant="dense")
    assert [type(op).__name__ for op in qmodel.ops] == ["QConv", "QThresholdReLU", "QMaxPool", "QFlatten", "QLinear"]
    conv, op = qmodel.ops[0], qmodel.ops[1]
    assert op.name == "relu1" and conv.requant.act_min == 0  # fused like a ReLU, then the threshold
    assert op.threshold_q == math.floor(thresholds["relu1"] / conv.output_scale) > 0
    _, _, inputs = captured_inputs(qmodel, quantize_input(qmodel, test))
    before, after = inputs["relu1"][1], inputs["pool1"][1]
    explicit = before.copy()
    explicit[before <= op.threshold_q] = 0
    np.testing.assert_array_equal(after, explicit)
    # in real units: a value survives iff s * q > theta (float64), and the threshold zeroes values ReLU keeps
    np.testing.assert_array_equal(after > 0, before.astype(np.float64) * conv.output_scale > thresholds["relu1"])
    assert int(((before > 0) & (after == 0)).sum()) > 0.3 * int((before > 0).sum())
    with torch.no_grad():
        expected = fat(test)
    actual = qmodel(test)
    # The ReLU model's rounding (test_dense_outputs_close_to_float: 2.6 output steps at most, 0.40 on
    # average) plus conv outputs within a rounding step of theta, which the integer threshold keeps and
    # the float one drops (or back): a jump of about theta * |w|. Measured: 10.2 steps at most, 0.64 on
    # average, 98.9% same argmax.
    error = (actual - expected).abs()
    assert float(error.max()) <= 14 * qmodel.output_scale
    assert float(error.mean()) <= 0.8 * qmodel.output_scale
    assert float((actual.argmax(1) == expected.argmax(1)).float().mean()) >= 0.97


def test_fatrelu_at_threshold_zero_is_exactly_the_relu_model(digits):
    from unitprune.baselines.fatrelu import with_fatrelu

    model, calibration, test, _ = digits
    relu_q, fat_q = quantize(model, calibration), quantize(with_fatrelu(model), calibration)
    assert [(type(op), op.name) for op in fat_q.ops] == [(type(op), op.name) for op in relu_q.ops]
    assert fat_q.output_scale == relu_q.output_scale and fat_q.ops[0].output_scale == relu_q.ops[0].output_scale
    x_q = quantize_input(relu_q, test)
    for variant in ("dense", "unit"):
        (y_relu, c_relu), (y_fat, c_fat) = (run_reference(q, x_q, variant=variant) for q in (relu_q, fat_q))
        np.testing.assert_array_equal(y_fat, y_relu)
        assert c_fat == c_relu


def test_standalone_fatrelu_keeps_the_scale_and_thresholds_like_numpy():
    from unitprune.baselines.fatrelu import FATReLU

    torch.manual_seed(7)
    conv = nn.Conv2d(2, 3, 3)
    model = nn.Sequential(conv, nn.MaxPool2d(2), FATReLU(0.15), nn.Flatten(), nn.Linear(3 * 3 * 3, 4)).eval()
    x = torch.randn(30, 2, 8, 8)
    qmodel = quantize(model, x, variant="dense")
    assert [type(op).__name__ for op in qmodel.ops] == ["QConv", "QMaxPool", "QThresholdReLU", "QFlatten", "QLinear"]
    scale = qmodel.ops[0].output_scale  # max-pool and the threshold keep the conv's output scale
    assert qmodel.ops[0].requant.act_min == -128 and qmodel.ops[4].input_scale == scale
    op = qmodel.ops[2]
    assert op.threshold_q == math.floor(0.15 / scale) > 0
    _, _, inputs = captured_inputs(qmodel, quantize_input(qmodel, x))
    before, after = inputs["2"][1], inputs["3"][1]
    assert (before < 0).any() and ((before > 0) & (before <= op.threshold_q)).any()
    np.testing.assert_array_equal(after, np.where(before > op.threshold_q, before, 0))
    with torch.no_grad():
        expected = model(x)
    error = (qmodel(x) - expected).abs()  # measured: 4.6 steps at most (a value near theta flips), 0.80 on average
    assert float(error.max()) <= 8 * qmodel.output_scale and float(error.mean()) <= 1.0 * qmodel.output_scale
    # threshold 0 standalone: the same integers as nn.ReLU there
    relu_model = nn.Sequential(conv, nn.MaxPool2d(2), nn.ReLU(), nn.Flatten(), model[4]).eval()
    model[2].threshold.zero_()
    zero_q, relu_q = quantize(model, x), quantize(relu_model, x)
    np.testing.assert_array_equal(run_reference(zero_q, quantize_input(zero_q, x))[0],
                                  run_reference(relu_q, quantize_input(relu_q, x))[0])


def test_fatrelu_with_a_bad_threshold_is_refused_naming_it():
    from unitprune.baselines.fatrelu import FATReLU

    model = nn.Sequential(nn.Linear(4, 4), FATReLU(0.1)).eval()
    model[1].threshold.fill_(float("nan"))
    with pytest.raises(ValueError, match="FATReLU '1' has threshold nan"):
        quantize(model, torch.randn(8, 4))


class FunctionalNet(nn.Module):
    """A user model written with functional calls (as a --model-file might be)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(12, 4)

    def forward(self, x):
        x = self.pool(F.relu(self.conv(x)))
        return self.fc(torch.flatten(x, 1)).relu()


class ReusedModules(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.fc(self.relu(self.fc(x))))


def test_a_module_called_twice_gives_steps_with_their_own_names():
    torch.manual_seed(6)
    model = ReusedModules().eval()
    x = torch.randn(32, 4)
    qmodel = quantize(model, x)
    assert [op.name for op in qmodel.ops] == ["fc", "fc#2"]
    _, counts = run_reference(qmodel, quantize_input(qmodel, x))
    assert set(counts) == {"fc", "fc#2"}
    with torch.no_grad():
        assert float((qmodel(x) - model(x)).abs().max()) <= 2 * qmodel.output_scale


def test_functional_model_equals_its_sequential_twin():
    torch.manual_seed(5)
    model = FunctionalNet().eval()
    twin = nn.Sequential(model.conv, nn.ReLU(), model.pool, nn.Flatten(), model.fc, nn.ReLU()).eval()
    x = torch.randn(16, 1, 6, 6)
    functional, sequential = quantize(model, x), quantize(twin, x)
    assert [type(op).__name__ for op in functional.ops] == ["QConv", "QMaxPool", "QFlatten", "QLinear"]
    assert functional.ops[-1].requant.act_min == 0  # the trailing .relu() is fused
    assert np.array_equal(run_reference(functional, quantize_input(functional, x))[0],
                          run_reference(sequential, quantize_input(sequential, x))[0])


# ----------------------------------------------------------------------------------------
# Errors name the layer
# ----------------------------------------------------------------------------------------

class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)

    def forward(self, x):
        return torch.cat([self.conv(x), self.conv(x)], dim=1)


class ViewFlatten(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        y = self.conv(x)
        return self.fc(y.view(y.size(0), -1))


@pytest.mark.parametrize("model, match", [
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sigmoid()), "'1' \\(Sigmoid\\)"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveMaxPool2d(1)), "'1' \\(AdaptiveMaxPool2d\\)"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.AvgPool2d(2, padding=1)), "average pool '1'.*padding"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.AvgPool2d(2, ceil_mode=True)), "average pool '1'.*ceil_mode"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.AvgPool2d(2, divisor_override=3)), "average pool '1'.*divisor_override"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(3)), "adaptive average pool '1' maps 4x4"),
    (nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect")), "'0'.*padding_mode='reflect'"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2, padding=1)), "max-pool '1'.*padding"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2, dilation=2)), "max-pool '1'.*dilation"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2, ceil_mode=True)), "max-pool '1'.*ceil_mode"),
    (nn.Sequential(nn.ReLU(), nn.BatchNorm2d(1), nn.Conv2d(1, 2, 3)), "BatchNorm '1'"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(0)), "Flatten '1'"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2, track_running_stats=False)), "BatchNorm '1'.*running"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.Linear(4, 2)), "linear layer '1'.*flat"),
    (TwoInputs(), "step 'conv'"),
    (ViewFlatten(), "'conv' is used by 2 steps \\(size, view\\)"),
])
def test_unsupported_models_name_the_module(model, match):
    with pytest.raises((ValueError, TypeError), match=match):
        quantize(model.eval(), torch.randn(4, 1, 6, 6))


def test_error_cases_name_the_layer():
    x = torch.randn(8, 1, 6, 6)
    grouped = unitprune.convert(nn.Sequential(nn.Flatten(), nn.Linear(36, 4, bias=False)),
                                UnITConfig(approx="bitshift", group_size=2))
    with pytest.raises(ValueError, match="linear layer '1' has 2 threshold groups"):
        quantize(grouped, x)
    exact = unitprune.convert(nn.Sequential(nn.Flatten(), nn.Linear(36, 4)), UnITConfig(approx="exact"))
    with pytest.raises(ValueError, match="linear_quotient='table'"):
        quantize(exact, x, linear_quotient="bitshift")
    assert quantize(exact, x).linear_quotient == "table"  # the default: the quotient approx='exact' supports
    bn = nn.BatchNorm1d(4).eval()
    with torch.no_grad():
        bn.running_var.copy_(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    linear_bn = unitprune.convert(nn.Sequential(nn.Flatten(), nn.Linear(36, 4), bn), UnITConfig(approx="bitshift"))
    linear_bn[1].threshold.fill_(0.1)
    with pytest.raises(ValueError, match="BatchNorm '2' after UnIT linear layer '1'"):
        quantize(linear_bn, x)
    model = nn.Sequential(nn.Flatten(), nn.Linear(36, 4))
    with pytest.raises(ValueError, match="NaN"):
        quantize(model, torch.full((2, 1, 6, 6), float("nan")))
    with pytest.raises(ValueError, match="empty"):
        quantize(model, torch.zeros(0, 1, 6, 6))
    # accumulator bound: weights +-1 on nearly equal inputs give a tiny output range, a large
    # requantization multiplier (left shift 17) and |acc| * 2**17 beyond int32
    overflow = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        overflow.weight.copy_(torch.tensor([[1.0, -1.0]]))
    data = torch.tensor([[1.0, 1.0 + 2.0**-23]])
    with pytest.raises(ValueError, match="layer '0'.*accumulator bound"):
        quantize(nn.Sequential(overflow), data)


def test_quantized_model_fields():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8, 3))
    x = torch.randn(16, 1, 6, 6)
    qmodel = quantize(model, x)
    assert isinstance(qmodel, QuantizedModel) and qmodel.input_shape == (1, 6, 6) and qmodel.output_shape == (3,)
    conv, linear = qmodel.ops[0], qmodel.ops[-1]
    assert conv.weight.dtype == np.int8 and conv.tau.dtype == np.uint8 and conv.requant.bias.dtype == np.int32
    assert conv.requant.act_min == 0 and linear.requant.act_min == -128
    assert np.abs(conv.weight).max() == 127 and np.abs(conv.weight.astype(int)).max(axis=(1, 2, 3)).min() == 127
    assert linear.quotient_table.shape == (129,) and linear.tree_split.dtype == np.int8
    assert np.abs(quantize_input(qmodel, x)).max() == 127
    assert np.isclose(qmodel.input_scale, float(x.abs().max()) / 127)
