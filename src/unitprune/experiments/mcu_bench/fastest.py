"""The fastest firmware within an accuracy budget, per MCU target.

A *configuration* is a method at one knob with a kernel per layer (for UnIT models, the conv
kernel :mod:`unitprune.mcu.unit_plan` picks on the target: skip-free, sparse, per-position test or dense).
Its int8 validation accuracy is within the budget when the budget rule
(:mod:`unitprune.accuracy_budget`) admits its paired validation outcomes against the quantized dense
model; ``dense`` itself always is. The fastest is the admitted configuration with the fewest
measured cycles per inference (exact simulator cycles, median over the samples).

* :func:`fastest_rows`: from a finished ``mcu-bench`` run (its rows, no more simulation).
* :func:`fastest_plan`: for ``unitprune export --plan fastest``: every method's operating point,
  each admitted one planned and measured on the target (a few samples), the fastest returned with
  its planned int8 model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...accuracy_budget import paired_outcome, select_operating_point
from ...mcu.qmodel import QConv, QLinear, QuantizedModel
from ...mcu.reference import quantize_input
from ...mcu.unit_plan import has_exact_layers, with_unit_kernels

logger = logging.getLogger(__name__)

__all__ = ["FastestChoice", "NoPointWithinBudget", "configuration_kernels", "fastest_markdown", "fastest_plan",
           "fastest_rows", "fastest_table"]


class NoPointWithinBudget(ValueError):
    """No configuration's int8 validation accuracy is within the budget."""


@dataclass
class FastestChoice:
    """The fastest admitted configuration on one target."""

    target: str
    method: str
    knob: float | None
    kernels: dict[str, str]
    cycles: int
    quantized_accuracy: float  # test split, integer reference of the planned model
    quantized_val_accuracy: float
    energy_uj_estimate: float
    candidates: list[dict] = field(default_factory=list)  # every configuration considered, with why
    qmodel: QuantizedModel | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        return {"target": self.target, "method": self.method, "knob": self.knob, "kernels": self.kernels,
                "cycles": self.cycles, "quantized_accuracy": self.quantized_accuracy,
                "quantized_val_accuracy": self.quantized_val_accuracy,
                "energy_uj_estimate": self.energy_uj_estimate, "candidates": self.candidates}


def configuration_kernels(qmodel: QuantizedModel, target: str = "host") -> dict[str, str]:
    """The kernel function of every conv/linear layer of ``qmodel``'s export for ``target`` (by layer
    name): the static-sparse kernels for the layers of a ``zeroskip`` model whose tables they hold (as
    the exporter chooses them when the tables fit the target's flash; a measured row names the kernels
    of its export's manifest instead), the zero-activation ones of its plan, the convs pooled on their
    accumulators (``unitprune.mcu.export.pooled_conv``)."""
    from ...mcu.export.pooled_conv import pooled_convs
    from ...mcu.kernel_choice import conv_variant, linear_kernel, sparse_layers
    from ...mcu.zeroact_plan import zeroact_layers

    sparse = sparse_layers(qmodel.ops, qmodel.variant)
    zeroact = zeroact_layers(qmodel, sparse)
    pooled = pooled_convs(qmodel.ops, qmodel.variant, target, sparse, zeroact)
    kernels = {}
    for op in qmodel.ops:
        if op.name in pooled:
            kernels[op.name] = pooled[op.name].function
        elif op.name in zeroact:
            kernels[op.name] = "unit_conv2d_sparse_zeroact_s8"
        elif op.name in sparse:
            kernels[op.name] = f"unit_{'conv2d' if isinstance(op, QConv) else 'linear'}_sparse_s8"
        elif isinstance(op, QConv):
            kernels[op.name] = f"unit_conv2d_{conv_variant(op, qmodel.variant)}_s8"
        elif isinstance(op, QLinear):
            kernels[op.name] = linear_kernel(op, qmodel.variant, qmodel.linear_quotient)
    return kernels


def _planned(point, plan: dict) -> QuantizedModel:
    """The point's int8 model with the row's UnIT conv kernels (``plan``: the row's plan record)."""
    if not plan:
        return point.qmodel
    return with_unit_kernels(point.qmodel, {name: layer["kernel"] for name, layer in plan["layers"].items()})


def _assess(name: str, point, planned: QuantizedModel, dense_point, splits, budget: float, confidence: float
            ) -> tuple[bool, float, str]:
    """(admitted, int8 validation accuracy of ``planned``, why)."""
    from .bench import int8_correct

    if name == "dense":
        return True, point.quantized_val_accuracy, "the reference"
    if planned is point.qmodel or not has_exact_layers(planned):
        correct, val_accuracy = point.val_correct, point.quantized_val_accuracy
    else:  # a layer planned exact (dense, static) runs without its skipping: another model, measured again
        correct, _ = int8_correct(planned, splits.val)
        val_accuracy = float(np.mean(correct))
    if dense_point is None or dense_point.val_correct is None or correct is None:
        raise ValueError("the fastest configuration needs the dense method's validation outcomes (include dense)")
    selection = select_operating_point([paired_outcome(dense_point.val_correct, correct)], budget, confidence)
    assessment = selection.assessments[0]
    admitted = bool(assessment is not None and assessment.admissible)
    why = (f"validation drop {assessment.drop_points:+.2f} pts (bound {assessment.bound_points:.2f})"
           if assessment is not None else "no assessment")
    return admitted, val_accuracy, why


def fastest_rows(document: dict, points: dict, splits, budget: float, confidence: float) -> dict[str, dict]:
    """Per target of an ``mcu-bench`` document, the fastest admitted row (:class:`FastestChoice` as a dict)."""
    chosen = {}
    dense_point = points.get("dense")
    for target in document["config"]["targets"]:
        candidates = []
        for row, detail in zip(document["rows"], document["details"]):
            if row["target"] != target:
                continue
            point = points[row["method"]]
            planned = _planned(point, detail["checks"].get("unit_kernel_plan", {}))
            try:
                admitted, val_accuracy, why = _assess(row["method"], point, planned, dense_point, splits, budget,
                                                      confidence)
            except ValueError as error:
                admitted, val_accuracy, why = False, float("nan"), str(error)
            candidates.append({"method": row["method"], "knob": row["knob"], "cycles": row["cycles"],
                               "admitted": admitted and row["bit_exact"], "why": why,
                               "quantized_val_accuracy": val_accuracy, "quantized_accuracy": row["quantized_accuracy"],
                               "energy_uj_estimate": row["energy_uj_estimate"],
                               "kernels": detail["checks"].get("kernels") or configuration_kernels(planned, target)})
        admitted = [c for c in candidates if c["admitted"]]
        if not admitted:
            chosen[target] = {"target": target, "method": None, "candidates": candidates,
                              "why": f"no configuration within {budget:g} points"}
            continue
        best = min(admitted, key=lambda c: c["cycles"])
        chosen[target] = {"target": target, **{k: best[k] for k in ("method", "knob", "kernels", "cycles",
                                                                     "quantized_accuracy", "quantized_val_accuracy",
                                                                     "energy_uj_estimate")},
                          "candidates": candidates}
    return chosen


def fastest_plan(model, splits, target: str, work_dir, budget: float = 1.0, confidence: float | None = None,
                 methods: tuple[str, ...] | None = None, samples: int = 3, sweep=None) -> FastestChoice:
    """The fastest configuration within ``budget`` points on ``target`` (module docstring), measured
    on the first ``samples`` test inputs in the target's simulator. ``methods``: the candidates
    (default every mcu-bench method; the dense model is the budget's reference in any case).

    Raises:
        ValueError: an unknown target or method, no validation or test inputs.
        NoPointWithinBudget: no configuration is admitted.
    """
    from ...mcu import targets as mcu_targets
    from ..evaluation import dataset_tensors
    from .bench import DEFAULT_SWEEP, METHODS, MCU_TARGETS, BenchConfig, measure_target, select_operating_points
    from .bench_plan import planned_for_target

    if target not in MCU_TARGETS:
        raise ValueError(f"unknown MCU target {target!r}; choose from {', '.join(MCU_TARGETS)}")
    methods = tuple(methods or METHODS)  # the candidates; dense is the budget's reference either way
    x_val, _ = dataset_tensors(splits.val)
    x_test, _ = dataset_tensors(splits.test)
    if len(x_val) == 0:
        raise ValueError("no validation inputs: the thresholds, the quantization and the kernel plan are "
                         "calibrated on the validation split")
    if len(x_test) == 0 or samples < 1:
        raise ValueError(f"need >= 1 test sample to measure cycles (samples={samples}, test split {len(x_test)})")
    mcu_targets.check_tools(target)
    config = BenchConfig(targets=(target,), methods=tuple(dict.fromkeys(("dense", *methods))), samples=samples, layer_samples=1, budget=budget,
                         **({} if confidence is None else {"confidence": confidence}),
                         sweep=sweep or DEFAULT_SWEEP, progress=False)
    points = select_operating_points(model, splits, config)
    dense_point = points["dense"]
    candidates, best = [], None
    for name, point in ((m, points[m]) for m in methods):
        planned, overrides, _ = planned_for_target(point.qmodel, target, splits)
        admitted, val_accuracy, why = _assess(name, point, planned, dense_point, splits, budget, config.confidence)
        entry = {"method": name, "knob": point.knob, "admitted": admitted, "why": why,
                 "quantized_val_accuracy": val_accuracy, "kernels": configuration_kernels(planned, target)}
        candidates.append(entry)
        if not admitted:
            continue
        x_q = quantize_input(planned, x_test[:samples])
        measured = measure_target(planned, target, x_q, Path(work_dir) / name, layer_samples=0,
                                  max_cycles=config.max_cycles)
        entry.update(cycles=measured["cycles"], bit_exact=measured["bit_exact"])
        if not measured["bit_exact"]:
            raise RuntimeError(f"{name} on {target}: the firmware is not bit-exact against the integer reference")
        logger.info("%s on %s: %d cycles (%s)", name, target, measured["cycles"], why)
        if best is None or measured["cycles"] < best[0]:
            accuracy = overrides.get("quantized_accuracy", point.quantized_accuracy)
            best = (measured["cycles"], name, point, planned, val_accuracy, accuracy, measured)
    if best is None:
        raise NoPointWithinBudget(f"no configuration within {budget:g} points on {target}: "
                                  + "; ".join(f"{c['method']}: {c['why']}" for c in candidates))
    cycles, name, point, planned, val_accuracy, accuracy, measured = best
    return FastestChoice(target=target, method=name, knob=point.knob, kernels=configuration_kernels(planned, target),
                         cycles=cycles, quantized_accuracy=float(accuracy), quantized_val_accuracy=val_accuracy,
                         energy_uj_estimate=measured["energy_uj_estimate"], candidates=candidates, qmodel=planned)


def _short(kernel: str) -> str:
    return kernel.removeprefix("unit_").removesuffix("_s8")


def fastest_markdown(document: dict) -> list[str]:
    """``mcu.md`` sections: per target the UnIT rows' conv kernels (kept fraction, measured layer
    cycles against the dense row's), and the fastest configuration within the budget."""
    lines = []
    kernel_rows = []
    for row, detail in zip(document["rows"], document["details"]):
        plan = detail["checks"].get("unit_kernel_plan")
        if not plan:
            continue
        dense = next((r for r in document["rows"] if r["method"] == "dense" and r["target"] == row["target"]), None)
        for layer, choice in plan["layers"].items():
            measured = row["cycles_per_layer"].get(layer)
            versus = dense["cycles_per_layer"].get(layer) if dense else None
            ratio = f"{versus / measured:.2f}x" if measured and versus else ""
            predicted = ", ".join(f"{k} {v:,}" for k, v in choice["predicted_cycles"].items())
            kernel_rows.append(f"| {row['target']} | {row['method']} | {layer} | {choice['kernel']} | "
                               f"{100 * choice['kept_fraction']:.1f}% | {measured or 0:,} | {versus or 0:,} | {ratio} | "
                               f"{predicted} |")
    if kernel_rows:
        lines += ["## UnIT kernels per layer (cycle-model plan, measured)", "",
                  "Kernel chosen per layer by unitprune.mcu.unit_cost at the layer's kept fraction on validation "
                  "inputs; measured = median layer cycles of the row; dense = the dense row's same layer.", "",
                  "| target | method | layer | kernel | kept (val) | measured | dense | speed-up | predicted |",
                  "|---|---|---|---|---|---|---|---|---|", *kernel_rows, ""]
    return lines + fastest_table(document)


def fastest_table(document: dict) -> list[str]:
    """The fastest configuration within the budget per target, as a Markdown section."""
    lines = []
    fastest = document.get("fastest")
    if fastest:
        budget = document["config"]["budget_points"]
        lines += [f"## Fastest firmware within {budget:g} point(s) (int8 validation, budget rule)", "",
                  "| target | method | knob | cycles | int8 test acc. | int8 val acc. | energy uJ (estimate) | kernels |",
                  "|---|---|---|---|---|---|---|---|"]
        for target, choice in fastest.items():
            if choice.get("method") is None:
                lines.append(f"| {target} | {choice.get('why', 'none')} | | | | | | |")
                continue
            knob = "" if choice["knob"] is None else f"{choice['knob']:g}"
            kernels = ", ".join(f"{layer}: {_short(k)}" for layer, k in choice["kernels"].items())
            lines.append(f"| {target} | {choice['method']} | {knob} | {choice['cycles']:,} | "
                         f"{100 * choice['quantized_accuracy']:.2f}% | {100 * choice['quantized_val_accuracy']:.2f}% | "
                         f"{choice['energy_uj_estimate']:.1f} | {kernels} |")
        lines.append("")
    return lines
