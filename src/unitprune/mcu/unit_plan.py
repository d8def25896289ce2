"""Per conv layer of a ``unit`` model, which convolution kernel an MCU export runs: the skip-free
UnIT kernel (``unit_conv2d_unit_skipfree_s8``), the sparse UnIT kernel (``unit_conv2d_unit_sparse_s8``:
only the stored nonzero weights, per-row lists; TTP+UnIT), the per-position test
(``unit_conv2d_unit_s8``) or dense (``unit_conv2d_dense_s8``, the layer's UnIT off), whichever
:mod:`unitprune.mcu.unit_cost` predicts the fewest cycles for on the target, from what each kernel
does on calibration inputs (the calibrated kept fraction of the layer, its list visits, its window
rejections). Where the lists (per-sample scratch) would not fit the target's SRAM beside the
activations, the layers whose lists save the fewest predicted cycles take their next-best kernel:
the other list kernel where its lists fit, else one without lists.

A model that the export runs fused (it does not fit the target's SRAM layer by layer:
:func:`exports_fused`) keeps the per-position kernel in every conv under ``plan="auto"``: the
predictions are of whole-layer calls, and fused every list kernel sorts each window again (KWS's
TTP+UnIT point on the ATmega2560, 2 test clips, simavr: per-position 147.7 M cycles, the skip-free
and sparse lists 219.1 M; ``benchmarks/fused_kernels_kws.py``). A named ``plan`` still forces its
kernel, which runs fused too.

``skipfree``, ``sparse`` and ``unit`` give the same outputs and cause counters (``compares`` counts
what each visits); ``dense`` and ``static`` compute the layer exactly (its UnIT off), so they change the
model: they are candidates only when ``allow_dense`` (then re-measure the accuracy of the planned model,
as ``mcu-bench`` does). ``static`` is the static-sparse kernel of TTP (``unit_conv2d_sparse_s8``, or
``unit_conv2d_sparse_zeroact_s8`` where :mod:`unitprune.mcu.zeroact_plan` predicts it faster; its
cycles are that module's model; on MSP430 also ``sparse_tau``, UnIT on those stored weights with tau
in each record, ``unit_conv2d_sparse_tau_s8``, where the layer's calibration inputs are >= 0 (its
assembly run's condition; :func:`unitprune.mcu.unit_cost.predict_sparse_tau`); ``unit_linear_sparse_s8`` for a linear layer,
:data:`unitprune.mcu.unit_cost.LINEAR_STATIC_COEFFICIENTS`): with every layer ``static`` the firmware
is the TTP model's own, so on a TTP model the plan is never predicted slower than TTP. The static
convs' choice of the zero-activation kernel is recorded in ``qmodel.source["zeroact_plan"]`` (read
by the export, :func:`unitprune.mcu.zeroact_plan.zeroact_layers`). The plan is written into the ops
(:attr:`unitprune.mcu.qmodel.QConv.unit_kernel`) and recorded, with every prediction, in
``qmodel.source["unit_kernel_plan"]`` (the export's manifest copies it).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import numpy as np

from . import pool_cost, unit_cost, zeroact_plan
from .kernel_choice import sparse_tables
from ..kernels.unit_sparse_s8 import unit_sparse_scratch_bytes, unit_sparse_tables
from .qmodel import QConv, QLinear, QuantizedModel, UNIT_CONV_KERNELS, UNIT_LINEAR_KERNELS
from .reference import run_reference

__all__ = ["COST_TARGETS", "EXACT_KERNELS", "PLANS", "LayerPlan", "has_exact_layers", "plan_unit_kernels", "skipfree_scratch_bytes", "sram_fits",
           "with_unit_kernels"]

#: Targets the cost model has coefficients for (msp430-hwmult: the msp430 export run with the multiplier).
COST_TARGETS = tuple(unit_cost.COEFFICIENTS)
#: ``plan`` values: ``auto`` (the cost model), or one kernel for every conv layer.
PLANS = ("auto", *UNIT_CONV_KERNELS)
#: Calibration samples the counts are taken on (the predictions are means per sample).
PLAN_SAMPLES = 64
#: Limits of unit_conv2d_unit_skipfree_s8 (unit_internal_skipfree_s8.h).
_MAX_SIDE, _MAX_POSITIONS, _MAX_INPUTS = 256, 0x4000, 0xFFFF


@dataclass(frozen=True)
class LayerPlan:
    """One conv layer's kernel, the kept fraction it was chosen at and every predicted cycle count."""

    layer: str
    kernel: str
    kept_fraction: float
    predicted_cycles: dict[str, float]
    reason: str
    given_up: tuple[str, ...] = ()  # list kernels whose lists did not fit the SRAM

    def to_dict(self) -> dict:
        return {"kernel": self.kernel, "kept_fraction": round(self.kept_fraction, 4),
                "predicted_cycles": {k: round(v) for k, v in self.predicted_cycles.items()}, "reason": self.reason}


def skipfree_scratch_bytes(op: QConv) -> int | None:
    """Bytes of scratch of ``unit_conv2d_unit_skipfree_s8`` (``..._scratch_size``), None beyond its limits."""
    inputs = op.in_channels * op.in_height * op.in_width
    if (op.out_height * op.out_width > _MAX_POSITIONS or op.in_height > _MAX_SIDE or op.in_width > _MAX_SIDE
            or inputs > _MAX_INPUTS):
        return None
    total = (4 * op.out_height * op.out_width + 256 * op.in_channels + 2 * op.kernel_height * op.in_height
             + 2 * op.kernel_width * op.in_width + 3 * inputs)
    return (total + 3) // 4 * 4


#: Bytes of int32 accumulators the UnIT sparse kernel holds at most (whole output rows, at least one).
UNIT_SPARSE_ACC_BYTES = 512


def unit_sparse_block_rows(op: QConv) -> int:
    """Output rows of accumulators ``unit_conv2d_unit_sparse_s8`` holds for ``op`` (its
    ``params->block_rows``): as many as fit :data:`UNIT_SPARSE_ACC_BYTES`, at least one, at most OH."""
    return max(1, min(op.out_height, UNIT_SPARSE_ACC_BYTES // (4 * op.out_width)))


def unit_sparse_tables_of(op: QConv):
    """The ``unit_unit_sparse_s8`` tables of ``op`` (its weight and tau), None beyond the layout."""
    try:
        return unit_sparse_tables(op.weight, op.tau, op.name)
    except ValueError:
        return None


def unit_sparse_scratch(op: QConv) -> int | None:
    """Bytes of scratch of ``unit_conv2d_unit_sparse_s8`` for ``op``, None beyond its limits."""
    tables = unit_sparse_tables_of(op)
    if tables is None:
        return None
    return unit_sparse_scratch_bytes(op.in_channels, op.in_height, op.in_width, op.kernel_width, op.out_width,
                                     unit_sparse_block_rows(op), int(tables.levels.size))


def sram_fits(qmodel: QuantizedModel, export_target: str) -> bool:
    """The export of ``qmodel`` (no counters) fits the target's SRAM with the stack reserve (the
    export's own check, :mod:`unitprune.mcu.export.checks`): layer by layer (whole-plane
    accumulators); or, for a model that does not fit layer by layer even without its list kernels'
    lists (so ``execution="auto"`` exports it fused whatever its kernels: KWS on the ATmega2560),
    fused with one output row per step (the lists sized for the windows:
    :mod:`unitprune.mcu.export.fused_kernels`)."""
    from .targets.specs import EXPORT_TARGETS, STACK_RESERVE

    spec = EXPORT_TARGETS[export_target]
    if spec.sram_bytes is None:
        return True
    if _layers_sram_bytes(qmodel, spec.layout, export_target) + STACK_RESERVE <= spec.sram_bytes:
        return True
    listless = with_unit_kernels(qmodel, {op.name: "unit" for op in qmodel.ops
                                          if isinstance(op, QConv) and op.unit_kernel in LIST_KERNELS})
    if _layers_sram_bytes(listless, spec.layout, export_target) + STACK_RESERVE <= spec.sram_bytes:
        return False  # layer by layer fits without the lists: they are given up there
    return _fused_sram_bytes(qmodel, spec.layout) + STACK_RESERVE <= spec.sram_bytes


#: The reason a conv of a model exported fused keeps the per-position kernel under ``plan="auto"``.
FUSED_REASON = ("exported fused (beyond the SRAM layer by layer): the cost model predicts whole-layer calls, not "
                "windows; the per-position kernel")


def exports_fused(qmodel: QuantizedModel, export_target: str) -> bool:
    """``execution="auto"`` exports ``qmodel`` fused on the target: layer by layer it does not fit the
    SRAM even with every conv on the per-position kernel (no lists)."""
    from .targets.specs import EXPORT_TARGETS, STACK_RESERVE

    spec = EXPORT_TARGETS[export_target]
    if spec.sram_bytes is None:
        return False
    plain = with_unit_kernels(qmodel, {op.name: "unit" for op in qmodel.ops if isinstance(op, QConv)})
    return _layers_sram_bytes(plain, spec.layout, export_target) + STACK_RESERVE > spec.sram_bytes


def _layers_sram_bytes(qmodel: QuantizedModel, layout, export_target: str) -> int:
    """The layer-by-layer plan's SRAM with the input and output (whole-plane accumulators in the
    weight-stationary convs, the rows the others hold on ``export_target``)."""
    from .export.memory_plan import model_descriptor_bytes, plan_memory, scratch_sizes

    descriptors = model_descriptor_bytes(qmodel, layout, qmodel.variant, qmodel.linear_quotient)
    return plan_memory(qmodel, scratch_sizes(qmodel, target=export_target), descriptors).peak_sram_with_io_bytes


def _fused_sram_bytes(qmodel: QuantizedModel, layout) -> float:
    """The fused plan's SRAM with the output (one row per step, along the axis the export chooses),
    or infinity where the model has no fused form."""
    from .export.export_types import ExportError
    from .export.fused_kernels import fused_kernels
    from .export.fused_plan import FusedUnsupported, plan_fused_memory, tail_steps
    from .export.memory_plan import model_descriptor_bytes
    from .export.pipeline import fused_form

    try:
        form, chain, _ = fused_form(qmodel, 1, "auto")
        convs = fused_kernels(form, chain, qmodel.variant)
    except (FusedUnsupported, ExportError):
        return float("inf")
    descriptors = model_descriptor_bytes(qmodel, layout, qmodel.variant, qmodel.linear_quotient, convs.sparse_structs,
                                         tail_steps(chain))
    return plan_fused_memory(form, chain, descriptors, conv_scratch=convs.scratch).peak_sram_with_io_bytes


def with_unit_kernels(qmodel: QuantizedModel, kernels: dict[str, str]) -> QuantizedModel:
    """A copy of ``qmodel`` whose conv ops run ``kernels[name]`` (:data:`UNIT_CONV_KERNELS`) and whose
    linear ops run ``kernels[name]`` (:data:`UNIT_LINEAR_KERNELS`); others unchanged."""
    allowed = {op.name: UNIT_CONV_KERNELS if isinstance(op, QConv) else UNIT_LINEAR_KERNELS
               for op in qmodel.ops if isinstance(op, (QConv, QLinear))}
    unknown = sorted(set(kernels) - set(allowed))
    if unknown:
        raise ValueError(f"with_unit_kernels: no conv or linear layer named {', '.join(unknown)}")
    bad = {name: kernel for name, kernel in kernels.items() if kernel not in allowed[name]}
    if bad:
        raise ValueError(f"with_unit_kernels: unknown kernel(s) {bad}; choose from {', '.join(UNIT_CONV_KERNELS)} "
                         f"(conv) or {', '.join(UNIT_LINEAR_KERNELS)} (linear)")
    for op in qmodel.ops:
        if kernels.get(op.name) == "skipfree" and skipfree_scratch_bytes(op) is None:
            raise ValueError(f"layer {op.name!r}: beyond the skip-free kernel's limits (H, W <= 256, OH*OW <= "
                             "16384, C*H*W <= 65535)")
        if kernels.get(op.name) == "sparse" and unit_sparse_scratch(op) is None:
            raise ValueError(f"layer {op.name!r}: beyond the UnIT sparse kernel's limits (W <= 255, OW <= 16383, "
                             "C/groups <= 256, kernel sides <= 255)")
    planned = copy.copy(qmodel)
    planned.ops = [replace(op, unit_kernel=kernels[op.name]) if op.name in kernels else op for op in qmodel.ops]
    planned.source = dict(qmodel.source)
    return planned


#: Kernels that compute their layer exactly (its UnIT off): a plan with one changes the model's accuracy.
EXACT_KERNELS = ("dense", "static")


def has_exact_layers(qmodel: QuantizedModel) -> bool:
    """Whether a ``unit`` model's plan runs any conv or linear layer exactly (:data:`EXACT_KERNELS`): its
    accuracy and skipped fraction are then the planned model's, to be measured again."""
    return qmodel.variant == "unit" and any(isinstance(op, (QConv, QLinear)) and op.unit_kernel in EXACT_KERNELS
                                            for op in qmodel.ops)


#: Kernels whose per-sample lists take SRAM beside the activations (the SRAM fallback gives them up).
LIST_KERNELS = ("skipfree", "sparse")


def _fallback(layer: LayerPlan, export_target: str) -> LayerPlan:
    """``layer`` on its fastest predicted kernel other than the list kernels it gave up (its own
    included): the other list kernel, whose lists may be smaller, or one without lists."""
    given_up = (*layer.given_up, layer.kernel)
    kernel = min((k for k in layer.predicted_cycles if k not in given_up), key=layer.predicted_cycles.get)
    return replace(layer, kernel=kernel, given_up=given_up,
                   reason=f"the {' and '.join(given_up)} lists do not fit the {export_target} SRAM")


def _list_bytes(op: QConv, kernel: str) -> int:
    return (skipfree_scratch_bytes(op) if kernel == "skipfree" else unit_sparse_scratch(op)) or 0


def _fallen_back(qmodel: QuantizedModel, layers: dict[str, LayerPlan], name: str) -> QuantizedModel:
    return with_unit_kernels(qmodel, {n: (_fallback(layer, "") if n == name else layer).kernel
                                      for n, layer in layers.items()})


def plan_unit_kernels(qmodel: QuantizedModel, x_q: np.ndarray, target: str | None, plan: str = "auto",
                      allow_dense: bool = True, samples: int = PLAN_SAMPLES, early_exit: bool = True,
                      static: bool = True) -> QuantizedModel:
    """``qmodel`` with a kernel per conv layer (module docstring), chosen on the int8 calibration
    inputs ``x_q`` (the first ``samples``) for ``target`` (:data:`COST_TARGETS`; None: no predictions,
    only with a named ``plan``). ``plan`` a kernel name forces it on every conv layer (``skipfree`` falls back to ``unit`` where a layer exceeds its
    limits). ``early_exit`` False keeps every linear layer on the unsorted UnIT kernel (no sorted
    columns in flash). ``static`` False leaves out the static-sparse candidates (``static``,
    ``sparse_tau``: their records take up to 4 bytes of flash per weight against the int8 table's 1).
    A model whose variant is not ``unit`` is returned unchanged."""
    if plan not in PLANS:
        raise ValueError(f"unknown UnIT kernel plan {plan!r}; choose from {', '.join(PLANS)}")
    if target not in COST_TARGETS and (plan == "auto" or target is not None):
        raise ValueError(f"no UnIT cost model for target {target!r}; one of {', '.join(COST_TARGETS)}"
                         + ("" if plan != "auto" else " (or name one kernel for every layer, target None)"))
    if qmodel.variant != "unit" or not any(isinstance(op, QConv) for op in qmodel.ops):
        return qmodel
    x_q = np.asarray(x_q)[:samples]
    if len(x_q) == 0:
        raise ValueError("plan_unit_kernels: no calibration inputs")
    inputs: dict[str, np.ndarray] = {}
    run_reference(qmodel, x_q, capture=lambda op, x: inputs.__setitem__(op.name, x)
                  if isinstance(op, (QConv, QLinear)) else None)
    layers: dict[str, LayerPlan] = {}
    conv_names = {op.name for op in qmodel.ops if isinstance(op, QConv)}
    pooled: dict[str, dict[str, float]] = {}  # the convs the export pools when dense or static (pool_cost)
    for index, op in enumerate(qmodel.ops):
        if not isinstance(op, QConv):
            continue
        work = unit_cost.conv_work(op, inputs[op.name])
        candidates = ["unit"] + (["skipfree"] if skipfree_scratch_bytes(op) is not None else [])
        candidates += ["sparse"] if unit_sparse_scratch(op) is not None else []
        candidates += ["dense"] if allow_dense else []
        best, predicted = unit_cost.choose(work, target, kernels=tuple(candidates)) if target else ("unit", {})
        pool = pool_cost.pooled_cycles(qmodel.ops, index, inputs[op.name], target) if target else None
        if pool is not None:  # the conv and its max-pool: pooled on the dense kernel, else the separate pool
            pooled[op.name] = pool
            predicted = {k: pool["dense_pool"] if k == "dense" else v + pool["maxpool"] for k, v in predicted.items()}
            best = min(predicted, key=predicted.get)
        kept = work.kept / work.macs if work.macs else 0.0
        if plan == "auto":
            kernel, reason = best, "fewest predicted cycles"
        else:
            kernel = plan if plan in candidates or plan == "dense" else "unit"
            reason = f"plan {plan}" + ("" if kernel == plan else f" (beyond the {plan} kernel's limits)")
        layers[op.name] = LayerPlan(op.name, kernel, kept, predicted, reason)
    static_choice: dict[str, str] = {}  # the static convs' static-sparse kernel (zeroact_plan's names)
    if plan == "auto" and target is not None and static:
        for index, op in enumerate(qmodel.ops):  # the static-sparse kernels: the layer exact (static), UnIT on them
            if not (isinstance(op, QConv) and op.name in layers):  # (sparse_tau)
                continue
            x_static = inputs[op.name][:zeroact_plan.PLAN_SAMPLES]
            work = _static_work(op, x_static, target)
            if work is None:
                continue
            unpooled = zeroact_plan.predict(work, target)
            # with its max-pool (pooled on the static-sparse kernel, separate after the zero-activation one)
            predicted_static = zeroact_plan.layer_cycles(qmodel.ops, index, x_static, target, work)
            if not zeroact_plan.zeroact_fits(op):
                predicted_static = {"sparse": predicted_static["sparse"]}
            if allow_dense:
                static_choice[op.name] = min(predicted_static, key=predicted_static.get)
                layers[op.name] = _with_candidate(layers[op.name], "static", predicted_static[static_choice[op.name]])
            # UnIT on the stored weights where its assembly run takes the layer (inputs >= 0 on calibration)
            if target in unit_cost.SPARSE_TAU_DELTA and np.all(inputs[op.name] >= 0):
                cycles = unit_cost.predict_sparse_tau(unit_cost.conv_work(op, inputs[op.name]),
                                                      unpooled["sparse"], work["sparse"]["clipped_pairs"],
                                                      target) + pooled.get(op.name, {}).get("maxpool", 0.0)
                layers[op.name] = _with_candidate(layers[op.name], "sparse_tau", cycles)
    for op in qmodel.ops:  # the early-exit linear where the model predicts it faster (same outputs)
        if isinstance(op, QLinear) and plan == "auto" and (early_exit or allow_dense):
            work = unit_cost.linear_work(op, inputs[op.name], qmodel.linear_quotient)
            kernel, predicted = unit_cost.choose_linear(work, target)
            if not early_exit:
                predicted = {"unit": predicted["unit"]}
            if allow_dense and static and sparse_tables(op) is not None:
                predicted["static"] = unit_cost.predict_linear_static(op, target)
            kernel = min(predicted, key=predicted.get)
            layers[op.name] = LayerPlan(op.name, kernel, work.kept / max(1.0, work.inputs * work.outputs), predicted,
                                        "fewest predicted cycles")
    export_target = {"msp430-hwmult": "msp430"}.get(target, target)
    if plan == "auto" and export_target is not None and exports_fused(qmodel, export_target):
        # the predictions are of whole-layer calls; fused, a list kernel sorts every window again (and
        # a far-tables AVR export runs dense in C): the convs keep the per-position kernel, the linear
        # layers their UnIT kernels (the fused tail accumulates the UnIT linear weight-stationary)
        layers = {name: replace(layer, kernel="unit", reason=FUSED_REASON) if name in conv_names
                  else _without(layer, "static") for name, layer in layers.items()}
    planned = with_unit_kernels(qmodel, {name: layer.kernel for name, layer in layers.items()})
    while export_target is not None and not sram_fits(planned, export_target):
        # the lists do not fit beside the activations: give up the lists of one layer, the one costing
        # the fewest predicted cycles among those whose loss alone makes it fit, else the largest
        losses = {name: layer.predicted_cycles[_fallback(layer, "").kernel] - layer.predicted_cycles[layer.kernel]
                  for name, layer in layers.items() if layer.kernel in LIST_KERNELS and layer.predicted_cycles}
        if not losses:
            break
        ops = {op.name: op for op in qmodel.ops if op.name in losses}
        fitting = [name for name in losses if sram_fits(_fallen_back(qmodel, layers, name), export_target)]
        name = (min(fitting, key=losses.get) if fitting
                else max(losses, key=lambda n: (_list_bytes(ops[n], layers[n].kernel), -losses[n])))
        layers[name] = _fallback(layers[name], export_target)
        planned = with_unit_kernels(qmodel, {name: layer.kernel for name, layer in layers.items()})
    planned.source["unit_kernel_plan"] = {"target": target, "plan": plan, "calibration_samples": len(x_q),
                                          "layers": {name: layer.to_dict() for name, layer in layers.items()}}
    statics = {name: kernel for name, kernel in static_choice.items() if layers[name].kernel == "static"}
    if statics:  # which static convs also skip zero activations (the export reads it: zeroact_layers)
        planned.source["zeroact_plan"] = {
            "target": target, "plan": "auto", "calibration_samples": min(len(x_q), zeroact_plan.PLAN_SAMPLES),
            "layers": {name: {"kernel": kernel, "reason": "fewest predicted cycles (static layer of a unit plan)"}
                       for name, kernel in statics.items()}}
    return planned


def _static_work(op: QConv, x: np.ndarray, target: str) -> dict | None:
    """The counts of ``op`` on the static-sparse kernels (:func:`unitprune.mcu.zeroact_plan.zeroact_work`:
    ``sparse``, and ``zeroact`` where it fits), None where its tables or that model cannot hold it."""
    if target not in zeroact_plan.COEFFICIENTS or sparse_tables(op) is None or not np.any(op.weight):
        return None
    try:
        return zeroact_plan.zeroact_work(op, x)
    except ValueError:
        return None


def _with_candidate(layer: LayerPlan, kernel: str, cycles: float) -> LayerPlan:
    """``layer`` with one more predicted kernel, and that kernel chosen if it is predicted the fastest
    (a layer forced to its kernel, or given up to the SRAM, keeps its kernel)."""
    predicted = {**layer.predicted_cycles, kernel: cycles}
    if layer.reason != "fewest predicted cycles":
        return replace(layer, predicted_cycles=predicted)
    return replace(layer, kernel=min(predicted, key=predicted.get), predicted_cycles=predicted)


def _without(layer: LayerPlan, kernel: str) -> LayerPlan:
    """``layer`` without the candidate ``kernel`` (its fastest other kernel)."""
    if layer.kernel != kernel:
        return layer
    predicted = {k: v for k, v in layer.predicted_cycles.items() if k != kernel}
    return replace(layer, kernel=min(predicted, key=predicted.get), predicted_cycles=predicted, reason=FUSED_REASON)
