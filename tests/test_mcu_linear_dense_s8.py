"""The output-stationary dense int8 linear layer (unit_linear_dense_s8: the C loop on the host, the
assembly dot products on AVR, MSP430 and MSP430 + hardware multiplier) bit-exact against the NumPy
integer reference in the simulators (benchmarks/linear_dense_s8_mcu.py: one input, an odd input
count, -128 inputs on -127 weights and 127 on 127 everywhere (the accumulator at its bound), all-zero
weights, a ReLU output, more outputs than inputs, and the MNIST demo's fc)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.mcu_tools import load_benchmark, require_target

bench = load_benchmark("linear_dense_s8_mcu")


@pytest.mark.parametrize("target", ["avr", "msp430", "msp430-hwmult"])
def test_dense_linear_on_the_mcu_equals_the_integer_reference(target, tmp_path):
    require_target(target)
    result = bench.measure(bench.MNIST + bench.EDGES, (target,), seed=1, build_dir=tmp_path)  # raises on a mismatch
    layers = result["builds"][target]["layers"]
    assert set(layers) == {layer.name for layer in bench.MNIST + bench.EDGES}
    # the MNIST fc (2,560 MACs with its 10 requantizations) in the output-stationary loop
    assert layers["fc"]["cycles_per_mac"] < {"avr": 18, "msp430": 29, "msp430-hwmult": 23}[target]


def test_the_host_loop_equals_the_reference():
    from unitprune.kernels import s8

    for layer in bench.MNIST + bench.EDGES:
        op, x = bench.make_op(layer, np.random.default_rng(2))
        y, _ = s8.linear("dense", x, op.weight, op.requant)
        np.testing.assert_array_equal(y.reshape(-1), bench.reference._linear(op, x, "dense", "table")[0].reshape(-1))


def test_a_wrong_output_is_detected(monkeypatch, tmp_path):
    require_target("avr")
    real = bench.reference._linear

    def off_by_one(op, x, variant, method):
        y, counts = real(op, x, variant, method)
        y = y.copy()
        y.reshape(-1)[0] = np.int8(y.reshape(-1)[0] ^ 1)
        return y, counts

    monkeypatch.setattr(bench.reference, "_linear", off_by_one)
    with pytest.raises(RuntimeError, match="differs from the integer reference"):
        bench.measure(bench.EDGES[:1], ("avr",), seed=1, build_dir=tmp_path)
