"""Step 1 of the export: checks. Every argument, every op and the target's limits are checked
before anything is written; an :class:`ExportError` names the argument or the layer.

* :func:`check_request`: target, variant, linear quotient, output folder, samples, block rows;
* :func:`check_model`: every op's geometry, dtypes, shapes and constants are what the kernels run;
* :func:`check_fits_target`: the planned tables reach and SRAM fit the chip (after the memory plan).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..qmodel import (LINEAR_QUOTIENTS, VARIANTS, QAvgPool, QConv, QFlatten, QLinear, QMaxPool, QReLU, QThresholdReLU,
                      QuantizedModel)
from ..targets.specs import STACK_RESERVE, TargetSpec, check_export_target
from .export_types import ExportError, LayerFlash, SamplesTooLarge
from .memory_plan import MemoryPlan, op_output_size, parse_conv_block_rows

__all__ = ["ExportRequest", "check_fits_target", "check_model", "check_request"]


@dataclass(frozen=True)
class ExportRequest:
    """The checked arguments of one export (:func:`check_request`)."""

    spec: TargetSpec
    variant: str
    linear_quotient: str
    out_dir: Path
    block_rows: int
    samples: np.ndarray | None  # [n, input_size] int8, or None (host only)
    counters: bool


def check_request(qmodel: QuantizedModel, out_dir, target: str, variant: str | None, linear_quotient: str | None,
                  samples, counters: bool | None, overwrite: bool, conv_block_rows) -> ExportRequest:
    """The arguments of :func:`~unitprune.mcu.export.export_c` checked and normalised (ExportError
    naming the argument otherwise); nothing is written."""
    try:
        spec = check_export_target(target)
    except ValueError as error:
        raise ExportError(str(error)) from None
    variant = variant or qmodel.variant
    linear_quotient = linear_quotient or qmodel.linear_quotient
    if variant not in VARIANTS:
        raise ExportError(f"unknown variant {variant!r} (one of {', '.join(VARIANTS)})")
    if linear_quotient not in LINEAR_QUOTIENTS:
        raise ExportError(f"unknown linear quotient {linear_quotient!r} (one of {', '.join(LINEAR_QUOTIENTS)})")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"{out_dir} exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise ExportError(f"{out_dir} is not empty; nothing was written. Pass overwrite=True (CLI: --overwrite) "
                          "to replace its contents, or choose another folder")
    try:
        block_rows = parse_conv_block_rows(conv_block_rows)
    except ValueError as error:
        raise ExportError(str(error)) from None
    input_size = int(np.prod(qmodel.input_shape))
    if samples is not None:
        samples = np.asarray(samples)
        if samples.dtype != np.int8:
            raise ExportError(f"samples must be int8 (quantized inputs), got {samples.dtype}")
        if samples.ndim < 1 or samples.size != len(samples) * input_size or len(samples) == 0:
            raise ExportError(f"samples of shape {samples.shape} do not hold whole inputs of "
                              f"{tuple(qmodel.input_shape)}")
        samples = samples.reshape(len(samples), input_size)
    elif target != "host":
        raise ExportError(f"target {target} needs samples= (int8 test inputs embedded in the firmware)")
    return ExportRequest(spec, variant, linear_quotient, out_dir, block_rows, samples,
                         bool(counters) if counters is not None else False)


def _conv_output(size: int, pad_a: int, pad_b: int, dilation: int, kernel: int, stride: int) -> int:
    return (size + pad_a + pad_b - dilation * (kernel - 1) - 1) // stride + 1


def _check_array(op_name: str, what: str, array, dtype, shape) -> None:
    array = np.asarray(array)
    if array.dtype != np.dtype(dtype):
        raise ExportError(f"layer {op_name}: {what} has dtype {array.dtype}, expected {np.dtype(dtype)}")
    if tuple(array.shape) != tuple(shape):
        raise ExportError(f"layer {op_name}: {what} has shape {tuple(array.shape)}, expected {tuple(shape)}")


def _check_requant(op_name: str, requant, out: int) -> None:
    _check_array(op_name, "bias", requant.bias, np.int32, (out,))
    _check_array(op_name, "multiplier", requant.multiplier, np.int32, (out,))
    _check_array(op_name, "shift", requant.shift, np.int8, (out,))
    if np.any(requant.multiplier < 0):
        raise ExportError(f"layer {op_name}: negative requantization multiplier")
    if np.any(requant.shift < -31) or np.any(requant.shift > 30):
        raise ExportError(f"layer {op_name}: requantization shift outside [-31, 30]")
    if not -128 <= requant.act_min <= requant.act_max <= 127:
        raise ExportError(f"layer {op_name}: activation range [{requant.act_min}, {requant.act_max}] "
                          "is not inside [-128, 127]")


def check_model(qmodel: QuantizedModel, variant: str, linear_quotient: str) -> None:
    """Raise :class:`ExportError` naming the first op that the kernels cannot run as given."""
    if not qmodel.ops:
        raise ExportError("the quantized model has no ops")
    if qmodel.approx == "exact" and variant == "unit" and linear_quotient != "table":
        linear = next((op.name for op in qmodel.ops if isinstance(op, QLinear)), None)
        if linear is not None:
            raise ExportError(f"layer {linear}: approx='exact' quotients (T_q // |x_q|) need linear_quotient='table'; "
                              "the bitshift and bintree kernels compute T_q >> n")
    size = int(np.prod(qmodel.input_shape))
    for op in qmodel.ops:
        if isinstance(op, QConv):
            expected_in = op.in_channels * op.in_height * op.in_width
            geometry = (op.in_channels, op.out_channels, op.kernel_height, op.kernel_width, *op.stride,
                        *op.dilation, op.groups)
            if min(geometry) < 1 or min(op.padding) < 0:
                raise ExportError(f"layer {op.name}: sizes, strides, dilations and groups must be >= 1, "
                                  f"paddings >= 0")
            if op.in_channels % op.groups or op.out_channels % op.groups:
                raise ExportError(f"layer {op.name}: groups={op.groups} does not divide the channels")
            out_h = _conv_output(op.in_height, op.padding[0], op.padding[1], op.dilation[0], op.kernel_height,
                                 op.stride[0])
            out_w = _conv_output(op.in_width, op.padding[2], op.padding[3], op.dilation[1], op.kernel_width,
                                 op.stride[1])
            if (out_h, out_w) != (op.out_height, op.out_width):
                raise ExportError(f"layer {op.name}: output {op.out_height}x{op.out_width} does not match its "
                                  f"geometry ({out_h}x{out_w})")
            shape = (op.out_channels, op.in_channels // op.groups, op.kernel_height, op.kernel_width)
            _check_array(op.name, "weight", op.weight, np.int8, shape)
            if variant == "unit":
                _check_array(op.name, "tau", op.tau, np.uint8, shape)
            _check_requant(op.name, op.requant, op.out_channels)
        elif isinstance(op, QLinear):
            expected_in = op.in_features
            _check_array(op.name, "weight", op.weight, np.int8, (op.out_features, op.in_features))
            _check_requant(op.name, op.requant, op.out_features)
            if variant == "unit":
                if not 0 <= int(op.threshold_q) <= (1 << 31) - 1:
                    raise ExportError(f"layer {op.name}: threshold_q {op.threshold_q} outside [0, 2**31 - 1]")
                if not 0 <= int(op.shift_start) <= 31:
                    raise ExportError(f"layer {op.name}: shift_start {op.shift_start} outside [0, 31]")
                if linear_quotient == "table":
                    _check_array(op.name, "quotient_table", op.quotient_table, np.uint8, (129,))
                if linear_quotient == "bintree":
                    nodes = len(op.tree_split)
                    if not 1 <= nodes <= 127:
                        raise ExportError(f"layer {op.name}: a quotient tree needs 1..127 nodes, has {nodes}")
                    for what, dtype in (("tree_split", np.int8), ("tree_left", np.int8), ("tree_right", np.int8),
                                        ("tree_quotient", np.uint8)):
                        _check_array(op.name, what, getattr(op, what), dtype, (nodes,))
        elif isinstance(op, (QMaxPool, QAvgPool)):
            expected_in = op.channels * op.in_height * op.in_width
            out_h = (op.in_height - op.kernel[0]) // op.stride[0] + 1
            out_w = (op.in_width - op.kernel[1]) // op.stride[1] + 1
            what = "max-pool" if isinstance(op, QMaxPool) else "average pool"
            if min(*op.kernel, *op.stride) < 1 or (out_h, out_w) != (op.out_height, op.out_width) or out_h < 1:
                raise ExportError(f"layer {op.name}: {what} output {op.out_height}x{op.out_width} does not match "
                                  f"its kernel {op.kernel} and stride {op.stride} on {op.in_height}x{op.in_width}")
        elif isinstance(op, QThresholdReLU):
            expected_in = op.size
            if not 0 <= int(op.threshold_q) <= 127:
                raise ExportError(f"layer {op.name}: threshold_q {op.threshold_q} outside [0, 127]")
        elif isinstance(op, (QReLU, QFlatten)):
            expected_in = op.size
        else:
            raise ExportError(f"op {getattr(op, 'name', '?')}: unsupported op type {type(op).__name__}")
        if expected_in != size:
            raise ExportError(f"layer {op.name}: takes {expected_in} values per sample but the previous op "
                              f"gives {size}")
        size = op_output_size(op)


def check_fits_target(spec: TargetSpec, plan: MemoryPlan, flash: list[LayerFlash], samples_bytes: int,
                      counters: bool, layers: int, far: bool = False) -> None:
    """Flash reads and SRAM of the target (ExportError naming the layer). With far tables the
    samples and tables may fill the chip's flash (the code must fit too: the linker checks that)."""
    limit = spec.far_flash_bytes if far else spec.flash_read_limit
    why = (f"the {spec.chip}'s flash, read through far table pointers" if far else spec.why_limit)
    if limit is not None:
        end = 0  # the model's tables alone first: when they do not fit, no number of samples helps
        for layer in flash:
            end += layer.total
            if end > limit:
                raise ExportError(f"target {spec.name}: layer {layer.name}'s constant tables end at byte {end} of "
                                  f"flash without any embedded sample, beyond the {limit} bytes the kernels can "
                                  f"read ({why}); a smaller model is needed")
        if samples_bytes + end > limit:  # main.c (with the samples) is linked first
            raise SamplesTooLarge(f"target {spec.name}: the {samples_bytes} bytes of embedded samples and the model's "
                              f"{end} bytes of constant tables exceed the {limit} bytes of constants the kernels "
                              f"can read ({why}); embed fewer samples (the tables alone fit)")
    if spec.sram_bytes is not None:
        counter_bytes = 56 * (layers + 1) if counters else 0
        need = plan.peak_sram_with_io_bytes + counter_bytes
        if need + STACK_RESERVE > spec.sram_bytes:
            raise ExportError(f"target {spec.name} ({spec.chip}, {spec.sram_bytes} bytes of SRAM): the model needs "
                              f"{need} bytes plus at least {STACK_RESERVE} of stack (arena {plan.arena_bytes}, "
                              f"peak at layer "
                              f"{plan.peak_op}; scratch {plan.scratch_bytes}; input {plan.input_bytes}; output "
                              f"{plan.output_bytes}; descriptors {plan.descriptor_bytes}; counters {counter_bytes}). "
                              "Export for target='host' to inspect the memory plan")
