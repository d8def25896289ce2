"""The convolution kernel of every conv stage of a fused export, and what it needs on the stage's window.

A fused conv step (:mod:`.fused_plan`) runs a whole-layer kernel on a *window* of the layer: ``S =
K + (B - 1) * stride_y`` input rows, no vertical padding (the padding rows are zero rows of the
window), ``B`` output rows (:func:`window_op`; a shorter last step has its own window). Each conv
takes the kernel the layer-by-layer export gives it:

* ``variant="zeroskip"``: the static-sparse kernels (:func:`unitprune.mcu.kernel_choice.sparse_layers`):
  ``unit_conv2d_sparse_s8``, or ``unit_conv2d_sparse_zeroact_s8`` where the zero-activation plan
  puts the layer (:func:`unitprune.mcu.zeroact_plan.zeroact_layers`). Their records hold input
  offsets ``c * S * W + ky * dilation_y * W + kx * dilation_x``: the tables are built for the
  window's geometry, and a shorter last step of a layer with several input channels per group gets
  its own records (the counts, taps and row starts do not depend on the geometry and are shared);
* ``variant="unit"``: the layer's planned kernel (:attr:`unitprune.mcu.qmodel.QConv.unit_kernel`,
  :mod:`unitprune.mcu.unit_plan`): the per-position test, the skip-free lists, the UnIT sparse row
  lists or dense. Their tables (weights, tau; the UnIT sparse records ``{c, ky, kx, weight,
  level}``) do not depend on the geometry; their lists are scratch, sized for the window;
* otherwise the variant's kernel.

Outputs and counters by cause are those of the layer by layer export. ``compares`` counts what a
kernel visits, per call: the per-position test, the early-exit linear and the UnIT sparse row lists
visit the same entries in either plan; the skip-free kernel sorts the window's activations per call,
so its ``compares`` count the entries visited in each window (an input row is in several windows).

The scratch of a step (:func:`step_scratch_bytes`) is the kernel's own size function on the window:
the fused memory plan takes the largest (:func:`stage_scratch`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ...kernels.sparse_s8 import SparseTables
from ...kernels.sparse_zeroact_s8 import zeroact_scratch_bytes
from .. import kernel_choice
from ..qmodel import QConv, QuantizedModel
from ..unit_plan import skipfree_scratch_bytes, unit_sparse_scratch
from ..zeroact_plan import zeroact_layers
from .export_types import ExportError
from .fused_plan import FusedChain, Stage
from .memory_plan import conv_scratch_bytes

__all__ = ["FusedKernels", "window_op", "conv_kernel", "step_scratch_bytes", "fused_kernels", "window_ops"]


def window_op(op: QConv, stage: Stage, rows_out: int) -> QConv:
    """``op`` as one fused step computes it: ``rows_out`` output rows on a window of ``K + (rows_out
    - 1) * stride_y`` input rows without vertical padding."""
    return replace(op, in_height=stage.window_rows + (rows_out - 1) * stage.stride_y, out_height=rows_out,
                   padding=(0, 0, op.padding[2], op.padding[3]))


def _steps(stage: Stage) -> list[int]:
    """The output rows of the stage's steps: ``B``, and the shorter last step's where ``B`` does not
    divide the output height."""
    tail = stage.out_height % stage.block_rows
    return [stage.block_rows] + ([tail] if tail else [])


def conv_kernel(op: QConv, variant: str, sparse: dict, zeroact: dict) -> str:
    """The ``unit_conv2d_<kernel>_s8`` of a conv: ``sparse_zeroact``, ``sparse``, or
    :func:`unitprune.mcu.kernel_choice.conv_variant`'s (``dense``, ``zeroskip``, ``unit``,
    ``unit_skipfree``, ``unit_sparse``)."""
    if op.name in zeroact:
        return "sparse_zeroact"
    if op.name in sparse:
        return "sparse"
    return kernel_choice.conv_variant(op, variant)


def step_scratch_bytes(kernel: str, window: QConv) -> int:
    """Bytes of scratch of ``unit_conv2d_<kernel>_s8`` on ``window`` (a :func:`window_op`), the
    kernels' size functions (unit_kernels_s8.h).

    Raises:
        ExportError: the window is beyond the kernel's limits (naming the layer).
    """
    if kernel == "sparse_zeroact":
        return zeroact_scratch_bytes(window.in_channels, window.in_height, window.out_channels, window.out_width,
                                     window.in_channels // window.groups * window.kernel_height)
    if kernel in ("unit_skipfree", "unit_sparse"):
        size = skipfree_scratch_bytes(window) if kernel == "unit_skipfree" else unit_sparse_scratch(window)
        if size is None:
            raise ExportError(f"layer {window.name!r}: its fused window ({window.in_channels}x{window.in_height}x"
                              f"{window.in_width}) is beyond the limits of unit_conv2d_{kernel}_s8")
        return size
    return conv_scratch_bytes(window.out_height, window.out_width)


@dataclass
class FusedKernels:
    """The static-sparse tables of the fused plan's convs (for the full steps' windows), the records of
    their shorter last steps where they differ (``tails``), the row starts of those that skip zero
    activations, and the scratch bytes of every conv stage (the largest of its steps), by layer name."""

    sparse: dict[str, SparseTables] = field(default_factory=dict)
    tails: dict[str, SparseTables] = field(default_factory=dict)
    zeroact: dict[str, np.ndarray] = field(default_factory=dict)
    scratch: dict[str, int] = field(default_factory=dict)

    @property
    def sparse_structs(self) -> int:
        """``unit_sparse_s8`` descriptors of model.c: one per sparse layer, one more per own tail."""
        return len(self.sparse) + len(self.tails)


def window_ops(qmodel: QuantizedModel, chain: FusedChain) -> list[QConv]:
    """The conv ops of the chain as their full steps compute them (:func:`window_op`)."""
    return [window_op(qmodel.ops[stage.op], stage, stage.block_rows) for stage in chain.stages if stage.kind == "conv"]


def fused_kernels(qmodel: QuantizedModel, chain: FusedChain, variant: str, flash_limit: int | None = None,
                  other_bytes: int = 0) -> FusedKernels:
    """The kernels' tables and scratch of the fused export of ``qmodel`` (module docstring); the
    static-sparse choice as :func:`unitprune.mcu.kernel_choice.sparse_layers` with ``flash_limit``
    and ``other_bytes`` (the streamed Linear keeps its weight table: its slices are accumulated by
    the weight-stationary kernels; the tail's Linears keep theirs: :mod:`.fused_tail`)."""
    windows = window_ops(qmodel, chain)
    linear_bytes = sum(qmodel.ops[i].weight.size for i in (chain.linear, *chain.tail)
                       if i is not None and hasattr(qmodel.ops[i], "weight"))  # the Linears' tables
    sparse = kernel_choice.sparse_layers(windows, variant, flash_limit, other_bytes + linear_bytes)
    zeroact = zeroact_layers(qmodel, sparse)
    tails, scratch = {}, {}
    for stage in chain.stages:
        if stage.kind != "conv":
            continue
        op = qmodel.ops[stage.op]
        kernel = conv_kernel(op, variant, sparse, zeroact)
        if kernel == "sparse_tau":  # its records are made for the whole plane (model_c.py), not a window
            raise ExportError(f"layer {op.name!r}: the fused plan has no unit_conv2d_sparse_tau_s8 (UnIT on the "
                              "stored weights); export it with execution='layers', or plan that layer with "
                              "another kernel (with_unit_kernels(qmodel, {name: 'unit'}) or 'static')")
        steps = [window_op(op, stage, rows) for rows in _steps(stage)]
        scratch[op.name] = max(step_scratch_bytes(kernel, window) for window in steps)
        if op.name in sparse and len(steps) > 1 and op.in_channels // op.groups > 1:
            tail = kernel_choice.sparse_tables(steps[1])
            if tail is None:
                raise ExportError(f"layer {op.name!r}: its last fused step's window is beyond the sparse tables")
            tails[op.name] = tail
    return FusedKernels(sparse, tails, zeroact, scratch)

