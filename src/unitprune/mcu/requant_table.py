"""Threshold tables of the output stage: requantization without a multiply (MSP430).

TFLite's ``MultiplyByQuantizedMultiplier`` followed by the int8 clamp is monotone in ``A = |acc|``
on each side of zero, so one output channel's whole output stage is 128 thresholds per side:
``T+(q)`` (``T-(q)``), the smallest ``A >= 1`` with ``|requantize(+A)| >= q`` (``|requantize(-A)| >= q``),
for ``q = 1..128`` (128 is the int8 clamp's largest magnitude). The two sides differ only at the
ties of the negative nudge: ``T-(q) - T+(q)`` is 0 or 1, so one entry ``E(q) = T+(q) + T-(q)`` holds
both, and with the key ``2A + 1`` for ``acc >= 0`` and ``2A`` for ``acc < 0``, ``|y| >= q`` iff
``key >= E(q)`` (docs/fixed_point.md, "Threshold tables"). The MSP430 output stage
(``unit_requantize_run_table_s8_msp430.S``) finds ``|y|`` by a binary search of 7 compares in the
channel's 128 entries: no multiply (the software-multiply build's general routine takes up to
793 cycles per output).

A table holds only channels whose ``T-(128) <= 2**30`` (the search then saturates every
``A >= 2**30`` and its keys stay below ``2**31``): a multiplier in ``[2**30, 2**31)`` with a
shift ``-e >= -22`` (``T(128) <= 2**(e + 8)``) qualifies; tiny multipliers whose outputs never
reach 128 do not, and their layer keeps the multiplying output stage. The tables cost ``512``
bytes of flash per output channel (``uint32`` entries), so the exporter gives them to the dense
convolutions with the most outputs per channel first while the target's flash allows
(:func:`table_layers`).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from . import reference
from .kernel_choice import assembly_run_fits, conv_variant
from .qmodel import QConv

#: Entries per output channel (q = 1..128).
ENTRIES = 128
#: Flash bytes per output channel (uint32 entries).
CHANNEL_BYTES = 4 * ENTRIES
#: The largest T-(128) a table holds (the search saturates A >= 2**30).
LIMIT = 2**30
#: The targets whose dense convolution reads the tables (the others ignore them).
TABLE_TARGETS = ("msp430",)


def _smallest(multiplier: int, shift: int, sign: int) -> np.ndarray:
    """``T(q)`` for q = 1..128 on one side (int64; ``-1`` where no int32 accumulator reaches q)."""
    left = max(shift, 0)
    a_max = (2**31 - 1 if sign > 0 else 2**31) >> left  # the accumulators the reference accepts
    q = np.arange(1, ENTRIES + 1, dtype=np.int64)
    lo = np.ones(ENTRIES, np.int64)
    hi = np.full(ENTRIES, a_max + 1, np.int64)  # a_max + 1: not reached
    mult = np.full(ENTRIES, multiplier, np.int64)
    shifts = np.full(ENTRIES, shift, np.int64)
    while np.any(lo < hi):
        mid = (lo + hi) // 2  # <= a_max
        reached = np.abs(reference.requantize(sign * mid, mult, shifts)) >= q
        active = lo < hi
        hi = np.where(active & reached, mid, hi)
        lo = np.where(active & ~reached, mid + 1, lo)
    return np.where(lo > a_max, -1, lo)


def channel_table(multiplier: int, shift: int) -> np.ndarray | None:
    """The 128 entries ``E(q) = T+(q) + T-(q)`` (uint32) of one output channel, or None when the
    channel is beyond a table (``T-(128) > 2**30`` or never reached)."""
    positive = _smallest(int(multiplier), int(shift), 1)
    negative = _smallest(int(multiplier), int(shift), -1)
    if negative[-1] < 0 or negative[-1] > LIMIT:
        return None
    gap = negative - positive
    if np.any(positive < 1) or np.any((gap != 0) & (gap != 1)):  # the module docstring's facts
        raise AssertionError(f"threshold table: multiplier {multiplier}, shift {shift}: sides differ by {gap}")
    return (positive + negative).astype(np.uint32)


def layer_table(requant) -> np.ndarray | None:
    """The ``[out][128]`` table of a layer's ``Requant`` (uint32), or None when a channel is beyond one."""
    rows = []
    for multiplier, shift in zip(requant.multiplier.tolist(), requant.shift.tolist(), strict=True):
        row = channel_table(multiplier, shift)
        if row is None:
            return None
        rows.append(row)
    return np.stack(rows)


def table_layers(ops, target: str, variant: str, kernels: str, budget_bytes: int | None,
                 exclude=()) -> dict[str, np.ndarray]:
    """The convolutions that get threshold tables, with their tables (by layer name): on the
    :data:`TABLE_TARGETS` with ``kernels == "auto"``, the layers that call ``unit_conv2d_dense_s8``
    with its assembly runs (not those in ``exclude``: the static-sparse ones), the most outputs per
    channel first, as long as their tables fit ``budget_bytes`` (None: no limit)."""
    if target not in TABLE_TARGETS or kernels != "auto":
        return {}
    convs = [op for op in ops if isinstance(op, QConv) and op.name not in exclude
             and conv_variant(op, variant) == "dense" and assembly_run_fits(op)]
    tables = {op.name: layer_table(op.requant) for op in convs}
    convs = [op for op in convs if tables[op.name] is not None]
    picked = planned_layers([(op.out_height * op.out_width, op.out_channels) for op in convs], budget_bytes)
    return {convs[i].name: tables[convs[i].name] for i in picked}


def planned_layers(convs: list[tuple[int, float]], budget_bytes: float | None) -> list[int]:
    """Which of the convolutions ``(outputs per channel, output channels)`` get tables: the most
    outputs per channel first (in order on a tie), each while its ``512 * channels`` bytes fit what is
    left of ``budget_bytes`` (None: all). The exporter (:func:`table_layers`) and the resource model
    (``unitprune.shrink.resources``, :func:`room_bytes`) both choose by it."""
    order = sorted(range(len(convs)), key=lambda i: -convs[i][0])
    picked, left = [], budget_bytes
    for i in order:
        size = CHANNEL_BYTES * convs[i][1]
        if left is not None and size > left:
            continue
        picked.append(i)
        left = None if left is None else left - size
    return sorted(picked)


def room_bytes(target: str, constants_bytes: float) -> float | None:
    """The flash the tables of ``target`` may take beside ``constants_bytes`` of the model's other
    constant tables (weights, tau, requantization constants): the target's flash reads less the
    code's reserve (``TargetSpec.code_reserve_bytes + table_code_bytes``), never below 0; None when
    the target has no limit. The embedded samples do not count (as for AVR's far tables: a model's
    firmware layout does not depend on how many samples are embedded)."""
    from .targets.specs import EXPORT_TARGETS

    spec = EXPORT_TARGETS[target]
    if spec.flash_read_limit is None:
        return None
    return max(spec.flash_read_limit - spec.code_reserve_bytes - spec.table_code_bytes - constants_bytes, 0)


def with_tables(qmodel, target: str, variant: str, kernels: str, exclude=()):
    """``qmodel`` with the threshold tables of :func:`table_layers` in its ops' ``Requant``
    (``thresholds``), within :func:`room_bytes` of the layers' weights and requantization constants
    (tau, the sorted linear layers' index and the quotient tables counted over)."""
    if target not in TABLE_TARGETS or kernels != "auto":
        return qmodel
    weights = 0
    for op in qmodel.ops:
        if isinstance(op, QConv):  # int8 weights, and the UnIT convolutions' tau
            weights += op.weight.size * (2 if conv_variant(op, variant).startswith("unit") else 1)
        elif hasattr(op, "requant"):  # a linear layer; under unit its quotient table or tree (<= 516 B),
            sorted_ = variant == "unit" and getattr(op, "unit_kernel", "unit") == "sorted"
            weights += op.weight.size * (3 if sorted_ else 1) + (516 if variant == "unit" else 0)  # sorted: + uint16 index
    requant = sum(9 * op.requant.bias.size for op in qmodel.ops if hasattr(op, "requant"))  # bias, multiplier, shift
    chosen = table_layers(qmodel.ops, target, variant, kernels, room_bytes(target, weights + requant), exclude)
    if not chosen:
        return qmodel
    ops = [replace(op, requant=replace(op.requant, thresholds=chosen[op.name])) if op.name in chosen else op
           for op in qmodel.ops]
    return replace(qmodel, ops=ops)
