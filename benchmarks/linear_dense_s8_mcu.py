"""Cycle-exact cost of the output-stationary dense int8 linear layer (``unit_linear_dense_s8``) on
AVR, MSP430 and MSP430 + hardware multiplier, checked bit for bit against the NumPy integer
reference (``unitprune.mcu.reference``).

Layers (in_features -> out_features): the MNIST demo's fc (256 -> 10) and edge geometries: one
input, an odd input count (the AVR pair loop's last single term), -128 inputs on -127 weights
everywhere (every product 16256, the accumulator at its bound), 127 on 127, all-zero weights, a ReLU
output. Each layer's region (the kernel with its requantization) is checked against the
reference; cycles per MAC are ``cycles / (in * out)``.

Usage: ``PYTHONPATH=src python benchmarks/linear_dense_s8_mcu.py [--targets avr msp430 msp430-hwmult]``
Writes ``docs/results/kernels_floor/linear_dense_s8_mcu.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import tempfile
from pathlib import Path

import numpy as np

import unitprune
from unitprune.mcu import reference, targets
from unitprune.mcu.codegen import c_array
from unitprune.mcu.qmodel import QLinear, Requant
from unitprune.mcu.quantize import quantize_multiplier

logger = logging.getLogger("linear_dense_s8_mcu")
CSRC = Path(unitprune.__file__).resolve().parent / "csrc"
RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results" / "kernels_floor"
TARGETS = ("avr", "msp430", "msp430-hwmult")


@dataclasses.dataclass(frozen=True)
class Layer:
    """``weights``: "random" (int8 [-127, 127] with edge values), "min" (every input -128, every
    weight -127), "max" (127 on 127), "zero" (every weight 0); ``relu``: act_min 0."""

    name: str
    in_features: int
    out_features: int
    weights: str = "random"
    relu: bool = False


MNIST = (Layer("fc", 256, 10),)
EDGES = (Layer("one_input", 1, 3), Layer("odd_inputs", 37, 5, relu=True), Layer("bound_min", 255, 2, "min"),
         Layer("bound_max", 64, 3, "max"), Layer("zero_weights", 9, 4, "zero"), Layer("wide_out", 12, 70))


def make_op(layer: Layer, rng: np.random.Generator) -> tuple[QLinear, np.ndarray]:
    """The layer as a QLinear with random constants, and its int8 input (1, in_features)."""
    shape = (layer.out_features, layer.in_features)
    if layer.weights == "zero":
        weight = np.zeros(shape, np.int8)
    elif layer.weights in ("min", "max"):
        weight = np.full(shape, -127 if layer.weights == "min" else 127, np.int8)
    else:
        weight = rng.integers(-127, 128, size=shape).astype(np.int8)
        edge = np.array((-127, 127, 0, 127), np.int8)[:weight.size]
        weight.reshape(-1)[:edge.size] = edge
    if layer.weights in ("min", "max"):
        x = np.full((1, layer.in_features), -128 if layer.weights == "min" else 127, np.int8)
    else:
        x = rng.integers(-128, 128, size=(1, layer.in_features)).astype(np.int8)
        edge = np.array((-128, 127), np.int8)[:x.size]
        x.reshape(-1)[:edge.size] = edge
    bound = 128 * np.abs(weight.astype(np.int64)).sum(axis=1).max() + 1000
    multiplier, shift = quantize_multiplier(100.0 / bound)
    requant = Requant(rng.integers(-1000, 1000, size=layer.out_features).astype(np.int32),
                      np.full(layer.out_features, multiplier, np.int32),
                      np.full(layer.out_features, shift, np.int8), 0 if layer.relu else -128, 127)
    empty8, empty_u8 = np.zeros(0, np.int8), np.zeros(0, np.uint8)
    op = QLinear(layer.name, layer.in_features, layer.out_features, weight, requant, 0, 0,
                 np.zeros(129, np.uint8), empty8, empty8, empty8, empty_u8, 1.0, 1.0, 1.0)
    return op, x


def firmware_source(ops: list[tuple[QLinear, np.ndarray]]) -> str:
    parts = ['#include <stdint.h>\n#include "unit_mcu.h"\n#include "unit_kernels_s8.h"\n']
    scratch = max(op.out_features for op, _ in ops)
    parts.append(f"static int32_t scratch[{scratch}];\nstatic int8_t y[{scratch}];\n"
                 f"static int8_t x[{max(x.size for _, x in ops)}];\n")
    body = []
    for index, (op, x) in enumerate(ops):
        p = f"l{index}"
        parts += [c_array("int8_t", f"{p}_x", x, flash=True),
                  c_array("int8_t", f"{p}_wt", np.ascontiguousarray(op.weight.T), flash=True),
                  c_array("int32_t", f"{p}_bias", op.requant.bias, flash=True),
                  c_array("int32_t", f"{p}_mult", op.requant.multiplier, flash=True),
                  c_array("int8_t", f"{p}_shift", op.requant.shift, flash=True)]
        body.append(f"""
    {{
        const unit_requant_s8 requant = {{{p}_bias, {p}_mult, {p}_shift, {op.requant.act_min}, 127}};
        int32_t status, i;
        int8_t code;
        for (i = 0; i < {x.size}; i++) {{
            x[i] = UNIT_READ_S8({p}_x + i);
        }}
        unit_mcu_label("{op.name}");
        UNIT_MCU_START();
        status = unit_linear_dense_s8(x, 1, {op.in_features}, {op.out_features}, {p}_wt, &requant, y, scratch, 0);
        UNIT_MCU_STOP();
        code = (int8_t)status;
        unit_mcu_emit(&code, 1);
        unit_mcu_emit(y, {op.out_features});
    }}""")
    parts.append("int main(void) {" + "".join(body) + "\n    unit_mcu_done();\n    return 0;\n}\n")
    return "\n".join(parts)


def measure(layers=MNIST, target_names=TARGETS, seed: int = 0, build_dir: Path | None = None) -> dict:
    """Builds, runs and checks every layer on every target; raises RuntimeError on any mismatch."""
    rng = np.random.default_rng(seed)
    ops = [make_op(layer, rng) for layer in layers]
    expected = {op.name: reference._linear(op, x, "dense", "table")[0].reshape(-1) for op, x in ops}
    results = {"layers": [dataclasses.asdict(layer) for layer in layers], "seed": seed, "builds": {}}
    with tempfile.TemporaryDirectory(prefix="linear_dense_s8_mcu_") as temporary:
        root = Path(build_dir or temporary)
        root.mkdir(parents=True, exist_ok=True)
        (root / "fw.c").write_text(firmware_source(ops))
        kernels = [*sorted(CSRC.glob("*_s8*.c")), *sorted(CSRC.glob("*_s8*.S"))]
        for target in target_names:
            firmware = targets.build(target, [root / "fw.c", *kernels], include_dirs=[CSRC],
                                     build_dir=root / target, opt="O2", name="linear_dense")
            regions = {region.label: region for region in targets.run(firmware, max_cycles=50_000_000).regions}
            build = {"compiler": firmware.compiler, "layers": {}}
            for op, _ in ops:
                data = np.frombuffer(regions[op.name].data, np.int8)
                if data[0] != 0 or not np.array_equal(data[1:], expected[op.name]):
                    raise RuntimeError(f"{target}: {op.name} differs from the integer reference (status {data[0]})")
                macs = op.in_features * op.out_features
                cycles = regions[op.name].cycles
                build["layers"][op.name] = {"macs": macs, "cycles": cycles, "cycles_per_mac": cycles / macs}
                logger.info("%s %s: %d cycles, %.2f cycles/MAC", target, op.name, cycles, cycles / macs)
            results["builds"][target] = build
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--targets", nargs="+", default=list(TARGETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=RESULTS / "linear_dense_s8_mcu.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    result = measure(target_names=tuple(args.targets), seed=args.seed)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
