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
zero-activation variant, nor the UnIT exports' per-layer kernel plans, :mod:`unitprune.mcu.unit_plan`:
they keep the separate pool) and the target calls ``unit_conv2d_dense_s8`` itself (the Cortex-M0+ and RV32 targets
call their ``_mcu32`` variant: separate pool there). The conv then writes the pooled plane (the
pool's output buffer; the pool op emits no code, its region marker stays), and its scratch holds
the pool window's rows of accumulators: ``block_rows = KH`` of the pool, ``4 * KH * OW`` bytes,
whatever the export's ``conv_block_rows`` (``memory_plan.scratch_sizes``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..qmodel import QConv, QMaxPool
from .core_targets import CORE_EXPORT_TARGETS

__all__ = ["PooledConv", "pooled_convs", "pool_fits", "pools_on"]


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


#: Whether zeroskip exports pool their static-sparse convs (``unit_conv2d_sparse_pool_s8``). Off: the
#: zero-activation plan's and the UnIT static plan's cost models (``unitprune.mcu.zeroact_plan``,
#: ``unitprune.mcu.unit_plan``) predict the unpooled kernel's cycles and choose kernels by them
#: (tests/test_mcu_sparse_zeroact_s8.py, tests/test_unit_plan_static.py); the kernel is tested on
#: its own (tests/test_pool_requant.py sets it).
SPARSE_POOLING = False


def pooled_convs(ops, variant: str, target: str, sparse=(), zeroact=()) -> dict[str, PooledConv]:
    """The convs of a layer-by-layer export pooled on their accumulators (module docstring), by conv
    name: under ``dense`` the dense convs (``unit_conv2d_dense_pool_s8``), under ``zeroskip`` the
    static-sparse ones (``sparse``: kernel_choice.sparse_layers) that do not also skip zero activations
    (``zeroact``: zeroact_plan.zeroact_layers), ``unit_conv2d_sparse_pool_s8``."""
    if not pools_on(target) or variant not in ("dense", "zeroskip") or (variant == "zeroskip" and not SPARSE_POOLING):
        return {}
    chosen = {}
    for op, after in zip(ops, ops[1:]):
        kernel = "dense" if variant == "dense" and op.name not in sparse else (
            "sparse" if variant == "zeroskip" and op.name in sparse and op.name not in zeroact else None)
        if (kernel is not None and isinstance(op, QConv) and isinstance(after, QMaxPool)
                and (after.channels, after.in_height, after.in_width) == (op.out_channels, op.out_height, op.out_width)
                and pool_fits((op.out_height, op.out_width), after.kernel, after.stride, op.requant.multiplier)):
            chosen[op.name] = PooledConv(op.name, after.name, tuple(after.kernel), kernel == "sparse")
    return chosen
