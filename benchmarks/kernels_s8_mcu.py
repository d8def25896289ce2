"""Cycle-exact cost of the int8 kernels on AVR and MSP430: dense vs zero-skipping vs UnIT.

1. draws one convolution and one linear layer in the integer format of docs/fixed_point.md
   (ReLU-like int8 activations with zeros, int8 weights with a pruned fraction, UnIT threshold
   T_q = the 20th percentile of the layer's nonzero |x_q * w_q|, as calibration does), and writes
   the constants as flash tables (UNIT_FLASH) into ``kernels_s8_data.h``;
2. runs every variant on the host library (``unitprune.kernels.s8``, tested bit for bit against
   the integer oracle of tests/test_kernels_s8.py) for the expected outputs and the MAC counters;
3. builds ``benchmarks/mcu/kernels_s8.c`` with the library's own int8 sources (the csrc files with
   ``_s8`` in their name; no counters: the MCU build) by ``unitprune.mcu.targets.build`` for each
   target (AVR: simavr; MSP430: mspdebug sim, without and with the hardware multiplier), runs it,
   and checks every output byte against the host; a mismatch is an error;
4. writes ``benchmarks/results/kernels_s8_mcu.json`` and ``.md``: cycles per variant and the
   speed-up over the dense loop.

Usage: ``PYTHONPATH=src python benchmarks/kernels_s8_mcu.py [--targets avr msp430 msp430-hwmult] [--seed 0]``
Needs: ``apt-get install gcc-avr avr-libc binutils-avr simavr libsimavr-dev libelf-dev pkg-config``
(AVR) and ``clang-14 lld-14 mspdebug`` (MSP430).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import unitprune
from unitprune.approx import BinTree
from unitprune.kernels import s8, sparse_s8
from unitprune.mcu import reference
from unitprune.mcu import targets
from unitprune.mcu.codegen import c_array
from unitprune.mcu.qmodel import QConv, QLinear, Requant
from unitprune.mcu.quantize import quantize_multiplier
from unitprune.mcu.targets import ToolMissing
from unitprune.torch_reference import ConvGeometry

logger = logging.getLogger("kernels_s8_mcu")

CONV = dict(n=1, c=4, h=12, w=12, o=8, k=3, pad=1)
LINEAR = dict(inputs=128, outputs=32)
PERCENTILE = 20
REQUANTIZE_N = 64
HERE = Path(__file__).resolve().parent
FIRMWARE = HERE / "mcu" / "kernels_s8.c"
CSRC = Path(unitprune.__file__).resolve().parent / "csrc"
RESULTS = HERE / "results"
DEFAULT_OPTS = {"avr": ("O2", "Os"), "msp430": ("O2",), "msp430-hwmult": ("O2",)}


def relu_like(rng, shape, zero_fraction: float) -> np.ndarray:
    values = np.minimum(np.abs(rng.normal(0, 40, size=shape)), 127).astype(np.int64)
    values[rng.random(shape) < zero_fraction] = 0
    return values.astype(np.int8)


def weights(rng, shape, zero_fraction: float) -> np.ndarray:
    values = np.clip(np.round(rng.normal(0, 40, size=shape)), -127, 127).astype(np.int64)
    values[rng.random(shape) < zero_fraction] = 0
    return values.astype(np.int8)


def threshold_q(products: np.ndarray) -> int:
    nonzero = np.abs(products[products != 0])
    return int(np.percentile(nonzero, PERCENTILE, method="inverted_cdf")) if nonzero.size else 0


def requant_for(acc: np.ndarray, out: int, relu: bool, rng) -> Requant:
    multiplier, shift = quantize_multiplier(127.0 / max(float(np.abs(acc).max()), 1.0))
    bias = rng.integers(-200, 200, size=out).astype(np.int32)
    return Requant(bias, np.full(out, multiplier, np.int32), np.full(out, shift, np.int8), 0 if relu else -128, 127)


def make_layers(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    c = CONV
    x = relu_like(rng, (c["n"], c["c"], c["h"], c["w"]), 0.5)
    w = weights(rng, (c["o"], c["c"], c["k"], c["k"]), 0.3)
    geometry = ConvGeometry((c["k"], c["k"]), (1, 1), (1, 1), (c["pad"],) * 4, 1)
    acc = F.conv2d(torch.from_numpy(x.astype(np.float64)), torch.from_numpy(w.astype(np.float64)), padding=c["pad"])
    patches = F.unfold(torch.from_numpy(x.astype(np.float64)), c["k"], padding=c["pad"])[0]  # [C*K*K, L]
    products = (w.reshape(c["o"], -1).astype(np.float64)[:, :, None] * patches.numpy()[None]).astype(np.int64)
    t_conv = threshold_q(products)
    magnitude = np.abs(w.astype(np.int64))
    tau = np.where(w != 0, np.minimum(t_conv >> np.array([int(v).bit_length() for v in magnitude.reshape(-1)])
                                      .reshape(w.shape), 255), 255).astype(np.uint8)
    xl = relu_like(rng, (1, LINEAR["inputs"]), 0.5)
    wl = weights(rng, (LINEAR["outputs"], LINEAR["inputs"]), 0.3)
    t_lin = threshold_q(wl.astype(np.int64) * xl.astype(np.int64))
    nonzero_x = np.abs(xl[xl != 0]).astype(np.int64)
    tree = BinTree.from_samples(nonzero_x, 1, 8)
    quotient = [min(t_lin >> leaf, 255) if left < 0 else 0 for leaf, left in zip(tree.leaf, tree.left)]
    table = [0] + [min(t_lin >> a.bit_length(), 255) for a in range(1, 129)]
    # Requantization of conv-sized accumulators with the shifts quantization produces (right shifts).
    req_shift = rng.integers(-12, 1, size=REQUANTIZE_N)
    req = dict(acc=rng.integers(-2**20, 2**20, size=REQUANTIZE_N), shift=req_shift.astype(np.int8),
               multiplier=rng.integers(2**30, 2**31 - 1, size=REQUANTIZE_N))
    return dict(
        requantize=req,
        conv=dict(x=x, w=w, tau=tau, geometry=geometry, t_q=t_conv,
                  requant=requant_for(acc.numpy(), c["o"], True, rng)),
        linear=dict(x=xl, w=wl, t_q=t_lin, requant=requant_for(xl.astype(np.int64) @ wl.T.astype(np.int64),
                                                                 LINEAR["outputs"], False, rng),
                    tree=s8.QuotientTree(np.array(tree.split, np.int8), np.array(tree.left, np.int8),
                                         np.array(tree.right, np.int8), np.array(quotient, np.uint8)),
                    table=np.array(table, np.uint8)))


def host_results(layers: dict) -> dict[str, tuple[np.ndarray, dict]]:
    conv, linear = layers["conv"], layers["linear"]
    results = {}
    for variant in s8.CONV_VARIANTS:
        y, counts = s8.conv2d(variant, conv["x"], conv["w"], conv["requant"], conv["geometry"], tau=conv["tau"])
        results[f"conv_{variant}"] = (y, counts.to_dict())
    for variant in s8.LINEAR_VARIANTS:
        y, counts = s8.linear(variant, linear["x"], linear["w"], linear["requant"], threshold_q=linear["t_q"],
                              shift_start=0, tree=linear["tree"], quotient_table=linear["table"])
        results[f"linear_{variant}"] = (y, counts.to_dict())
    return results


def write_data_header(path: Path, layers: dict) -> None:
    conv, linear = layers["conv"], layers["linear"]
    c = CONV
    out_h, out_w = c["h"] + 2 * c["pad"] - c["k"] + 1, c["w"] + 2 * c["pad"] - c["k"] + 1
    tree, req = linear["tree"], layers["requantize"]

    def ram(ctype, name, values):  # activations and inputs: mutable RAM
        return c_array(ctype, name, values, const=False)

    def flash(ctype, name, values):  # layer constants: flash (UNIT_FLASH)
        return c_array(ctype, name, values, flash=True)

    parts = [
        "/* Generated by benchmarks/kernels_s8_mcu.py. Do not edit. */\n#include <stdint.h>\n",
        '#include "unit_types.h"\n',
        "".join(f"#define CONV_{k.upper()} {v}\n" for k, v in c.items()),
        f"#define CONV_OH {out_h}\n#define CONV_OW {out_w}\n",
        f"#define LIN_IN {LINEAR['inputs']}\n#define LIN_OUT {LINEAR['outputs']}\n",
        f"#define LIN_TQ {linear['t_q']}L\n#define LIN_SHIFT_START 0\n#define LIN_TREE_NODES {tree.split.size}\n",
        f"#define SCRATCH_WORDS {max(out_h * out_w, LINEAR['outputs'])}\n",
        f"#define REQ_N {req['acc'].size}\n",
        ram("int8_t", "conv_x", conv["x"]),
        flash("int8_t", "conv_w", conv["w"]), flash("uint8_t", "conv_tau", conv["tau"]),
        flash("int32_t", "conv_bias", conv["requant"].bias),
        flash("int32_t", "conv_multiplier", conv["requant"].multiplier),
        flash("int8_t", "conv_shift", conv["requant"].shift),
        ram("int8_t", "lin_x", linear["x"]),
        flash("int8_t", "lin_wt", np.ascontiguousarray(linear["w"].T)),
        flash("int32_t", "lin_bias", linear["requant"].bias),
        flash("int32_t", "lin_multiplier", linear["requant"].multiplier),
        flash("int8_t", "lin_shift", linear["requant"].shift),
        flash("int8_t", "lin_tree_split", tree.split), flash("int8_t", "lin_tree_left", tree.left),
        flash("int8_t", "lin_tree_right", tree.right), flash("uint8_t", "lin_tree_quotient", tree.quotient),
        flash("uint8_t", "lin_table", linear["table"]),
        ram("int32_t", "req_acc", req["acc"]), ram("int32_t", "req_multiplier", req["multiplier"]),
        ram("int8_t", "req_shift", req["shift"]),
    ]
    path.write_text("\n".join(parts))


def check_record(record: dict, layers: dict, expected: dict, opt: str) -> None:
    """Raises unless a firmware region's streamed bytes equal the host library's results."""
    label = record["label"]
    if label == "requantize":
        got = np.frombuffer(bytes.fromhex(record["data"]), dtype="<i4")
        req = layers["requantize"]
        if not np.array_equal(got, s8.requantize(req["acc"], req["multiplier"], req["shift"])):
            raise RuntimeError(f"requantize -{opt}: the AVR results differ from the host library")
        return
    if label not in expected:
        raise RuntimeError(f"unexpected firmware region {label!r}")
    data = np.frombuffer(bytes.fromhex(record["data"]), dtype=np.int8)
    want = expected[label][0].reshape(-1)
    if data.size != want.size + 1 or data[0] != 0 or not np.array_equal(data[1:], want):
        bad = np.count_nonzero(data[1:] != want) if data.size == want.size + 1 else "all"
        raise RuntimeError(f"{label} -{opt}: the AVR output differs from the host library "
                           f"(status {data[0] if data.size else None}, {bad} bytes differ)")



def measure(target_names: tuple[str, ...], seed: int, build_dir: Path | None = None,
            opts: dict[str, tuple[str, ...]] | None = None, cflags: tuple[str, ...] = ()) -> dict:
    """Builds, runs and checks every kernel on every target; raises on any mismatch."""
    opts = opts or DEFAULT_OPTS
    tools = {target: targets.check_tools(target) for target in target_names}
    layers = make_layers(seed)
    expected = host_results(layers)
    sources = [FIRMWARE, *sorted(CSRC.glob("*_s8*.c")), *sorted(CSRC.glob("*_s8*.S"))]  # .S: the AVR routines
    builds = {}
    with tempfile.TemporaryDirectory(prefix="kernels_s8_mcu_") as temporary:
        root = Path(build_dir or temporary)
        root.mkdir(parents=True, exist_ok=True)
        write_data_header(root / "kernels_s8_data.h", layers)
        for target in target_names:
            for opt in opts[target]:
                key = f"{target} -{opt}"
                firmware = targets.build(target, sources, include_dirs=[CSRC, root],
                                         build_dir=root / f"{target}-{opt}", opt=opt, name="kernels_s8",
                                         cflags=cflags)
                result = targets.run(firmware, max_cycles=400_000_000)
                build = {"target": target, "opt": opt, "compiler": firmware.compiler,
                         "flash_bytes": firmware.flash_bytes, "cycles": {}}
                for region in result.regions:
                    record = {"label": region.label, "data": region.data.hex(), "cycles": region.cycles}
                    check_record(record, layers, expected, key)
                    if region.label == "requantize":
                        build["requantize_cycles"] = region.cycles / REQUANTIZE_N
                    else:
                        build["cycles"][region.label] = region.cycles
                if sorted(build["cycles"]) != sorted(expected):
                    raise RuntimeError(f"{key}: firmware regions {sorted(build['cycles'])} differ from "
                                       f"{sorted(expected)}")
                builds[key] = build
                logger.info("%s: %d kernels checked bit-exactly against the host", key, len(build["cycles"]))
    return {"settings": {"seed": seed, "conv": CONV, "linear": LINEAR, "percentile": PERCENTILE,
                         "conv_threshold_q": layers["conv"]["t_q"], "linear_threshold_q": layers["linear"]["t_q"],
                         "tools": tools},
            "counts": {label: counts for label, (_, counts) in expected.items()}, "builds": builds}


def render_markdown(result: dict) -> str:
    settings, builds, counts = result["settings"], result["builds"], result["counts"]
    c, lin = settings["conv"], settings["linear"]
    keys = list(builds)
    lines = [f"# int8 kernels on MCUs, cycle-exact ({time.strftime('%Y-%m-%d %H:%M')})", "",
             "Constants in flash (UNIT_FLASH), no counters (the MCU build); every output checked byte for byte "
             f"against the host library. Conv {c['c']}->{c['o']} channels, {c['h']}x{c['w']}, {c['k']}x{c['k']}, "
             f"padding {c['pad']}; linear {lin['inputs']}->{lin['outputs']}; activations ReLU-like with 50 % zeros, "
             f"30 % of the weights zero, T_q = {settings['percentile']}th percentile of the nonzero |x*w| "
             f"(conv {settings['conv_threshold_q']}, linear {settings['linear_threshold_q']}); seed {settings['seed']}. "
             "Cycles (speed-up over the dense kernel of the same layer and build).", "",
             "| kernel | dense MACs | executed | " + " | ".join(keys) + " |", "|---" * (len(keys) + 3) + "|"]
    for label, count in counts.items():
        cells = []
        for key in keys:
            cycles = builds[key]["cycles"][label]
            dense = builds[key]["cycles"][label.split("_")[0] + "_dense"]
            cells.append(f"{cycles} ({dense / cycles:.2f}x)")
        lines.append(f"| {label} | {count['dense']} | {count['executed']} | " + " | ".join(cells) + " |")
    lines.append("| requantize (one call) | | | " + " | ".join(f"{builds[k]['requantize_cycles']:.0f}" for k in keys)
                 + " |")
    outputs = counts["conv_dense"]["dense"] // (c["c"] * c["k"] ** 2)
    lines += ["", f"Every variant includes its output stage, one requantization per output (the conv has {outputs} "
              f"outputs, the linear layer {lin['outputs']}).",
              "Compilers: " + "; ".join(f"{k}: {builds[k]['compiler']}" for k in keys) + "."]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------
# Per layer: dense, zero-skipping and static-sparse kernels at TTP-like weight sparsities
# ----------------------------------------------------------------------------------------

#: Weight sparsities of the TTP-like pruned copies of each layer.
SPARSITIES = (0.5, 0.85)
#: Cycles per MAC of the floor loops: hand-written output-stationary loops on the MNIST conv2 shape,
#: measured bit-exact in the same simulators (issue 19; /work/shared/DESIGN.md "The floor").
FLOOR_CYCLES_PER_MAC = {"avr": 11.5, "msp430": 17.5, "msp430-hwmult": 12.5}
#: The MNIST demo's linear layer (fc 256 -> 10) and a wider one.
LINEAR_LAYERS = (("fc", 256, 10), ("fc_wide", 128, 32))
LAYER_RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results" / "kernels_floor"


def _sibling(name: str):
    """benchmarks/<name>.py as a module (this script runs as a script or is loaded by the tests)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def linear_op(name: str, inputs: int, outputs: int, rng) -> tuple[QLinear, np.ndarray]:
    """A QLinear with random int8 weights (edge values included) and its int8 input (1, inputs)."""
    weight = rng.integers(-127, 128, size=(outputs, inputs)).astype(np.int8)
    weight.reshape(-1)[:3] = (-127, 127, 0)
    x = rng.integers(-128, 128, size=(1, inputs)).astype(np.int8)
    x.reshape(-1)[:2] = (-128, 127)
    multiplier, shift = quantize_multiplier(100.0 / (128 * 127 * inputs))
    requant = Requant(rng.integers(-1000, 1000, size=outputs).astype(np.int32), np.full(outputs, multiplier, np.int32),
                      np.full(outputs, shift, np.int8), -128, 127)
    table = np.zeros(129, np.uint8)
    op = QLinear(name, inputs, outputs, weight, requant, 0, 0, table, np.zeros(1, np.int8), np.full(1, -1, np.int8),
                 np.full(1, -1, np.int8), np.zeros(1, np.uint8), 1.0, 1.0, 1.0)
    return op, x


def prune(op, sparsity: float, seed: int, zero_channel: bool = False):
    """``op`` with a random ``sparsity`` fraction of its weights zeroed (TTP-like); ``zero_channel``:
    every weight of output channel 0 too (its outputs are the bias alone)."""
    rng = np.random.default_rng(seed)
    weight = np.where(rng.random(op.weight.shape) < sparsity, 0, op.weight).astype(np.int8)
    if zero_channel:
        weight[0] = 0
    return dataclasses.replace(op, weight=weight)


def _region(label: str, call: str, size: int) -> str:
    return f"""unit_mcu_label("{label}");
        UNIT_MCU_START();
        status = {call};
        UNIT_MCU_STOP();
        code = (int8_t)status;
        unit_mcu_emit(&code, 1);
        unit_mcu_emit(y, {size});"""


def _sparse_tables_c(prefix: str, tables) -> str:
    parts = [c_array("uint16_t", f"{prefix}_nnz", tables.nonzeros, flash=True)]
    records, taps = "0", "0"
    if tables.stored:
        parts.append(c_array("int16_t", f"{prefix}_rec", tables.records, flash=True))
        records = f"{prefix}_rec"
    if tables.taps is not None and tables.stored:
        parts.append(c_array("uint8_t", f"{prefix}_taps", tables.taps, flash=True))
        taps = f"{prefix}_taps"
    parts.append(f"static const unit_sparse_s8 {prefix}_sparse = {{{prefix}_nnz, {records}, {taps}}};\n")
    return "".join(parts)


def _accumulate_region(label: str, op: QConv, prefix: str, interior) -> str:
    """The sparse runs alone over the outputs whose field is whole (assembly builds only)."""
    (oy0, oy1), (ox0, ox1) = interior
    if oy1 <= oy0 or ox1 <= ox0:
        return ""
    group_in, plane = op.in_channels // op.groups, op.in_height * op.in_width
    return f"""
#if UNIT__DOT_ASM
        {{
            const UNIT_TABLE int16_t *rec = {prefix}_sparse.records;
            int16_t o, oy;
            unit_mcu_label("{label}");
            UNIT_MCU_START();
            for (o = 0; o < {op.out_channels}; o++) {{
                const int16_t nnz = (int16_t)UNIT_READ_S16((const int16_t *){prefix}_nnz + o);
                if (nnz > 0) {{
                    for (oy = {oy0}; oy < {oy1}; oy++) {{
                        unit__sparse_run_s8(scratch, x + (o / {op.out_channels // op.groups}) * {group_in * plane} +
                                            (oy * {op.stride[0]} - {op.padding[0]}) * {op.in_width} +
                                            {ox0 * op.stride[1] - op.padding[2]}, rec, nnz, {ox1 - ox0}, {op.stride[1]});
                    }}
                }}
                rec += 2 * nnz;
            }}
            UNIT_MCU_STOP();
        }}
#endif"""


def layer_firmware(op, x: np.ndarray, pruned_ops: dict) -> str:
    """main(): for each pruned copy of ``op`` (by label) the dense, zero-skipping and static-sparse
    kernels' regions (``<layer>:<kernel>_<label>``), each emitting its status and output, and for a
    conv the sparse runs alone (``<layer>:sparse_accumulate_<label>``)."""
    conv = isinstance(op, QConv)
    outputs = op.out_channels * op.out_height * op.out_width if conv else op.out_features
    scratch_words = op.out_height * op.out_width if conv else op.out_features
    parts = ['#include <stdint.h>\n#include "unit_mcu.h"\n#include "unit_internal_sparse_s8.h"\n',
             f"static int32_t scratch[{scratch_words}];\nstatic int8_t y[{outputs}];\nstatic int8_t x[{x.size}];\n",
             c_array("int8_t", "x_flash", x, flash=True)]
    body = [f"""
    int32_t status, i;
    int8_t code;
    for (i = 0; i < {x.size}; i++) {{
        x[i] = UNIT_READ_S8(x_flash + i);
    }}"""]
    if conv:
        top, bottom, left, right = op.padding
        body.append(f"""
    const unit_conv2d_params params = {{1, {op.in_channels}, {op.in_height}, {op.in_width}, {op.out_channels},
        {op.kernel_height}, {op.kernel_width}, {op.stride[0]}, {op.stride[1]}, {op.dilation[0]}, {op.dilation[1]},
        {top}, {bottom}, {left}, {right}, {op.groups}, 0}};""")
    parts += [c_array("int32_t", "bias", op.requant.bias, flash=True),
              c_array("int32_t", "mult", op.requant.multiplier, flash=True),
              c_array("int8_t", "shift", op.requant.shift, flash=True)]
    body.append(f"    const unit_requant_s8 requant = {{bias, mult, shift, {op.requant.act_min}, "
                f"{op.requant.act_max}}};")
    interior = _sibling("conv_dense_s8_mcu").interior(op) if conv else None
    for label, p in pruned_ops.items():
        prefix = f"p{label}"
        if conv:
            padded = any(op.padding)
            tables = sparse_s8.conv_sparse_tables(p.weight, op.in_height, op.in_width, op.dilation, padded, op.name)
            parts.append(c_array("int8_t", f"{prefix}_w", p.weight, flash=True))
            head = "&params, x"
            calls = {"dense": f"unit_conv2d_dense_s8({head}, {prefix}_w, &requant, y, scratch, 0)",
                     "zeroskip": f"unit_conv2d_zeroskip_s8({head}, {prefix}_w, &requant, y, scratch, 0)",
                     "sparse": f"unit_conv2d_sparse_s8({head}, &{prefix}_sparse, &requant, y, scratch, 0)"}
        else:
            tables = sparse_s8.linear_sparse_tables(p.weight, op.name)
            parts.append(c_array("int8_t", f"{prefix}_wt", np.ascontiguousarray(p.weight.T), flash=True))
            head = f"x, 1, {op.in_features}, {op.out_features}"
            calls = {"dense": f"unit_linear_dense_s8({head}, {prefix}_wt, &requant, y, scratch, 0)",
                     "zeroskip": f"unit_linear_zeroskip_s8({head}, {prefix}_wt, &requant, y, scratch, 0)",
                     "sparse": f"unit_linear_sparse_s8({head}, &{prefix}_sparse, &requant, y, scratch, 0)"}
        parts.append(_sparse_tables_c(prefix, tables))
        for kernel, call in calls.items():
            body.append("        " + _region(f"{op.name}:{kernel}_{label}", call, outputs))
        if conv:
            body.append(_accumulate_region(f"{op.name}:sparse_accumulate_{label}", op, prefix, interior))
    parts.append("int main(void) {" + "\n".join(body) + "\n    unit_mcu_done();\n    return 0;\n}\n")
    return "\n".join(parts)


def _nonzero_macs(op, p) -> tuple[int, int]:
    """(MACs of the stored weights over every output, the same over the interior outputs only)."""
    if isinstance(op, QLinear):
        n = int(np.count_nonzero(p.weight))
        return n, n
    (oy0, oy1), (ox0, ox1) = _sibling("conv_dense_s8_mcu").interior(op)
    n = int(np.count_nonzero(p.weight))
    return n * op.out_height * op.out_width, n * max(oy1 - oy0, 0) * max(ox1 - ox0, 0)


def _simulator_versions() -> dict[str, str]:
    """The Debian package versions of the simulators (dpkg-query; "unknown" without dpkg)."""
    versions = {}
    for package in ("simavr", "mspdebug", "gcc-avr", "clang-14"):
        try:
            done = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True,
                                  timeout=30)
            versions[package] = done.stdout.strip() or "unknown"
        except (OSError, subprocess.TimeoutExpired):
            versions[package] = "unknown"
    return versions


def measure_layers(layers, target_names=("avr", "msp430", "msp430-hwmult"), sparsities=SPARSITIES, seed: int = 0,
                   build_dir: Path | None = None, linear_layers=LINEAR_LAYERS, opt: str = "O2",
                   zero_channel: bool = False) -> dict:
    """Per layer, sparsity and target: cycles of the dense, zero-skipping and static-sparse kernels
    on the same pruned weights, every output checked against the integer reference (RuntimeError
    on a mismatch). ``sparsities`` may hold 0 (every weight kept) and 1 (none); ``zero_channel``:
    output channel 0 of every pruned copy has no nonzero weight."""
    dense_bench = _sibling("conv_dense_s8_mcu")
    rng = np.random.default_rng(seed)
    items = [dense_bench.make_op(layer, rng) for layer in layers]
    items += [linear_op(name, inputs, outputs, rng) for name, inputs, outputs in linear_layers]
    labels = {f"{round(100 * s)}": s for s in sparsities}
    result = {"seed": seed, "sparsities": list(sparsities), "floor_cycles_per_mac": FLOOR_CYCLES_PER_MAC,
              "machine": {**dense_bench.machine(), **_simulator_versions()}, "layers": {}, "builds": {}}
    with tempfile.TemporaryDirectory(prefix="kernels_s8_layers_") as temporary:
        root = Path(build_dir or temporary)
        root.mkdir(parents=True, exist_ok=True)
        kernels = [*sorted(CSRC.glob("*_s8*.c")), *sorted(CSRC.glob("*_s8*.S"))]
        plans = []
        for index, (op, x) in enumerate(items):
            pruned_ops = {label: prune(op, s, seed + 7 * index + j, zero_channel)
                          for j, (label, s) in enumerate(labels.items())}
            expected = {}
            for label, p in pruned_ops.items():
                y = (reference._conv(p, x, "zeroskip") if isinstance(op, QConv)
                     else reference._linear(p, x, "zeroskip", "bitshift"))[0].reshape(-1)
                for kernel in ("dense", "zeroskip", "sparse"):
                    expected[f"{op.name}:{kernel}_{label}"] = y
            (root / f"layer{index}.c").write_text(layer_firmware(op, x, pruned_ops))
            plans.append((index, op, pruned_ops, expected))
            macs = op.weight.size * (op.out_height * op.out_width if isinstance(op, QConv) else 1)
            result["layers"][op.name] = {"kind": type(op).__name__, "macs": int(macs), "sparsity": {
                label: {"weight_sparsity": 1 - np.count_nonzero(p.weight) / p.weight.size,
                        "nonzero_macs": _nonzero_macs(op, p)[0]} for label, p in pruned_ops.items()}}
        for target in target_names:
            build = {"tools": targets.check_tools(target), "layers": {}}
            for index, op, pruned_ops, expected in plans:
                firmware = targets.build(target, [root / f"layer{index}.c", *kernels], include_dirs=[CSRC],
                                         build_dir=root / f"{target}-{index}", opt=opt, name=f"layer{index}")
                build["compiler"] = firmware.compiler
                regions = {region.label: region for region in targets.run(firmware, max_cycles=400_000_000).regions}
                for key, want in expected.items():
                    data = np.frombuffer(regions[key].data, np.int8)
                    if data.size != want.size + 1 or data[0] != 0 or not np.array_equal(data[1:], want):
                        raise RuntimeError(f"{target}: {key} differs from the integer reference "
                                           f"(status {data[0] if data.size else None})")
                macs = result["layers"][op.name]["macs"]
                rows = {}
                for label, p in pruned_ops.items():
                    nonzero, interior_nonzero = _nonzero_macs(op, p)
                    cycles = {kernel: regions[f"{op.name}:{kernel}_{label}"].cycles
                              for kernel in ("dense", "zeroskip", "sparse")}
                    accumulate = regions.get(f"{op.name}:sparse_accumulate_{label}")
                    rows[label] = {
                        "cycles": cycles,
                        "cycles_per_mac": {k: c / macs for k, c in cycles.items()},
                        "sparse_cycles_per_nonzero_mac": cycles["sparse"] / nonzero if nonzero else None,
                        "sparse_accumulation_cycles_per_nonzero_mac":
                            accumulate.cycles / interior_nonzero if accumulate is not None and interior_nonzero
                            else None,
                        "speedup_sparse_over_dense": cycles["dense"] / cycles["sparse"],
                        "speedup_zeroskip_over_dense": cycles["dense"] / cycles["zeroskip"]}
                    logger.info("%s %s %s%%: dense %d, zeroskip %d, sparse %d cycles (%.2fx)", target, op.name,
                                label, cycles["dense"], cycles["zeroskip"], cycles["sparse"],
                                rows[label]["speedup_sparse_over_dense"])
                build["layers"][op.name] = rows
            result["builds"][target] = build
    return result


def render_layers_markdown(result: dict, command: str) -> str:
    """The docs/results table of :func:`measure_layers`."""
    m = result["machine"]
    lines = ["# int8 kernels per layer: dense, zero-skipping and static-sparse (TTP-like pruned weights)", "",
             f"Regenerated by `{command}`. Machine: {m['cpu']}, Python {m['python']}, unitprune {m['unitprune']}; "
             f"Debian packages: simavr {m.get('simavr')}, mspdebug {m.get('mspdebug')}, gcc-avr {m.get('gcc-avr')}, "
             f"clang-14 {m.get('clang-14')}; builds at -O2 (" + "; ".join(
                 f"{t}: {b.get('compiler', '')}" for t, b in result["builds"].items()) +
             "). Cycle counts are exact (simulators).",
             "", "Every output of every kernel checked against the integer reference (`unitprune.mcu.reference`). "
             "Cycles per dense MAC of the whole kernel call (output stage included); *sparse / nz MAC*: the "
             "static-sparse kernel's cycles per stored-weight MAC (whole call), *runs / nz MAC*: its accumulation "
             "runs alone over the outputs with whole fields; *floor*: the hand-written dense loop's cycles per MAC "
             f"on the conv2 shape (issue 19). Weight sparsity {', '.join(f'{round(100 * s)} %' for s in result['sparsities'])}, "
             f"seed {result['seed']}.", "",
             "| target | layer | MACs | sparsity | dense c/MAC | zeroskip c/MAC | sparse c/MAC | sparse / nz MAC "
             "| runs / nz MAC | floor c/MAC | sparse vs dense |", "|---" * 11 + "|"]
    for target, build in result["builds"].items():
        for name, rows in build["layers"].items():
            for label, row in rows.items():
                per = row["cycles_per_mac"]
                runs = row["sparse_accumulation_cycles_per_nonzero_mac"]
                nz = row["sparse_cycles_per_nonzero_mac"]
                lines.append(f"| {target} | {name} | {result['layers'][name]['macs']:,} | {label} % | {per['dense']:.2f} "
                             f"| {per['zeroskip']:.2f} | {per['sparse']:.2f} | {'-' if nz is None else f'{nz:.2f}'} "
                             f"| {'-' if runs is None else f'{runs:.2f}'} | {FLOOR_CYCLES_PER_MAC.get(target, '-')} "
                             f"| {row['speedup_sparse_over_dense']:.2f}x |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--targets", nargs="+", default=["avr", "msp430", "msp430-hwmult"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--cflags", nargs="*", default=[], help="extra compiler flags (experiments)")
    parser.add_argument("--opts", nargs="*", default=None, help="optimisation levels, e.g. O2 (default: per target)")
    parser.add_argument("--build-dir", type=Path, default=None, help="keep the build here (default: temporary)")
    parser.add_argument("--layers", action="store_true",
                        help="per layer (MNIST conv1, conv2, a depthwise 3x3, fc): dense, zeroskip and static-sparse "
                             "kernels at --sparsities; writes docs/results/kernels_floor/kernels_s8_layers.{json,md}")
    parser.add_argument("--sparsities", type=float, nargs="*", default=list(SPARSITIES))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.layers:
        result = measure_layers(_sibling("conv_dense_s8_mcu").MNIST, tuple(args.targets), tuple(args.sparsities),
                                args.seed, args.build_dir)
        command = "PYTHONPATH=src python benchmarks/kernels_s8_mcu.py --layers"
        LAYER_RESULTS.mkdir(parents=True, exist_ok=True)
        (LAYER_RESULTS / "kernels_s8_layers.json").write_text(json.dumps(result, indent=1))
        (LAYER_RESULTS / "kernels_s8_layers.md").write_text(render_layers_markdown(result, command))
        print(render_layers_markdown(result, command))
        return
    try:
        opts = {t: tuple(args.opts) for t in args.targets} if args.opts else None
        result = measure(tuple(args.targets), args.seed, args.build_dir, opts, tuple(args.cflags))
    except ToolMissing as error:
        raise SystemExit(f"kernels_s8_mcu: {error}")
    text = render_markdown(result)
    print(text)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "kernels_s8_mcu.json").write_text(json.dumps(result, indent=1))
    (args.output / "kernels_s8_mcu.md").write_text(text)
    print(f"wrote {args.output / 'kernels_s8_mcu.json'} and {args.output / 'kernels_s8_mcu.md'}")


if __name__ == "__main__":
    main()
