"""``run_fast`` equals the integer reference bit for bit: outputs and every MAC counter, on every
variant, linear quotient, UnIT conv kernel and conv geometry (the oracle: ``run_reference``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from unitprune.mcu.fast_reference import requantize_fast, run_fast
from unitprune.mcu.qmodel import QAvgPool, QFlatten, QThresholdReLU, QuantizedModel
from unitprune.mcu.reference import requantize, run_reference

from . import qmodels


def _assert_same(qmodel: QuantizedModel, x_q: np.ndarray, variant: str | None = None) -> None:
    expected, expected_counts = run_reference(qmodel, x_q, variant=variant)
    got, got_counts = run_fast(qmodel, x_q, variant=variant)
    assert got.dtype == np.int8 and np.array_equal(got, expected)
    assert got_counts == expected_counts


@pytest.mark.parametrize("variant", ["dense", "zeroskip", "unit"])
@pytest.mark.parametrize("linear_quotient", ["bitshift", "bintree", "table"])
def test_mnist_shaped_model_every_variant(variant, linear_quotient):
    rng = np.random.default_rng(3)
    qmodel = qmodels.mnist_like(rng, variant=variant, linear_quotient=linear_quotient)
    conv1 = qmodel.ops[0]
    x_q = qmodels.random_input(rng, 7, qmodel.input_shape, boundary=np.unique(conv1.tau)[:20])
    _assert_same(qmodel, x_q)
    # the linear skip test's edge |w| == t_i
    fc = qmodels.boundary_weights(rng, qmodel.ops[-1])
    _assert_same(dataclasses.replace(qmodel, ops=[*qmodel.ops[:-1], fc]), x_q)


@pytest.mark.parametrize("unit_kernel", ["unit", "skipfree", "sparse", "dense"])
def test_unit_conv_kernels(unit_kernel):
    """Every conv kernel of the plan (their compares differ: the list kernels count what they visit),
    with the early-exit linear kernel (compares = its walk) beside the list kernels."""
    rng = np.random.default_rng(5)
    qmodel = qmodels.mnist_like(rng)
    linear = "sorted" if unit_kernel in ("skipfree", "sparse") else "unit"
    ops = [dataclasses.replace(op, unit_kernel=unit_kernel) if i in (0, 2) else op for i, op in enumerate(qmodel.ops)]
    ops[-1] = dataclasses.replace(ops[-1], unit_kernel=linear)
    qmodel = dataclasses.replace(qmodel, ops=ops)
    x_q = qmodels.random_input(rng, 4, qmodel.input_shape, boundary=np.unique(ops[0].tau)[:20])
    _assert_same(qmodel, x_q)


@pytest.mark.parametrize("geometry", [
    dict(kernel=(3, 3), stride=(2, 1), padding=(1, 0, 2, 1)),
    dict(kernel=(3, 2), dilation=(2, 3), padding=(2, 2, 1, 1)),
    dict(kernel=(3, 3), stride=(2, 2), dilation=(1, 2), padding=(1, 1, 1, 1), groups=2),
    dict(kernel=(1, 5), padding=(0, 0, 2, 2), conv1d=True),
])
@pytest.mark.parametrize("variant", ["zeroskip", "unit"])
def test_conv_geometries_with_fatrelu_and_avgpool(geometry, variant):
    rng = np.random.default_rng(11)
    in_shape = (4, 1, 17) if geometry.get("conv1d") else (4, 9, 11)
    conv = qmodels.conv(rng, "conv", in_shape, 6, sparsity=0.4, relu=False, **geometry)
    c, h, w = qmodels.output_shape(conv)
    pool = QAvgPool(name="pool", channels=c, in_height=h, in_width=w, kernel=(1, 2), stride=(1, 2), out_height=h,
                    out_width=w // 2)
    size = c * h * (w // 2)
    ops = [conv, QThresholdReLU("fat", c * h * w, 9), pool, QFlatten("flatten", size), qmodels.linear(rng, "fc", size, 5)]
    qmodel = QuantizedModel(ops=ops, input_shape=in_shape, input_scale=1.0, output_scale=1.0, variant=variant)
    x_q = qmodels.random_input(rng, 5, in_shape, boundary=np.unique(conv.tau)[:20])
    _assert_same(qmodel, x_q)


def test_wide_linear_runs_in_float64_exactly():
    """A linear layer whose sums leave float32's exact range (7,616 inputs, as the KWS model's): large
    products of one sign push every sum near 10**8 > 2**24; the bias cancels all but a few units of
    sample 0's sums, so its int8 outputs show their last bits (float32 sums would round them)."""
    rng = np.random.default_rng(2)
    fc = qmodels.linear(rng, "fc", 7616, 3, sparsity=0.0, threshold_q=0)
    weight = rng.integers(90, 128, (3, 7616)).astype(np.int8)
    x_q = rng.integers(90, 128, (2, 7616)).astype(np.int8)
    sums = weight.astype(np.int64) @ x_q[0].astype(np.int64)
    requant = dataclasses.replace(fc.requant, bias=(np.array([64, 65, 3]) - sums).astype(np.int32),
                                  multiplier=np.full(3, 1 << 30, np.int32), shift=np.full(3, 1, np.int8))
    fc = dataclasses.replace(fc, weight=weight, requant=requant)
    qmodel = QuantizedModel(ops=[fc], input_shape=(7616,), input_scale=1.0, output_scale=1.0, variant="dense")
    _assert_same(qmodel, x_q)
    assert run_fast(qmodel, x_q)[0][0].tolist() == [64, 65, 3]


def test_requantize_fast_equals_the_reference():
    rng = np.random.default_rng(0)
    acc = rng.integers(-(2**31), 2**31, (50, 8), dtype=np.int64)
    multiplier = rng.integers(1 << 30, 2**31, (1, 8), dtype=np.int64)
    shift = rng.integers(-31, 1, (1, 8), dtype=np.int64)
    assert np.array_equal(requantize_fast(acc, multiplier, shift), requantize(acc, multiplier, shift))
    small = rng.integers(-(2**20), 2**20, (50, 8), dtype=np.int64)
    shift = rng.integers(-31, 11, (1, 8), dtype=np.int64)
    assert np.array_equal(requantize_fast(small, multiplier, shift), requantize(small, multiplier, shift))
    edges = np.array([[-(2**31), 2**31 - 1, -1, 0, 1, -(2**30), 2**30]], dtype=np.int64).T
    for m in (1 << 30, 2**31 - 1, -(2**31)):
        for s in (0, -1, -31):
            assert np.array_equal(requantize_fast(edges, m, s), requantize(edges, m, s)), (m, s)
    with pytest.raises(OverflowError):
        requantize_fast(np.array([2**31]), 1 << 30, 0)
    with pytest.raises(OverflowError):
        requantize_fast(np.array([2**30]), 1 << 30, 2)
