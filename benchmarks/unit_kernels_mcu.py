"""Cycle-exact cost of the UnIT convolution kernels on AVR, MSP430 and MSP430 + hardware multiplier
against the dense kernel, over the kept fraction, checked bit for bit against the NumPy integer
reference (``unitprune.mcu.reference``).

Per layer (default: the MNIST demo's conv2 shape, 6x12x12 -> 16x8x8 5x5, ReLU-like inputs with
half zeros) and per threshold scale T (tau = min(T // |w|, 255), UnIT's per-weight threshold), one
firmware region runs each kernel: ``dense`` (``unit_conv2d_dense_s8``, the output-stationary dense
kernel; its output stage on threshold tables where the channels allow, as the MSP430 export gives
them to dense convolutions, ``unitprune.mcu.requant_table``; in a firmware of its own), ``unit`` (``unit_conv2d_unit_s8``, the per-position test) and ``skipfree``
(``unit_conv2d_unit_skipfree_s8``). Every region's output is checked against the reference; the
kept fraction (executed / dense MACs) comes from the reference's counters. The report gives per
target and kernel the cycles at each kept fraction and the largest measured kept fraction at which
the UnIT kernel is faster than dense (``breakeven_kept_fraction``).

The early-exit linear kernel (``unit_linear_unit_sorted_bitshift_s8``) is measured the same way
against ``unit_linear_dense_s8`` and the unsorted ``unit_linear_unit_bitshift_s8``, over T_q.
``--fit`` adds the deep (conv3_like) and edge layers and prints ``unitprune.mcu.unit_cost.COEFFICIENTS`` fitted to every
conv point.

Usage: ``PYTHONPATH=src python benchmarks/unit_kernels_mcu.py [--targets avr msp430 msp430-hwmult]
[--fit] [--markdown docs/results/unit_kernels/unit_kernels_mcu.md]``. Writes ``docs/results/unit_kernels/unit_kernels_mcu.json``.
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
from unitprune.mcu import reference, requant_table, targets, unit_cost
from unitprune.mcu.codegen import c_array
from unitprune.kernels.unit_fast_s8 import sorted_columns
from unitprune.kernels.unit_sparse_s8 import unit_sparse_tables
from unitprune.mcu.unit_plan import unit_sparse_block_rows, unit_sparse_scratch
from unitprune.mcu.qmodel import QConv, QLinear, Requant
from unitprune.mcu.quantize import quantize_multiplier

logger = logging.getLogger("unit_kernels_mcu")
CSRC = Path(unitprune.__file__).resolve().parent / "csrc"
RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results" / "unit_kernels"
TARGETS = ("avr", "msp430", "msp430-hwmult")
KERNELS = ("dense", "unit", "skipfree", "sparse")


@dataclasses.dataclass(frozen=True)
class Layer:
    """One convolution (as benchmarks/conv_dense_s8_mcu.py) and the threshold scales T to run it at
    (tau = min(T // |w|, 255) per weight, 255 for a zero weight); ``x_zeros`` the fraction of zero
    inputs, ``relu`` non-negative inputs."""

    name: str
    channels: int
    height: int
    width: int
    out_channels: int
    kernel: tuple[int, int]
    scales: tuple[int, ...]
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    groups: int = 1
    x_zeros: float = 0.5
    relu: bool = True
    w_zeros: float = 0.0  # the fraction of weights set to zero (train-time pruned)
    bitshift: bool = False  # tau = T >> bit_length(|w|) (the bit-shift quotient) instead of T // |w|
    sparse: bool = False  # also measure unit_conv2d_unit_sparse_s8 (its lists need C*H*levels bytes)
    kernel_set: tuple[str, ...] | None = None  # the kernels of one firmware (None: all of the layer's)

    @property
    def kernels(self) -> tuple[str, ...]:
        if self.kernel_set is not None:
            return self.kernel_set
        return KERNELS if self.sparse else KERNELS[:3]


CONV2 = (Layer("conv2", 6, 12, 12, 16, (5, 5), scales=(0, 400, 1000, 2000, 3000, 4500, 7000, 10000, 20000)),)
#: Small geometries with edge values for the bit-exactness tests in the simulators.
EDGES = (Layer("pad_groups", 4, 7, 9, 4, (3, 3), scales=(0, 300, 3000, 9000), padding=(1, 2, 2, 1), groups=2,
               relu=False, x_zeros=0.2, w_zeros=0.3, sparse=True),
         Layer("stride_dilation", 3, 9, 11, 2, (3, 5), scales=(500,), stride=(2, 2), dilation=(2, 1),
               padding=(1, 0, 3, 1), relu=False, sparse=True),
         Layer("conv1d_like", 3, 1, 30, 4, (1, 5), scales=(800,), stride=(1, 2), padding=(0, 0, 2, 2), sparse=True),
         Layer("pointwise", 8, 4, 4, 3, (1, 1), scales=(1500,), relu=False, x_zeros=0.0, sparse=True))
#: Train-time pruned layers (TTP+UnIT): the conv2 shape with 77 % zero weights, a conv1-like layer on
#: MNIST-like inputs (80 % zeros); measured with ``--fit`` for the sparse kernel's coefficients.
PRUNED = (Layer("conv2_pruned", 6, 12, 12, 16, (5, 5), scales=(0, 1000, 3000, 8000), w_zeros=0.77,
                bitshift=True, sparse=True),
          Layer("conv1_like", 1, 20, 20, 4, (5, 5), scales=(0, 1000, 3000, 6000, 12000), x_zeros=0.8,
                w_zeros=0.1, bitshift=True, sparse=True))
#: A deep layer on a small plane (MNIST-like conv3: 16 channels of 4x4, padding 1): the per-channel
#: costs (the skip-free kernel's bucket tables); measured with ``--fit`` only.
DEEP = (Layer("conv3_like", 16, 4, 4, 8, (3, 3), scales=(0, 2000, 8000), padding=(1, 1, 1, 1), w_zeros=0.3,
              bitshift=True, sparse=True),)


@dataclasses.dataclass(frozen=True)
class LinearLayer:
    """One linear layer and the thresholds T_q to run its UnIT kernels at (bitshift quotients,
    shift_start 0); inputs ReLU-like with ``x_zeros`` zeros."""

    name: str
    in_features: int
    out_features: int
    thresholds: tuple[int, ...]
    x_zeros: float = 0.5


LINEAR_KERNELS = ("dense", "bitshift", "sorted")
#: Thresholds of one conv layer per firmware (their tables share the MSP430's 48 KB of FRAM with every kernel).
SCALES_PER_FIRMWARE = 2
FC = (LinearLayer("fc", 256, 32, thresholds=(0, 1000, 4000, 16000)),)
LINEAR_EDGES = (LinearLayer("fc_edges", 40, 9, thresholds=(0, 700, 5000, 2**20)),)


def make_linear(layer: LinearLayer, rng: np.random.Generator) -> tuple[QLinear, np.ndarray]:
    """The layer as a QLinear (T_q its first threshold) and an int8 input (1, in) with edge values."""
    weight = rng.integers(-127, 128, size=(layer.out_features, layer.in_features)).astype(np.int8)
    weight[rng.random(weight.shape) < 0.1] = 0
    weight.reshape(-1)[:3] = (-128, 127, 0)
    x = rng.integers(0, 128, size=(1, layer.in_features))
    x[rng.random(x.shape) < layer.x_zeros] = 0
    x.reshape(-1)[:2] = (127, 1)
    bound = 128 * 128 * layer.in_features // 4
    multiplier, shift = quantize_multiplier(100.0 / bound)
    requant = Requant(rng.integers(-1000, 1000, size=layer.out_features).astype(np.int32),
                      np.full(layer.out_features, multiplier, np.int32),
                      np.full(layer.out_features, shift, np.int8), -128, 127)
    empty = np.zeros(0, np.int8)
    op = QLinear(layer.name, layer.in_features, layer.out_features, weight, requant, layer.thresholds[0], 0,
                 np.zeros(129, np.uint8), empty, empty, empty, np.zeros(0, np.uint8), 1.0, 1.0, 1.0)
    return op, x.astype(np.int8)


def linear_source(index: int, op: QLinear, x: np.ndarray, thresholds) -> tuple[list[str], str]:
    """Tables and the main() block of one linear layer: per threshold a region per kernel."""
    p = f"f{index}"
    weight_sorted, order = sorted_columns(op.weight)
    parts = [c_array("int8_t", f"{p}_x", x, flash=True),
             c_array("int8_t", f"{p}_wt", np.ascontiguousarray(op.weight.T), flash=True),
             c_array("int8_t", f"{p}_ws", weight_sorted, flash=True),
             c_array("uint16_t", f"{p}_index", order, flash=True),
             c_array("int32_t", f"{p}_bias", op.requant.bias, flash=True),
             c_array("int32_t", f"{p}_mult", op.requant.multiplier, flash=True),
             c_array("int8_t", f"{p}_shift", op.requant.shift, flash=True)]
    body = [f"""
    {{
        const unit_requant_s8 requant = {{{p}_bias, {p}_mult, {p}_shift, -128, 127}};
        int32_t i;
        for (i = 0; i < {x.size}; i++) {{
            x[i] = UNIT_READ_S8({p}_x + i);
        }}"""]
    common = f"x, 1, {op.in_features}, {op.out_features}"
    for threshold in thresholds:
        calls = {"dense": f"unit_linear_dense_s8({common}, {p}_wt, &requant, y, scratch, 0)",
                 "bitshift": f"unit_linear_unit_bitshift_s8({common}, {p}_wt, {threshold}L, 0, &requant, y, "
                             "scratch, 0)",
                 "sorted": f"unit_linear_unit_sorted_bitshift_s8({common}, {p}_ws, {p}_index, {threshold}L, 0, "
                           "&requant, y, scratch, 0)"}
        for kernel in LINEAR_KERNELS:
            if kernel == "dense" and threshold != thresholds[0]:
                continue
            body.append(f"""
        {{
            int8_t code;
            unit_mcu_label("{op.name}:{threshold}:{kernel}");
            UNIT_MCU_START();
            code = (int8_t){calls[kernel]};
            UNIT_MCU_STOP();
            unit_mcu_emit(&code, 1);
            unit_mcu_emit(y, {op.out_features});
        }}""")
    body.append("\n    }")
    return parts, "".join(body)


def out_size(layer: Layer) -> tuple[int, int]:
    (kh, kw), (sy, sx), (dy, dx) = layer.kernel, layer.stride, layer.dilation
    top, bottom, left, right = layer.padding
    return ((layer.height + top + bottom - dy * (kh - 1) - 1) // sy + 1,
            (layer.width + left + right - dx * (kw - 1) - 1) // sx + 1)


def tau_of(weight: np.ndarray, scale: int, bitshift: bool = False) -> np.ndarray:
    """UnIT's per-weight threshold min(T // |w|, 255), or min(T >> bit_length(|w|), 255) with
    ``bitshift`` (255 where w == 0; 0 everywhere for T = 0)."""
    magnitude = np.abs(weight.astype(np.int64))
    if bitshift:
        bits = np.floor(np.log2(np.maximum(magnitude, 1))).astype(np.int64) + 1
        tau = np.where(magnitude > 0, scale >> bits, 255)
        return np.minimum(tau, 255).astype(np.uint8)
    tau = np.where(magnitude > 0, scale // np.maximum(magnitude, 1), 255)
    return np.minimum(tau, 255).astype(np.uint8)


def make_layer(layer: Layer, rng: np.random.Generator) -> tuple[QConv, np.ndarray]:
    """The layer as a QConv (tau for its first scale) and its int8 input (1, C, H, W) with edge values."""
    group_in = layer.channels // layer.groups
    shape = (layer.out_channels, group_in, *layer.kernel)
    weight = rng.integers(-127, 128, size=shape).astype(np.int8)
    weight[rng.random(shape) < layer.w_zeros] = 0
    weight.reshape(-1)[:4] = (-127, 127, 0, 127)
    low = 0 if layer.relu else -128
    x = rng.integers(low, 128, size=(1, layer.channels, layer.height, layer.width))
    x[rng.random(x.shape) < layer.x_zeros] = 0
    x.reshape(-1)[:2] = (127, 0 if layer.relu else -128)
    x = x.astype(np.int8)
    oh, ow = out_size(layer)
    bound = 128 * np.abs(weight.astype(np.int64)).reshape(layer.out_channels, -1).sum(axis=1).max() // 4 + 1000
    multiplier, shift = quantize_multiplier(100.0 / bound)
    requant = Requant(rng.integers(-1000, 1000, size=layer.out_channels).astype(np.int32),
                      np.full(layer.out_channels, multiplier, np.int32),
                      np.full(layer.out_channels, shift, np.int8), -128, 127)
    op = QConv(layer.name, layer.channels, layer.height, layer.width, layer.out_channels, *layer.kernel,
               layer.stride, layer.dilation, layer.padding, layer.groups, oh, ow, weight, requant,
               np.zeros(layer.out_channels, np.int64), tau_of(weight, layer.scales[0], layer.bitshift), 1.0, 1.0,
               np.ones(layer.out_channels))
    return op, x


def skipfree_scratch_bytes(op: QConv) -> int:
    """unit_conv2d_unit_skipfree_s8_scratch_size (its layout, unit_internal_skipfree_s8.h)."""
    inputs = op.in_channels * op.in_height * op.in_width
    total = (4 * op.out_height * op.out_width + 256 * op.in_channels + 2 * op.kernel_height * op.in_height
             + 2 * op.kernel_width * op.in_width + 3 * inputs)
    return (total + 3) // 4 * 4


def firmware_source(cases: list[tuple[QConv, np.ndarray, Layer]],
                    linear_cases: list[tuple[QLinear, np.ndarray, list[int]]] = ()) -> str:
    """main(): per layer and scale (threshold) one region per kernel (label ``<layer>:<T>:<kernel>``),
    each emitting its status and output."""
    parts = ['#include <stdint.h>\n#include "unit_mcu.h"\n#include "unit_kernels_s8.h"\n']
    scratch = max([max(skipfree_scratch_bytes(op), 4 * op.out_height * op.out_width,
                       *(unit_sparse_scratch(dataclasses.replace(op, tau=tau_of(op.weight, s, layer.bitshift)))
                         for s in layer.scales if layer.sparse))
                   for op, _, layer in cases] + [4 * op.out_features for op, _, _ in linear_cases])
    outputs = max([op.out_channels * op.out_height * op.out_width for op, _, _ in cases]
                  + [op.out_features for op, _, _ in linear_cases])
    inputs = max([x.size for _, x, _ in cases] + [x.size for _, x, _ in linear_cases])
    parts.append(f"static int32_t scratch[{scratch // 4}];\nstatic int8_t y[{outputs}];\n"
                 f"static int8_t x[{inputs}];\n")
    body = []
    for index, (op, x, layer) in enumerate(cases):
        p = f"l{index}"
        parts += [c_array("int8_t", f"{p}_x", x, flash=True), c_array("int8_t", f"{p}_w", op.weight, flash=True),
                  c_array("int32_t", f"{p}_bias", op.requant.bias, flash=True),
                  c_array("int32_t", f"{p}_mult", op.requant.multiplier, flash=True),
                  c_array("int8_t", f"{p}_shift", op.requant.shift, flash=True)]
        # the dense kernel's output stage by threshold tables where the channels allow them, as the
        # exporter gives them to the dense convolutions on MSP430 (requant_table; ignored elsewhere)
        table = requant_table.layer_table(op.requant) if "dense" in layer.kernels else None
        if table is not None:
            parts.append("#if defined(__MSP430__)\n" + c_array("uint32_t", f"{p}_thresholds", table, flash=True)
                         + "#endif\n")
        thresholds = f"{p}_thresholds" if table is not None else "0"
        top, bottom, left, right = op.padding
        outputs = op.out_channels * op.out_height * op.out_width
        body.append(f"""
    {{
        const unit_conv2d_params params = {{1, {op.in_channels}, {op.in_height}, {op.in_width}, {op.out_channels},
            {op.kernel_height}, {op.kernel_width}, {op.stride[0]}, {op.stride[1]}, {op.dilation[0]}, {op.dilation[1]},
            {top}, {bottom}, {left}, {right}, {op.groups}, 0}};
        const unit_conv2d_params blocks = {{1, {op.in_channels}, {op.in_height}, {op.in_width}, {op.out_channels},
            {op.kernel_height}, {op.kernel_width}, {op.stride[0]}, {op.stride[1]}, {op.dilation[0]}, {op.dilation[1]},
            {top}, {bottom}, {left}, {right}, {op.groups}, {unit_sparse_block_rows(op)}}};
        const unit_requant_s8 requant = {{{p}_bias, {p}_mult, {p}_shift, -128, 127}};
        const unit_requant_s8 requant_dense = {{{p}_bias, {p}_mult, {p}_shift, -128, 127
            UNIT_REQUANT_THRESHOLDS({thresholds})}};
        int32_t i;
        for (i = 0; i < {x.size}; i++) {{
            x[i] = UNIT_READ_S8({p}_x + i);
        }}""")
        for scale in layer.scales:
            tau = tau_of(op.weight, scale, layer.bitshift)
            tau_name = f"{p}_tau{scale}"
            parts.append(c_array("uint8_t", tau_name, tau, flash=True))
            tables = unit_sparse_tables(op.weight, tau)
            sparse = f"{p}_sparse{scale}"
            parts += [] if not layer.sparse else [c_array("uint16_t", f"{sparse}_counts", tables.counts, flash=True),
                      c_array("uint8_t", f"{sparse}_records", tables.records.reshape(-1) if tables.stored
                              else np.zeros(1, np.uint8), flash=True),
                      c_array("uint8_t", f"{sparse}_levels", tables.levels if tables.levels.size
                              else np.zeros(1, np.uint8), flash=True),
                      f"static const unit_unit_sparse_s8 {sparse} = {{{sparse}_counts, {sparse}_records, "
                      f"{sparse}_levels, {tables.levels.size}}};\n"]
            calls = {"dense": f"unit_conv2d_dense_s8(&params, x, {p}_w, &requant_dense, y, scratch, 0)",
                     "unit": f"unit_conv2d_unit_s8(&params, x, {p}_w, {tau_name}, &requant, y, scratch, 0)",
                     "skipfree": f"unit_conv2d_unit_skipfree_s8(&params, x, {p}_w, {tau_name}, &requant, y, "
                                 "scratch, 0)",
                     "sparse": f"unit_conv2d_unit_sparse_s8(&blocks, x, &{sparse}, &requant, y, scratch, 0)"}
            for kernel in layer.kernels:
                if kernel == "dense" and scale != layer.scales[0]:
                    continue  # dense does not depend on tau (its own firmware: the MSP430's FRAM)
                body.append(f"""
        {{
            int8_t code;
            unit_mcu_label("{op.name}:{scale}:{kernel}");
            UNIT_MCU_START();
            code = (int8_t){calls[kernel]};
            UNIT_MCU_STOP();
            unit_mcu_emit(&code, 1);
            unit_mcu_emit(y, {outputs});
        }}""")
        body.append("\n    }")
    for index, (op, x, thresholds) in enumerate(linear_cases):
        tables, block = linear_source(index, op, x, thresholds)
        parts += tables
        body.append(block)
    parts.append("int main(void) {" + "".join(body) + "\n    unit_mcu_done();\n    return 0;\n}\n")
    return "\n".join(parts)


def breakeven(points: list[dict], kernel: str) -> float | None:
    """The largest measured kept fraction at which ``kernel`` took fewer cycles than dense (None if never)."""
    faster = [point["kept_fraction"] for point in points if point[kernel] < point["dense"]]
    return max(faster) if faster else None


def check_points(target: str, regions: dict, name: str, scales, kernels, expected: dict, kept: dict) -> list[dict]:
    """Per scale the cycles of every kernel's region, each output checked (RuntimeError on a mismatch);
    the first kernel (dense) runs at the first scale only."""
    points = []
    for scale in scales:
        point = {"scale": scale, "kept_fraction": kept[(name, scale)]}
        for kernel in kernels:
            if kernel == kernels[0] and scale != scales[0]:
                point[kernel] = points[0][kernel]
                continue
            region = regions[f"{name}:{scale}:{kernel}"]
            data = np.frombuffer(region.data, np.int8)
            want = expected[(name, scale, kernel)]
            if data[0] != 0 or not np.array_equal(data[1:], want):
                bad = int(np.count_nonzero(data[1:] != want)) if data.size == want.size + 1 else -1
                raise RuntimeError(f"{target}: {name} T={scale} {kernel} differs from the integer reference "
                                   f"(status {data[0]}, {bad} outputs differ)")
            point[kernel] = region.cycles
        points.append(point)
        logger.info("%s %s T=%d kept %.3f: %s", target, name, scale, point["kept_fraction"],
                    ", ".join(f"{kernel} {point[kernel]}" for kernel in kernels))
    return points


def measure(layers=CONV2, target_names=TARGETS, seed: int = 0, build_dir: Path | None = None,
            opt: str = "O2", linear_layers=FC) -> dict:
    """Builds, runs and checks every layer, scale and kernel on every target; raises RuntimeError
    on any output that differs from the integer reference."""
    rng = np.random.default_rng(seed)
    cases, expected, kept, work = [], {}, {}, {}
    for layer in layers:
        op, x = make_layer(layer, rng)
        cases.append((op, x, layer))
        for scale in layer.scales:
            scaled = dataclasses.replace(op, tau=tau_of(op.weight, scale, layer.bitshift))
            y, counts = reference._conv(scaled, x, "unit")
            for kernel in KERNELS[1:]:
                expected[(op.name, scale, kernel)] = y.reshape(-1)
            kept[(op.name, scale)] = counts.executed / counts.dense
            work[(op.name, scale)] = unit_cost.conv_work(scaled, x).to_dict()
        dense = reference._conv(op, x, "dense")[0].reshape(-1)
        expected.update({(op.name, scale, "dense"): dense for scale in layer.scales})
    linear_cases = []
    for layer in linear_layers:
        op, x = make_linear(layer, rng)
        linear_cases.append((op, x, list(layer.thresholds)))
        for threshold in layer.thresholds:
            thresholded = dataclasses.replace(op, threshold_q=threshold)
            y, counts = reference._linear(thresholded, x, "unit", "bitshift")
            work[(op.name, threshold)] = unit_cost.linear_work(thresholded, x, "bitshift").to_dict()
            expected[(op.name, threshold, "bitshift")] = expected[(op.name, threshold, "sorted")] = y.reshape(-1)
            kept[(op.name, threshold)] = counts.executed / counts.dense
        expected[(op.name, layer.thresholds[0], "dense")] = reference._linear(op, x, "dense", "bitshift")[0].reshape(-1)
    results = {"machine": platform.machine(), "python": platform.python_version(), "seed": seed, "opt": opt,
               "layers": [dataclasses.asdict(layer) for layer in layers],
               "linear_layers": [dataclasses.asdict(layer) for layer in linear_layers], "builds": {}}
    with tempfile.TemporaryDirectory(prefix="unit_kernels_mcu_") as temporary:
        root = Path(build_dir or temporary)
        root.mkdir(parents=True, exist_ok=True)
        # per conv layer one firmware of the dense kernel (its threshold tables) and one per at most
        # SCALES_PER_FIRMWARE scales of the UnIT kernels, one for the linear layers (the MSP430 model has
        # 48 KB of FRAM)
        groups = []
        for op, x, layer in cases:
            groups.append(([(op, x, dataclasses.replace(layer, scales=layer.scales[:1], kernel_set=("dense",)))], []))
            unit_kernels = tuple(kernel for kernel in layer.kernels if kernel != "dense")
            groups += [([(op, x, dataclasses.replace(layer, scales=layer.scales[i:i + SCALES_PER_FIRMWARE],
                                                     kernel_set=unit_kernels))], [])
                       for i in range(0, len(layer.scales), SCALES_PER_FIRMWARE)]
        groups += [([], linear_cases)] if linear_cases else []
        for index, (conv_group, linear_group) in enumerate(groups):
            (root / f"unit_kernels_fw{index}.c").write_text(firmware_source(conv_group, linear_group))
        for target in target_names:
            regions, flash = {}, []
            for index in range(len(groups)):
                sources = [root / f"unit_kernels_fw{index}.c", *sorted(CSRC.glob("*_s8*.c")),
                           *sorted(CSRC.glob("*_s8*.S"))]
                firmware = targets.build(target, sources, include_dirs=[CSRC], build_dir=root / target / str(index),
                                         opt=opt, name="unit_kernels")
                regions.update({region.label: region for region in targets.run(firmware, max_cycles=400_000_000).regions})
                flash.append(firmware.flash_bytes)
            build = {"compiler": firmware.compiler, "flash_bytes": flash, "layers": {}}
            for op, _, layer in cases:
                points = check_points(target, regions, op.name, layer.scales, layer.kernels, expected, kept)
                for point in points:
                    point["work"] = work[(op.name, point["scale"])]
                build["layers"][op.name] = {
                    "points": points, "breakeven_kept_fraction": {k: breakeven(points, k) for k in layer.kernels[1:]}}
            for op, _, thresholds in linear_cases:
                points = check_points(target, regions, op.name, thresholds, LINEAR_KERNELS, expected, kept)
                for point in points:
                    point["linear_work"] = work[(op.name, point["scale"])]
                build["layers"][op.name] = {
                    "points": points,
                    "breakeven_kept_fraction": {k: breakeven(points, k) for k in ("bitshift", "sorted")}}
            results["builds"][target] = build
    return results


def samples(result: dict, target: str, kernel: str) -> list[tuple[unit_cost.ConvWork, float]]:
    """(work, measured cycles) of every conv point of ``target`` in a ``measure`` result."""
    return [(unit_cost.ConvWork(**point["work"]), float(point[kernel]))
            for layer in result["builds"][target]["layers"].values() for point in layer["points"]
            if "work" in point and kernel in point]


def linear_samples(result: dict, target: str, kernel: str) -> list[tuple[unit_cost.LinearWork, float]]:
    """(work, measured cycles) of every linear point of ``target`` (``kernel`` as unit_cost names it)."""
    column = {"unit": "bitshift", "sorted": "sorted"}[kernel]
    return [(unit_cost.LinearWork(**point["linear_work"]), float(point[column]))
            for layer in result["builds"][target]["layers"].values() for point in layer["points"]
            if "linear_work" in point]


def fit_linear_coefficients(result: dict) -> dict:
    """unit_cost.LINEAR_COEFFICIENTS per target, fitted to a ``measure`` result."""
    return {target: {kernel: unit_cost.fit_linear(linear_samples(result, target, kernel), kernel)
                     for kernel in unit_cost.LINEAR_KERNELS} for target in result["builds"]}


def fit_coefficients(result: dict) -> dict:
    """unit_cost coefficients per target and kernel, fitted to a ``measure`` result."""
    return {target: {kernel: unit_cost.fit(samples(result, target, kernel), kernel) for kernel in KERNELS}
            for target in result["builds"]}


def markdown(result: dict) -> str:
    """The result as tables: per target and layer, cycles per kernel over the kept fraction, and the
    speed-up of each UnIT kernel over dense."""
    lines = ["# UnIT kernels on the MCUs: cycles over the kept fraction", "",
             "Generated by `PYTHONPATH=src python benchmarks/unit_kernels_mcu.py --fit --markdown "
             "docs/results/unit_kernels/unit_kernels_mcu.md` (exact simulator cycles, one input per layer, seed "
             f"{result['seed']}, -{result['opt']}; machine {result['machine']}, Python {result['python']}). "
             "Every region bit-exact against `unitprune.mcu.reference`. `kept` = executed / dense MACs.", ""]
    for target, build in result["builds"].items():
        lines += [f"## {target} ({build['compiler']})", ""]
        for name, layer in build["layers"].items():
            kernels = [k for k in layer["points"][0] if k not in ("scale", "kept_fraction", "work", "linear_work")]
            unit_kernels = kernels[1:]
            lines += [f"### {name}", "", "| T | kept | " + " | ".join(f"{k} cycles" for k in kernels) + " | "
                      + " | ".join(f"{k} speed-up over dense" for k in unit_kernels) + " |",
                      "|" + "---|" * (2 + len(kernels) + len(unit_kernels))]
            for point in layer["points"]:
                lines.append(f"| {point['scale']} | {point['kept_fraction']:.3f} | "
                             + " | ".join(f"{point[k]:,}" for k in kernels) + " | "
                             + " | ".join(f"{point[kernels[0]] / point[k]:.2f}x" for k in unit_kernels) + " |")
            lines += ["", "Largest measured kept fraction at which the kernel beats dense: "
                      + ", ".join(f"{k} {v:.3f}" if v is not None else f"{k} never"
                                  for k, v in layer["breakeven_kept_fraction"].items()), ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--targets", nargs="+", default=list(TARGETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=RESULTS / "unit_kernels_mcu.json")
    parser.add_argument("--build-dir", type=Path, default=None)
    parser.add_argument("--markdown", type=Path, default=None, help="also write the tables here")
    parser.add_argument("--fit", action="store_true",
                        help="also measure the edge layers and print unit_cost.COEFFICIENTS fitted to every conv point")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    layers = CONV2 + PRUNED + DEEP + EDGES if args.fit else CONV2 + PRUNED
    result = measure(layers, target_names=tuple(args.targets), seed=args.seed, build_dir=args.build_dir,
                     linear_layers=FC + LINEAR_EDGES if args.fit else FC)
    if args.fit:
        result["coefficients"] = fit_coefficients(result)
        print("COEFFICIENTS = " + json.dumps(result["coefficients"], indent=4))
        result["linear_coefficients"] = fit_linear_coefficients(result)
        print("LINEAR_COEFFICIENTS = " + json.dumps(result["linear_coefficients"], indent=4))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.output}")
    if args.markdown is not None:
        args.markdown.write_text(markdown(result))


if __name__ == "__main__":
    main()
