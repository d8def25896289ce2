"""Cycle-exact cost of the output-stationary dense int8 convolution (``unit_conv2d_dense_s8``) on
AVR, MSP430 and MSP430 + hardware multiplier, per layer, checked bit for bit against the NumPy
integer reference (``unitprune.mcu.reference``).

For each layer of a list (default: the MNIST demo's conv1 1x28x28 -> 6x24x24 5x5 and conv2
6x12x12 -> 16x8x8 5x5, and a depthwise 3x3 8x12x12 layer with padding 1), random int8 inputs
and weights (edge values included) are written as a firmware (``kernels/`` of the library:
every ``*_s8*.c`` and the AVR ``.S``; the MSP430 routines come with the target's runtime), built
by ``unitprune.mcu.targets`` and run in simavr / mspdebug. Each layer's region is checked against
the reference; a second measurement requantizes the same accumulators alone (the kernels' output
stage: per output channel ``unit__requant_run_init_s8`` and a run per output row, timed per channel),
so that the accumulation cycles per MAC are ``(conv - requantization) / MACs``.

Usage: ``PYTHONPATH=src python benchmarks/conv_dense_s8_mcu.py [--targets avr msp430 msp430-hwmult]``
Writes ``docs/results/kernels_floor/conv_dense_s8_mcu.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import platform
import tempfile
from pathlib import Path

import numpy as np

import unitprune
from unitprune.mcu import reference, targets
from unitprune.mcu.codegen import c_array
from unitprune.mcu.qmodel import QConv, Requant
from unitprune.mcu.quantize import quantize_multiplier

logger = logging.getLogger("conv_dense_s8_mcu")
CSRC = Path(unitprune.__file__).resolve().parent / "csrc"
RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results" / "kernels_floor"
TARGETS = ("avr", "msp430", "msp430-hwmult")


@dataclasses.dataclass(frozen=True)
class Layer:
    """One convolution: input (C, H, W), output channels, kernel, stride, dilation, padding, groups;
    ``weights``: "random" (int8 [-127, 127] with edge values), "max" (every weight -127, every
    input -128: the accumulator at its bound), "zero" (every weight 0); ``inputs``: "random" (int8
    with -128 and 127), "nonneg" (in [0, 127] with 0 and 127, as after a ReLU or the demo's
    normalised pixels: MSP430+hwmult's unsigned-load loops), "last_negative" (the same with the
    last input -1: the input check must see it and take the signed loops)."""

    name: str
    channels: int
    height: int
    width: int
    out_channels: int
    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    groups: int = 1
    weights: str = "random"
    inputs: str = "random"


MNIST = (Layer("conv1", 1, 28, 28, 6, (5, 5)), Layer("conv2", 6, 12, 12, 16, (5, 5)),
         Layer("depthwise3x3", 8, 12, 12, 8, (3, 3), padding=(1, 1, 1, 1), groups=8))
#: conv1 and conv2 with the demo model's inputs (normalised pixels and pooled ReLU outputs, all in
#: [0, 127]: the MSP430 unsigned-load loops) and the depthwise layer after a ReLU; measured by
#: main() after MNIST, in a firmware of their own.
MNIST_NONNEG = (Layer("conv1_nonneg", 1, 28, 28, 6, (5, 5), inputs="nonneg"),
                Layer("conv2_nonneg", 6, 12, 12, 16, (5, 5), inputs="nonneg"),
                Layer("depthwise3x3_nonneg", 8, 12, 12, 8, (3, 3), padding=(1, 1, 1, 1), groups=8, inputs="nonneg"))
#: Geometries with edge values for the bit-exactness tests (small: a few thousand MACs each).
EDGES = (Layer("pad_groups", 4, 7, 9, 4, (3, 3), padding=(1, 2, 2, 1), groups=2),
         Layer("stride_dilation", 3, 9, 11, 2, (3, 5), stride=(2, 2), dilation=(2, 1), padding=(1, 0, 3, 1)),
         Layer("dilation_x", 2, 6, 12, 3, (2, 3), dilation=(1, 2), padding=(0, 0, 1, 1)),
         Layer("conv1d_like", 3, 1, 30, 4, (1, 5), stride=(1, 2), padding=(0, 0, 2, 2)),
         # fields of products 16256 (biased 49024): 341 MACs sum to 16.72 M < 2**24 (the 24-bit path's limit),
         # 350 MACs to 17.16 M, which only the 32-bit path holds
         Layer("bound_narrow", 11, 2, 33, 2, (1, 31), weights="max"),
         Layer("bound_wide", 14, 5, 5, 2, (5, 5), weights="max"),
         Layer("zero_weights", 3, 6, 6, 2, (3, 3), weights="zero"),
         Layer("pointwise", 20, 4, 4, 3, (1, 1)),
         Layer("nonneg_5x5", 3, 8, 9, 2, (5, 5), padding=(1, 0, 0, 1), inputs="nonneg"),
         Layer("nonneg_3x3", 2, 6, 7, 3, (3, 3), inputs="nonneg"),
         Layer("last_negative", 1, 7, 7, 2, (3, 3), inputs="last_negative"))  # 49 inputs: the odd last byte


def out_size(layer: Layer) -> tuple[int, int]:
    (kh, kw), (sy, sx), (dy, dx) = layer.kernel, layer.stride, layer.dilation
    top, bottom, left, right = layer.padding
    return ((layer.height + top + bottom - dy * (kh - 1) - 1) // sy + 1,
            (layer.width + left + right - dx * (kw - 1) - 1) // sx + 1)


def make_op(layer: Layer, rng: np.random.Generator) -> tuple[QConv, np.ndarray]:
    """The layer as a QConv with random constants, and its int8 input (1, C, H, W)."""
    group_in = layer.channels // layer.groups
    shape = (layer.out_channels, group_in, *layer.kernel)
    if layer.weights == "zero":
        weight = np.zeros(shape, np.int8)
    elif layer.weights == "max":  # every product 16256: the accumulator at its bound
        weight = np.full(shape, -127, np.int8)
    else:
        weight = rng.integers(-127, 128, size=shape).astype(np.int8)
        weight.reshape(-1)[:4] = (-127, 127, 0, 127)
    if layer.weights == "max":
        x = np.full((1, layer.channels, layer.height, layer.width), -128, np.int8)
    elif layer.inputs == "random":
        x = rng.integers(-128, 128, size=(1, layer.channels, layer.height, layer.width)).astype(np.int8)
        x.reshape(-1)[:2] = (-128, 127)
    else:
        x = rng.integers(0, 128, size=(1, layer.channels, layer.height, layer.width)).astype(np.int8)
        x.reshape(-1)[:2] = (127, 0)
        if layer.inputs == "last_negative":
            x.reshape(-1)[-1] = -1
    oh, ow = out_size(layer)
    bound = 128 * np.abs(weight.astype(np.int64)).reshape(layer.out_channels, -1).sum(axis=1).max() + 1000
    multiplier, shift = quantize_multiplier(100.0 / bound)
    requant = Requant(rng.integers(-1000, 1000, size=layer.out_channels).astype(np.int32),
                      np.full(layer.out_channels, multiplier, np.int32),
                      np.full(layer.out_channels, shift, np.int8), -128, 127)
    op = QConv(layer.name, layer.channels, layer.height, layer.width, layer.out_channels, *layer.kernel,
               layer.stride, layer.dilation, layer.padding, layer.groups, oh, ow, weight, requant,
               np.zeros(layer.out_channels, np.int64), np.full(shape, 255, np.uint8), 1.0, 1.0,
               np.ones(layer.out_channels))
    return op, x


def accumulators(op: QConv, x: np.ndarray) -> np.ndarray:
    """bias + sum x*w per output, int64 (O, OH*OW), from the reference's im2col."""
    columns = reference.conv_columns(op, x)[0]  # (groups, taps, positions)
    per_group = op.out_channels // op.groups
    acc = np.concatenate([op.weight[g * per_group:(g + 1) * per_group].reshape(per_group, -1).astype(np.int64)
                          @ columns[g] for g in range(op.groups)])
    return acc + op.requant.bias.astype(np.int64)[:, None]


def sparse_regions(op: QConv, prefix: str, sparse: dict) -> str:
    """C of the zero-skipping kernel's regions on the pruned copies of ``op``'s weights."""
    text = []
    for label in sparse.get(op.name, {}):
        text.append(f"""unit_mcu_label("{op.name}:zeroskip_{label}");
        UNIT_MCU_START();
        status = unit_conv2d_zeroskip_s8(&params, x, {prefix}_w_{label}, &requant, y, scratch, 0);
        UNIT_MCU_STOP();
        code = (int8_t)status;
        unit_mcu_emit(&code, 1);
        unit_mcu_emit(y, {op.out_channels * op.out_height * op.out_width});""")
    return "\n        ".join(text)


def interior(op: QConv) -> tuple[tuple[int, int], tuple[int, int]]:
    """Output rows and columns whose receptive field lies wholly inside the input: ((oy0, oy1), (ox0, ox1))."""
    def span(size, kernel, stride, dilation, pad_before, out):
        first = -(-pad_before // stride)
        last = (size - 1 + pad_before - (kernel - 1) * dilation) // stride + 1
        return first, min(max(last, first), out)
    return (span(op.in_height, op.kernel_height, op.stride[0], op.dilation[0], op.padding[0], op.out_height),
            span(op.in_width, op.kernel_width, op.stride[1], op.dilation[1], op.padding[2], op.out_width))


def pruned(op: QConv, sparsity: float, seed: int) -> QConv:
    """``op`` with a random ``sparsity`` fraction of its weights zeroed (as TTP's pruned layers)."""
    rng = np.random.default_rng(seed)
    weight = np.where(rng.random(op.weight.shape) < sparsity, 0, op.weight).astype(np.int8)
    return dataclasses.replace(op, weight=weight)


def firmware_source(ops: list[tuple[QConv, np.ndarray]], sparse: dict | None = None) -> str:
    """main(): per layer a region running unit_conv2d_dense_s8 (output emitted with its status), then
    the layer's accumulators requantized by the kernels' output stage (on the MCUs one region per
    output channel, ``<name>:requantize``: the channel's constants, then a run per output row;
    on hosts the C clamp path)."""
    parts = ['#include <stdint.h>\n#include "unit_mcu.h"\n#include "unit_internal_dot_s8.h"\n'
             '#include "unit_internal_requant_s8.h"\n']
    body = []
    scratch = max(4 * op.out_width for op, _ in ops)  # block_rows = 1: the kernel needs one output row
    outputs = max(op.out_channels * op.out_height * op.out_width for op, _ in ops)
    inputs = max(x.size for _, x in ops)
    parts.append(f"static int32_t scratch[{scratch // 4}];\nstatic int8_t y[{outputs}];\nstatic int8_t x[{inputs}];\n")
    plane = max(op.out_height * op.out_width for op, _ in ops)
    parts.append(f"#if UNIT__DOT_ASM\nstatic int32_t channel_acc[{plane}];\nstatic unit__requant_run_s8 store;\n#endif\n")
    for index, (op, x) in enumerate(ops):
        p = f"l{index}"
        acc = accumulators(op, x).reshape(-1)
        for label, sparse_op in (sparse or {}).get(op.name, {}).items():
            parts.append(c_array("int8_t", f"{p}_w_{label}", sparse_op.weight, flash=True))
        parts += [c_array("int8_t", f"{p}_x", x, flash=True),
                  c_array("int8_t", f"{p}_w", op.weight, flash=True),
                  c_array("int32_t", f"{p}_bias", op.requant.bias, flash=True),
                  c_array("int32_t", f"{p}_mult", op.requant.multiplier, flash=True),
                  c_array("int8_t", f"{p}_shift", op.requant.shift, flash=True),
                  c_array("int32_t", f"{p}_acc", acc, flash=True)]
        top, bottom, left, right = op.padding
        rows, inner = interior(op)
        body.append(f"""
    {{
        const unit_conv2d_params params = {{1, {op.in_channels}, {op.in_height}, {op.in_width}, {op.out_channels},
            {op.kernel_height}, {op.kernel_width}, {op.stride[0]}, {op.stride[1]}, {op.dilation[0]}, {op.dilation[1]},
            {top}, {bottom}, {left}, {right}, {op.groups}, 1}};
        const unit_requant_s8 requant = {{{p}_bias, {p}_mult, {p}_shift, -128, 127}};
        int32_t status, i;
        int8_t code;
        for (i = 0; i < {x.size}; i++) {{
            x[i] = UNIT_READ_S8({p}_x + i);
        }}
        unit_mcu_label("{op.name}");
        UNIT_MCU_START();
        status = unit_conv2d_dense_s8(&params, x, {p}_w, &requant, y, scratch, 0);
        UNIT_MCU_STOP();
        code = (int8_t)status;
        unit_mcu_emit(&code, 1);
        unit_mcu_emit(y, {acc.size});
#if UNIT__DOT_ASM
        {{  /* the accumulation alone: the assembly runs over the outputs whose field is whole */
            const int16_t group_in = {op.in_channels // op.groups}, plane = {op.in_height * op.in_width};
            unit__dot_run_s8 r = {{0, group_in, {op.kernel_height}, {op.kernel_width},
                (int16_t)({op.dilation[0] * op.in_width} - {op.kernel_width}),
                (int16_t)(plane - {op.kernel_height * op.dilation[0] * op.in_width}),
                (int16_t)({op.stride[1]} - group_in * plane), 0, 0, 0}};
            int16_t o, oy;
            r.count = {inner[1] - inner[0]};
            r.mode = unit__dot_mode_s8(&r);
#if defined(__MSP430__)
            if (__unit_dot_nonneg_s8(x, {x.size})) {{  /* as unit_conv2d_dense_s8, once per call */
                r.mode |= UNIT__DOT_NONNEG;
            }}
#endif
            unit_mcu_label("{op.name}:accumulate");
            UNIT_MCU_START();
            for (o = 0; o < {op.out_channels}; o++) {{
                for (oy = {rows[0]}; oy < {rows[1]}; oy++) {{
                    UNIT__DOT_RUN(scratch, x + (o / {op.out_channels // op.groups}) * group_in * plane +
                                  (oy * {op.stride[0]} - {top}) * {op.in_width} + {inner[0] * op.stride[1] - left},
                                  {p}_w + o * {op.weight[0].size}, &r);
                }}
            }}
            UNIT_MCU_STOP();
        }}
#endif
        {sparse_regions(op, p, sparse or {{}})}
#if UNIT__DOT_ASM
        {{  /* the kernels' output stage: per output channel its constants once, then a run per output row */
            int16_t o, oy, k;
            for (o = 0; o < {op.out_channels}; o++) {{
                for (k = 0; k < {op.out_height * op.out_width}; k++) {{
                    channel_acc[k] = unit__dot_value_s8(0, UNIT_READ_S32({p}_acc + o * {op.out_height * op.out_width} + k));
                }}
                unit_mcu_label("{op.name}:requantize");  /* a record per channel, summed by the host */
                UNIT_MCU_START();
                unit__requant_run_init_s8(&store, UNIT_READ_S32({p}_mult + o), UNIT_READ_S8({p}_shift + o), -128, 127);
                for (oy = 0; oy < {op.out_height}; oy++) {{
                    UNIT__REQUANTIZE_RUN(y + o * {op.out_height * op.out_width} + oy * {op.out_width},
                                         channel_acc + oy * {op.out_width}, {op.out_width}, &store);
                }}
                UNIT_MCU_STOP();
            }}
            unit_mcu_emit(y, {acc.size});
        }}
#else
        unit_mcu_label("{op.name}:requantize");
        UNIT_MCU_START();
        for (i = 0; i < {acc.size}; i++) {{
            y[i] = unit__requantize_clamp_s8(UNIT_READ_S32({p}_acc + i), {op.requant.multiplier[0]}L,
                                             {int(op.requant.shift[0])}, -128, 127);
        }}
        UNIT_MCU_STOP();
        unit_mcu_emit(y, {acc.size});
#endif
    }}""")
    parts.append("int main(void) {" + "".join(body) + "\n    unit_mcu_done();\n    return 0;\n}\n")
    return "\n".join(parts)


def machine() -> dict[str, str]:
    """CPU and Python of the machine that ran the simulators (cycle counts do not depend on it)."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine()) if Path("/proc/cpuinfo").exists() else \
        platform.machine()
    return {"cpu": cpu, "python": platform.python_version(), "unitprune": unitprune.__version__}


def measure(layers=MNIST, target_names=TARGETS, seed: int = 0, build_dir: Path | None = None,
            opt: str = "O2", defines: dict | None = None, sparsities: tuple[float, ...] = ()) -> dict:
    """Builds, runs and checks every layer on every target; raises RuntimeError on any mismatch.
    ``sparsities``: also run the zero-skipping kernel on copies of each layer with that fraction of
    the weights zeroed (labelled by percent)."""
    rng = np.random.default_rng(seed)
    ops = [make_op(layer, rng) for layer in layers]
    expected = {op.name: reference._conv(op, x, "dense")[0].reshape(-1) for op, x in ops}
    sparse = {op.name: {f"{round(100 * f)}": pruned(op, f, seed + i) for i, f in enumerate(sparsities)}
              for op, _ in ops}
    for op, x in ops:
        for label, sparse_op in sparse[op.name].items():
            expected[f"{op.name}:zeroskip_{label}"] = reference._conv(sparse_op, x, "zeroskip")[0].reshape(-1)
    results = {"layers": [dataclasses.asdict(layer) for layer in layers], "seed": seed, "machine": machine(),
               "builds": {}}
    with tempfile.TemporaryDirectory(prefix="conv_dense_s8_mcu_") as temporary:
        root = Path(build_dir or temporary)
        root.mkdir(parents=True, exist_ok=True)
        kernels = [*sorted(CSRC.glob("*_s8*.c")), *sorted(CSRC.glob("*_s8*.S"))]
        # one firmware per group of layers: with the pruned copies, one firmware per layer (flash)
        groups = [[item] for item in ops] if sparsities else [ops]
        for index, group in enumerate(groups):
            (root / f"fw{index}.c").write_text(firmware_source(group, sparse))
        for target in target_names:
            regions, requantize_cycles = {}, {}
            for index in range(len(groups)):
                firmware = targets.build(target, [root / f"fw{index}.c", *kernels], include_dirs=[CSRC],
                                         build_dir=root / f"{target}-{index}", opt=opt, name="conv_dense",
                                         defines=defines)
                run = targets.run(firmware, max_cycles=200_000_000)
                regions.update({region.label: region for region in run.regions})
                for region in run.regions:  # the output stage: one region per output channel on the MCUs
                    if region.label.endswith(":requantize"):
                        requantize_cycles[region.label] = requantize_cycles.get(region.label, 0) + region.cycles
            build = {"compiler": firmware.compiler, "tools": targets.check_tools(target), "layers": {}}
            for op, _ in ops:
                data = np.frombuffer(regions[op.name].data, np.int8)
                if data[0] != 0 or not np.array_equal(data[1:], expected[op.name]):
                    bad = int(np.count_nonzero(data[1:] != expected[op.name])) if data.size > 1 else -1
                    raise RuntimeError(f"{target}: {op.name} differs from the integer reference (status {data[0]}, "
                                       f"{bad} outputs differ)")
                requantized = np.frombuffer(regions[f"{op.name}:requantize"].data, np.int8)
                if not np.array_equal(requantized, expected[op.name]):
                    raise RuntimeError(f"{target}: {op.name}: the output stage's requantization differs from the "
                                       "integer reference")
                macs = int(op.out_channels * op.out_height * op.out_width * op.weight[0].size)
                outputs = op.out_channels * op.out_height * op.out_width
                cycles, requant = regions[op.name].cycles, requantize_cycles[f"{op.name}:requantize"]
                cycles_dense = cycles
                (oy0, oy1), (ox0, ox1) = interior(op)
                accumulate = regions.get(f"{op.name}:accumulate")
                inner_macs = op.out_channels * (oy1 - oy0) * (ox1 - ox0) * op.weight[0].size
                for label, sparse_op in sparse[op.name].items():
                    key = f"{op.name}:zeroskip_{label}"
                    data = np.frombuffer(regions[key].data, np.int8)
                    if data[0] != 0 or not np.array_equal(data[1:], expected[key]):
                        raise RuntimeError(f"{target}: {key} differs from the integer reference")
                    nonzero = int(np.count_nonzero(sparse_op.weight))
                    build.setdefault("zeroskip", {})[key] = {
                        "weight_sparsity": 1 - nonzero / sparse_op.weight.size, "cycles": regions[key].cycles,
                        "cycles_per_dense_mac": regions[key].cycles / macs,
                        "speedup_over_new_dense": cycles_dense / regions[key].cycles}
                build["layers"][op.name] = {
                    "floor_style_accumulation_cycles_per_mac":
                        accumulate.cycles / inner_macs if accumulate is not None and inner_macs else None,
                    "macs": macs, "outputs": outputs, "cycles": cycles, "requantize_cycles": requant,
                    "cycles_per_mac": cycles / macs, "accumulation_cycles_per_mac": (cycles - requant) / macs,
                    "requantize_cycles_per_output": requant / outputs}
                logger.info("%s %s: %d cycles, %.2f accumulation cycles/MAC, %.0f requantization cycles/output",
                            target, op.name, cycles, (cycles - requant) / macs, requant / outputs)
            results["builds"][target] = build
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--targets", nargs="+", default=list(TARGETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=RESULTS / "conv_dense_s8_mcu.json")
    parser.add_argument("--build-dir", type=Path, default=None)
    parser.add_argument("--sparsities", type=float, nargs="*", default=[0.5, 0.85],
                        help="weight sparsities of the zero-skipping runs (TTP-like pruned copies)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    result = measure(MNIST, target_names=tuple(args.targets), seed=args.seed, build_dir=args.build_dir,
                     sparsities=tuple(args.sparsities))
    # a firmware of its own (one firmware of all the layers would not fit the MSP430's 48 KB), no zero-skipping runs
    nonneg = measure(MNIST_NONNEG, target_names=tuple(args.targets), seed=args.seed, build_dir=args.build_dir)
    result["layers"] += nonneg["layers"]
    for target, build in nonneg["builds"].items():
        result["builds"][target]["layers"].update(build["layers"])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
