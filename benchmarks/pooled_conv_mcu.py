"""Cycles of the convolutions pooled on their accumulators (``unit_conv2d_sparse_pool_s8``,
``unit_conv2d_dense_pool_s8``) and of the separate max-pool (``unit_maxpool2d_s8``) per layer and
input, on AVR (simavr), MSP430 and MSP430 + hardware multiplier (mspdebug): exact cycle counts, every
output checked against the NumPy integer reference (RuntimeError on a mismatch).

Layers and inputs: benchmarks/sparse_zeroact_mcu.py's (the MNIST demo's conv1 and conv2 with
TTP-like weights on real digits and post-ReLU maps, small geometries with padding, groups, stride and
dilation), each followed by a max-pool of window = stride 2x2 (1x2 where the output has one row; conv2
also 3x2, whose floor mode drops rows). The dense pooled kernel runs the same weights (every weight
multiplied) with the threshold tables on MSP430, as the export gives them. With ``--fit`` the script
fits the cycle model of :mod:`unitprune.mcu.pool_cost` (non-negative least squares of each kernel's
cycles on its counts, per target) and prints its ``COEFFICIENTS`` table.

    python benchmarks/pooled_conv_mcu.py [--targets avr,msp430,msp430-hwmult] [--samples 3] [--fit]

writes docs/results/pooled_conv/pooled_conv_mcu.{json,md}.
"""

from __future__ import annotations

import argparse
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
from unitprune.mcu import reference, requant_table, targets
from unitprune.mcu.codegen import c_array
from unitprune.mcu.export.build_files import kernel_files
from unitprune.mcu.pool_cost import FEATURES, pool_work, predict
from unitprune.mcu.qmodel import QMaxPool

logger = logging.getLogger("pooled_conv_mcu")
HERE = Path(__file__).resolve().parent
CSRC = Path(unitprune.__file__).resolve().parent / "csrc"
RESULTS = HERE.parent / "docs" / "results" / "pooled_conv"
TARGETS = ("avr", "msp430", "msp430-hwmult")
KERNELS = tuple(FEATURES)


def _zeroact_bench():
    name = "sparse_zeroact_mcu"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def pool_of(op, window: tuple[int, int]) -> QMaxPool:
    kh, kw = window
    return QMaxPool(name="pool", channels=op.out_channels, in_height=op.out_height, in_width=op.out_width,
                    kernel=(kh, kw), stride=(kh, kw), out_height=op.out_height // kh, out_width=op.out_width // kw)


def cases(samples: int, seed: int = 0, edges_only: bool = False) -> list[tuple[str, object, np.ndarray, tuple]]:
    """(name, pruned QConv, int8 inputs (S, C, H, W), pool window) of every measured layer and input set."""
    found = []
    for name, op, x in _zeroact_bench().cases(samples, seed, edges_only):
        window = (2, 2) if op.out_height >= 2 else (1, 2)
        found.append((name, op, x, window))
        if name == "conv2_relu30":
            found.append(("conv2_relu30_3x2", op, x, (3, 2)))
    return found


#: The firmwares of a case (each its own, so the MSP430's FRAM holds the code and tables) and their kernels.
GROUPS = {"sparse": ("sparse_pool", "maxpool"), "dense": ("dense_pool",)}
#: The kernel functions each firmware links.
FUNCTIONS = {"sparse": {"unit_conv2d_sparse_s8", "unit_conv2d_sparse_pool_s8", "unit_conv2d_dense_pool_s8",
                        "unit_maxpool2d_s8", "unit_requantize_s8"},
             "dense": {"unit_conv2d_dense_pool_s8", "unit_conv2d_dense_s8", "unit_requantize_s8"}}


def firmware(op, x: np.ndarray, window: tuple[int, int], group: str) -> str:
    """main(): per sample, the regions of the ``group``'s kernels (:data:`GROUPS`): ``sparse_pool_<i>``
    and ``maxpool_<i>`` (the separate pool of ``unit_conv2d_sparse_s8``'s output), or ``dense_pool_<i>``,
    each emitting its status and pooled output."""
    padded = any(op.padding)
    tables = sparse_s8.conv_sparse_tables(op.weight, op.in_height, op.in_width, op.dilation, padded, op.name)
    outputs = op.out_channels * op.out_height * op.out_width
    pool = pool_of(op, window)
    pooled = op.out_channels * pool.out_height * pool.out_width
    words = op.out_height * op.out_width
    top, bottom, left, right = op.padding
    table = requant_table.layer_table(op.requant)
    parts = ['#include <stdint.h>\n#include "unit_mcu.h"\n#include "unit_kernels_s8.h"\n',
             f"static int32_t scratch[{words}];\nstatic int8_t y[{outputs}];\nstatic int8_t yp[{pooled}];\n"
             f"static int8_t x[{x[0].size}];\n",
             c_array("int8_t", "x_flash", x, flash=True),
             c_array("int8_t", "w", op.weight, flash=True) if group == "dense" else "",
             *_zeroact_bench().sparse_arrays(op, tables)]
    if table is not None and group == "dense":
        parts.append("#if defined(__MSP430__)\n" + c_array("uint32_t", "thresholds", table, flash=True) + "#endif\n")
    act = f"{op.requant.act_min}, {op.requant.act_max}"
    body = [f"""
    int32_t status, i;
    int8_t code;
    const unit_conv2d_params params = {{1, {op.in_channels}, {op.in_height}, {op.in_width}, {op.out_channels},
        {op.kernel_height}, {op.kernel_width}, {op.stride[0]}, {op.stride[1]}, {op.dilation[0]}, {op.dilation[1]},
        {top}, {bottom}, {left}, {right}, {op.groups}, {window[0]}}};
    const unit_requant_s8 requant = {{bias, mult, shift, {act}}};
    const unit_requant_s8 requant_dense = {{bias, mult, shift, {act}
        UNIT_REQUANT_THRESHOLDS({"thresholds" if table is not None and group == "dense" else "0"})}};
    (void)requant;
    (void)requant_dense;
    (void)sparse;"""]
    kh, kw = window
    calls = {"sparse_pool": f"unit_conv2d_sparse_pool_s8(&params, {kh}, {kw}, x, &sparse, &requant, yp, scratch, 0)",
             "dense_pool": f"unit_conv2d_dense_pool_s8(&params, {kh}, {kw}, x, w, &requant_dense, yp, scratch, 0)",
             "maxpool": f"unit_maxpool2d_s8(y, 1, {op.out_channels}, {op.out_height}, {op.out_width}, {kh}, {kw}, "
                        f"{kh}, {kw}, yp)"}
    for n in range(len(x)):
        body.append(f"""
    for (i = 0; i < {x[0].size}; i++) {{
        x[i] = UNIT_READ_S8(x_flash + {n * x[0].size} + i);
    }}""")
        if group == "sparse":
            body.append("    (void)unit_conv2d_sparse_s8(&params, x, &sparse, &requant, y, scratch, 0);")
        for kernel in GROUPS[group]:
            body.append(f"""    unit_mcu_label("{kernel}_{n}");
    UNIT_MCU_START();
    status = {calls[kernel]};
    UNIT_MCU_STOP();
    code = (int8_t)status;
    unit_mcu_emit(&code, 1);
    unit_mcu_emit(yp, {pooled});""")
    parts.append("int main(void) {" + "\n".join(body) + "\n    unit_mcu_done();\n    return 0;\n}\n")
    return "\n".join(parts)


def measure(target_names=TARGETS, samples: int = 3, seed: int = 0, build_dir: Path | None = None,
            edges_only: bool = False) -> dict:
    """Per target, case and sample: each kernel's cycles and the cost model's counts."""
    found = cases(samples, seed, edges_only)
    result = {"seed": seed, "samples": samples, "machine": _zeroact_bench()._dense_bench().machine(), "cases": {},
              "builds": {}}
    kernels = {group: [CSRC / name for name in kernel_files(functions) if name.endswith((".c", ".S"))]
               for group, functions in FUNCTIONS.items()}
    with tempfile.TemporaryDirectory(prefix="pooled_conv_") as temporary:
        root = Path(build_dir or temporary)
        root.mkdir(parents=True, exist_ok=True)
        for name, op, x, window in found:
            for group in GROUPS:
                (root / f"{name}_{group}.c").write_text(firmware(op, x, window, group))
            work = [pool_work(op, x[i:i + 1], window) for i in range(len(x))]
            result["cases"][name] = {"geometry": {"in": [op.in_channels, op.in_height, op.in_width],
                                                  "out": [op.out_channels, op.out_height, op.out_width],
                                                  "kernel": [op.kernel_height, op.kernel_width],
                                                  "stride": list(op.stride), "dilation": list(op.dilation),
                                                  "padding": list(op.padding), "groups": op.groups,
                                                  "pool": list(window)},
                                     "input_zero_fraction": float(np.mean(x == 0)), "work": work}
        for target in target_names:
            build = {"tools": targets.check_tools(target), "cases": {}}
            for name, op, x, window in found:
                regions = {}
                for group in GROUPS:
                    fw = targets.build(target, [root / f"{name}_{group}.c", *kernels[group]], include_dirs=[CSRC],
                                       build_dir=root / f"{target}-{name}-{group}", opt="O2", name=f"{name}_{group}")
                    build["compiler"] = fw.compiler
                    regions.update({r.label: r for r in targets.run(fw, max_cycles=2_000_000_000).regions})
                rows = []
                for n in range(len(x)):
                    conv, _ = reference._conv(op, x[n:n + 1], "zeroskip")
                    want = reference._maxpool(pool_of(op, window), conv).reshape(-1)
                    cycles = {}
                    for kernel in KERNELS:
                        emitted = bytes(regions[f"{kernel}_{n}"].data)
                        data = np.frombuffer(emitted, np.int8)
                        if len(emitted) != want.size + 1 or data[0] != 0 or not np.array_equal(data[1:], want):
                            raise RuntimeError(f"{target}: {name} {kernel} sample {n} differs from the integer "
                                               f"reference (status {data[0] if data.size else None})")
                        cycles[kernel] = regions[f"{kernel}_{n}"].cycles
                    rows.append(cycles)
                mean = {k: float(np.mean([r[k] for r in rows])) for k in KERNELS}
                logger.info("%s %s: %s", target, name, ", ".join(f"{k} {v:.0f}" for k, v in mean.items()))
                build["cases"][name] = {"cycles": rows, "mean": mean}
            result["builds"][target] = build
    return result


def fit(result: dict) -> dict[str, dict[str, dict[str, float]]]:
    """Per target and kernel, non-negative least squares of the cycles on the counts."""
    return _zeroact_bench().fit(result, FEATURES)


def render_markdown(result: dict, command: str) -> str:
    lines = ["# Convolutions pooled on their accumulators and the separate max-pool", "",
             f"Generated by `{command}` ({result['seconds']:.0f} s; machine {json.dumps(result['machine'])}). "
             f"Exact simulator cycles per call, mean over {result['samples']} inputs per case, every pooled output "
             "bit-exact against the integer reference. Tools: "
             f"{json.dumps({t: b['tools'] for t, b in result['builds'].items()})}. Model error: the largest over "
             "the case's inputs of the cycle model's prediction (unitprune.mcu.pool_cost.COEFFICIENTS) against "
             "the measured cycles.", "",
             "| target | case | pool | " + " | ".join(f"{k} cycles" for k in KERNELS) + " | model error "
             + " / ".join(KERNELS) + " |", "|---" * (4 + len(KERNELS)) + "|"]
    for target, build in result["builds"].items():
        for name, case in build["cases"].items():
            pool = "x".join(map(str, result["cases"][name]["geometry"]["pool"]))
            errors = []
            if target in __import__("unitprune.mcu.pool_cost", fromlist=["COEFFICIENTS"]).COEFFICIENTS:
                errors = [max(abs(predict(work, target)[k] / measured[k] - 1)
                              for work, measured in zip(result["cases"][name]["work"], case["cycles"]))
                          for k in KERNELS]
            lines.append(f"| {target} | {name} | {pool} | " + " | ".join(f"{case['mean'][k]:,.0f}" for k in KERNELS)
                         + " | " + (" / ".join(f"{e:.1%}" for e in errors) or "-") + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--fit", action="store_true", help="print the cost model's coefficients")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    start = time.perf_counter()
    result = measure(tuple(args.targets.split(",")), args.samples)
    result["seconds"] = time.perf_counter() - start
    if args.fit:
        result["fit"] = fit(result)
        print(json.dumps(result["fit"], indent=4))
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/pooled_conv_mcu.py " + " ".join(argv if argv is not None else sys.argv[1:])
    (args.out / "pooled_conv_mcu.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / "pooled_conv_mcu.md").write_text(render_markdown(result, command.strip()))


if __name__ == "__main__":
    main()
