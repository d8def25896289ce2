"""C export of a whole :class:`~unitprune.mcu.qmodel.QuantizedModel`: a self-contained C project.

:func:`export_c` writes into ``out_dir``:

* ``model.h`` / ``model.c``: the constant tables in flash (``UNIT_FLASH``: weights, tau tables,
  quotient tables and trees, bias and requantization constants), the small descriptors the kernels
  read from RAM, the static activation arena of the memory plan (:mod:`unitprune.mcu.memory`),
  and ``unit_model_run(input, output)``: the layers as straight-line calls to the ``unit_*_s8``
  kernels in op order, with optional per-layer region markers (``-DUNIT_MODEL_MARKERS=1``) and,
  with ``-DUNIT_S8_COUNTS=1``, per-layer MAC counters summed over calls (``unit_model_counts``);
* ``kernels/``: the kernel sources and headers the model needs, copied from ``unitprune/csrc``
  (the folder builds on its own);
* ``main.c`` for the target (:mod:`unitprune.mcu.mains`), and for MCU targets also
  ``main_host.c`` (the host runner, so the same ``model.c`` can be checked on the host);
* ``Makefile`` with the exact build commands, ``memory_plan.json`` (plan, flash, layers, build
  commands) and ``README.md`` (the same as text).

The integer semantics are docs/fixed_point.md; the exporter only lays out data and calls.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import codegen, mains
from .export_cores import (CORE_EXPORT_TARGETS, core_kernels, core_makefile_rules, core_memory_ld,
                           core_support_files, export_spec_fields)
from .memory import (ARENA, INPUT, OUTPUT, MemoryPlan, Storage, conv_scratch_bytes, op_output_size,
                     parse_conv_block_rows, plan_memory)
from .qmodel import (LINEAR_QUOTIENTS, VARIANTS, QAvgPool, QConv, QFlatten, QLinear, QMaxPool, QReLU, QThresholdReLU,
                     QuantizedModel)

logger = logging.getLogger(__name__)

__all__ = ["ExportError", "ExportResult", "FAR_DEFINES", "TargetSpec", "TARGETS", "export_c", "layer_names",
           "needs_far_tables", "scratch_sizes"]

CSRC = Path(__file__).resolve().parent.parent / "csrc"
#: The MCU targets' support files (unitprune.mcu.targets): the marker header, MSP430 crt0/linker/runtime.
TARGET_SUPPORT = Path(__file__).resolve().parent / "targets"
UNIT_MCU_H = TARGET_SUPPORT / "include" / "unit_mcu.h"
MSP430_SUPPORT = TARGET_SUPPORT / "msp430"
#: Fields of ``unit_counts``, in declaration order.
COUNT_FIELDS = ("dense", "zero_weight", "zero_activation", "threshold", "executed", "compares", "divisions")


class ExportError(ValueError):
    """The model cannot be exported as asked (the message names the layer or the file)."""


#: SRAM bytes an MCU export keeps free for the stack (unitprune.mcu.targets' MSP430 linker script
#: demands as much).
STACK_RESERVE = 256


@dataclass(frozen=True)
class TargetSpec:
    """What the exporter must know of a target.

    ``pointer_bytes``/``struct_align`` size the RAM descriptors; ``flash_read_limit`` is how many
    bytes of constant tables the kernels' flash reads can address (None: no limit);
    ``sram_bytes`` the RAM of the default chip (None: no check); ``max_object_bytes`` the largest
    single C array the target's compiler accepts (None: no limit): a larger table is written as
    assembler data (:func:`unitprune.mcu.codegen.flash_array`), which the kernels read alike.
    ``far_pointer_bytes`` (None: no far tables): the size of a table pointer when the tables do not
    fit ``flash_read_limit`` and the export uses far tables (unit_types.h, UNIT_FAR_TABLES), which
    then may fill ``far_flash_bytes`` with the embedded samples.
    """

    name: str
    pointer_bytes: int
    struct_align: int
    flash_read_limit: int | None
    sram_bytes: int | None
    chip: str
    why_limit: str = ""
    max_object_bytes: int | None = None
    far_pointer_bytes: int | None = None
    far_flash_bytes: int | None = None
    stack_reserve: int = STACK_RESERVE


TARGETS = {
    "host": TargetSpec("host", 8, 8, None, None, "host"),
    # avr-gcc places PROGMEM tables after the vector table (57 vectors x 4 bytes on the ATmega2560)
    # and reads them with 16-bit pointers (LPM): they must end below 64 KB. 512 bytes are kept
    # for the vectors and avr-libc's own progmem data.
    "avr": TargetSpec("avr", 2, 1, 65536 - 512, 8192, "atmega2560",
                      "AVR flash reads (pgm_read_*, 16-bit pointers) reach only the first 64 KB of flash; "
                      "larger models get far tables (__memx, 24-bit pointers)",
                      # avr-gcc's ptrdiff_t is 16 bits: it refuses any C object above PTRDIFF_MAX
                      # ("size of array is too large"); a larger table is emitted as assembler data.
                      max_object_bytes=32_767,
                      # beyond 64 KB: __memx pointers (3 bytes, ELPM) over the chip's 256 KB of flash
                      far_pointer_bytes=3, far_flash_bytes=256 * 1024),
    # clang-14 --target=msp430 uses the small memory model: 16-bit pointers, code, constants and
    # RAM in one 64 KB address space (Debian's mspdebug simulates 64 KB).
    # unitprune.mcu.targets' link.ld: an MSP430FR5994-like map in the 64 KB mspdebug simulates, code,
    # constants and the .data image in "FRAM" 0x4000-0xFF7F, 8 KB SRAM at 0x1C00.
    "msp430": TargetSpec("msp430", 2, 2, 0xFF80 - 0x4000, 8192, "msp430",
                         "code, constants and the .data image share the 49,024 bytes of FRAM (0x4000-0xFF7F) of "
                         "the simulated 64 KB address space (clang-14's small memory model)"),
    # Cortex-M0+ and RV32 (unitprune.mcu.targets.cores): 32-bit pointers, constants anywhere in flash
    **{name: TargetSpec(**export_spec_fields(name)) for name in CORE_EXPORT_TARGETS},
}


@dataclass(frozen=True)
class LayerFlash:
    """Bytes of constant tables of one layer, in flash."""

    name: str
    tables: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.tables.values())


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_c` wrote."""

    out_dir: Path
    target: str
    variant: str
    linear_quotient: str
    files: list[str]  # relative to out_dir
    memory: MemoryPlan
    flash: list[LayerFlash]
    layers: list[str]  # conv/linear layer names, in counter order
    input_size: int
    output_size: int
    samples: int  # test samples embedded (MCU targets) or written to samples.bin (host)
    build_commands: list[str] = field(default_factory=list)
    conv_block_rows: int = 0  # the kernels' block_rows of every conv (0: the whole output plane)
    far_tables: bool = False  # AVR: the tables beyond 64 KB, read through __memx pointers (UNIT_FAR_TABLES)

    @property
    def flash_table_bytes(self) -> int:
        """Bytes of the model's constant tables (without code and embedded samples)."""
        return sum(layer.total for layer in self.flash)


#: Compiler defines of every file of a far-tables export (unit_types.h), given to the build.
FAR_DEFINES = {"UNIT_FAR_TABLES": 1}


def needs_far_tables(spec: TargetSpec, table_bytes: int) -> bool:
    """True when ``table_bytes`` of constant tables do not fit the target's near flash reads and it
    has far ones (AVR: above 65,024 bytes). The resource model's ``avr-far`` layout is this case.
    The tables alone decide (not the embedded samples), so a model's firmware layout does not
    depend on how many samples a measurement embeds."""
    return (spec.far_pointer_bytes is not None and spec.flash_read_limit is not None
            and table_bytes > spec.flash_read_limit)


def layer_names(qmodel: QuantizedModel) -> list[str]:
    """Names of the conv/linear ops (the layers with MAC counters), in op order."""
    return [op.name for op in qmodel.ops if isinstance(op, (QConv, QLinear))]


# ----------------------------------------------------------------------------------------------
# Checks
# ----------------------------------------------------------------------------------------------

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


def _check_model(qmodel: QuantizedModel, variant: str, linear_quotient: str) -> None:
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


# ----------------------------------------------------------------------------------------------
# Scratch sizes and descriptor sizes
# ----------------------------------------------------------------------------------------------

def scratch_sizes(qmodel: QuantizedModel, conv_block_rows=None) -> dict[str, int]:
    """Bytes of int32 scratch each conv/linear op needs, by the formulas of ``unit_kernels_s8.h``
    (``unit_conv2d_s8_scratch_size``: ``4 * B * OW``, the accumulators of one block of ``B`` output
    rows of one output channel, ``B = OH`` for the whole plane, see
    :func:`~unitprune.mcu.memory.parse_conv_block_rows`; ``unit_linear_s8_scratch_size``:
    ``4 * out_features``). The generated ``unit_model_check()`` compares the buffer with the kernels'
    own functions at start-up, so a mismatch cannot go unseen."""
    block_rows = parse_conv_block_rows(conv_block_rows)
    sizes = {}
    for op in qmodel.ops:
        if isinstance(op, QConv):
            sizes[op.name] = conv_scratch_bytes(op.out_height, op.out_width, block_rows)
        elif isinstance(op, QLinear):
            sizes[op.name] = 4 * op.out_features
    return sizes


#: int32 fields of ``unit_conv2d_params`` (unit_types.h).
CONV_PARAMS_FIELDS = 17


def _conv_params(op: QConv, block_rows: int = 0) -> tuple[int, ...]:
    """The fields of ``unit_conv2d_params`` (batch 1), in declaration order; ``block_rows`` 0 = the
    whole plane, else clipped to the layer's output height (what the kernel does with it)."""
    rows = min(block_rows, op.out_height) if block_rows else 0
    return (1, op.in_channels, op.in_height, op.in_width, op.out_channels, op.kernel_height, op.kernel_width,
            op.stride[0], op.stride[1], op.dilation[0], op.dilation[1], *op.padding, op.groups, rows)


def struct_bytes(fields: list[int], align: int) -> int:
    """sizeof a C struct of fields of the given sizes, each aligned to min(size, align)."""
    offset, widest = 0, 1
    for size in fields:
        a = min(size, align)
        widest = max(widest, a)
        offset = (offset + a - 1) // a * a + size
    return (offset + widest - 1) // widest * widest


def _descriptor_bytes(qmodel: QuantizedModel, spec: TargetSpec, variant: str, linear_quotient: str,
                      far: bool = False) -> int:
    p = spec.far_pointer_bytes if far else spec.pointer_bytes
    conv = struct_bytes([4] * CONV_PARAMS_FIELDS, spec.struct_align)
    requant = struct_bytes([p, p, p, 4, 4], spec.struct_align)
    tree = struct_bytes([4, p, p, p, p], spec.struct_align)
    total = 0
    for op in qmodel.ops:
        if isinstance(op, QConv):
            total += conv + requant
        elif isinstance(op, QLinear):
            total += requant + (tree if variant == "unit" and linear_quotient == "bintree" else 0)
    return total


# ----------------------------------------------------------------------------------------------
# model.c
# ----------------------------------------------------------------------------------------------

def _storage_expr(storage: Storage) -> str:
    if storage.kind == INPUT:
        return "input"
    if storage.kind == OUTPUT:
        return "output"
    assert storage.kind == ARENA
    return f"unit_model_arena + {storage.offset}" if storage.offset else "unit_model_arena"


@dataclass(frozen=True)
class _TableStyle:
    """How model.c writes its constant tables: tables above ``asm_above`` bytes as assembler data
    (AVR), ``far`` tables through UNIT_TABLE pointers (AVR beyond 64 KB);
    :func:`unitprune.mcu.codegen.flash_array`."""

    asm_above: int | None = None
    far: bool = False

    def array(self, ctype: str, name: str, values, comment: str | None = None) -> str:
        return codegen.flash_array(ctype, name, values, asm_above=self.asm_above, far=self.far, comment=comment)


def _requant_tables(ident: str, requant, flash: dict[str, int], style: _TableStyle) -> list[str]:
    parts = [style.array("int32_t", f"{ident}_bias", requant.bias),
             style.array("int32_t", f"{ident}_multiplier", requant.multiplier),
             style.array("int8_t", f"{ident}_shift", requant.shift),
             f"static const unit_requant_s8 {ident}_requant = {{{ident}_bias, {ident}_multiplier, {ident}_shift, "
             f"{requant.act_min}, {requant.act_max}}};\n"]
    n = len(requant.bias)
    flash.update(bias=4 * n, multiplier=4 * n, shift=n)
    return parts


@dataclass
class _LayerCode:
    tables: list[str]
    call: list[str]
    flash: LayerFlash | None
    scratch_check: str | None


def _conv_code(op: QConv, ident: str, variant: str, counter: int, io: tuple[str, str],
               block_rows: int, style: _TableStyle) -> _LayerCode:
    flash: dict[str, int] = {}
    fields = _conv_params(op, block_rows)
    params = ", ".join(str(v) for v in fields)
    kind = "1d" if op.is_conv1d else "2d"
    block = _block_text(fields[-1] or "plane")
    tables = [f"/* {_comment(op.name)}: Conv{kind} {op.in_channels}->{op.out_channels}, kernel {op.kernel_height}x"
              f"{op.kernel_width}, stride {op.stride}, dilation {op.dilation}, padding {op.padding}, "
              f"groups {op.groups}, output {op.out_height}x{op.out_width}, accumulators for {block} */\n",
              f"static const unit_conv2d_params {ident}_params = {{{params}}};\n",
              style.array("int8_t", f"{ident}_weight", op.weight)]
    flash["weight"] = op.weight.size
    if variant == "unit":
        tables.append(style.array("uint8_t", f"{ident}_tau", op.tau))
        flash["tau"] = op.tau.size
    tables += _requant_tables(ident, op.requant, flash, style)
    src, dst = io
    tau = f"{ident}_tau, " if variant == "unit" else ""
    call = (f"unit_conv2d_{variant}_s8(&{ident}_params, {src}, {ident}_weight, {tau}&{ident}_requant, {dst}, "
            f"unit_model_scratch, UNIT_MODEL_CALL_COUNTS)")
    return _LayerCode(tables, _counted_call(op.name, call, counter), LayerFlash(op.name, flash),
                      f"unit_conv2d_s8_scratch_size(&{ident}_params)")


def _linear_code(op: QLinear, ident: str, variant: str, linear_quotient: str, counter: int,
                 io: tuple[str, str], style: _TableStyle) -> _LayerCode:
    flash: dict[str, int] = {}
    tables = [f"/* {_comment(op.name)}: Linear {op.in_features}->{op.out_features}, weight transposed [in][out] */\n",
              style.array("int8_t", f"{ident}_weight_t", np.ascontiguousarray(op.weight.T))]
    flash["weight"] = op.weight.size
    tables += _requant_tables(ident, op.requant, flash, style)
    src, dst = io
    head = f"{src}, 1, {op.in_features}, {op.out_features}, {ident}_weight_t"
    tail = f"&{ident}_requant, {dst}, unit_model_scratch, UNIT_MODEL_CALL_COUNTS"
    if variant != "unit":
        call = f"unit_linear_{variant}_s8({head}, {tail})"
    elif linear_quotient == "bitshift":
        call = (f"unit_linear_unit_bitshift_s8({head}, {codegen.c_int(op.threshold_q)}, {int(op.shift_start)}, "
                f"{tail})")
    elif linear_quotient == "table":
        tables.append(style.array("uint8_t", f"{ident}_quotients", op.quotient_table,
                                      comment=f"t for |x| = 0..128 (T_q = {int(op.threshold_q)})"))
        flash["quotient_table"] = 129
        call = f"unit_linear_unit_table_s8({head}, {ident}_quotients, {tail})"
    else:
        nodes = len(op.tree_split)
        for what, ctype in (("split", "int8_t"), ("left", "int8_t"), ("right", "int8_t"), ("quotient", "uint8_t")):
            tables.append(style.array(ctype, f"{ident}_tree_{what}", getattr(op, f"tree_{what}")))
        tables.append(f"static const unit_quotient_tree_s8 {ident}_tree = {{{nodes}, {ident}_tree_split, "
                      f"{ident}_tree_left, {ident}_tree_right, {ident}_tree_quotient}};\n")
        flash["quotient_tree"] = 4 * nodes
        call = f"unit_linear_unit_bintree_s8({head}, &{ident}_tree, {tail})"
    return _LayerCode(tables, _counted_call(op.name, call, counter), LayerFlash(op.name, flash),
                      f"unit_linear_s8_scratch_size({op.out_features})")


def _comment(text: str) -> str:
    """``text`` made safe inside a C comment or string literal (layer names come from the user)."""
    return text.replace("*/", "* /").replace("\\", "_").replace('"', "_").replace("\n", " ")


def _plain_call(name: str, statements: list[str]) -> list[str]:
    """An op's statements between its region markers, returning on a kernel error."""
    return ([f'    UNIT_MODEL_LAYER_START("{_comment(name)}");'] + [f"    {s}" for s in statements]
            + ["    UNIT_MODEL_LAYER_STOP();", "    if (status != UNIT_OK) {", "        return status;", "    }"])


def _counted_call(name: str, call: str, counter: int) -> list[str]:
    """A conv/linear call: as :func:`_plain_call`, then its counters added to layer ``counter``."""
    return _plain_call(name, [f"status = {call};"]) + [f"    UNIT_MODEL_ADD_COUNTS({counter});"]


def _model_c(qmodel: QuantizedModel, plan: MemoryPlan, variant: str, linear_quotient: str, source: str,
             scratch_bytes: int, block_rows: int, style: _TableStyle) -> tuple[str, list[LayerFlash], set[str]]:
    """model.c, the flash tables per layer and the kernels called (the tables written as ``style``)."""
    names = codegen.IdentifierSet()
    tables, body, flash, checks, kernels = [], [], [], [], {"unit_requantize_s8"}
    counter = 0
    if plan.copy_input_to_output:
        body.append(f"    unit_model_copy(output, input, {plan.input_bytes});")
    for op, memory in zip(qmodel.ops, plan.ops):
        io = (_storage_expr(memory.source), _storage_expr(memory.target))
        if isinstance(op, (QConv, QLinear)):
            ident = names.add(op.name)
            if isinstance(op, QConv):
                code = _conv_code(op, ident, variant, counter, io, block_rows, style)
                kernels |= {f"unit_conv2d_{variant}_s8", "unit_conv2d_s8_scratch_size"}
            else:
                code = _linear_code(op, ident, variant, linear_quotient, counter, io, style)
                quotient = f"_{linear_quotient}" if variant == "unit" else ""
                kernels |= {f"unit_linear_{variant}{quotient}_s8", "unit_linear_s8_scratch_size"}
            counter += 1
            tables += code.tables + ["\n"]
            body += code.call
            flash.append(code.flash)
            checks.append(code.scratch_check)
        elif isinstance(op, (QMaxPool, QAvgPool)):
            pool, what = ("maxpool2d", "max-pool") if isinstance(op, QMaxPool) else ("avgpool2d", "average pool")
            kernels.add(f"unit_{pool}_s8")
            body += _plain_call(op.name, [
                f"/* {_comment(op.name)}: {what} {op.kernel[0]}x{op.kernel[1]}, stride {op.stride} */",
                f"status = unit_{pool}_s8({io[0]}, 1, {op.channels}, {op.in_height}, {op.in_width}, "
                f"{op.kernel[0]}, {op.kernel[1]}, {op.stride[0]}, {op.stride[1]}, {io[1]});"])
        elif isinstance(op, (QReLU, QThresholdReLU)):
            how = " (copy of the read-only input, then in place)" if memory.copy_first else ", in place"
            what = "ReLU" if isinstance(op, QReLU) else f"FATReLU (q > {op.threshold_q})"
            statements = [f"/* {_comment(op.name)}: {what}{how} */"]
            if memory.copy_first:
                statements.append(f"unit_model_copy({io[1]}, {io[0]}, {op.size});")
            if isinstance(op, QReLU):
                kernels.add("unit_relu_s8")
                statements.append(f"status = unit_relu_s8({io[1]}, {op.size});")
            else:
                kernels.add("unit_threshold_relu_s8")
                statements.append(f"status = unit_threshold_relu_s8({io[1]}, {op.size}, {op.threshold_q});")
            body += _plain_call(op.name, statements)
        else:
            body.append(f"    /* {_comment(op.name)}: flatten (no-op on [C][H][W]) */")
    arena = (f"/* activation arena (memory plan: {plan.arena_bytes} bytes, peak at {plan.peak_op}) */\n"
             f"static int8_t unit_model_arena[{plan.arena_bytes}];\n") if plan.arena_bytes else ""
    scratch_words = max(1, (scratch_bytes + 3) // 4)
    scratch = (f"/* int32 scratch shared by the layers: the largest any layer needs, {scratch_bytes} bytes */\n"
               f"static int32_t unit_model_scratch[{scratch_words}];\n\n") if checks else "\n"
    counts = [
        "#if UNIT_S8_COUNTS\n",
        "unit_counts unit_model_counts[UNIT_MODEL_LAYERS];\n",
        "static unit_counts unit_model_call;\n",
        "static void unit_model_add_counts(unit_counts *sum) {\n",
        *[f"    sum->{f} += unit_model_call.{f};\n    unit_model_call.{f} = 0;\n" for f in COUNT_FIELDS],
        "}\n",
        "#define UNIT_MODEL_CALL_COUNTS (&unit_model_call)\n",
        "#define UNIT_MODEL_ADD_COUNTS(layer) unit_model_add_counts(&unit_model_counts[layer])\n#else\n",
        "#define UNIT_MODEL_CALL_COUNTS ((unit_counts *)0)\n",
        "#define UNIT_MODEL_ADD_COUNTS(layer) do { } while (0)\n#endif\n\n"] if counter else []
    # no <string.h>: freestanding MCU builds (MSP430 -nostdlib) have no C library headers
    copy = ("/* n int8 values from source to target (they do not overlap) */\n"
            "static void unit_model_copy(int8_t *target, const int8_t *source, int32_t n) {\n"
            "    int32_t i;\n    for (i = 0; i < n; i++) {\n        target[i] = source[i];\n    }\n}\n\n"
            ) if any("unit_model_copy(" in line for line in body) else ""
    far_guard = ("/* The tables reach beyond the first 64 KB of flash: every file must be built with far table\n"
                 " * pointers (unit_types.h), as the Makefile does. */\n"
                 "#if defined(__AVR__) && !(defined(UNIT_FAR_TABLES) && UNIT_FAR_TABLES)\n"
                 "#error \"this model needs far tables: build every file with -std=gnu99 -DUNIT_FAR_TABLES=1\"\n"
                 "#endif\n\n") if style.far else ""
    text = [codegen.file_header("model.c", "constant tables, buffers and unit_model_run", source),
            "#include \"model.h\"\n\n", far_guard,
            "/* Per-layer regions for MCU measurements: build with -DUNIT_MODEL_MARKERS=1 (needs unit_mcu.h). */\n",
            "#if defined(UNIT_MODEL_MARKERS) && UNIT_MODEL_MARKERS\n#include \"unit_mcu.h\"\n",
            "#define UNIT_MODEL_LAYER_START(label) do { unit_mcu_label(label); UNIT_MCU_START(); } while (0)\n",
            "#define UNIT_MODEL_LAYER_STOP() UNIT_MCU_STOP()\n#else\n",
            "#define UNIT_MODEL_LAYER_START(label) do { } while (0)\n",
            "#define UNIT_MODEL_LAYER_STOP() do { } while (0)\n#endif\n\n",
            *counts, copy,
            *tables, arena,
            scratch,
            "int32_t unit_model_check(void) {\n",
            *[f"    if ({check} > (int32_t)sizeof(unit_model_scratch)) {{\n        return UNIT_ERR_SCRATCH;\n    }}\n"
              for check in checks],
            "    return UNIT_OK;\n}\n\n",
            "int32_t unit_model_run(const int8_t *input, int8_t *output) {\n",
            "    int32_t status = UNIT_OK;\n",
            "\n".join(body) + "\n",
            "    return status;\n}\n"]
    return "".join(text), flash, kernels


def _model_h(qmodel: QuantizedModel, plan: MemoryPlan, layers: list[str], source: str) -> str:
    guard = "UNIT_MODEL_H"
    return "".join([
        codegen.file_header("model.h", "the exported model's interface", source),
        f"#ifndef {guard}\n#define {guard}\n\n#include <stdint.h>\n\n#include \"unit_kernels_s8.h\"\n\n",
        "#ifndef UNIT_S8_COUNTS\n#define UNIT_S8_COUNTS 0\n#endif\n\n",
        f"/* int8 values per sample, input shape {tuple(qmodel.input_shape)} ([C][H][W]) */\n",
        codegen.c_define("UNIT_MODEL_INPUT_SIZE", plan.input_bytes),
        codegen.c_define("UNIT_MODEL_OUTPUT_SIZE", plan.output_bytes),
        f"/* layers with MAC counters, in this order: {', '.join(layers)} */\n",
        codegen.c_define("UNIT_MODEL_LAYERS", len(layers)),
        f"/* quantization: real input = {qmodel.input_scale!r} * q, real output = {qmodel.output_scale!r} * q */\n\n",
        "/* unit_model_run: one inference, input[UNIT_MODEL_INPUT_SIZE] -> output[UNIT_MODEL_OUTPUT_SIZE]\n"
        " * (the buffers must not overlap). Returns UNIT_OK or the first kernel's error code. */\n",
        "int32_t unit_model_run(const int8_t *input, int8_t *output);\n\n",
        "/* unit_model_check: UNIT_OK if the scratch buffer is as large as every layer's kernel needs\n"
        " * (call once at start-up), else UNIT_ERR_SCRATCH. */\n",
        "int32_t unit_model_check(void);\n\n",
        "#if UNIT_S8_COUNTS && UNIT_MODEL_LAYERS > 0\n",
        "/* Per-layer MAC counters, summed over every unit_model_run call. */\n",
        "extern unit_counts unit_model_counts[UNIT_MODEL_LAYERS];\n#endif\n\n",
        f"#endif /* {guard} */\n"])


# ----------------------------------------------------------------------------------------------
# Kernel sources, Makefile, manifest
# ----------------------------------------------------------------------------------------------

_CALL = re.compile(r"\b(unit_[a-z0-9_]+)\s*\(")
_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.MULTILINE)


def _kernel_files(functions: set[str], csrc: Path = CSRC) -> list[str]:
    """The csrc files (names) the given public functions need: their .c files (one per public
    function, named after it), the .c files of the public functions those call, and every header
    they include, transitively."""
    sources, headers = set(), set()
    pending = sorted(functions)
    while pending:
        name = pending.pop()
        path = csrc / f"{name}.c"
        if name in sources:
            continue
        if not path.is_file():
            raise ExportError(f"the kernel source {path.name} is missing from {csrc} (the int8 kernels are not built "
                              f"into this installation of unitprune)")
        sources.add(name)
        text = path.read_text()
        pending += [call for call in _CALL.findall(text) if call not in sources and (csrc / f"{call}.c").is_file()]
        headers |= set(_INCLUDE.findall(text))
    pending_headers = sorted(headers | {"unit_kernels_s8.h", "unit_types.h"})
    headers = set()
    while pending_headers:
        header = pending_headers.pop()
        if header in headers or not (csrc / header).is_file():
            continue
        headers.add(header)
        pending_headers += _INCLUDE.findall((csrc / header).read_text())
    return sorted(f"{name}.c" for name in sources) + sorted(headers)


def _support_files(target: str) -> dict[str, Path]:
    """Files of unitprune.mcu.targets an MCU export copies (export name -> source path)."""
    if target == "host":
        return {}
    if not UNIT_MCU_H.is_file():
        raise ExportError(f"target {target}: the marker header {UNIT_MCU_H} is missing (unitprune.mcu.targets is not "
                          "part of this installation)")
    files = {"unit_mcu.h": UNIT_MCU_H}
    if target in CORE_EXPORT_TARGETS:
        files.update(core_support_files(target))
    if target == "msp430":
        for path in [MSP430_SUPPORT / "crt0.S", MSP430_SUPPORT / "link.ld",
                     *sorted((MSP430_SUPPORT / "runtime").glob("*.[chS]")),
                     *sorted((MSP430_SUPPORT / "include").glob("*.h"))]:
            if not path.is_file():
                raise ExportError(f"target msp430: {path} is missing (unitprune.mcu.targets is incomplete)")
            files[str(path.relative_to(MSP430_SUPPORT.parent))] = path
    return files


def _makefile(spec: TargetSpec, kernel_sources: list[str], support: list[str], counters: bool,
              source: str, far: bool = False) -> tuple[str, list[str]]:
    kernels = " ".join(f"kernels/{name}" for name in kernel_sources)
    host_main = "main.c" if spec.name == "host" else "main_host.c"
    host = (f"cc -std=c99 -O2 -Wall -Wextra -I. -Ikernels -DUNIT_S8_COUNTS=1 {host_main} model.c {kernels} "
            f"-o model_host")
    commands = [host]
    lines = [f"# Makefile: build commands of this export (target {spec.name}).",
             f"# Generated by unitprune (unitprune.mcu.export) from {source}. Do not edit: regenerate.",
             "", f"KERNELS = {kernels}", ""]
    if spec.name == "host":
        lines += ["all: model_host", ""]
    elif spec.name == "avr":
        # far tables: avr-gcc's __memx address space is GNU C; -Waddr-space-convert flags a far pointer
        # converted to a 16-bit one
        language = ("-std=gnu99 " + " ".join(f"-D{k}={v}" for k, v in FAR_DEFINES.items()) + " -Waddr-space-convert"
                    if far else "-std=c99")
        flags = (f"-mmcu={spec.chip} {language} -O2 -DUNIT_SKIP_BRANCH=1 -Wall -Wextra -ffunction-sections "
                 f"-fdata-sections -Wl,--gc-sections -I. -Ikernels -DUNIT_S8_COUNTS={int(counters)}")
        avr = f"avr-gcc {flags} main.c model.c $(KERNELS) -o model.elf"
        layers = f"avr-gcc {flags} -DUNIT_MODEL_MARKERS=1 main.c model.c $(KERNELS) -o model_layers.elf"
        commands += [avr.replace("$(KERNELS)", kernels), layers.replace("$(KERNELS)", kernels)]
        lines += ["all: model.elf model_layers.elf", "",
                  "# one region per inference", "model.elf: main.c model.c model.h samples.h unit_mcu.h $(KERNELS)",
                  f"\t{avr}", "",
                  "# one region per layer",
                  "model_layers.elf: main.c model.c model.h samples.h unit_mcu.h $(KERNELS)", f"\t{layers}", ""]
    elif spec.name == "msp430":
        lines += _msp430_rules(kernel_sources, support, counters, commands)
    elif spec.name in CORE_EXPORT_TARGETS:
        lines += core_makefile_rules(spec.name, kernels, counters, commands)
    else:
        raise ExportError(f"target {spec.name}: no build rules")
    lines += ["# the host runner (counters on): ./model_host INPUT.bin OUTPUT.bin",
              f"model_host: {host_main} model.c model.h $(KERNELS)",
              f"\t{host.replace(kernels, '$(KERNELS)')}", "",
              "clean:", "\trm -rf model_host model.elf model_layers.elf model_hwmult.elf build-msp430", "",
              ".PHONY: all clean", ""]
    return "\n".join(lines), commands


def _msp430_rules(kernel_sources: list[str], support: list[str], counters: bool, commands: list[str]) -> list[str]:
    """Makefile rules of the MSP430 firmware, as unitprune.mcu.targets builds it: clang-14 objects,
    the runtime helpers (software multiply, or the 16-bit hardware multiplier) as objects, ld.lld-14
    with the export's crt0 and linker script."""
    # msp430/include: the runtime's <string.h> (memcpy & co.), as unitprune.mcu.targets compiles
    base = ("--target=msp430 -ffreestanding -nostdlib -ffunction-sections -fdata-sections -isystem msp430/include "
            "-std=c99 -Wall -Wextra")
    model_flags = f"{base} -O2 -DUNIT_SKIP_BRANCH=1 -I. -Ikernels -DUNIT_S8_COUNTS={int(counters)}"
    runtime_flags = f"{base} -O2 -Wconversion -Wsign-conversion -Werror"
    runtime = [name for name in support if name.startswith("msp430/runtime/") and name[-2:] in (".c", ".S")]
    model_sources = ["main.c", "model.c", *[f"kernels/{name}" for name in kernel_sources]]
    lines = ["all: model.elf model_layers.elf model_hwmult.elf", "",
             f"MSP430_CFLAGS = {model_flags}", f"MSP430_RUNTIME_CFLAGS = {runtime_flags}", ""]
    objects: dict[str, list[str]] = {}
    for kind, defines in (("inference", ""), ("layers", " -DUNIT_MODEL_MARKERS=1")):
        objects[kind] = []
        for src in model_sources:
            obj = f"build-msp430/{kind}/{Path(src).stem}.o"
            command = f"clang-14 $(MSP430_CFLAGS){defines} -c {src} -o {obj}"
            lines += [f"{obj}: {src} model.h unit_mcu.h", "\t@mkdir -p build-msp430/" + kind, f"\t{command}"]
            objects[kind].append(obj)
            commands.append(command.replace("$(MSP430_CFLAGS)", model_flags))
    runtime_objects = {}
    for mult, hw in (("soft", 0), ("hwmult", 1)):
        objs = []
        for src in runtime:
            suffix = "_entry" if src.endswith(".S") else ""  # mpyll.S and mpyll.c must not share a name
            obj = f"build-msp430/rt-{mult}/{Path(src).stem}{suffix}.o"
            command = f"clang-14 $(MSP430_RUNTIME_CFLAGS) -DUNIT_MSP430_HWMULT={hw} -c {src} -o {obj}"
            lines += [f"{obj}: {src}", f"\t@mkdir -p build-msp430/rt-{mult}", f"\t{command}"]
            objs.append(obj)
            commands.append(command.replace("$(MSP430_RUNTIME_CFLAGS)", runtime_flags))
        runtime_objects[mult] = " ".join(objs)
    lines += ["build-msp430/crt0.o: msp430/crt0.S", "\t@mkdir -p build-msp430",
              f"\tclang-14 $(MSP430_RUNTIME_CFLAGS) -c msp430/crt0.S -o build-msp430/crt0.o", ""]
    commands.append(f"clang-14 {runtime_flags} -c msp430/crt0.S -o build-msp430/crt0.o")
    for elf, kind, mult in (("model.elf", "inference", "soft"), ("model_layers.elf", "layers", "soft"),
                            ("model_hwmult.elf", "inference", "hwmult")):
        # every runtime helper is linked; --gc-sections drops the unused ones (one section each)
        link = (f"ld.lld-14 -m msp430elf -T msp430/link.ld --gc-sections build-msp430/crt0.o "
                f"{' '.join(objects[kind])} {runtime_objects[mult]} -o {elf}")
        lines += [f"# {kind} regions, {'software multiply' if mult == 'soft' else '16-bit hardware multiplier'}",
                  f"{elf}: build-msp430/crt0.o {' '.join(objects[kind])} {runtime_objects[mult]} msp430/link.ld",
                  f"\t{link}", ""]
        commands.append(link)
    return lines


def _describe_source(qmodel: QuantizedModel, variant: str, linear_quotient: str) -> str:
    info = dict(qmodel.source)
    parts = [str(info.pop("model", "a QuantizedModel"))]
    parts += [f"{key} {value}" for key, value in sorted(info.items()) if isinstance(value, (str, int, float))]
    parts.append(f"variant {variant}" + (f", linear quotient {linear_quotient}" if variant == "unit" else ""))
    return ", ".join(parts).replace("*/", "* /")


def _block_text(block_rows) -> str:
    return "the whole output plane" if block_rows == "plane" else f"blocks of {block_rows} output rows"


def _export_readme(result_fields: dict) -> str:
    memory = result_fields["memory"]
    lines = [f"# Exported model: {result_fields['source']}", "",
             f"Generated by unitprune {result_fields['unitprune_version']} for target `{result_fields['target']}` "
             f"(variant `{result_fields['variant']}`, linear quotient `{result_fields['linear_quotient']}`).", "",
             "| file | what |", "|---|---|",
             "| `model.h`, `model.c` | tables in flash, activation arena, `unit_model_run(input, output)` |",
             "| `kernels/` | the int8 kernels the model calls, copied from unitprune |",
             "| `main.c` | the runner for this target |",
             "| `Makefile` | the build commands (below) |",
             "| `memory_plan.json` | memory plan, flash tables, layers, build commands |", "",
             "## Memory (bytes, one sample)", "",
             "| what | bytes |", "|---|---|",
             f"| activation arena (peak at {memory['peak_op']}) | {memory['arena_bytes']} |",
             f"| int32 scratch (conv accumulators: {_block_text(result_fields['conv_block_rows'])}) "
             f"| {memory['scratch_bytes']} |",
             f"| descriptors in RAM | {memory['descriptor_bytes']} |",
             f"| **model SRAM** (arena + scratch + descriptors) | **{memory['peak_sram_bytes']}** |",
             f"| network input (caller's buffer, not counted above) | {memory['input_bytes']} |",
             f"| network output (caller's buffer, not counted above) | {memory['output_bytes']} |",
             f"| constant tables in flash | {result_fields['flash']['tables_bytes']} |", "",
             "## Build", "", *[f"    {command}" for command in result_fields["build_commands"]], ""]
    return "\n".join(lines)


def export_c(qmodel: QuantizedModel, out_dir, target: str = "host", variant: str | None = None,
             linear_quotient: str | None = None, samples=None, counters: bool | None = None,
             overwrite: bool = False, conv_block_rows=None) -> ExportResult:
    """Write ``qmodel`` as a self-contained C project into ``out_dir`` (module docstring).

    Args:
        qmodel: the quantized model.
        out_dir: the folder to write; must be empty or missing unless ``overwrite``.
        target: ``"host"``, ``"avr"`` (ATmega2560, avr-gcc, simavr) or ``"msp430"``.
        variant: kernels to call, one of ``dense``, ``zeroskip``, ``unit`` (default: ``qmodel.variant``).
        linear_quotient: ``bitshift``, ``bintree`` or ``table`` for linear layers under ``unit``
            (default: ``qmodel.linear_quotient``).
        samples: int8 test inputs ``[n, *input_shape]`` (or ``[n, input_size]``): embedded in flash
            for MCU targets (required there), written to ``samples.bin`` for the host.
        counters: compile the MAC counters into the MCU firmware (default: off on MCUs, where they
            cost cycles; the host runner always has them).
        overwrite: replace the files of a non-empty ``out_dir`` (files this export does not write are
            left alone; those listed by an earlier export's ``memory_plan.json`` are removed).
        conv_block_rows: output rows whose int32 accumulators a conv holds at a time: ``None`` or
            ``"plane"`` (the whole output plane, the default), ``"min"`` (1 row) or an int >= 1.
            Smaller blocks need less scratch SRAM (``4 * B * OW`` bytes) and cost cycles; outputs
            and counters are the same for every block size.

    Raises:
        ExportError: a non-empty ``out_dir`` without ``overwrite``, an unknown target/variant, an op
            the kernels cannot run (naming the layer), constants beyond the target's flash reads or
            buffers beyond its SRAM (naming the layer).
    """
    from .. import __version__

    if target not in TARGETS:
        raise ExportError(f"unknown target {target!r} (one of {', '.join(TARGETS)})")
    spec = TARGETS[target]
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
    _check_model(qmodel, variant, linear_quotient)
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
    counters = bool(counters) if counters is not None else False
    layers = layer_names(qmodel)
    scratch = scratch_sizes(qmodel, block_rows)
    source = _describe_source(qmodel, variant, linear_quotient)

    def generate(far: bool):  # the memory plan (descriptor sizes) and model.c, with near or far tables
        plan = plan_memory(qmodel, scratch, _descriptor_bytes(qmodel, spec, variant, linear_quotient, far))
        return (plan, *_model_c(qmodel, plan, variant, linear_quotient, source, plan.scratch_bytes, block_rows,
                                _TableStyle(spec.max_object_bytes, far)))

    far = False
    plan, model_c, flash, functions = generate(far)
    if needs_far_tables(spec, sum(layer.total for layer in flash)):  # AVR, tables beyond 64 KB
        far = True
        plan, model_c, flash, functions = generate(far)
    model_c, functions = core_kernels(target, model_c, functions)  # e.g. the Cortex-M0+ dense conv
    samples_bytes = 0 if samples is None or target == "host" else samples.size
    _check_target(spec, plan, flash, samples_bytes, counters and bool(layers), len(layers), far)
    kernel_files = _kernel_files(functions)
    kernel_sources = [name for name in kernel_files if name.endswith(".c")]
    support = _support_files(target)
    makefile, commands = _makefile(spec, kernel_sources, list(support), counters, source, far)

    files: dict[str, str] = {"model.h": _model_h(qmodel, plan, layers, source), "model.c": model_c,
                             "Makefile": makefile}
    if target == "host":
        files["main.c"] = mains.host_main(layers, source)
    else:
        files["main.c"] = mains.mcu_main(bool(layers), source, far)
        files["main_host.c"] = mains.host_main(layers, source)
        files["samples.h"] = mains.samples_header(samples, source, far)
    if target in CORE_EXPORT_TARGETS:
        name, text = core_memory_ld(target)
        files[name] = text
    manifest = {
        "generator": "unitprune.mcu.export", "unitprune_version": __version__, "source": source,
        "target": target, "chip": spec.chip, "variant": variant, "linear_quotient": linear_quotient,
        "conv_block_rows": block_rows or "plane", "far_tables": far,
        "defines": dict(FAR_DEFINES) if far else {},
        "input_shape": list(qmodel.input_shape), "input_size": input_size, "output_size": plan.output_bytes,
        "input_scale": qmodel.input_scale, "output_scale": qmodel.output_scale, "layers": layers,
        "memory": plan.to_dict(),
        "flash": {"tables_bytes": sum(layer.total for layer in flash), "samples_bytes": samples_bytes,
                  "per_layer": {layer.name: layer.tables for layer in flash},
                  "note": "constant tables only; code size comes from the build (avr-size / llvm-size)"},
        "samples": 0 if samples is None else len(samples), "mcu_counters": counters,
        "build_commands": commands,
    }
    files["README.md"] = _export_readme(manifest)
    kernel_names = [f"kernels/{name}" for name in kernel_files]
    extra = ["samples.bin"] if samples is not None and target == "host" else []
    manifest["files"] = sorted([*files, "memory_plan.json", *kernel_names, *support, *extra])
    manifest["sources"] = ["main.c", "model.c", *[f"kernels/{name}" for name in kernel_sources]]
    manifest["host_sources"] = ["main.c" if target == "host" else "main_host.c", *manifest["sources"][1:]]

    _remove_previous_export(out_dir, set(manifest["files"]))
    (out_dir / "kernels").mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (out_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (out_dir / name).write_text(text)
    for name in kernel_files:
        shutil.copyfile(CSRC / name, out_dir / "kernels" / name)
    for name, path in support.items():
        (out_dir / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, out_dir / name)
    if extra:
        (out_dir / "samples.bin").write_bytes(samples.tobytes())
    (out_dir / "memory_plan.json").write_text(json.dumps(manifest, indent=2) + "\n")
    logger.info("exported %s to %s (%s, variant %s): model SRAM %d bytes, flash tables %d bytes", source, out_dir,
                target, variant, plan.peak_sram_bytes, manifest["flash"]["tables_bytes"])
    return ExportResult(out_dir=out_dir, target=target, variant=variant, linear_quotient=linear_quotient,
                        files=manifest["files"], memory=plan, flash=flash, layers=layers, input_size=input_size,
                        output_size=plan.output_bytes, samples=manifest["samples"], build_commands=commands,
                        conv_block_rows=block_rows, far_tables=far)


def _remove_previous_export(out_dir: Path, keep: set[str]) -> None:
    """Remove the files an earlier export listed in its manifest and this one does not write."""
    manifest = out_dir / "memory_plan.json"
    if not manifest.is_file():
        return
    try:
        previous = json.loads(manifest.read_text())
    except ValueError:
        return
    if previous.get("generator") != "unitprune.mcu.export":
        return
    for name in previous.get("files", []):
        path = out_dir / name
        if name not in keep and path.is_file() and ".." not in Path(name).parts:
            path.unlink()


def _check_target(spec: TargetSpec, plan: MemoryPlan, flash: list[LayerFlash], samples_bytes: int,
                  counters: bool, layers: int, far: bool = False) -> None:
    """Flash reads and SRAM of the target (ExportError naming the layer). With far tables the
    samples and tables may fill the chip's flash (the code must fit too: the linker checks that)."""
    limit = spec.far_flash_bytes if far else spec.flash_read_limit
    why = (f"the {spec.chip}'s flash, read through far table pointers" if far else spec.why_limit)
    if limit is not None:
        end = samples_bytes  # main.c (with the samples) is linked first
        if end > limit:
            raise ExportError(f"target {spec.name}: the {samples_bytes} bytes of embedded samples exceed the "
                              f"{limit} bytes of constants the kernels can read ({why}); embed fewer samples")
        for layer in flash:
            end += layer.total
            if end > limit:
                raise ExportError(f"target {spec.name}: layer {layer.name}'s constant tables end at byte {end} of "
                                  f"flash, beyond the {limit} bytes the kernels can read "
                                  f"({why}); a smaller model or fewer embedded samples are needed")
    if spec.sram_bytes is not None:
        counter_bytes = 56 * (layers + 1) if counters else 0
        need = plan.peak_sram_with_io_bytes + counter_bytes
        if need + spec.stack_reserve > spec.sram_bytes:
            raise ExportError(f"target {spec.name} ({spec.chip}, {spec.sram_bytes} bytes of SRAM): the model needs "
                              f"{need} bytes plus at least {spec.stack_reserve} of stack (arena {plan.arena_bytes}, "
                              f"peak at layer "
                              f"{plan.peak_op}; scratch {plan.scratch_bytes}; input {plan.input_bytes}; output "
                              f"{plan.output_bytes}; descriptors {plan.descriptor_bytes}; counters {counter_bytes}). "
                              "Export for target='host' to inspect the memory plan")
