"""The static-sparse convolution's cost per output in the simulators (issue 19: the TTP model's bound
is the kernel's per-output cost): on AVR and MSP430 its outputs go through the dense kernels' run
output stage (UNIT__REQUANTIZE_RUN, set up once per output channel and call) and the interiors of
the rows whose kernel rows all lie inside the input are one loop per channel
(csrc/unit_conv2d_sparse_s8.c). Exact cycle counts of a small layer at two weight sparsities, every
output checked against the NumPy integer reference (benchmarks/kernels_s8_mcu.py raises on a
mismatch), and the part of each layer's cycles that does not scale with the kept MACs (the two
points' line at zero kept MACs, per output), which the per-output requantization and per-row C
set-up dominated. Measured before this output stage (the general requantization routine per output
on AVR, the C requantization on MSP430, the run's set-up per row in C), the same layer took AVR
432,382 / 287,594 cycles, MSP430 868,183 / 561,157, MSP430 + hwmult 569,666 / 367,922 (50 % / 90 %
of the weights zero), 274.4 / 531.2 / 348.2 cycles per output at zero kept MACs; the dense kernel on
the same layer (its output stage included) takes 449,549 / 924,048 / 517,385."""

from __future__ import annotations

import pytest

from tests.mcu_tools import load_benchmark, require_target

bench = load_benchmark("kernels_s8_mcu")
dense_bench = load_benchmark("conv_dense_s8_mcu")
#: 4 output channels x 10 rows x 24 outputs (conv1's row width), 5x5, no padding: every output in a
#: row interior (random int8 inputs and weights, requantization without a ReLU: the fast form's
#: multiply on every output).
LAYER = dense_bench.Layer("outstage", 1, 14, 28, 4, (5, 5))
OUTPUTS = 4 * 10 * 24
SPARSITIES = (0.5, 0.9)
#: Exact cycles of unit_conv2d_sparse_s8 per target at SPARSITIES (seed 0), and its cycles per
#: output at zero kept MACs (the line through the two points).
CYCLES = {"avr": (316449, 171215), "msp430": (763397, 454531), "msp430-hwmult": (407648, 204408)}
PER_OUTPUT = {"avr": 153.13, "msp430": 419.85, "msp430-hwmult": 177.64}


@pytest.mark.parametrize("target", ["avr", "msp430", "msp430-hwmult"])
def test_the_sparse_convolution_pays_the_dense_output_stage_per_output(target, tmp_path):
    require_target(target)
    result = bench.measure_layers([LAYER], (target,), sparsities=SPARSITIES, seed=0, build_dir=tmp_path,
                                  linear_layers=())  # raises on a mismatch
    rows = result["builds"][target]["layers"]["outstage"]
    kept = [result["layers"]["outstage"]["sparsity"][label]["nonzero_macs"] for label in rows]
    cycles = tuple(row["cycles"]["sparse"] for row in rows.values())
    assert cycles == CYCLES[target]
    slope = (cycles[0] - cycles[1]) / (kept[0] - kept[1])
    per_output = (cycles[0] - slope * kept[0]) / OUTPUTS
    assert per_output == pytest.approx(PER_OUTPUT[target], abs=0.05)
