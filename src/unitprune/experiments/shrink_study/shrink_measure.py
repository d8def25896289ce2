"""The shrunk models on simulated microcontrollers: int8 export, firmware size, cycles (``--measure``).

:func:`measure_model` takes one float model of a ``unitprune shrink`` run and, through the MCU
route of :mod:`unitprune.mcu` (nothing here re-implements it):

1. quantizes it (:func:`unitprune.mcu.quantize`, calibrated on the validation inputs as
   ``unitprune mcu-bench`` does) for each kernel variant: ``dense`` (the plain model),
   ``zeroskip`` (the plain model, kernels that skip zero weights and activations) and ``unit``
   (UnIT at the calibration percentile the shrink run chose, ``details.json`` ``unit``; the
   thresholds calibrated as :func:`unitprune.experiments.shrink_study.structured_baselines.unit_on_top` does, exact division,
   hence the linear layers' ``table`` quotient); its int8 test accuracy and skipped MACs come from
   the NumPy integer reference on the whole test split (None for a variant no target can take);
2. per target, exports it with a few test samples embedded, builds the firmware and runs it in
   the simulator (simavr for the ATmega2560, mspdebug's simulator for the MSP430, unicorn for the
   Cortex-M0+ / RV32 targets), and checks the
   outputs bit for bit: :func:`unitprune.experiments.mcu_bench.bench.measure_target`.

The result (``measured`` in shrink.json, one per method) is, per target, either the
measurements of every variant or ``{"exported": false, "why": ...}`` with the exporter's own
message (e.g. AVR constant tables beyond the ATmega2560's 256 KB of flash, which tables above
64 KB reach through far pointers; a model that does not fit the simulated MSP430's 49,024 bytes
of FRAM), or the build's
:class:`~unitprune.mcu.targets.FirmwareTooLarge` (code + tables beyond that FRAM, found at link
time, with the excess in bytes). A failure of one target never hides the others.

Per variant: ``cycles`` (median per inference), ``latency_ms`` at the target's clocks
(:data:`CLOCKS_HZ`), ``flash_bytes`` (the firmware ELF's text + rodata + data, without the embedded
samples), ``flash_tables_bytes`` (the model's constant tables alone, the exporter's count),
``sram_static_bytes`` (ELF data + bss), ``stack_bytes`` (the stack high-water mark the simulator
harness measures), ``sram_peak_bytes`` (the two added), ``plan_sram_bytes`` (the exporter's memory
plan with the input and output buffers: what the resource model's ``sram_bytes`` counts),
``sample_accuracy`` (the int8 outputs' accuracy on the embedded samples), ``bit_exact``.
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from ..evaluation import dataset_tensors
from ...mcu import targets
from ..mcu_bench.bench import EXPORT_TARGET, int8_accuracy, measure_target
from ...mcu.export import ExportError, export_c
from ...mcu.quantize import quantize
from ...mcu.reference import quantize_input, run_reference

__all__ = ["CLOCKS_HZ", "MEASURE_TARGETS", "MeasureConfig", "measure_model", "unit_model"]

logger = logging.getLogger(__name__)

#: The targets ``--measure`` accepts (``unitprune.mcu.targets`` names).
MEASURE_TARGETS = ("avr", "msp430", "msp430-hwmult", *targets.CORE_TARGETS)
#: Clocks the latency is given at: the ATmega2560 at 16 MHz (Arduino Mega), the MSP430FR5994 at
#: 8 MHz (no FRAM wait states) and 16 MHz (its maximum; the simulator models no wait states); the
#: Cortex-M0+ / RV32 targets at the clock of their energy model's operating point (SAMD21 and
#: CH32V003 48 MHz, ESP32-C3 160 MHz; RV32 cycles are a model, see ``targets.riscv_timing``).
CLOCKS_HZ = {"avr": (16_000_000,), "msp430": (8_000_000, 16_000_000), "msp430-hwmult": (8_000_000, 16_000_000),
             **{t: (int(targets.ENERGY_MODELS[t].clock_hz),) for t in targets.CORE_TARGETS}}
#: The calibration inputs of UnIT's thresholds: the first 100 validation inputs (as unit_on_top).
UNIT_CALIBRATION_SAMPLES = 100


@dataclass(frozen=True)
class MeasureConfig:
    """Settings of :func:`measure_model`.

    Attributes:
        targets: simulated MCUs (:data:`MEASURE_TARGETS`).
        samples: test inputs embedded in each firmware and run (the cycles are their median). On
            the AVR the samples share the 64 KB of flash the kernels read with the model's tables:
            when they do not fit, fewer are embedded (at least 1; the count is recorded).
        layer_samples: samples the per-layer firmware runs (cycles per layer).
        zeroskip: also measure the zero-skipping kernels.
        max_cycles: cycle limit per sample (measure_target: a firmware of n samples may run n x max_cycles).
        conv_block_rows: the exporter's conv accumulator rule (:func:`unitprune.export_c`; None: the
            whole plane); a shrink run passes its budget's, so the firmware uses the rule the
            resource model counted.
        execution: the export's plan: ``"auto"`` (layer by layer, fused when that does not fit the
            chip, the default), or a shrink run's budget's ``"layers"`` / ``"fused"`` (fused with one
            output row per conv step, the plan the resource model counts).
    """

    targets: tuple[str, ...] = ("avr", "msp430")
    samples: int = 5
    layer_samples: int = 1
    zeroskip: bool = True
    max_cycles: int = 2_000_000_000
    conv_block_rows: int | str | None = None
    execution: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", tuple(self.targets))
        if self.execution not in ("auto", "layers", "fused"):
            raise ValueError(f"execution must be auto, layers or fused, got {self.execution!r}")
        unknown = [t for t in self.targets if t not in MEASURE_TARGETS]
        if unknown or not self.targets:
            raise ValueError(f"unknown MCU target(s) {unknown or '(none given)'}; choose from "
                             f"{', '.join(MEASURE_TARGETS)}")
        if self.samples < 1 or not 1 <= self.layer_samples <= self.samples:
            raise ValueError(f"samples must be >= 1 and 1 <= layer_samples <= samples, got samples={self.samples}, "
                             f"layer_samples={self.layer_samples}")

    def export_options(self) -> dict:
        """The ``export_c`` options of the plan measured: fused with one output row per conv step
        (the plan the resource model counts), else the most rows that fit the chip."""
        return {"conv_block_rows": self.conv_block_rows, "execution": self.execution,
                "fused_rows": 1 if self.execution == "fused" else "auto"}


def unit_model(model: nn.Module, splits, percentile: float) -> nn.Module:
    """``model`` converted to UnIT (exact division) with thresholds calibrated at ``percentile``."""
    from ...calibrate import calibrate
    from ...config import UnITConfig
    from ...convert import convert

    unit = convert(copy.deepcopy(model), UnITConfig())
    calibrate(unit, splits.val.tensors[0][:UNIT_CALIBRATION_SAMPLES], percentile=percentile)
    return unit.eval()


def _variants(model: nn.Module, splits, unit_percentile: float | None, zeroskip: bool) -> dict[str, tuple]:
    """name -> (float model, kernel variant, linear quotient)."""
    plain = copy.deepcopy(model).eval()
    chosen = {"dense": (plain, "dense", "bitshift")}
    if zeroskip:
        chosen["zeroskip"] = (plain, "zeroskip", "bitshift")
    if unit_percentile is not None:
        chosen["unit"] = (unit_model(model, splits, unit_percentile), "unit", "table")
    return chosen


def _check_exportable(qmodel, target: str, x_q: np.ndarray, check_dir: Path, config: MeasureConfig) -> None:
    """The exporter's own ExportError when ``qmodel`` cannot be built for ``target`` (a dry export
    with one sample: flash reach, SRAM)."""
    export_c(qmodel, check_dir, target=EXPORT_TARGET[target], samples=x_q[:1], **config.export_options())


def _latency_ms(target: str, cycles: int) -> dict[str, float]:
    return {f"{hz // 1_000_000}MHz": round(1000.0 * cycles / hz, 3) for hz in CLOCKS_HZ[target]}


def _measure_on(qmodel, target: str, x_q: np.ndarray, y: np.ndarray, work_dir: Path,
                config: MeasureConfig) -> dict[str, Any]:
    """One variant on one target; ExportError when the exporter refuses it (the caller records why)."""
    samples = len(x_q)
    while True:
        attempt = work_dir / f"n{samples}"
        try:
            measured = measure_target(qmodel, target, x_q[:samples], attempt, min(config.layer_samples, samples),
                                      config.max_cycles, **config.export_options())
            break
        except ExportError as error:  # raised before anything is written or built
            if samples == 1 or "samples" not in str(error):  # not the embedded samples' flash
                raise
            logger.info("%s: %s; retrying with 1 embedded sample", target, error)
            samples = 1
    checks = measured["checks"]
    plan = json.loads((attempt / "export" / "memory_plan.json").read_text())["memory"]
    outputs, _ = run_reference(qmodel, x_q[:samples])  # the firmware's outputs, when bit_exact
    correct = outputs.reshape(samples, -1).argmax(axis=1) == y[:samples]
    return {
        "cycles": measured["cycles"], "cycles_min": checks["cycles_min"], "cycles_max": checks["cycles_max"],
        "latency_ms": _latency_ms(target, measured["cycles"]),
        "cycles_per_layer": measured["cycles_per_layer"],
        "flash_bytes": measured["flash_bytes"], "flash_tables_bytes": checks["flash_tables_bytes"],
        "sram_static_bytes": checks["sram_static_bytes"], "stack_bytes": checks["stack_bytes"],
        "sram_peak_bytes": measured["sram_bytes"], "plan_sram_bytes": plan["peak_sram_with_io_bytes"],
        "samples": samples, "sample_accuracy": float(np.mean(correct)),
        "bit_exact": measured["bit_exact"], "checks": {k: checks[k] for k in ("host_vs_reference", "mcu_vs_host")},
    }


def measure_model(model: nn.Module, splits, work_dir, *, unit_percentile: float | None,
                  config: MeasureConfig | None = None) -> dict[str, Any]:
    """Quantize, export and simulate ``model`` (module docstring); returns its ``measured`` object.

    ``work_dir`` (exports and builds) must not hold an earlier measurement. ``unit_percentile``
    None: no UnIT variant (the shrink run found no percentile within its accuracy budget).
    Missing simulator tools raise :class:`unitprune.mcu.targets.ToolMissing` naming the packages.
    """
    config = config or MeasureConfig()
    for target in config.targets:
        targets.check_tools(target)
    work_dir = Path(work_dir)
    x_val, _ = dataset_tensors(splits.val)
    x_test, y_test = dataset_tensors(splits.test)
    y = y_test.numpy()
    result: dict[str, Any] = {"samples": config.samples, "unit_percentile": unit_percentile, "variants": {},
                              "targets": {}}
    entries: dict[str, dict[str, Any]] = {target: {"exported": True, "why": None} for target in config.targets}
    for name, (float_model, variant, quotient) in _variants(model, splits, unit_percentile, config.zeroskip).items():
        alive = [t for t in config.targets if entries[t]["exported"]]
        if not alive:  # the dense model fits no target: the other variants' tables are as large or larger
            break
        qmodel = quantize(float_model, x_val, variant=variant, linear_quotient=quotient)
        x_q = quantize_input(qmodel, x_test[:config.samples])
        failures: dict[str, str] = {}
        for target in alive:
            try:
                _check_exportable(qmodel, target, x_q, work_dir / f"{target}-{name}" / "check", config)
            except ExportError as error:  # the exporter's limits: recorded, the other targets still run
                failures[target] = f"{name} kernels: {error}"
        record = {"kernels": variant, "linear_quotient": quotient if variant == "unit" else None}
        if len(failures) == len(alive):  # runs nowhere: its int8 accuracy (slow on a big model) is not needed
            record.update(int8_test_accuracy=None, macs_skipped_fraction=None)
        else:
            accuracy, counts = int8_accuracy(qmodel, splits.test)
            record.update(int8_test_accuracy=accuracy, macs_skipped_fraction=counts.skipped_fraction)
        result["variants"][name] = record
        for target in alive:
            if target not in failures:
                try:
                    entries[target][name] = _measure_on(qmodel, target, x_q, y, work_dir / f"{target}-{name}", config)
                    logger.info("%s on %s: %d cycles, bit-exact %s", name, target, entries[target][name]["cycles"],
                                entries[target][name]["bit_exact"])
                    continue
                except (ExportError, targets.FirmwareTooLarge) as error:  # the model does not fit the chip
                    failures[target] = f"{name} kernels: {error}"
                except targets.FirmwareError as error:
                    failures[target] = f"{name} kernels: the firmware build or simulation failed: {error}"
            logger.info("not measured on %s: %s", target, failures[target])
            if name == "dense":
                entries[target] = {"exported": False, "why": failures[target]}
            else:
                entries[target][name] = {"exported": False, "why": failures[target]}
    for target, entry in entries.items():
        if "cycles" in entry.get("unit", {}):
            entry["unit_speedup"] = entry["dense"]["cycles"] / entry["unit"]["cycles"]
    result["targets"] = entries
    return result
