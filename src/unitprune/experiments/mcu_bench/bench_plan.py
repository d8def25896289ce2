"""The UnIT kernel plan of one ``mcu-bench`` row: per conv layer of a ``unit`` model, the kernel the
cost model predicts fastest on the row's target (:func:`unitprune.mcu.unit_plan.plan_unit_kernels`,
on the validation inputs). A layer planned ``dense`` or ``static`` runs without its UnIT skipping, so the row's
test accuracy and skipped fraction are then re-measured on the planned model. A ``zeroskip`` model
(TTP, zero skipping, FATReLU) gets its zero-activation plan instead
(:func:`unitprune.mcu.zeroact_plan.plan_zero_activation`: which static-sparse convolutions also skip
zero activations; outputs and counters unchanged)."""

from __future__ import annotations

from ...mcu.qmodel import QConv, QuantizedModel
from ...mcu.reference import quantize_input
from ...mcu.unit_plan import COST_TARGETS, has_exact_layers, plan_unit_kernels
from ...mcu.zeroact_plan import ZEROACT_TARGETS, plan_zero_activation

__all__ = ["planned_for_target"]


def planned_for_target(qmodel: QuantizedModel, target: str, splits, allow_dense: bool = True,
                       early_exit: bool = True, static: bool = True) -> tuple[QuantizedModel, dict, dict]:
    """``(planned model, row overrides, plan record)``; targets without a cost model (the Cortex-M0+ /
    RV32 ones) and non-``unit`` models run unchanged. ``early_exit`` False: no linear layer on the
    early-exit kernel, ``static`` False no layer on the static-sparse kernels (:func:`plan_unit_kernels`)."""
    from ..evaluation import dataset_tensors
    from .bench import int8_accuracy

    if qmodel.variant == "zeroskip" and target in ZEROACT_TARGETS:
        x_val, _ = dataset_tensors(splits.val)
        return plan_zero_activation(qmodel, quantize_input(qmodel, x_val), target), {}, {}
    if qmodel.variant != "unit" or target not in COST_TARGETS:
        return qmodel, {}, {}
    x_val, _ = dataset_tensors(splits.val)
    planned = plan_unit_kernels(qmodel, quantize_input(qmodel, x_val), target, allow_dense=allow_dense,
                                early_exit=early_exit, static=static)
    overrides = {}
    if has_exact_layers(planned):  # a layer exact (dense or static-sparse): another model's accuracy
        accuracy, counts = int8_accuracy(planned, splits.test)
        overrides = {"quantized_accuracy": accuracy, "macs_skipped_fraction": counts.skipped_fraction}
    return planned, overrides, planned.source.get("unit_kernel_plan", {})

