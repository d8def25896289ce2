"""The int32 accumulator rows each conv of a layer-by-layer export holds at a time: its scratch.

The export's ``conv_block_rows`` (:func:`.memory_plan.parse_conv_block_rows`; ``B``, 0 meaning the
whole output plane) is the most output rows whose int32 accumulators a conv holds at a time. What a
kernel holds depends on its loop:

* the weight-stationary kernels (``unit_conv2d_zeroskip_s8``, ``unit_conv2d_unit_s8``,
  unit_internal_conv_s8.h) add each kernel tap into every accumulator of a block of ``B`` rows of
  one output channel: ``4 * B * OW`` bytes;
* the output-stationary kernels keep each output's sum in registers over its whole receptive field
  and store the sums of one run of an output row before requantizing them:
  ``unit_conv2d_dense_s8`` (host, AVR, MSP430: ``unit__dense_run_s8`` and
  ``unit__dense_interior_s8`` in unit_conv2d_dense_s8.c write at most ``OW`` words),
  ``unit_conv2d_sparse_s8`` and ``unit_conv2d_sparse_tau_s8`` (the static-sparse runs, likewise)
  hold **one row**; ``unit_conv2d_dense_s8_mcu32`` (the Cortex-M0+ and RV32 targets) holds the
  rows of a channel pair, **two rows** (its fast path needs ``block_rows >= 2``; with one row it
  calls the portable kernel).

An output-stationary conv gets ``block_rows = min(B, its rows)`` (``B = 0``: its rows) in its
``unit_conv2d_params``, so ``unit_conv2d_s8_scratch_size`` returns what it uses and the generated
``unit_model_check`` compares the buffer with it. The field changes no output, counter or cycle:
the dense and sparse kernels do not read it, and the mcu32 kernel takes the same path for every
``block_rows >= 2``. The list kernels (skip-free, UnIT sparse, zero-activation) size their scratch
by their own functions (:func:`.memory_plan.scratch_sizes`).
"""

from __future__ import annotations

from ..kernel_choice import conv_variant
from ..qmodel import QConv, QuantizedModel
from .core_targets import KERNEL_VARIANTS

__all__ = ["OUTPUT_STATIONARY_ROWS", "conv_kernel", "kernel_block_rows", "conv_block_rows", "resource_conv_kernel"]

#: Accumulator rows the output-stationary conv kernels hold, by function (module docstring).
OUTPUT_STATIONARY_ROWS = {"unit_conv2d_dense_s8": 1, "unit_conv2d_sparse_s8": 1, "unit_conv2d_sparse_tau_s8": 1,
                          "unit_conv2d_dense_s8_mcu32": 2}
#: The resource model's descriptor layouts that are not export targets, and the export whose kernels
#: they count: far AVR tables are the avr export's; ``cortex-m`` (the SAMD21 preset, a Cortex-M0+)
#: the m0plus export's.
_LAYOUT_EXPORT = {"avr-far": "avr", "cortex-m": "m0plus"}


def conv_kernel(op: QConv, variant: str, target: str = "host", sparse: bool = False) -> str:
    """The ``unit_conv2d_*_s8`` function a layer-by-layer conv of a ``variant`` export for ``target``
    calls (the zero-activation kernel aside): the variant's or the op's planned kernel
    (:func:`unitprune.mcu.kernel_choice.conv_variant`), the static-sparse one where ``sparse``
    (the layer has static-sparse tables), then the target's variant of it
    (:data:`.core_targets.KERNEL_VARIANTS`)."""
    name = conv_variant(op, variant)
    if sparse and name != "sparse_tau":
        name = "sparse"
    function = f"unit_conv2d_{name}_s8"
    return KERNEL_VARIANTS.get(target, {}).get(function, function)


def kernel_block_rows(kernel: str, block_rows: int) -> int:
    """The ``block_rows`` a conv calling ``kernel`` gets from the export's ``block_rows`` (0: the whole
    plane): unchanged for a weight-stationary kernel, ``min(block_rows, its rows)`` for an
    output-stationary one (:data:`OUTPUT_STATIONARY_ROWS`; 0 gives its rows)."""
    rows = OUTPUT_STATIONARY_ROWS.get(kernel)
    if rows is None:
        return block_rows
    return rows if block_rows == 0 else min(block_rows, rows)


def conv_block_rows(qmodel: QuantizedModel, block_rows: int, target: str = "host", sparse=frozenset(),
                    variant: str | None = None) -> dict[str, int]:
    """The ``block_rows`` of every conv's params in a layer-by-layer ``variant`` export (None: the
    model's own variant) of ``qmodel`` (by op name; ``sparse``: the names of the layers with
    static-sparse tables)."""
    variant = variant or qmodel.variant
    return {op.name: kernel_block_rows(conv_kernel(op, variant, target, op.name in sparse), block_rows)
            for op in qmodel.ops if isinstance(op, QConv)}


def resource_conv_kernel(unit_tables: bool, target: str) -> str:
    """The conv kernel the resource model counts the scratch of: UnIT's weight-stationary
    ``unit_conv2d_unit_s8`` with ``unit_tables``, else the dense export's kernel on ``target`` (a
    descriptor layout of :data:`unitprune.mcu.targets.specs.LAYOUTS`)."""
    function = "unit_conv2d_unit_s8" if unit_tables else "unit_conv2d_dense_s8"
    return KERNEL_VARIANTS.get(_LAYOUT_EXPORT.get(target, target), {}).get(function, function)
