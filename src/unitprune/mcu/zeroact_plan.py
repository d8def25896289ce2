"""Per static-sparse conv layer of a ``zeroskip`` export (TTP, zero skipping, FATReLU), whether it also
skips zero activations: ``unit_conv2d_sparse_zeroact_s8`` (per output column only the kernel rows
whose input row has a nonzero inside the field, a wholly zero field given its requantized bias) or
today's ``unit_conv2d_sparse_s8`` (every stored weight at every output), whichever a cycle model
predicts fewer cycles for on the target, from what each kernel does on calibration inputs.

The counts (:func:`zeroact_work`, means per sample) mirror the kernels' loops: for both the stored
weights they multiply (``pairs``), the outputs they requantize and their runs; for the zero-activation
kernel also the input it scans for row spans, the kernel rows and key columns of its per-row keys,
and the outputs it gives the constant. Cycles are linear in the counts with per-target
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
from .reference import run_reference

__all__ = ["COEFFICIENTS", "FEATURES", "PLANS", "ZEROACT_TARGETS", "plan_zero_activation", "predict",
           "zeroact_layers", "zeroact_work", "zeroact_fits"]

#: ``plan`` values: ``auto`` (the cost model), ``zeroact`` (every layer that fits), ``sparse`` (none).
PLANS = ("auto", "zeroact", "sparse")
#: Calibration samples the counts are taken on.
PLAN_SAMPLES = 32
#: The counts each kernel's cycles are modelled on ("one": a constant per call).
FEATURES = {
    "sparse": ("one", "pairs", "clipped_pairs", "outputs", "runs"),
    "zeroact": ("one", "inputs", "key_rows", "key_columns", "outputs", "runs", "pairs", "clipped_pairs", "requantized"),
}
#: Cycles per count, per target and kernel: benchmarks/sparse_zeroact_mcu.py --fit (NNLS on the
#: simulators' exact cycles of the layers there).
COEFFICIENTS: dict[str, dict[str, dict[str, float]]] = {
    "avr": {
        "sparse": {"one": 2768.401, "pairs": 12.551, "clipped_pairs": 242.765, "outputs": 214.824,
            "runs": 1230.572},
        "zeroact": {"one": 22096.758, "inputs": 9.79, "key_rows": 626.742, "key_columns": 4.042, "outputs": 49.216,
            "runs": 244.797, "pairs": 12.853, "clipped_pairs": 278.989, "requantized": 209.988},
    },
    "msp430": {
        "sparse": {"one": 10289.402, "pairs": 25.202, "clipped_pairs": 221.923, "outputs": 490.251,
            "runs": 754.937},
        "zeroact": {"one": 21305.42, "inputs": 0.0, "key_rows": 296.917, "key_columns": 0.0, "outputs": 25.413,
            "runs": 262.379, "pairs": 25.349, "clipped_pairs": 522.482, "requantized": 549.352},
    },
    "msp430-hwmult": {
        "sparse": {"one": 7206.499, "pairs": 17.517, "clipped_pairs": 230.384, "outputs": 315.195, "runs": 577.471},
        "zeroact": {"one": 21183.835, "inputs": 0.0, "key_rows": 267.411, "key_columns": 0.0, "outputs": 35.194,
            "runs": 211.455, "pairs": 17.691, "clipped_pairs": 439.917, "requantized": 338.549},
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
    key_columns = pairs = clipped_pairs = requantized = runs = 0.0
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
            requantized += (~dead & ((count > 0) | ~run_region)).sum()
            runs += (segment_start & (count > 0)).sum()
    outputs = op.out_channels * oh * ow
    sparse_runs = int(np.count_nonzero(op.weight.reshape(op.out_channels, -1).any(axis=1))) * int(rows_inside.sum())
    whole = int(run_region.sum())
    return {
        "sparse": {"one": 1.0, "pairs": float(stored * whole), "clipped_pairs": float(stored * (oh * ow - whole)),
                   "outputs": float(outputs), "runs": float(sparse_runs)},
        "zeroact": {"one": 1.0, "inputs": float(c_all * h * w), "key_rows": float(oh * op.groups * kernel_rows),
                    "key_columns": key_columns / n, "outputs": float(outputs), "runs": runs / n,
                    "pairs": pairs / n, "clipped_pairs": clipped_pairs / n, "requantized": requantized / n},
    }


def predict(work: dict[str, dict[str, float]], target: str) -> dict[str, float]:
    """Predicted cycles per sample of each kernel on ``target``."""
    if target not in COEFFICIENTS:
        raise ValueError(f"no zero-activation cost model for target {target!r}; one of {', '.join(COEFFICIENTS)}")
    return {kernel: float(sum(COEFFICIENTS[target][kernel].get(name, 0.0) * value
                              for name, value in work[kernel].items()))
            for kernel in FEATURES}


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
    for op in qmodel.ops:
        if not isinstance(op, QConv):
            continue
        x = inputs[op.name]
        zeros = float(np.mean(x == 0))
        if not zeroact_fits(op):
            layers[op.name] = LayerChoice("sparse", zeros, {}, "beyond the zero-activation kernel's limits")
            continue
        predicted = predict(zeroact_work(op, x), target) if target in COEFFICIENTS else {}
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
