"""Max-pool before the output stage: which convolutions of a layer-by-layer export call
``unit_conv2d_dense_pool_s8`` (docs/kernels.md, "Max-pool before the output stage").

A dense convolution whose output only a max-pool reads (the op after it in the chain; a fused ReLU
is the conv's clamp) can take the maximum of each pool window over its int32 accumulators and
requantize once per pooled output: the output stage, ``clamp(requantize(acc) + zero point)`` with
TFLite's ``MultiplyByQuantizedMultiplier``, is non-decreasing in ``acc`` for a multiplier ``m >= 0``
(``SaturatingRoundingDoublingHighMul`` with ``m >= 0`` and ``RoundingDivideByPOT`` round half away
from zero: monotone; the left shift is exact, the quantizer's accumulator bound keeps
``acc * 2**shift`` in int32; ``m == 0`` gives 0 for every ``acc``), so
``maxpool(stage(acc)) == stage(max acc)`` exactly, ReLU included (it is the clamp's ``act_min``).
The quantizer gives only multipliers ``>= 0``; a negative one (non-increasing stage) keeps the
separate pool here, and the kernels refuse it anyway.

The pooled call applies when the pool's window equals its stride (the windows tile the output; the
int8 pools have no padding and floor mode), the conv runs the dense kernel of a ``dense`` export or
the static-sparse kernel ``unit_conv2d_sparse_s8`` of a ``zeroskip`` export (TTP; not its
zero-activation variant), or a UnIT export's conv that its kernel plan (:mod:`unitprune.mcu.unit_plan`)
puts on the dense or the static-sparse kernel (its UnIT kernels keep the separate pool), and the
target calls ``unit_conv2d_dense_s8`` itself (the Cortex-M0+ and RV32 targets
call their ``_mcu32`` variant: separate pool there). The conv then writes the pooled plane (the
pool's output buffer; the pool op emits no code, its region marker stays), and its scratch holds
the pool window's rows of accumulators: ``block_rows = KH`` of the pool, ``4 * KH * OW`` bytes,
whatever the export's ``conv_block_rows`` (``memory_plan.scratch_sizes``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..kernel_choice import conv_variant
from ..qmodel import QConv, QMaxPool
from .core_targets import CORE_EXPORT_TARGETS

__all__ = ["PooledConv", "pool_fits", "pool_window", "pooled_convs", "pooled_kernel", "pools_on"]


@dataclass(frozen=True)
class PooledConv:
    """A conv exported as ``unit_conv2d_dense_pool_s8`` with the max-pool ``pool`` after it."""

    conv: str
    pool: str
    kernel: tuple[int, int]  # the pool's window (= its stride)
    sparse: bool = False  # unit_conv2d_sparse_pool_s8 (the static-sparse conv), else the dense one

    @property
    def function(self) -> str:
        return "unit_conv2d_sparse_pool_s8" if self.sparse else "unit_conv2d_dense_pool_s8"

    def to_dict(self) -> dict:
        return {"pool": self.pool, "kernel": list(self.kernel), "function": self.function}


def pool_fits(conv_out: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int],
              multipliers: np.ndarray | None = None) -> bool:
    """The pool over a ``conv_out`` = (OH, OW) plane can be taken on the accumulators: window equal
    to the stride and inside the plane, and (when given) every multiplier ``>= 0``."""
    return (tuple(kernel) == tuple(stride) and 1 <= kernel[0] <= conv_out[0] and 1 <= kernel[1] <= conv_out[1]
            and (multipliers is None or bool(np.all(np.asarray(multipliers) >= 0))))


def pools_on(target: str) -> bool:
    """Whether ``target``'s exports call ``unit_conv2d_dense_pool_s8`` (not the Cortex-M0+ / RV32
    ones, whose dense convolution is ``unit_conv2d_dense_s8_mcu32``; ``target`` may also be a
    descriptor layout of the resource model: ``avr-far``, ``cortex-m``)."""
    return target not in CORE_EXPORT_TARGETS and target != "cortex-m"  # the resource model's Cortex-M0+ layout


def pool_window(ops, index: int, target: str) -> tuple[int, int] | None:
    """The window of the max-pool after ``ops[index]`` on which a layer-by-layer export for ``target``
    pools that conv when it runs the dense or the static-sparse kernel (module docstring), else None:
    what the kernel plans (:mod:`unitprune.mcu.zeroact_plan`, :mod:`unitprune.mcu.unit_plan`) compare
    the pooled kernels with the others and the separate pool by (:mod:`unitprune.mcu.pool_cost`)."""
    op = ops[index]
    after = ops[index + 1] if index + 1 < len(ops) else None
    if (pools_on(target) and isinstance(op, QConv) and isinstance(after, QMaxPool)
            and (after.channels, after.in_height, after.in_width) == (op.out_channels, op.out_height, op.out_width)
            and pool_fits((op.out_height, op.out_width), after.kernel, after.stride, op.requant.multiplier)):
        return tuple(after.kernel)
    return None


def pooled_kernel(op, variant: str, sparse=(), zeroact=()) -> str | None:
    """Which pooled kernel ``op`` of a ``variant`` export runs: ``sparse`` for a static-sparse conv
    (``sparse``: kernel_choice.sparse_layers; under ``zeroskip``, or ``unit`` planned ``static``) that
    does not also skip zero activations (``zeroact``), ``dense`` for a conv of a ``dense`` export or a
    ``unit`` conv planned ``dense`` (or ``static`` without its tables), else None (the separate pool)."""
    if variant in ("zeroskip", "unit") and op.name in sparse:
        return "sparse" if op.name not in zeroact else None
    if variant == "dense" and op.name not in sparse or variant == "unit" and conv_variant(op, variant) == "dense":
        return "dense"
    return None


def pooled_convs(ops, variant: str, target: str, sparse=(), zeroact=()) -> dict[str, PooledConv]:
    """The convs of a layer-by-layer export pooled on their accumulators (module docstring), by conv
    name: those whose :func:`pooled_kernel` is one and whose max-pool :func:`pool_window` takes."""
    chosen = {}
    for index, op in enumerate(ops):
        window = pool_window(ops, index, target) if isinstance(op, QConv) else None
        kernel = pooled_kernel(op, variant, sparse, zeroact) if window is not None else None
        if kernel is not None:
            chosen[op.name] = PooledConv(op.name, ops[index + 1].name, window, kernel == "sparse")
    return chosen
