"""Step 3 of the export: the model's C. ``model.c`` (constant tables in flash, the descriptors the
kernels read, the static arena of the memory plan and ``unit_model_run``: the layers as
straight-line calls to the ``unit_*_s8`` kernels, in op order), ``model.h`` (its interface) and,
for MCU targets, ``samples.h`` (the embedded test samples).

Only the tables, the descriptors and the calls are generated. The fixed C around them (region
markers, MAC counters, the copy helper, the runners' ``main``) is in real files in
``c_templates/`` that the build files step copies beside ``model.c``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import codegen
from ..kernel_choice import conv_variant, linear_kernel, linear_variant
from ..qmodel import QAvgPool, QConv, QFlatten, QLinear, QMaxPool, QReLU, QThresholdReLU, QuantizedModel
from ..targets.specs import CONV_PARAMS_FIELDS
from .export_types import LayerFlash
from .memory_plan import ARENA, INPUT, OUTPUT, MemoryPlan, Storage

__all__ = ["ModelC", "block_text", "describe_source", "model_c", "model_h", "samples_h"]


def describe_source(qmodel: QuantizedModel, variant: str, linear_quotient: str) -> str:
    """One line naming the model and the export's settings, for file headers and the manifest."""
    info = dict(qmodel.source)
    parts = [str(info.pop("model", "a QuantizedModel"))]
    parts += [f"{key} {value}" for key, value in sorted(info.items()) if isinstance(value, (str, int, float))]
    parts.append(f"variant {variant}" + (f", linear quotient {linear_quotient}" if variant == "unit" else ""))
    return ", ".join(parts).replace("*/", "* /")


def block_text(block_rows) -> str:
    """How much of a conv's output the accumulators hold, in words."""
    return "the whole output plane" if block_rows == "plane" else f"blocks of {block_rows} output rows"


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
             style.array("int8_t", f"{ident}_shift", requant.shift)]
    n = len(requant.bias)
    flash.update(bias=4 * n, multiplier=4 * n, shift=n)
    thresholds = "0"  # unit_requant_s8.thresholds: a field of MSP430 builds only (unit_kernels_s8.h)
    if requant.thresholds is not None:  # the output stage's threshold tables (unitprune.mcu.requant_table)
        parts += ["#if defined(__MSP430__) /* read by the MSP430 builds only */\n",
                  style.array("uint32_t", f"{ident}_thresholds", requant.thresholds,
                              comment="per output channel T+(q) + T-(q), q = 1..128"), "#endif\n"]
        flash["thresholds"] = 4 * requant.thresholds.size
        thresholds = f"{ident}_thresholds"
    parts.append(f"static const unit_requant_s8 {ident}_requant = {{{ident}_bias, {ident}_multiplier, {ident}_shift, "
                 f"{requant.act_min}, {requant.act_max} UNIT_REQUANT_THRESHOLDS({thresholds})}};\n")
    return parts


def _sparse_tables(ident: str, tables, flash: dict[str, int], style: _TableStyle,
                   fields: str = "input offset, weight") -> list[str]:
    """The ``unit_sparse_s8`` of a static-sparse layer (unit_kernels_s8.h) and its tables (records of
    ``fields``: two int16, or three for unit_conv2d_sparse_tau_s8)."""
    parts = [style.array("uint16_t", f"{ident}_nonzeros", tables.nonzeros)]
    flash["nonzeros"] = 2 * tables.nonzeros.size
    records = taps = "0"
    if tables.stored:
        parts.append(style.array("int16_t", f"{ident}_records", tables.records,
                                 comment=f"{tables.stored} nonzero weights: {{{fields}}}"))
        flash["records"] = 2 * tables.records.size
        records = f"{ident}_records"
        if tables.taps is not None:
            parts.append(style.array("uint8_t", f"{ident}_taps", tables.taps, comment="{ky, kx} of each record"))
            flash["taps"] = 2 * tables.stored
            taps = f"{ident}_taps"
    parts.append(f"static const unit_sparse_s8 {ident}_sparse = {{{ident}_nonzeros, {records}, {taps}}};\n")
    return parts


@dataclass
class _LayerCode:
    tables: list[str]
    call: list[str]
    flash: LayerFlash | None
    scratch_check: str | None
    scratch_limit: str | None = None  # bytes the op may use (None: sizeof(unit_model_scratch))


def conv_params(op: QConv, block_rows: int = 0) -> tuple[int, ...]:
    """The fields of ``unit_conv2d_params`` (batch 1), in declaration order; ``block_rows`` 0 = the
    whole plane, else clipped to the layer's output height (what the kernel does with it)."""
    rows = min(block_rows, op.out_height) if block_rows else 0
    fields = (1, op.in_channels, op.in_height, op.in_width, op.out_channels, op.kernel_height, op.kernel_width,
            op.stride[0], op.stride[1], op.dilation[0], op.dilation[1], *op.padding, op.groups, rows)
    assert len(fields) == CONV_PARAMS_FIELDS, "unit_conv2d_params changed: update targets/specs.py"
    return fields


def _conv_code(op: QConv, ident: str, variant: str, counter: int, io: tuple[str, str],
               block_rows: int, style: _TableStyle, scratch_offset: int | None = None,
               scratch_bytes: int = 0, sparse=None, row_starts=None, pooled=None) -> _LayerCode:
    flash: dict[str, int] = {}
    if pooled is not None:  # unit_conv2d_dense_pool_s8 (pooled_conv.py): accumulators of the pool's rows
        block_rows = pooled.kernel[0]
    fields = conv_params(op, block_rows)
    params = ", ".join(str(v) for v in fields)
    kind = "1d" if op.is_conv1d else "2d"
    block = block_text(fields[-1] or "plane")
    tables = [f"/* {_comment(op.name)}: Conv{kind} {op.in_channels}->{op.out_channels}, kernel {op.kernel_height}x"
              f"{op.kernel_width}, stride {op.stride}, dilation {op.dilation}, padding {op.padding}, "
              f"groups {op.groups}, output {op.out_height}x{op.out_width}, accumulators for {block} */\n",
              f"static const unit_conv2d_params {ident}_params = {{{params}}};\n"]
    conv = conv_variant(op, variant)
    if conv == "sparse_tau":  # UnIT on the stored weights, tau in each record (unit_conv2d_sparse_tau_s8)
        from ...kernels.sparse_tau_s8 import conv_sparse_tau_tables

        sparse = conv_sparse_tau_tables(op.weight, op.tau, op.in_height, op.in_width, op.dilation, any(op.padding),
                                        op.name)
        tables += _sparse_tables(ident, sparse, flash, style, "input offset, tau + 1, weight")
    elif sparse is not None:  # static sparsity: the nonzero weights only (kernel_choice.sparse_layers)
        tables += _sparse_tables(ident, sparse, flash, style)
        if row_starts is not None:  # and zero-activation skipping (zeroact_plan.zeroact_layers)
            tables.append(style.array("uint16_t", f"{ident}_row_starts", row_starts,
                                      comment="the first record of each output channel's kernel rows"))
            flash["row_starts"] = 2 * row_starts.size
    else:
        tables.append(style.array("int8_t", f"{ident}_weight", op.weight))
        flash["weight"] = op.weight.size
    if conv == "unit_sparse":  # UnIT over the stored weights (unit_unit_sparse_s8): no dense weight or tau
        return _unit_sparse_conv_code(op, ident, counter, io, style, scratch_offset, scratch_bytes, tables[:1])
    if conv.startswith("unit"):
        tables.append(style.array("uint8_t", f"{ident}_tau", op.tau))
        flash["tau"] = op.tau.size
    tables += _requant_tables(ident, op.requant, flash, style)
    src, dst = io
    tau = f"{ident}_tau, " if conv.startswith("unit") else ""
    if conv == "sparse_tau":
        sparse = None  # the call below: the tau kernel, its tables as the static-sparse kernel's
    if row_starts is not None:
        tau = f"{ident}_row_starts, "
    scratch = "unit_model_scratch"
    if scratch_offset is not None:  # this op's part of the arena (memory_plan: between its buffers)
        scratch = f"(int32_t *)(void *)(unit_model_arena + {scratch_offset})"
    kernel, weight = ("sparse", f"&{ident}_sparse") if sparse is not None else (conv, f"{ident}_weight")
    if conv == "sparse_tau":
        weight = f"&{ident}_sparse"
    if row_starts is not None:
        kernel = "sparse_zeroact"
    pool = ""
    if pooled is not None:  # writes the max-pool's output (the pool op then emits no code)
        kernel, pool = pooled.function[len("unit_conv2d_"):-len("_s8")], f"{pooled.kernel[0]}, {pooled.kernel[1]}, "
        tables[0] = tables[0].replace(" */\n", f", max-pooled {pooled.kernel[0]}x{pooled.kernel[1]} on the "
                                      f"accumulators ({_comment(pooled.pool)}) */\n")
    call = (f"unit_conv2d_{kernel}_s8(&{ident}_params, {pool}{src}, {weight}, {tau}&{ident}_requant, {dst}, "
            f"{scratch}, UNIT_MODEL_CALL_COUNTS)")
    size = "unit_conv2d_unit_skipfree_s8_scratch_size" if conv == "unit_skipfree" else "unit_conv2d_s8_scratch_size"
    if row_starts is not None:
        size = "unit_conv2d_sparse_zeroact_s8_scratch_size"
    return _LayerCode(tables, _counted_call(op.name, call, counter), LayerFlash(op.name, flash),
                      f"{size}(&{ident}_params)", None if scratch_offset is None else str(scratch_bytes))


def _unit_sparse_conv_code(op: QConv, ident: str, counter: int, io: tuple[str, str], style: _TableStyle,
                           scratch_offset: int | None, scratch_bytes: int, head: list[str]) -> _LayerCode:
    """A conv planned on ``unit_conv2d_unit_sparse_s8``: its params (block rows of the kernel's
    accumulators, :func:`unitprune.mcu.unit_plan.unit_sparse_block_rows`), its ``unit_unit_sparse_s8``
    tables and its call."""
    from ..unit_plan import unit_sparse_block_rows

    flash: dict[str, int] = {}
    params = ", ".join(str(v) for v in conv_params(op, unit_sparse_block_rows(op)))
    sparse_tables, levels = unit_sparse_tables_text(op, ident, flash, style)
    tables = head + [f"static const unit_conv2d_params {ident}_params = {{{params}}};\n", *sparse_tables]
    tables += _requant_tables(ident, op.requant, flash, style)
    src, dst = io
    scratch = "unit_model_scratch"
    if scratch_offset is not None:
        scratch = f"(int32_t *)(void *)(unit_model_arena + {scratch_offset})"
    call = (f"unit_conv2d_unit_sparse_s8(&{ident}_params, {src}, &{ident}_usparse, &{ident}_requant, {dst}, "
            f"{scratch}, UNIT_MODEL_CALL_COUNTS)")
    return _LayerCode(tables, _counted_call(op.name, call, counter), LayerFlash(op.name, flash),
                      f"unit_conv2d_unit_sparse_s8_scratch_size(&{ident}_params, {levels})",
                      None if scratch_offset is None else str(scratch_bytes))


def unit_sparse_tables_text(op: QConv, ident: str, flash: dict[str, int], style: _TableStyle) -> tuple[list[str], int]:
    """The ``unit_unit_sparse_s8`` ``{ident}_usparse`` of a conv on ``unit_conv2d_unit_sparse_s8`` and
    its tables (their bytes added to ``flash``), and its count of tau levels."""
    from ..unit_plan import unit_sparse_tables_of

    sparse = unit_sparse_tables_of(op)
    if sparse is None:
        raise ValueError(f"layer {op.name!r}: beyond the UnIT sparse kernel's tables")
    tables = [style.array("uint16_t", f"{ident}_counts", sparse.counts)]
    flash["counts"] = 2 * sparse.counts.size
    records = levels = "0"
    if sparse.stored:
        tables.append(style.array("uint8_t", f"{ident}_records", sparse.records,
                                  comment=f"{sparse.stored} nonzero weights: {{c, ky, kx, weight, level}}"))
        flash["records"] = sparse.records.size
        records = f"{ident}_records"
    if sparse.levels.size:
        tables.append(style.array("uint8_t", f"{ident}_levels", sparse.levels, comment="the distinct tau < 128"))
        flash["levels"] = sparse.levels.size
        levels = f"{ident}_levels"
    tables.append(f"static const unit_unit_sparse_s8 {ident}_usparse = {{{ident}_counts, {records}, {levels}, "
                  f"{sparse.levels.size}}};\n")
    return tables, int(sparse.levels.size)


def _linear_code(op: QLinear, ident: str, variant: str, linear_quotient: str, counter: int,
                 io: tuple[str, str], style: _TableStyle, sparse=None) -> _LayerCode:
    flash: dict[str, int] = {}
    variant = linear_variant(op, variant)  # a static (exact) layer without its sparse tables: dense
    src, dst = io
    head = f"{src}, 1, {op.in_features}, {op.out_features}, {ident}_weight_t"
    tail = f"&{ident}_requant, {dst}, unit_model_scratch, UNIT_MODEL_CALL_COUNTS"
    if sparse is not None:  # static sparsity: the nonzero weights only (kernel_choice.sparse_layers)
        tables = [f"/* {_comment(op.name)}: Linear {op.in_features}->{op.out_features}, nonzero weights */\n",
                  *_sparse_tables(ident, sparse, flash, style)]
    elif variant == "unit" and op.unit_kernel == "sorted":
        # the early exit: each input's column sorted by |w| (unit_fast_s8.sorted_columns), with its outputs
        from ...kernels.unit_fast_s8 import sorted_columns

        weight_sorted, index = sorted_columns(op.weight)
        tables = [f"/* {_comment(op.name)}: Linear {op.in_features}->{op.out_features}, each input's column "
                  "sorted by |w| (zero sentinel) with its output indices */\n",
                  style.array("int8_t", f"{ident}_weight_sorted", weight_sorted),
                  style.array("uint16_t", f"{ident}_index", index)]
        flash.update(weight_sorted=weight_sorted.size, index=2 * index.size)
        head = f"{src}, 1, {op.in_features}, {op.out_features}, {ident}_weight_sorted, {ident}_index"
        linear_quotient = f"sorted_{linear_quotient}"
    else:
        tables = [f"/* {_comment(op.name)}: Linear {op.in_features}->{op.out_features}, "
                  "weight transposed [in][out] */\n",
                  style.array("int8_t", f"{ident}_weight_t", np.ascontiguousarray(op.weight.T))]
        flash["weight"] = op.weight.size
    tables += _requant_tables(ident, op.requant, flash, style)
    if sparse is not None:
        call = f"unit_linear_sparse_s8({src}, 1, {op.in_features}, {op.out_features}, &{ident}_sparse, {tail})"
    elif variant != "unit":
        call = f"unit_linear_{variant}_s8({head}, {tail})"
    elif linear_quotient.endswith("bitshift"):
        call = (f"unit_linear_unit_{linear_quotient}_s8({head}, {codegen.c_int(op.threshold_q)}, {int(op.shift_start)}, "
                f"{tail})")
    elif linear_quotient.endswith("table"):
        tables.append(style.array("uint8_t", f"{ident}_quotients", op.quotient_table,
                                      comment=f"t for |x| = 0..128 (T_q = {int(op.threshold_q)})"))
        flash["quotient_table"] = 129
        call = f"unit_linear_unit_{linear_quotient}_s8({head}, {ident}_quotients, {tail})"
    else:
        nodes = len(op.tree_split)
        for what, ctype in (("split", "int8_t"), ("left", "int8_t"), ("right", "int8_t"), ("quotient", "uint8_t")):
            tables.append(style.array(ctype, f"{ident}_tree_{what}", getattr(op, f"tree_{what}")))
        tables.append(f"static const unit_quotient_tree_s8 {ident}_tree = {{{nodes}, {ident}_tree_split, "
                      f"{ident}_tree_left, {ident}_tree_right, {ident}_tree_quotient}};\n")
        flash["quotient_tree"] = 4 * nodes
        call = f"unit_linear_unit_{linear_quotient}_s8({head}, &{ident}_tree, {tail})"
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


@dataclass
class ModelC:
    """The generated model C of one export (:func:`model_c`)."""

    text: str  # model.c
    flash: list[LayerFlash]  # constant tables per conv/linear layer, in op order
    kernels: set[str]  # the public kernel functions model.c calls
    layers: list[str] = field(default_factory=list)  # conv/linear layer names, in counter order


@dataclass
class _Sections:
    """What the ops contribute to model.c, collected op by op."""

    tables: list[str] = field(default_factory=list)
    body: list[str] = field(default_factory=list)
    flash: list[LayerFlash] = field(default_factory=list)
    scratch_checks: list[tuple[str, str]] = field(default_factory=list)  # (size expression, limit)
    kernels: set[str] = field(default_factory=lambda: {"unit_requantize_s8"})
    needs_copy: bool = False


def _op_sections(qmodel: QuantizedModel, plan: MemoryPlan, variant: str, linear_quotient: str, block_rows: int,
                 style: _TableStyle, sparse: dict, zeroact: dict, conv_rows: dict, pooled: dict) -> _Sections:
    """The tables and the statements of ``unit_model_run``, op by op (``conv_rows``: a conv's own
    ``block_rows`` by name, else ``block_rows``; ``pooled``: the convs that write their max-pool's output)."""
    pools = {entry.pool: entry for entry in pooled.values()}
    names = codegen.IdentifierSet()
    out = _Sections()
    if plan.copy_input_to_output:
        out.body.append(f"    unit_model_copy(output, input, {plan.input_bytes});")
        out.needs_copy = True
    counter = 0
    for op, memory in zip(qmodel.ops, plan.ops):
        io = (_storage_expr(memory.source), _storage_expr(memory.target))
        if isinstance(op, (QConv, QLinear)):
            ident = names.add(op.name)
            tables = sparse.get(op.name)
            if isinstance(op, QConv):
                code = _conv_code(op, ident, variant, counter, io, conv_rows.get(op.name, block_rows), style,
                                  memory.scratch_offset, memory.scratch_bytes, tables, zeroact.get(op.name),
                                  pooled.get(op.name))
                kernel = "sparse" if tables is not None else conv_variant(op, variant)
                if op.name in pooled:  # its runs are the unpooled kernel's assembly (linked with it), its
                    # 2x2 windows' best unit_conv2d_dense_pool_s8's (AVR)
                    out.kernels |= {pooled[op.name].function, "unit_conv2d_dense_pool_s8"}
                size = {"unit_skipfree": "unit_conv2d_unit_skipfree_s8_scratch_size",
                        "unit_sparse": "unit_conv2d_unit_sparse_s8_scratch_size"}.get(kernel,
                                                                                      "unit_conv2d_s8_scratch_size")
                out.kernels |= {f"unit_conv2d_{kernel}_s8", size}
                if op.name in zeroact:  # its runs are in unit_conv2d_sparse_s8's assembly (linked with it)
                    out.kernels |= {"unit_conv2d_sparse_zeroact_s8", "unit_conv2d_sparse_zeroact_s8_scratch_size"}
            else:
                code = _linear_code(op, ident, variant, linear_quotient, counter, io, style, tables)
                # the sparse linear kernel's AVR runs are in unit_conv2d_sparse_s8_avr.S, linked with the conv kernel
                kernel = {"unit_linear_sparse_s8", "unit_conv2d_sparse_s8"} if tables is not None else {
                    linear_kernel(op, variant, linear_quotient)}
                out.kernels |= kernel | {"unit_linear_s8_scratch_size"}
            counter += 1
            out.tables += code.tables + ["\n"]
            out.body += code.call
            out.flash.append(code.flash)
            limit = code.scratch_limit or "(int32_t)sizeof(unit_model_scratch)"
            out.scratch_checks.append((code.scratch_check, limit))
        elif op.name in pools:
            out.body += _plain_call(op.name, [f"/* {_comment(op.name)}: max-pool "
                                              f"{op.kernel[0]}x{op.kernel[1]}, done by "
                                              f"{_comment(pools[op.name].conv)} on its accumulators */"])
        elif isinstance(op, (QMaxPool, QAvgPool)):
            pool, what = ("maxpool2d", "max-pool") if isinstance(op, QMaxPool) else ("avgpool2d", "average pool")
            out.kernels.add(f"unit_{pool}_s8")
            out.body += _plain_call(op.name, [
                f"/* {_comment(op.name)}: {what} {op.kernel[0]}x{op.kernel[1]}, stride {op.stride} */",
                f"status = unit_{pool}_s8({io[0]}, 1, {op.channels}, {op.in_height}, {op.in_width}, "
                f"{op.kernel[0]}, {op.kernel[1]}, {op.stride[0]}, {op.stride[1]}, {io[1]});"])
        elif isinstance(op, (QReLU, QThresholdReLU)):
            how = " (copy of the read-only input, then in place)" if memory.copy_first else ", in place"
            what = "ReLU" if isinstance(op, QReLU) else f"FATReLU (q > {op.threshold_q})"
            statements = [f"/* {_comment(op.name)}: {what}{how} */"]
            if memory.copy_first:
                statements.append(f"unit_model_copy({io[1]}, {io[0]}, {op.size});")
                out.needs_copy = True
            if isinstance(op, QReLU):
                out.kernels.add("unit_relu_s8")
                statements.append(f"status = unit_relu_s8({io[1]}, {op.size});")
            else:
                out.kernels.add("unit_threshold_relu_s8")
                statements.append(f"status = unit_threshold_relu_s8({io[1]}, {op.size}, {op.threshold_q});")
            out.body += _plain_call(op.name, statements)
        else:
            assert isinstance(op, QFlatten)
            out.body.append(f"    /* {_comment(op.name)}: flatten (no-op on [C][H][W]) */")
    return out


def model_c(qmodel: QuantizedModel, plan: MemoryPlan, variant: str, linear_quotient: str, source: str,
            block_rows: int, asm_above: int | None, far: bool, sparse: dict | None = None,
            zeroact: dict | None = None, conv_rows: dict | None = None, pooled: dict | None = None) -> ModelC:
    """model.c, its flash tables per layer and the kernels it calls. Tables above ``asm_above``
    bytes are assembler data (AVR), ``far`` tables are read through UNIT_TABLE pointers (AVR
    beyond 64 KB); :func:`unitprune.mcu.codegen.flash_array`. ``sparse``: the static-sparse layers'
    tables by name (:func:`unitprune.mcu.kernel_choice.sparse_layers`); ``zeroact``: the row starts of those
    that skip zero activations too (:func:`unitprune.mcu.zeroact_plan.zeroact_layers`); ``conv_rows``: each
    conv's ``block_rows`` (:func:`unitprune.mcu.export.conv_rows.conv_block_rows`), by name; ``pooled``: the
    convs that write their max-pool's output (:func:`.pooled_conv.pooled_convs`)."""
    sections = _op_sections(qmodel, plan, variant, linear_quotient, block_rows, _TableStyle(asm_above, far),
                            sparse or {}, zeroact or {}, conv_rows or {}, pooled or {})
    arena = ""
    if plan.arena_bytes and any(op.scratch_offset is not None for op in plan.ops):
        # int32 scratch lives in the arena (memory_plan): the arena is 4-byte aligned, its size a multiple of 4
        arena = (f"/* activation arena with the convs' scratch (memory plan: {plan.arena_bytes} bytes, peak at "
                 f"{plan.peak_op}) */\n"
                 f"static int32_t unit_model_arena_words[{plan.arena_bytes // 4}]; /* 4-byte aligned */\n"
                 "static int8_t *const unit_model_arena = (int8_t *)unit_model_arena_words;\n")
    elif plan.arena_bytes:
        arena = (f"/* activation arena (memory plan: {plan.arena_bytes} bytes, peak at {plan.peak_op}) */\n"
                 f"static int8_t unit_model_arena[{plan.arena_bytes}];\n")
    scratch_bytes = plan.scratch_bytes
    scratch_words = max(1, (scratch_bytes + 3) // 4)
    scratch = (f"/* int32 scratch shared by the layers: the largest any layer needs, {scratch_bytes} bytes */\n"
               f"static int32_t unit_model_scratch[{scratch_words}];\n\n") if sections.scratch_checks else "\n"
    text = [codegen.file_header("model.c", "constant tables, buffers and unit_model_run", source),
            "#include \"model.h\"\n\n",
            "/* the fixed part of model.c: markers, counters, copy (c_templates/unit_model_internal.h) */\n",
            codegen.c_define("UNIT_MODEL_FAR_TABLES", int(far)),
            codegen.c_define("UNIT_MODEL_NEEDS_COPY", int(sections.needs_copy)),
            "#include \"unit_model_internal.h\"\n\n",
            *sections.tables, arena,
            scratch,
            "int32_t unit_model_check(void) {\n",
            *[f"    if ({check} > {limit}) {{\n        return UNIT_ERR_SCRATCH;\n    }}\n"
              for check, limit in sections.scratch_checks],
            "    return UNIT_OK;\n}\n\n",
            "int32_t unit_model_run(const int8_t *input, int8_t *output) {\n",
            "    int32_t status = UNIT_OK;\n",
            "\n".join(sections.body) + "\n",
            "    return status;\n}\n"]
    return ModelC("".join(text), sections.flash, sections.kernels,
                  [op.name for op in qmodel.ops if isinstance(op, (QConv, QLinear))])


def model_h(qmodel: QuantizedModel, plan: MemoryPlan, layers: list[str], source: str) -> str:
    """model.h: sizes, layer count and names, ``unit_model_run`` and ``unit_model_check``."""
    guard = "UNIT_MODEL_H"
    names = ", ".join(f'"{codegen.c_identifier(name)}"' for name in layers)  # one word each: parsed by index
    return "".join([
        codegen.file_header("model.h", "the exported model's interface", source),
        f"#ifndef {guard}\n#define {guard}\n\n#include <stdint.h>\n\n#include \"unit_kernels_s8.h\"\n\n",
        "#ifndef UNIT_S8_COUNTS\n#define UNIT_S8_COUNTS 0\n#endif\n\n",
        f"/* int8 values per sample, input shape {tuple(qmodel.input_shape)} ([C][H][W]) */\n",
        codegen.c_define("UNIT_MODEL_INPUT_SIZE", plan.input_bytes),
        codegen.c_define("UNIT_MODEL_OUTPUT_SIZE", plan.output_bytes),
        f"/* layers with MAC counters, in this order: {', '.join(layers)} */\n",
        codegen.c_define("UNIT_MODEL_LAYERS", len(layers)),
        codegen.c_define("UNIT_MODEL_LAYER_NAMES", f"{{{names}}}") if layers else "",
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


def samples_h(samples: np.ndarray, source: str, far: bool = False, asm_above: int | None = None) -> str:
    """``samples.h``: the embedded test samples, int8 ``[samples][UNIT_MODEL_INPUT_SIZE]`` in flash
    (``far``: a far table, as the model's in a far-tables export; unit_types.h; above ``asm_above``
    bytes, the largest C object of the target, assembler data: :func:`codegen.flash_array`)."""
    return "".join([
        codegen.file_header("samples.h", f"{len(samples)} int8 test samples in flash", source),
        "#ifndef UNIT_MODEL_SAMPLES_H\n#define UNIT_MODEL_SAMPLES_H\n\n#include \"model.h\"\n\n",
        codegen.c_define("UNIT_MODEL_SAMPLES", len(samples)),
        codegen.flash_array("int8_t", "unit_model_samples", samples, asm_above=asm_above, far=far),
        "\n#endif /* UNIT_MODEL_SAMPLES_H */\n"])
