"""The output-stationary dense int8 convolution (unit_conv2d_dense_s8: portable C run on the host,
assembly runs on AVR, MSP430 and MSP430 + hardware multiplier) bit-exact against the NumPy
integer reference (unitprune.mcu.reference) in the simulators, on fixed geometries with edge
values (benchmarks/conv_dense_s8_mcu.py: -128/127 inputs, -127/127 weights, padding on every side
with groups, stride and dilation, dilation along x (the portable loop), Conv1d shape, pointwise,
all-zero weights, and fields of 325 MACs of +-127 weights on -128/127 inputs, at the AVR 24-bit
accumulator's bound, and 350 MACs, which take the 32-bit path). The host portable path is tested
on hypothesis-drawn geometries in tests/test_kernels_s8.py."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.mcu_tools import load_benchmark, require_target





bench = load_benchmark("conv_dense_s8_mcu")


@pytest.mark.parametrize("target", ["avr", "msp430", "msp430-hwmult"])
def test_dense_conv_on_the_mcu_equals_the_integer_reference(target, tmp_path):
    require_target(target)
    result = bench.measure(bench.EDGES, (target,), seed=1, build_dir=tmp_path)  # raises on any mismatch
    layers = result["builds"][target]["layers"]
    assert set(layers) == {layer.name for layer in bench.EDGES}
    assert all(layer["cycles"] > 0 for layer in layers.values())


def test_the_bound_layers_sit_on_each_side_of_the_24_bit_limit():
    """The AVR run accumulates in 24 bits for fields of at most 341 MACs (biased products at most
    49152, so the sum stays below 2**24) and in 32 bits above. The edge layers multiply -128 by -127
    everywhere (biased product 49024): the 341-MAC field sums just below 2**24 (the narrow path at its
    bound), the 350-MAC field above it, so a 24-bit accumulator there would give a wrong output."""
    narrow, wide = (layer for layer in bench.EDGES if layer.name.startswith("bound_"))
    field = [layer.channels // layer.groups * layer.kernel[0] * layer.kernel[1] for layer in (narrow, wide)]
    assert field == [341, 350]
    assert 341 * 49024 < 2**24 < 350 * 49024


def test_a_wrong_output_is_detected(monkeypatch, tmp_path):
    require_target("avr")
    real = bench.reference._conv

    def off_by_one(op, x, variant):
        y, counts = real(op, x, variant)
        y = y.copy()
        y.reshape(-1)[0] = np.int8(y.reshape(-1)[0] ^ 1)
        return y, counts

    monkeypatch.setattr(bench.reference, "_conv", off_by_one)
    with pytest.raises(RuntimeError, match="differs from the integer reference"):
        bench.measure(bench.EDGES[:1], ("avr",), seed=1, build_dir=tmp_path)


@pytest.mark.parametrize("layer", [bench.Layer("pointwise_wide", 64, 20, 31, 3, (1, 1)),   # 64*620 > 2**15
                                   bench.Layer("many_channels", 300, 3, 4, 2, (2, 3), padding=(1, 0, 1, 1)),
                                   bench.Layer("long_row", 2, 3, 300, 2, (1, 7), stride=(1, 1))])
def test_host_runs_take_int32_skips_and_any_field_size(layer):
    """On the host (the C run, int32 descriptor fields) a channel stride beyond int16, more than 255
    channels and rows longer than 255 outputs (split into runs) are exact."""
    from unitprune.kernels import s8
    from unitprune.torch_reference import ConvGeometry

    op, x = bench.make_op(layer, np.random.default_rng(3))
    geometry = ConvGeometry(layer.kernel, layer.stride, layer.dilation, layer.padding, layer.groups)
    y, _ = s8.conv2d("dense", x, op.weight, op.requant, geometry)
    np.testing.assert_array_equal(y.reshape(-1), bench.reference._conv(op, x, "dense")[0].reshape(-1))


@pytest.mark.parametrize("signed, interior_macs, runs", [
    (bench.Layer("signed", 3, 7, 9, 2, (5, 5)), 2 * 3 * 5 * (3 * 5 * 5), 2 * 3),  # 189 inputs, 3 x 5 interior
    (bench.Layer("signed", 3, 7, 9, 3, (3, 3), groups=3), 3 * 5 * 7 * 9, 3 * 5),  # depthwise (DW3), 5 x 7
])
def test_nonnegative_inputs_take_the_unsigned_loads_on_msp430_hwmult(signed, interior_macs, runs, tmp_path):
    """MSP430+hwmult: when the whole input lies in [0, 127] (checked once per call by
    __unit_dot_nonneg_s8), the interior's 5x5 and depthwise 3x3 fields load the activations without SXT: one cycle
    per interior MAC fewer than the same geometry with signed inputs, up to the two paths'
    dispatch (within 10 cycles per run; the kernel's cycles without the output stage do not depend
    on the data). One negative input (the last, an odd byte) keeps the signed loops
    (exactly the signed cycles); every output bit-exact."""
    require_target("msp430-hwmult")
    layers = (signed, dataclasses.replace(signed, name="nonneg", inputs="nonneg"),
              dataclasses.replace(signed, name="last_negative", inputs="last_negative"))
    result = bench.measure(layers, ("msp430-hwmult",), seed=2, build_dir=tmp_path)  # raises on any mismatch
    kernel = {name: layer["cycles"] - layer["requantize_cycles"]
              for name, layer in result["builds"]["msp430-hwmult"]["layers"].items()}
    assert abs(kernel["signed"] - kernel["nonneg"] - interior_macs) <= 10 * runs
    assert kernel["last_negative"] == kernel["signed"]


#: MSP430+hwmult depthwise 3x3 (UNIT__DOT_DW3) per pass of two outputs, counted by hand from the
#: loop's instructions in mspdebug's cycle table: per output 8 MACs with the weight in a register
#: (MOV.B @r13+ 2, SXT 1, MOV r4,&MACS 4, MOV rW,&OP2 4) and one with the stacked weight (MOV @r1,&OP2
#: 5), two row skips (ADD r8,r13: 1 each), the next-field skip (ADD 2(r1),r13: 3), RESLO/RESHI stored
#: (6 each); per pass ADD #8,r12 (2), CMP 4(r1),r12 (3), JNE (2). Without the SXT: 9 cycles less per output.
DW3_PASS = {"random": 2 * (8 * 11 + 12 + 2 + 3 + 12) + 7, "nonneg": 2 * (8 * 10 + 11 + 2 + 3 + 12) + 7}


@pytest.mark.parametrize("inputs", ["random", "nonneg"])
def test_the_hwmult_depthwise_run_costs_its_hand_counted_pass(inputs, tmp_path):
    """Two depthwise 3x3 layers whose interiors differ by 2 outputs per row (10 and 12 columns,
    4 rows, 2 channels): the assembly runs alone (the benchmark's accumulate region, same calls)
    differ by exactly one pass of two outputs per run; an odd interior (11 columns: the run enters
    at a pass's second output) costs between the two. The whole layer stays bit-exact (measure raises
    on any mismatch) and the MNIST-sized layer's accumulation is below issue 19's 15 cycles per MAC."""
    require_target("msp430-hwmult")
    layers = tuple(bench.Layer(f"dw{width}", 2, 6, width, 2, (3, 3), groups=2, inputs=inputs)
                   for width in (12, 13, 14))
    result = bench.measure(layers, ("msp430-hwmult",), seed=4, build_dir=tmp_path)
    built = result["builds"]["msp430-hwmult"]["layers"]
    accumulate = {name: round(layer["floor_style_accumulation_cycles_per_mac"] * 2 * 4 * (layer_width - 2) * 9)
                  for (name, layer), layer_width in zip(built.items(), (12, 13, 14))}
    runs = 2 * 4
    assert accumulate["dw14"] - accumulate["dw12"] == runs * DW3_PASS[inputs]
    assert accumulate["dw12"] < accumulate["dw13"] < accumulate["dw14"]
    mnist = bench.measure((dataclasses.replace(bench.MNIST[2], inputs=inputs),), ("msp430-hwmult",), seed=0,
                          build_dir=tmp_path / "mnist")
    assert mnist["builds"]["msp430-hwmult"]["layers"]["depthwise3x3"]["floor_style_accumulation_cycles_per_mac"] < 15
