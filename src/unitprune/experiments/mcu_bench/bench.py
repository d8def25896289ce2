"""``run_bench``: every method's int8 model on simulated MCUs, cycle-exactly (the paper's Figures 6 and 7).

The route, per method:

1. **Operating point.** The sweep's own method functions (:data:`unitprune.experiments.methods.METHOD_RUNNERS`)
   measure every knob value of the float model; every knob is quantized and the point kept is
   chosen by the budget rule (:mod:`unitprune.accuracy_budget`, ``confidence``) on the *quantized* paired
   validation outcomes (the integer reference on the validation split, computed by
   :func:`unitprune.mcu.fast_reference.run_fast`) against the quantized dense model: the most
   aggressive knob admitted, scanning from the mildest, else the mildest knob.
2. **Quantize** (:func:`unitprune.mcu.quantize`, calibrated on the validation inputs) with the
   method's kernels: ``dense``, ``zeroskip`` (the static-sparse kernels: only the nonzero
   weights stored, zero activations multiplied and counted as skipped; docs/kernels.md "Static
   sparsity") or ``unit``.
3. **Export** (:func:`unitprune.export_c`) for each target with ``samples`` test inputs embedded,
   build two firmwares with :func:`unitprune.mcu.targets.build` (one region per inference, and one
   region per layer with ``-DUNIT_MODEL_MARKERS=1``), run them in the simulator and check every
   output bit for bit against the host build of the same C (:func:`unitprune.run_exported`),
   itself checked against the integer reference (outputs and MAC counters).

One row per (method, target): the keys of :data:`ROW_KEYS`. Energy is an ESTIMATE (cycles x the
datasheet figure of :mod:`unitprune.mcu.targets.energy`). FATReLU models run with the zeroskip
kernels (the thresholded activations are zeros the counters count as skipped), FATReLU+UnIT with the UnIT ones;
the int8 FATReLU is the ``QThresholdReLU`` op (docs/fixed_point.md).
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch.nn as nn
from tqdm.auto import tqdm

from ...baselines import set_fatrelu_thresholds, with_fatrelu
from ...accuracy_budget import DEFAULT_CONFIDENCE, paired_outcome, select_operating_point, validate_confidence
from ...calibrate import set_thresholds
from ...config import UnITConfig
from ...convert import convert
from ...counts import MacCounts
from ..evaluation import dataset_tensors, evaluate_unit_model
from ..methods import METHOD_RUNNERS, SweepContext, ttp_steps
from ..sweep_config import SweepConfig
from ...mcu import targets
from ...mcu.export import export_c
from ...mcu.fast_reference import run_fast
from ...mcu.host_runner import run_exported
from ...mcu.qmodel import QuantizedModel
from ...mcu.quantize import quantize
from ...mcu.reference import quantize_input, run_reference

logger = logging.getLogger(__name__)

__all__ = ["BenchConfig", "McuMethod", "METHODS", "NOT_MEASURED", "OperatingPoint", "ROW_KEYS", "measure_target",
           "run_bench", "select_operating_points", "choose_candidate", "dense_float_val_accuracy",
           "fixed_point", "int8_test", "method_sweep", "quantized_candidate", "record_test", "TTP_SWEEP_METHODS"]

#: The keys of every row of ``mcu.json``, in this order.
ROW_KEYS = ("model", "target", "method", "knob", "quantized_accuracy", "macs_skipped_fraction", "cycles",
            "cycles_per_layer", "energy_uj_estimate", "flash_bytes", "sram_bytes", "samples_checked", "bit_exact")

#: The export target of each MCU target (msp430-hwmult runs the msp430 export with the multiplier).
EXPORT_TARGET = {"avr": "avr", "msp430": "msp430", "msp430-hwmult": "msp430",
                 **{target: target for target in targets.CORE_TARGETS}}
MCU_TARGETS = tuple(EXPORT_TARGET)
#: What mcu-bench runs unless told otherwise (the Cortex-M0+ / RV32 targets: --targets).
DEFAULT_TARGETS = ("avr", "msp430", "msp430-hwmult")
#: What a run writes into its folder.
RUN_FILES = ("mcu.json", "mcu.md", "mcu_latency.png", "mcu_energy.png", "work", "tasks")


@dataclass(frozen=True)
class McuMethod:
    """A method of the MCU benchmark: which sweep method gives its points, and the int8 kernels.

    ``sweep_method`` None: the unpruned model (no knob). ``ttp_allocation``: the TTP allocation its
    model is pruned with (``SweepConfig.ttp_allocation``; None: the sweep's, ``--ttp-allocation``).
    """

    name: str
    sweep_method: str | None
    variant: str
    linear_quotient: str = "bitshift"
    description: str = ""
    ttp_allocation: str | None = None


METHODS: dict[str, McuMethod] = {m.name: m for m in (
    McuMethod("dense", None, "dense", description="unpruned model, dense int8 kernels"),
    McuMethod("zeroskip", None, "zeroskip",
              description="unpruned model, static-sparse kernels (nonzero weights only)"),
    McuMethod("ttp", "ttp", "zeroskip",
              description="train-time pruned model, static-sparse kernels (nonzero weights only)"),
    McuMethod("unit-bitshift", "unit-bitshift", "unit", "bitshift", description="UnIT, bit-shift division"),
    McuMethod("unit-bintree", "unit-bintree", "unit", "bintree", description="UnIT, binary-tree division"),
    McuMethod("ttp+unit", "ttp+unit", "unit", "bitshift", description="UnIT (bit shift) on the TTP model"),
    McuMethod("ttp-macs", "ttp", "zeroskip", ttp_allocation="macs",
              description="train-time pruned by smallest |w| per MAC saved (TTP allocation macs), static-sparse "
                          "kernels"),
    McuMethod("ttp-macs+unit", "ttp+unit", "unit", "bitshift", ttp_allocation="macs",
              description="UnIT (bit shift) on the ttp-macs model"),
    McuMethod("fatrelu", "fatrelu", "zeroskip", description="FATReLU thresholds, static-sparse kernels"),
    McuMethod("fatrelu+unit", "fatrelu+unit", "unit", "bitshift", description="UnIT (bit shift) on the FATReLU model"),
)}

#: The sweep methods whose points come from a TTP schedule (one schedule per TTP allocation).
TTP_SWEEP_METHODS = ("ttp", "ttp+unit")

#: Methods the int8 route cannot run, with the reason (recorded in mcu.json): none now.
NOT_MEASURED: dict[str, str] = {}

#: The sweep the operating points come from: UnIT on TTP uses the bit-shift approximation (the
#: int8 linear kernels compute ``T_q >> n``; the sweep's default ``exact`` would need the table kernel).
DEFAULT_SWEEP = SweepConfig(methods=("ttp", "unit-bitshift", "unit-bintree", "ttp+unit", "fatrelu", "fatrelu+unit"),
                            combo_approx="bitshift", progress=False)


@dataclass(frozen=True)
class BenchConfig:
    """Settings of :func:`run_bench`.

    Attributes:
        targets: MCU targets (``avr``, ``msp430``, ``msp430-hwmult``; also ``m0plus``,
            ``m0plus-smallmul``, ``rv32ec``, ``rv32imc``).
        methods: names of :data:`METHODS`.
        samples: test samples embedded and run per firmware (the per-inference median is over them).
        layer_samples: samples the per-layer firmware runs (its medians; <= ``samples``): a second
            full pass costs as much simulator time as the first.
        budget: points of quantized validation accuracy a method may lose against quantized dense.
        confidence: of the budget rule (:mod:`unitprune.accuracy_budget`; 0: the observed drop).
        sweep: the sweep settings the methods' points come from.
        max_cycles: cycle limit per sample (a firmware running ``n`` samples stops at ``n x max_cycles``).
        progress: show a progress bar.
    """

    targets: tuple[str, ...] = DEFAULT_TARGETS
    methods: tuple[str, ...] = tuple(METHODS)
    samples: int = 20
    layer_samples: int = 3
    budget: float = 1.0
    confidence: float = DEFAULT_CONFIDENCE
    sweep: SweepConfig = DEFAULT_SWEEP
    max_cycles: int = 2_000_000_000
    progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", tuple(self.targets))
        object.__setattr__(self, "methods", tuple(self.methods))
        unknown = [t for t in self.targets if t not in EXPORT_TARGET]
        if unknown or not self.targets:
            raise ValueError(f"unknown MCU target(s) {unknown or '(none given)'}; choose from {', '.join(MCU_TARGETS)}")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            hint = {m: NOT_MEASURED[m] for m in unknown if m in NOT_MEASURED}
            raise ValueError(f"unknown or unsupported method(s) {unknown or '(none given)'}; choose from "
                             f"{', '.join(METHODS)}" + (f" ({hint})" if hint else ""))
        if self.samples < 1 or not 1 <= self.layer_samples <= self.samples:
            raise ValueError(f"samples must be >= 1 and 1 <= layer_samples <= samples, got samples={self.samples}, "
                             f"layer_samples={self.layer_samples}")
        if not self.budget >= 0:
            raise ValueError(f"budget must be >= 0 points, got {self.budget!r}")
        object.__setattr__(self, "confidence", validate_confidence(self.confidence, "BenchConfig.confidence"))


def method_sweep(method: McuMethod, sweep: SweepConfig) -> SweepConfig:
    """The sweep settings ``method``'s points come from: ``sweep`` with the method's TTP allocation."""
    if method.ttp_allocation is None or method.ttp_allocation == sweep.ttp_allocation:
        return sweep
    return replace(sweep, ttp_allocation=method.ttp_allocation)


@dataclass
class OperatingPoint:
    """A method's chosen int8 model."""

    method: McuMethod
    knob: float | None
    qmodel: QuantizedModel
    quantized_val_accuracy: float
    quantized_accuracy: float  # test split, integer reference
    macs_skipped_fraction: float  # test split, integer reference
    float_val_accuracy: float | None = None
    details: dict = field(default_factory=dict)
    val_correct: np.ndarray | None = field(default=None, repr=False)


def int8_correct(qmodel: QuantizedModel, split) -> tuple[np.ndarray, MacCounts]:
    """Per sample of ``split``: the integer reference classifies it correctly; and the MAC counters
    (computed by :func:`unitprune.mcu.fast_reference.run_fast`, the reference's results bit for bit)."""
    x, y = dataset_tensors(split)
    outputs, counts = run_fast(qmodel, quantize_input(qmodel, x))
    return outputs.reshape(len(x), -1).argmax(axis=1) == y.numpy(), sum(counts.values(), MacCounts())


def int8_accuracy(qmodel: QuantizedModel, split) -> tuple[float, MacCounts]:
    correct, counts = int8_correct(qmodel, split)
    return float(np.mean(correct)), counts


def _float_model(context: SweepContext, method: McuMethod, point) -> nn.Module:
    """The float model of one sweep point, rebuilt as the method function built it, with the point's
    recorded thresholds (UnIT and FATReLU: set, not recalibrated; the sweep calibrated them on these
    same inputs)."""
    if method.sweep_method == "ttp":
        return next(s.model for s in ttp_steps(context) if s.target_sparsity == point.knob)
    if method.sweep_method == "fatrelu":
        return _fatrelu_model(context, point.details["fatrelu_thresholds"])
    if method.sweep_method.startswith("unit-"):
        base, approx = context.model, point.details["approx"]
    elif method.sweep_method == "ttp+unit":
        base = next(s.model for s in ttp_steps(context) if s.target_sparsity == point.details["ttp_sparsity"])
        approx = point.details["approx"]
    elif method.sweep_method == "fatrelu+unit":
        base = _fatrelu_model(context, point.details["fatrelu_thresholds"])
        approx = point.details["approx"]
    else:
        raise ValueError(f"no float model for sweep method {method.sweep_method!r}")
    unit_model = convert(base, UnITConfig(approx=approx))
    set_thresholds(unit_model, point.details["thresholds"])
    return unit_model


def _fatrelu_model(context: SweepContext, thresholds: dict) -> nn.Module:
    """The sweep's FATReLU model with its thresholds (plain FATReLU modules: the int8 route quantizes them)."""
    model = with_fatrelu(context.model)
    set_fatrelu_thresholds(model, thresholds)
    return model.eval()


def _quantized_point(context, method: McuMethod, float_model: nn.Module, knob, float_val, details,
                     test: bool = True) -> OperatingPoint:
    """The int8 model of one point, measured on validation (and on test unless ``test`` is False)."""
    x_val, _ = dataset_tensors(context.splits.val)
    qmodel = quantize(float_model, x_val, variant=method.variant, linear_quotient=method.linear_quotient)
    val_correct, _ = int8_correct(qmodel, context.splits.val)
    point = OperatingPoint(method, knob, qmodel, float(np.mean(val_correct)), float("nan"), float("nan"),
                           float_val, details, val_correct)
    if test:
        _measure_test(context, point)
    return point


def _measure_test(context, point: OperatingPoint) -> None:
    point.quantized_accuracy, point.macs_skipped_fraction = int8_test(point.qmodel, context.splits)


def int8_test(qmodel: QuantizedModel, splits) -> tuple[float, float]:
    """``(accuracy, skipped fraction of the MACs)`` of the integer reference on the test split."""
    accuracy, counts = int8_accuracy(qmodel, splits.test)
    return accuracy, counts.skipped_fraction


def dense_float_val_accuracy(context: SweepContext) -> float:
    """The float unpruned model's validation accuracy (UnIT layers at ``T = 0``, as the sweep measures it)."""
    return evaluate_unit_model(convert(context.model, UnITConfig()), context.splits.val,
                               context.config.eval_batch_size).accuracy


def fixed_point(context: SweepContext, name: str, float_val_accuracy: float) -> OperatingPoint:
    """A method without a knob (``dense``, ``zeroskip``): the model itself quantized, on validation and test."""
    return _quantized_point(context, METHODS[name], context.model, None, float_val_accuracy, {})


def quantized_candidate(context: SweepContext, method: McuMethod, float_point) -> OperatingPoint:
    """One knob value of a swept method: the sweep point's float model rebuilt, quantized and measured
    on validation (its test split only if it is chosen: :func:`choose_candidate`, :func:`record_test`)."""
    return _quantized_point(context, method, _float_model(context, method, float_point), float_point.knob,
                            float_point.val_accuracy,
                            {k: v for k, v in float_point.details.items() if k != "thresholds"}, test=False)


def choose_candidate(reference: OperatingPoint, candidates: list[OperatingPoint], config: BenchConfig
                     ) -> OperatingPoint:
    """The budget rule over one method's candidates, scanned by knob, against the quantized dense
    ``reference``: the chosen candidate, with every knob tried and the selection in its details."""
    candidates = sorted(candidates, key=lambda c: c.knob)
    selection = select_operating_point([paired_outcome(reference.val_correct, c.val_correct) for c in candidates],
                                       config.budget, config.confidence)
    point = candidates[selection.index]
    point.details["tried"] = [{"knob": c.knob, "quantized_val_accuracy": c.quantized_val_accuracy,
                               **({} if a is None else {"val_drop": a.drop_points, "val_drop_bound": a.bound_points,
                                                        "admissible": a.admissible})}
                              for c, a in zip(candidates, selection.assessments)]
    assessment = selection.assessments[selection.index]
    point.details["selection"] = {"val_drop": assessment.drop_points, "val_drop_bound": assessment.bound_points,
                                  "confidence": config.confidence, "fallback": selection.fallback}
    return point


def record_test(point: OperatingPoint, reference: OperatingPoint, measured: tuple[float, float]) -> None:
    """Set a chosen candidate's test accuracy and skipped fraction (:func:`int8_test`) and its test drop."""
    point.quantized_accuracy, point.macs_skipped_fraction = measured
    point.details["selection"]["test_drop"] = 100.0 * (reference.quantized_accuracy - point.quantized_accuracy)
    logger.info("%s: knob %s, int8 val %.4f (dense int8 %.4f, bound %.2f pts at %g), int8 test %.4f, "
                "skipped %.3f", point.method.name, point.knob, point.quantized_val_accuracy,
                reference.quantized_val_accuracy, point.details["selection"]["val_drop_bound"],
                point.details["selection"]["confidence"], point.quantized_accuracy, point.macs_skipped_fraction)


def select_operating_points(model: nn.Module, splits, config: BenchConfig) -> dict[str, OperatingPoint]:
    """Each method's int8 model at its operating point (module docstring, step 1-2), in this process
    (``run_bench`` runs the same steps as tasks: :mod:`.bench_tasks`)."""
    context = SweepContext(model=model.eval(), splits=splits, config=config.sweep)
    contexts = {config.sweep: context}  # one per TTP allocation: each keeps its own TTP schedule and points
    float_val_accuracy = dense_float_val_accuracy(context)
    chosen: dict[str, OperatingPoint] = {}
    reference = None
    for name in tqdm(["dense", *[m for m in config.methods if m != "dense"]], desc="operating points",
                     disable=not config.progress, leave=False):
        method = METHODS[name]
        if method.sweep_method is None:
            point = fixed_point(context, name, float_val_accuracy)
            if name == "dense":
                reference = point
            if name in config.methods:
                chosen[name] = point
            continue
        sweep = method_sweep(method, config.sweep)
        own = contexts.setdefault(sweep, SweepContext(model=context.model, splits=splits, config=sweep,
                                                      baseline_val_accuracy=context.baseline_val_accuracy))
        candidates = [quantized_candidate(own, method, p) for p in METHOD_RUNNERS[method.sweep_method](own)]
        point = choose_candidate(reference, candidates, config)
        record_test(point, reference, int8_test(point.qmodel, splits))
        chosen[name] = point
    return chosen


def _median(values: list[int]) -> int:
    return int(statistics.median_low(values))


def _build(target: str, out_dir: Path, build_dir: Path, markers: bool) -> targets.Firmware:
    manifest = json.loads((out_dir / "memory_plan.json").read_text())
    return targets.build(target, [out_dir / source for source in manifest["sources"]],
                         include_dirs=[out_dir, out_dir / "kernels"],
                         defines={"UNIT_SKIP_BRANCH": 1, "UNIT_S8_COUNTS": 0, "UNIT_MODEL_MARKERS": int(markers),
                                  **manifest.get("defines", {})},  # e.g. the far tables of a large AVR model
                         build_dir=build_dir, name="model_layers" if markers else "model")


def _emitted(run: targets.RunResult, output_size: int) -> np.ndarray:
    data = [np.frombuffer(bytes(region.data), dtype=np.int8) for region in run.regions if region.data]
    if any(len(d) != output_size for d in data):
        raise targets.FirmwareError(f"the firmware emitted outputs of sizes {sorted({len(d) for d in data})}, "
                                    f"expected {output_size} bytes per sample")
    return np.stack(data) if data else np.zeros((0, output_size), dtype=np.int8)


def _exported_kernels(out_dir: Path) -> dict[str, str]:
    """The kernel function each conv/linear layer of an export calls (its manifest)."""
    manifest = json.loads((Path(out_dir) / "memory_plan.json").read_text())
    return {name: layer["kernel"] for name, layer in manifest["kernels"]["layers"].items()}


def measure_target(qmodel: QuantizedModel, target: str, x_q: np.ndarray, work_dir: Path, layer_samples: int,
                   max_cycles: int = 2_000_000_000, conv_block_rows=None, execution: str = "auto",
                   fused_rows="auto") -> dict:
    """Export ``qmodel`` for ``target``, run it on the simulator and check it (module docstring, step 3).

    ``x_q``: the int8 samples (all run by the per-inference firmware; the first ``layer_samples``
    by the per-layer one). ``max_cycles``: per sample (a firmware of ``n`` samples may run ``n`` times
    that: ten KWS samples take about 3.1 G cycles on AVR). The export goes to ``work_dir/export``, the builds to
    ``work_dir/build-*`` (``work_dir`` must not hold an earlier export). ``conv_block_rows``: the
    export option (None: the whole plane). ``execution`` and ``fused_rows``: the export's options
    (default: fused only when layer by layer does not fit the chip, with the most rows per conv step
    that fit). Returns the measured part of a row plus ``checks`` (what was compared).
    """
    out_dir = Path(work_dir) / "export"
    # by default fused (row-streamed) when layer by layer does not fit the chip's SRAM (the KWS model
    # on AVR), with the most output rows per conv step that fit
    result = export_c(qmodel, out_dir, target=EXPORT_TARGET[target], samples=x_q, conv_block_rows=conv_block_rows,
                      execution=execution, fused_rows=fused_rows)
    host_outputs, host_counts = run_exported(out_dir, x_q)
    reference, reference_counts = run_reference(qmodel, x_q)
    reference = reference.reshape(len(x_q), -1)
    host_exact = bool(np.array_equal(host_outputs, reference)) and all(
        host_counts[layer] == reference_counts[layer] for layer in result.layers)

    inference_fw = _build(target, out_dir, Path(work_dir) / f"build-{target}-inference", markers=False)
    inference = targets.run(inference_fw, max_cycles=max_cycles * len(x_q))
    per_layer: dict[str, list[int]] = {}
    layer_outputs = host_outputs[:0]
    if layer_samples:  # 0: no per-layer firmware (a later batch of samples, see experiments.mcu_bench.bench_tasks)
        layer_dir = out_dir
        if layer_samples < len(x_q):  # the per-layer firmware embeds only the samples it runs
            layer_dir = Path(work_dir) / "export-layers"
            export_c(qmodel, layer_dir, target=EXPORT_TARGET[target], samples=x_q[:layer_samples],
                     conv_block_rows=conv_block_rows, execution=result.execution,
                     fused_rows=result.fused_rows or 1)
        layers_fw = _build(target, layer_dir, Path(work_dir) / f"build-{target}-layers", markers=True)
        layer_run = targets.run(layers_fw, max_cycles=max_cycles * min(layer_samples, len(x_q)))
        layer_outputs = _emitted(layer_run, result.output_size)
        # a sample's regions end with its emitted outputs; fused, a layer has one region per step
        sample: dict[str, int] = {}
        for region in layer_run.regions:
            if region.cycles is not None:
                sample[region.label] = sample.get(region.label, 0) + region.cycles
            if region.data:
                for label, cycles in sample.items():
                    per_layer.setdefault(label, []).append(cycles)
                sample = {}

    mcu_outputs = _emitted(inference, result.output_size)
    inference_cycles = [r.cycles for r in inference.regions if r.label == "inference"]
    mcu_exact = (np.array_equal(mcu_outputs, host_outputs)
                 and np.array_equal(layer_outputs, host_outputs[:layer_samples])
                 and len(inference_cycles) == len(x_q)
                 and all(len(v) == layer_samples for v in per_layer.values()))
    cycles = _median(inference_cycles)
    samples_bytes = int(x_q.size)  # the embedded samples are in flash; the model's flash excludes them
    return {
        "cycles": cycles,
        "cycles_per_layer": {label: _median(values) for label, values in per_layer.items()},
        "energy_uj_estimate": targets.energy_uj_estimate(target, cycles),
        "flash_bytes": inference_fw.flash_bytes - samples_bytes,
        "sram_bytes": inference_fw.sram_static_bytes + inference.stack_bytes,
        "samples_checked": len(x_q),
        "bit_exact": bool(host_exact and mcu_exact),
        "checks": {"host_vs_reference": host_exact, "mcu_vs_host": bool(mcu_exact), "execution": result.execution,
                   "fused_rows": result.fused_rows, "fused_axis": result.fused_axis,
                   "layer_samples": layer_samples, "cycles_min": min(inference_cycles),
                   "cycles_max": max(inference_cycles), "inference_cycles": inference_cycles,
                   "flash_with_samples_bytes": inference_fw.flash_bytes,
                   "sram_static_bytes": inference_fw.sram_static_bytes, "stack_bytes": inference.stack_bytes,
                   "flash_tables_bytes": result.flash_table_bytes,
                   "layer_skipped_fraction": {layer: host_counts[layer].skipped_fraction for layer in result.layers},
                   "kernels": _exported_kernels(out_dir)},
    }


def run_bench(model: nn.Module, splits, config: BenchConfig | None = None, *, run_dir, model_name: str = "",
              threads: int = 1, executor=None, batch_samples: int | None = None) -> dict:
    """Choose every method's operating point, run it on every target and write ``run_dir``.

    ``run_dir`` must not hold the files of an earlier run (``mcu.json``, ``mcu.md``, the PNGs,
    ``work/``, ``tasks/``): ``FileExistsError`` naming them, nothing written (the CLI's
    ``--overwrite`` removes them first), unless ``executor.resume`` continues that run. The work
    runs as tasks (:mod:`unitprune.experiments.mcu_bench.bench_tasks`: one per method, and one per method,
    target and batch of ``batch_samples`` samples) through ``executor``
    (:class:`unitprune.experiments.executor.ExecutorConfig`, default: in this process). Returns the
    ``mcu.json`` document: ``rows`` (one per method and target, keys :data:`ROW_KEYS`),
    ``details`` (per row: checks, knob search, float accuracy), ``energy`` (the estimate's source per
    target), ``not_measured``, ``not_fitted`` (method, target, knob and why of each row whose export or
    firmware does not fit the target: no row) and the settings and tool versions.
    """
    from ..executor import ExecutorConfig
    from ..provenance import environment_record
    from .bench_tasks import DEFAULT_BATCH_SAMPLES, run_bench_tasks
    from .bench_report import write_report

    config = config or BenchConfig()
    executor = executor or ExecutorConfig(progress=config.progress)
    run_dir = Path(run_dir)
    earlier = [name for name in RUN_FILES if (run_dir / name).exists()]
    if earlier and not executor.resume:
        raise FileExistsError(f"{run_dir} holds an earlier benchmark run ({', '.join(earlier)}); nothing was written. "
                              "Remove them or choose another folder (CLI: --overwrite)")
    tools = {target: targets.check_tools(target) for target in config.targets}  # ToolMissing names the packages
    t0 = time.perf_counter()
    model.eval()
    points, measured_rows = run_bench_tasks(model, splits, config, run_dir, executor, threads,
                                            batch_samples or DEFAULT_BATCH_SAMPLES)
    name = model_name or getattr(model, "name", type(model).__name__)
    rows, details, not_fitted = [], [], []
    for method, target, measured in measured_rows:
        point = points[method]
        if "does_not_fit" in measured:  # listed in mcu.md with the reason (e.g. the KWS tables on the MSP430)
            not_fitted.append({"method": method, "target": target, "knob": point.knob, "why": measured["does_not_fit"]})
            logger.info("%s on %s does not fit: %s", method, target, measured["does_not_fit"])
            continue
        checks = measured.pop("checks")
        seconds = measured.pop("seconds")
        rows.append({"model": name, "target": target, "method": method, "knob": point.knob,
                     "quantized_accuracy": point.quantized_accuracy,
                     "macs_skipped_fraction": point.macs_skipped_fraction, **measured})
        details.append({"method": method, "target": target, "variant": point.method.variant,
                        "linear_quotient": point.method.linear_quotient,
                        "quantized_val_accuracy": point.quantized_val_accuracy,
                        "float_val_accuracy": point.float_val_accuracy, "point": point.details,
                        "checks": checks, "seconds": round(seconds, 1)})
        logger.info("%s on %s: %d cycles, bit-exact %s", method, target, measured["cycles"], measured["bit_exact"])
    document = {
        "model": name, "dataset": getattr(splits, "name", ""), "rows": rows, "details": details,
        "energy": {t: {"nj_per_cycle": targets.ENERGY_MODELS[t].nj_per_cycle,
                       "source": targets.ENERGY_MODELS[t].citation, "note": "ESTIMATE: cycles x datasheet figure"}
                   for t in config.targets},
        "not_measured": {m: NOT_MEASURED[m] for m in NOT_MEASURED}, "not_fitted": not_fitted,
        "methods": {m: METHODS[m].description for m in config.methods},
        "config": {"targets": list(config.targets), "methods": list(config.methods), "samples": config.samples,
                   "layer_samples": config.layer_samples, "budget_points": config.budget,
                   "confidence": config.confidence,
                   "batch_samples": batch_samples or DEFAULT_BATCH_SAMPLES, "sweep": config.sweep.to_dict()},
        "tools": tools, "environment": environment_record(), "seconds": round(time.perf_counter() - t0, 1),
    }
    if "dense" in points:  # the fastest configuration within the budget, per target (fastest.py)
        from .fastest import fastest_rows

        document["fastest"] = fastest_rows(document, points, splits, config.budget, config.confidence)
    write_report(document, run_dir)
    return document

