"""The static-sparse int8 kernels (unit_conv2d_sparse_s8, unit_linear_sparse_s8) bit-exact against
the NumPy integer reference (unitprune.mcu.reference) in the simulators: the AVR, MSP430 and
MSP430 + hardware multiplier assembly runs (benchmarks/kernels_s8_mcu.py, measure_layers), on fixed
geometries with edge values: -128/127 inputs, -127/127 weights, padding on every side with groups,
stride and dilation (the padded border's C loop), a Conv1d shape, pointwise, fields of 341 and 350
nonzero -127 weights on -128 inputs (the AVR run's 24-bit bound, and the C run beyond it), weights
all nonzero (sparsity 0), half zero and all zero, with an all-zero output channel. The host
portable path is tested on hypothesis-drawn geometries in tests/test_sparse_s8.py."""

from __future__ import annotations

import numpy as np
import pytest

from tests.mcu_tools import corrupt_one_conv_output, load_benchmark, require_target

bench = load_benchmark("kernels_s8_mcu")
dense_bench = load_benchmark("conv_dense_s8_mcu")
EDGES = [layer for layer in dense_bench.EDGES if layer.name in ("pad_groups", "stride_dilation", "conv1d_like")]
#: AVR only: the 24-bit run's bound (341 nonzero weights per channel) and beyond it (350), pointwise.
AVR_EDGES = [layer for layer in dense_bench.EDGES if layer.name in ("bound_narrow", "bound_wide", "pointwise")]


@pytest.mark.parametrize("target", ["avr", "msp430", "msp430-hwmult"])
def test_sparse_kernels_on_the_mcu_equal_the_integer_reference(target, tmp_path):
    """Weights all nonzero (sparsity 0), half zero and all zero, output channel 0 all zero in each."""
    require_target(target)
    layers = EDGES + (AVR_EDGES if target == "avr" else [])
    result = bench.measure_layers(layers, (target,), sparsities=(0.0, 0.5, 1.0), seed=3, build_dir=tmp_path,
                                  linear_layers=(("fc_edges", 40, 5),), zero_channel=True)  # raises on a mismatch
    measured = result["builds"][target]["layers"]
    assert set(measured) == {layer.name for layer in layers} | {"fc_edges"}
    assert all(row["cycles"]["sparse"] > 0 for rows in measured.values() for row in rows.values())


def test_the_bound_layers_sit_on_each_side_of_the_avr_sparse_limit():
    """The AVR sparse run accumulates 24 bits for channels of at most 341 nonzero weights (biased
    products at most 49152) and hands longer channels to the C run: the two bound layers' channels
    hold 341 and 350 nonzero weights at sparsity 0 (channel 1; channel 0 is zeroed in the test
    above), every product -128 * -127 (biased 49024)."""
    narrow, wide = (layer for layer in AVR_EDGES if layer.name.startswith("bound_"))
    rng = np.random.default_rng(0)
    counts = [int(np.count_nonzero(dense_bench.make_op(layer, rng)[0].weight[0])) for layer in (narrow, wide)]
    assert counts == [341, 350]
    assert 341 * 49024 < 2**24 < 350 * 49024


def test_a_wrong_sparse_output_is_detected(monkeypatch, tmp_path):
    require_target("avr")
    corrupt_one_conv_output(monkeypatch, bench.reference)
    with pytest.raises(RuntimeError, match="differs from the integer reference"):
        bench.measure_layers(EDGES[:1], ("avr",), sparsities=(0.5,), build_dir=tmp_path, linear_layers=())
