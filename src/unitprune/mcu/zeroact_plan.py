"""Per static-sparse conv layer of a ``zeroskip`` export (TTP, zero skipping, FATReLU), whether it also
skips zero activations: ``unit_conv2d_sparse_zeroact_s8`` (per output column only the kernel rows
whose input row has a nonzero inside the field, a wholly zero field given its requantized bias) or
today's ``unit_conv2d_sparse_s8`` (every stored weight at every output), whichever a cycle model
predicts fewer cycles for on the target, from what each kernel does on calibration inputs.

The counts (:func:`zeroact_work`, means per sample) mirror the kernels' loops: for both the stored
weights they multiply (``pairs``), the outputs they requantize and their runs, and among those the
requantizations that multiply (``multiplied``: with a ReLU, ``act_min >= 0``, an accumulator <= 0
is clamped without the multiply; the kernels' output stage is the dense kernels' fast form where
the channel's multiplier and shift allow it, so those of the other channels are counted again,
``multiplied_general``); for the zero-activation kernel also the input it scans for row
spans, the kernel rows and key columns of its per-row keys, and the outputs it gives the constant. Cycles are linear in the counts with per-target
coefficients (:data:`COEFFICIENTS`) fitted by non-negative least squares to cycles measured in the
simulators (``benchmarks/sparse_zeroact_mcu.py --fit`` prints the table;
tests/test_mcu_sparse_zeroact_s8.py checks predictions against measured cycles). The skip pays where
the input has zero rows/columns inside fields (MNIST's digit background); on dense inputs its keys
and scan are pure overhead and the model keeps the plain kernel.

The plan is recorded in ``qmodel.source["zeroact_plan"]`` (the export's manifest, memory_plan.json,
copies it) and read by :func:`zeroact_layers` at export.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from ..kernels.sparse_zeroact_s8 import MAX_KERNEL_ROWS, conv_row_starts
from .qmodel import QConv, QuantizedModel
from .reference import conv_columns, run_reference

__all__ = ["COEFFICIENTS", "FEATURES", "PLANS", "ZEROACT_TARGETS", "plan_zero_activation", "plans_zeroact",
           "fast_output_stage", "layer_cycles", "output_multiplies", "predict", "zeroact_layers", "zeroact_work",
           "zeroact_fits"]

#: ``plan`` values: ``auto`` (the cost model), ``zeroact`` (every layer that fits), ``sparse`` (none).
PLANS = ("auto", "zeroact", "sparse")
#: Calibration samples the counts are taken on.
PLAN_SAMPLES = 32
#: The counts each kernel's cycles are modelled on ("one": a constant per call).
FEATURES = {
    "sparse": ("one", "pairs", "clipped_pairs", "outputs", "runs", "multiplied", "multiplied_general"),
    "zeroact": ("one", "inputs", "key_rows", "key_columns", "outputs", "runs", "pairs", "clipped_pairs", "requantized",
                "multiplied", "multiplied_general"),
}
#: Cycles per count, per target and kernel: benchmarks/sparse_zeroact_mcu.py --fit (NNLS on the
#: simulators' exact cycles of the layers there).
COEFFICIENTS: dict[str, dict[str, dict[str, float]]] = {
    "avr": {
        "sparse": {"one": 13654.977, "pairs": 12.951, "clipped_pairs": 247.75, "outputs": 11.693, "runs": 638.644,
            "multiplied": 115.577, "multiplied_general": 111.477},
        "zeroact": {"one": 23150.702, "inputs": 0.0, "key_rows": 758.197, "key_columns": 0.0, "outputs": 54.713,
            "runs": 274.336, "pairs": 13.836, "clipped_pairs": 348.807, "requantized": 0.0,
            "multiplied": 155.361, "multiplied_general": 23.366},
    },
    "msp430": {
        "sparse": {"one": 13696.591, "pairs": 25.078, "clipped_pairs": 277.33, "outputs": 0.0, "runs": 494.312,
            "multiplied": 424.786, "multiplied_general": 8.039},
        "zeroact": {"one": 24333.924, "inputs": 0.0, "key_rows": 462.671, "key_columns": 0.0, "outputs": 25.706,
            "runs": 314.066, "pairs": 24.87, "clipped_pairs": 614.44, "requantized": 44.854,
            "multiplied": 395.221, "multiplied_general": 0.0},
    },
    "msp430-hwmult": {
        "sparse": {"one": 14841.858, "pairs": 17.894, "clipped_pairs": 285.674, "outputs": 35.329, "runs": 384.822,
            "multiplied": 126.076, "multiplied_general": 61.322},
        "zeroact": {"one": 25162.682, "inputs": 0.0, "key_rows": 462.843, "key_columns": 0.0, "outputs": 37.339,
            "runs": 223.657, "pairs": 18.119, "clipped_pairs": 520.409, "requantized": 41.564,
            "multiplied": 121.728, "multiplied_general": 0.0},
    },
}
#: Targets with coefficients (msp430-hwmult: the msp430 export with the hardware multiplier).
ZEROACT_TARGETS = ("avr", "msp430", "msp430-hwmult")


def zeroact_fits(op: QConv) -> bool:
    """The kernel's limits: ``C/groups * KH <= 254`` kernel rows (uint8 keys), sides <= 32767."""
    return (op.in_channels // op.groups * op.kernel_height <= MAX_KERNEL_ROWS and op.in_width <= 0x7FFF
            and op.in_height <= 0x7FFF and op.out_width <= 0x7FFF)


def zeroact_work(op: QConv, x: np.ndarray) -> dict[str, dict[str, float]]:
    """The counts of both kernels (:data:`FEATURES`) of ``op`` on int8 inputs ``x`` (N, C, H, W), per sample."""
    n = x.shape[0]
    c_all, h, w = op.in_channels, op.in_height, op.in_width
    x4 = np.asarray(x).reshape(n, c_all, h, w)
    group_in, group_out = c_all // op.groups, op.out_channels // op.groups
    kernel_rows = group_in * op.kernel_height
    (sy, sx), (dy, dx) = op.stride, op.dilation
    top, _, left, _ = op.padding
    oh, ow = op.out_height, op.out_width
    field = (op.kernel_width - 1) * dx
    nonzero = x4 != 0
    row_live = nonzero.any(axis=3)  # [n, C, H]
    lo = np.argmax(nonzero, axis=3)
    hi = w - 1 - np.argmax(nonzero[..., ::-1], axis=3)
    starts = conv_row_starts(op.weight, op.name).astype(np.int64)
    stored = np.count_nonzero(op.weight)
    oy, ox = np.arange(oh), np.arange(ow)
    first_row = oy * sy - top
    rows_inside = (first_row >= 0) & (first_row + (op.kernel_height - 1) * dy < h)  # [OH]
    inner_first = -(-left // sx)
    inner_end = min(max((w - 1 + left - field) // sx + 1, inner_first), ow)
    inner = (ox >= inner_first) & (ox < inner_end)  # [OW]
    run_region = rows_inside[:, None] & inner[None, :]  # [OH, OW]
    multiplies = output_multiplies(op, x4)  # [n, O, OH, OW]
    key_columns = pairs = clipped_pairs = requantized = multiplied = multiplied_general = runs = 0.0
    fast = fast_output_stage(op)
    for group in range(op.groups):
        first = np.full((n, oh, ow), -1, np.int64)
        end = np.zeros((n, oh, ow), np.int64)
        for c in range(group_in):
            channel = group * group_in + c
            for ky in range(op.kernel_height):
                j = c * op.kernel_height + ky
                r = first_row + ky * dy
                valid = (r >= 0) & (r < h)
                rr = np.clip(r, 0, h - 1)
                live_row = row_live[:, channel, rr] & valid  # [n, OH]
                u = np.maximum(-(-(lo[:, channel, rr] + left - field) // sx), 0)
                v = np.minimum((hi[:, channel, rr] + left) // sx, ow - 1)
                live = live_row[..., None] & (ox >= u[..., None]) & (ox <= v[..., None])
                key_columns += live.sum()
                first = np.where(live & (first < 0), j, first)
                end = np.where(live, j + 1, end)
        dead = first < 0
        same = np.zeros_like(dead)
        same[..., 1:] = (first[..., 1:] == first[..., :-1]) & (end[..., 1:] == end[..., :-1])
        same[..., inner_first] = False
        segment_start = ~dead & ~same & run_region  # a run of whole fields starts here
        for o in range(group * group_out, (group + 1) * group_out):
            table = starts[o * kernel_rows:(o + 1) * kernel_rows + 1]
            count = np.where(dead, 0, table[end] - table[np.maximum(first, 0)])
            pairs += (count * run_region).sum()
            clipped_pairs += (count * ~run_region).sum()
            requantizes = ~dead & ((count > 0) | ~run_region)
            requantized += requantizes.sum()
            multiplied += (requantizes & multiplies[:, o]).sum()
            if not fast[o]:
                multiplied_general += (requantizes & multiplies[:, o]).sum()
            runs += (segment_start & (count > 0)).sum()
    outputs = op.out_channels * oh * ow
    sparse_runs = int(np.count_nonzero(op.weight.reshape(op.out_channels, -1).any(axis=1))) * int(rows_inside.sum())
    whole = int(run_region.sum())
    return {
        "sparse": {"one": 1.0, "pairs": float(stored * whole), "clipped_pairs": float(stored * (oh * ow - whole)),
                   "outputs": float(outputs), "runs": float(sparse_runs), "multiplied": float(multiplies.sum() / n),
                   "multiplied_general": float(multiplies[:, ~fast_output_stage(op)].sum() / n)},
        "zeroact": {"one": 1.0, "inputs": float(c_all * h * w), "key_rows": float(oh * op.groups * kernel_rows),
                    "key_columns": key_columns / n, "outputs": float(outputs), "runs": runs / n,
                    "pairs": pairs / n, "clipped_pairs": clipped_pairs / n, "requantized": requantized / n,
                    "multiplied": multiplied / n, "multiplied_general": multiplied_general / n},
    }


def fast_output_stage(op: QConv) -> np.ndarray:
    """Per output channel (bool [O]): whether the assembly output stage takes the fast form
    (csrc/unit_internal_requant_s8.h: shift in [-15, -8], multiplier >= 2**30); the other channels'
    outputs take the general requantization, which both kernels pay per multiplied output
    (``multiplied_general``)."""
    shift = np.asarray(op.requant.shift, np.int64)
    return (shift >= -15) & (shift <= -8) & (np.asarray(op.requant.multiplier, np.int64) >= 2**30)


def output_multiplies(op: QConv, x4: np.ndarray) -> np.ndarray:
    """Which outputs' requantization multiplies (bool [n, O, OH, OW]): every one without a ReLU
    (``act_min < 0``), else those whose accumulator (bias included) is > 0 (the integer reference's
    accumulators)."""
    n = x4.shape[0]
    if op.requant.act_min < 0:
        return np.ones((n, op.out_channels, op.out_height, op.out_width), bool)
    columns = conv_columns(op, x4)  # [n, groups, taps, positions]
    group_out = op.out_channels // op.groups
    weight = op.weight.reshape(op.groups, group_out, -1).astype(np.int64)
    acc = np.einsum("gok,ngkp->ngop", weight, columns).reshape(n, op.out_channels, -1)
    acc += op.requant.bias.astype(np.int64)[None, :, None]
    return (acc > 0).reshape(n, op.out_channels, op.out_height, op.out_width)


def predict(work: dict[str, dict[str, float]], target: str) -> dict[str, float]:
    """Predicted cycles per sample of each kernel on ``target``."""
    if target not in COEFFICIENTS:
        raise ValueError(f"no zero-activation cost model for target {target!r}; one of {', '.join(COEFFICIENTS)}")
    return {kernel: float(sum(COEFFICIENTS[target][kernel].get(name, 0.0) * value
                              for name, value in work[kernel].items()))
            for kernel in FEATURES}


def layer_cycles(ops, index: int, x: np.ndarray, target: str, work: dict | None = None) -> dict[str, float]:
    """Predicted cycles per sample of the conv ``ops[index]`` on each static-sparse kernel, on its
    inputs ``x`` (``work``: its :func:`zeroact_work` there, if already counted): with the max-pool after
    it where the export would pool it on the accumulators (:func:`unitprune.mcu.pool_cost.pooled_cycles`),
    the conv and that pool (``sparse``: the pooled kernel ``unit_conv2d_sparse_pool_s8``; ``zeroact``:
    the kernel and the separate max-pool), else the conv alone."""
    from . import pool_cost

    predicted = predict(zeroact_work(ops[index], x) if work is None else work, target)
    pooled = pool_cost.pooled_cycles(ops, index, x, target)
    if pooled is None:
        return predicted
    return {"sparse": pooled["sparse_pool"], "zeroact": predicted["zeroact"] + pooled["maxpool"]}


@dataclass(frozen=True)
class LayerChoice:
    """One static-sparse conv layer's kernel, its input's zero fraction and the predictions."""

    kernel: str  # "zeroact" or "sparse"
    zero_fraction: float
    predicted_cycles: dict[str, float]
    reason: str

    def to_dict(self) -> dict:
        return {"kernel": self.kernel, "input_zero_fraction": round(self.zero_fraction, 4),
                "predicted_cycles": {k: round(v) for k, v in self.predicted_cycles.items()}, "reason": self.reason}


def plan_zero_activation(qmodel: QuantizedModel, x_q: np.ndarray, target: str | None, plan: str = "auto",
                         samples: int = PLAN_SAMPLES) -> QuantizedModel:
    """``qmodel`` with ``source["zeroact_plan"]``: per conv layer the kernel of :func:`zeroact_layers`,
    chosen on the int8 calibration inputs ``x_q`` (the first ``samples``) for ``target``
    (:data:`COEFFICIENTS`; None: ``plan`` must name the kernel). A model whose variant is not
    ``zeroskip`` is returned unchanged."""
    if plan not in PLANS:
        raise ValueError(f"unknown zero-activation plan {plan!r}; choose from {', '.join(PLANS)}")
    if plan == "auto" and target not in COEFFICIENTS:
        raise ValueError(f"no zero-activation cost model for target {target!r}; one of {', '.join(COEFFICIENTS)} "
                         "(or plan 'zeroact' / 'sparse')")
    if qmodel.variant != "zeroskip" or not any(isinstance(op, QConv) for op in qmodel.ops):
        return qmodel
    x_q = np.asarray(x_q)[:samples]
    if len(x_q) == 0:
        raise ValueError("plan_zero_activation: no calibration inputs")
    inputs: dict[str, np.ndarray] = {}
    run_reference(qmodel, x_q, capture=lambda op, x: inputs.__setitem__(op.name, x) if isinstance(op, QConv) else None)
    layers = {}
    for index, op in enumerate(qmodel.ops):
        if not isinstance(op, QConv):
            continue
        x = inputs[op.name]
        zeros = float(np.mean(x == 0))
        if not zeroact_fits(op):
            layers[op.name] = LayerChoice("sparse", zeros, {}, "beyond the zero-activation kernel's limits")
            continue
        predicted = layer_cycles(qmodel.ops, index, x, target) if target in COEFFICIENTS else {}
        if plan == "auto":
            kernel = min(predicted, key=predicted.get)
            reason = "fewest predicted cycles"
        else:
            kernel, reason = plan, f"plan {plan}"
        layers[op.name] = LayerChoice(kernel, zeros, predicted, reason)
    planned = copy.copy(qmodel)
    planned.source = dict(qmodel.source)
    planned.source["zeroact_plan"] = {"target": target, "plan": plan, "calibration_samples": len(x_q),
                                      "layers": {name: layer.to_dict() for name, layer in layers.items()}}
    return planned


def plans_zeroact(qmodel: QuantizedModel) -> bool:
    """Whether ``qmodel``'s plan puts any layer on the zero-activation kernel (the export then keeps
    room for its code: ``TargetSpec.zeroact_code_bytes``)."""
    planned = qmodel.source.get("zeroact_plan", {}).get("layers", {})
    return any(layer.get("kernel") == "zeroact" for layer in planned.values())


def zeroact_layers(qmodel: QuantizedModel, sparse: dict) -> dict[str, np.ndarray]:
    """The static-sparse conv layers (``sparse``: :func:`unitprune.mcu.kernel_choice.sparse_layers`)
    that call the zero-activation kernel, with their ``row_starts``: those planned ``zeroact``."""
    planned = qmodel.source.get("zeroact_plan", {}).get("layers", {})
    chosen = {}
    for op in qmodel.ops:
        if (isinstance(op, QConv) and op.name in sparse and planned.get(op.name, {}).get("kernel") == "zeroact"
                and zeroact_fits(op)):
            chosen[op.name] = conv_row_starts(op.weight, op.name)
    return chosen
