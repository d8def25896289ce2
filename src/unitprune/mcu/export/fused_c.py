"""model.c of the fused, row-streamed plan (:mod:`.fused_plan`): one ``unit_model_push_<k>``
function per stage (append a row to the stage's window; when the window holds an output row's
input rows, compute that row with the whole-layer kernel and pass it on), the sink (a Linear
accumulated per row, or the output), ``unit_model_run_rows`` (the input read row by row through a
reader) and ``unit_model_run`` (the same on an input in memory).
"""

from __future__ import annotations

import re

import numpy as np

from .. import codegen
from ..qmodel import QConv, QLinear, QReLU, QThresholdReLU, QuantizedModel
from ..unit_plan import unit_sparse_block_rows
from ..targets.specs import CONV_PARAMS_FIELDS
from .export_types import LayerFlash
from .fused_kernels import FusedKernels, conv_kernel, window_op
from .fused_plan import FusedChain, FusedMemoryPlan, Stage, direct_stages, pooled_by
from .fused_tail import tail_code, tail_vector_exprs
from .model_c import ModelC, _comment, _requant_tables, _sparse_tables, _TableStyle, unit_sparse_tables_text

__all__ = ["fused_model_c", "fused_model_h_api", "permuted_linear_weight"]


def permuted_linear_weight(op: QLinear, shape: tuple[int, int, int]) -> np.ndarray:
    """The Linear's transposed weight in the order its inputs arrive row by row: ``[H][C][W][out]``
    (the flattened input is ``[C][H][W]``)."""
    c, h, w = shape
    weight_t = op.weight.T.reshape(c, h, w, op.out_features)
    return np.ascontiguousarray(weight_t.transpose(1, 0, 2, 3))


def _window_params(stage: Stage, op: QConv, rows_out: int = 1, block_rows: int = 0) -> tuple[int, ...]:
    """``unit_conv2d_params`` of ``rows_out`` output rows on the stage's window: ``in_height =
    K + (rows_out - 1) * stride_y``, no vertical padding (padding rows are zero rows of the window);
    ``block_rows`` the accumulators' rows (0: all ``rows_out``)."""
    fields = (1, op.in_channels, stage.window_rows + (rows_out - 1) * stage.stride_y, op.in_width, op.out_channels,
              op.kernel_height, op.kernel_width, stage.stride_y, op.stride[1], op.dilation[0], op.dilation[1], 0, 0,
              op.padding[2], op.padding[3], op.groups, block_rows)
    assert len(fields) == CONV_PARAMS_FIELDS, "unit_conv2d_params changed: update targets/specs.py"
    return fields


def _elementwise(qmodel: QuantizedModel, ops: tuple[int, ...], target: str, size: int, kernels: set[str]) -> list[str]:
    lines = []
    for index in ops:
        op = qmodel.ops[index]
        if isinstance(op, QReLU):
            kernels.add("unit_relu_s8")
            lines.append(f"    /* {_comment(op.name)}: ReLU */\n    (void)unit_relu_s8({target}, {size});\n")
        else:
            assert isinstance(op, QThresholdReLU)
            kernels.add("unit_threshold_relu_s8")
            lines.append(f"    /* {_comment(op.name)}: FATReLU (q > {op.threshold_q}) */\n"
                         f"    (void)unit_threshold_relu_s8({target}, {size}, {op.threshold_q});\n")
    return lines


def _status(call: str) -> str:
    return f"    status = {call};\n    if (status != UNIT_OK) {{\n        return status;\n    }}\n"


def fused_model_c(qmodel: QuantizedModel, chain: FusedChain, plan: FusedMemoryPlan, variant: str,
                  linear_quotient: str, source: str, asm_above: int | None, far: bool,
                  columns: bool = False, conv_kernels: FusedKernels | None = None) -> ModelC:
    """model.c of the fused plan, its flash tables per layer and the kernels it calls. ``columns``:
    ``qmodel`` is the transposed model of a width-streamed export (:mod:`.fused_axis`): the input
    is read, and an output stored, column by column of the model as given. ``conv_kernels``: the
    static-sparse tables of the convs on their windows (:func:`.fused_kernels.fused_kernels`)."""
    style = _TableStyle(asm_above, far)
    conv_kernels = conv_kernels or FusedKernels()
    names = codegen.IdentifierSet()
    kernels: set[str] = {"unit_requantize_s8", "unit_table_offset_s8"}  # the runner's reader uses the latter
    tables: list[str] = []
    flash: list[LayerFlash] = []
    checks: list[str] = []
    layers = [op.name for op in qmodel.ops if isinstance(op, (QConv, QLinear))]
    functions: list[str] = []
    row = f"(unit_model_arena + {next(b['offset'] for b in plan.buffers if b['name'] == 'row')})"
    sink_c, sink_h, sink_w = chain.sink_shape
    offsets = {buffer["name"]: buffer["offset"] for buffer in plan.buffers}
    direct = direct_stages(chain)
    pooling = pooled_by(chain)  # the convs that write their max-pool's rows (unit_conv2d_dense_pool_s8)
    outs = _output_buffers(chain, direct, offsets)
    sink_row = outs[-1] if chain.stages and chain.stages[-1].block_rows == 1 else row

    # the sink: what receives the rows of the last stage (or of the input)
    if chain.linear is not None:
        op = qmodel.ops[chain.linear]
        ident = names.add(op.name)
        counter = layers.index(op.name)
        tables_flash: dict[str, int] = {}
        tail = "unit_model_sums, UNIT_MODEL_CALL_COUNTS"
        quotient = linear_quotient
        if variant == "unit" and op.unit_kernel == "sorted":  # the early exit: each column sorted by |w|
            head = _sorted_sink_tables(op, ident, chain.sink_shape, sink_row, tables, tables_flash, style)
            quotient = f"sorted_{linear_quotient}"
        else:
            tables.append(f"/* {_comment(op.name)}: Linear {op.in_features}->{op.out_features}, weight transposed "
                          f"and in arrival order [row {sink_h}][C {sink_c}][W {sink_w}][out] */\n")
            tables.append(style.array("int8_t", f"{ident}_weight", permuted_linear_weight(op, chain.sink_shape)))
            tables_flash["weight"] = op.weight.size
            head = (f"{sink_row}, {sink_c * sink_w}, {op.out_features}, unit_table_offset_s8({ident}_weight, "
                    f"r * {sink_c * sink_w * op.out_features})")
        tables += _requant_tables(ident, op.requant, tables_flash, style)
        if variant != "unit":
            call = f"unit_linear_accumulate_{variant}_s8({head}, {tail})"
            kernels.add(f"unit_linear_accumulate_{variant}_s8")
            if variant == "dense":  # its dot product is unit_linear_dense_s8's assembly (linked with it)
                kernels.add("unit_linear_dense_s8")
        elif quotient.endswith("bitshift"):
            call = (f"unit_linear_accumulate_unit_{quotient}_s8({head}, {codegen.c_int(op.threshold_q)}, "
                    f"{int(op.shift_start)}, {tail})")
            kernels.add(f"unit_linear_accumulate_unit_{quotient}_s8")
        elif quotient.endswith("table"):
            tables.append(style.array("uint8_t", f"{ident}_quotients", op.quotient_table,
                                      comment=f"t for |x| = 0..128 (T_q = {int(op.threshold_q)})"))
            tables_flash["quotient_table"] = 129
            call = f"unit_linear_accumulate_unit_{quotient}_s8({head}, {ident}_quotients, {tail})"
            kernels.add(f"unit_linear_accumulate_unit_{quotient}_s8")
        else:
            nodes = len(op.tree_split)
            for what, ctype in (("split", "int8_t"), ("left", "int8_t"), ("right", "int8_t"), ("quotient", "uint8_t")):
                tables.append(style.array(ctype, f"{ident}_tree_{what}", getattr(op, f"tree_{what}")))
            tables.append(f"static const unit_quotient_tree_s8 {ident}_tree = {{{nodes}, {ident}_tree_split, "
                          f"{ident}_tree_left, {ident}_tree_right, {ident}_tree_quotient}};\n")
            tables_flash["quotient_tree"] = 4 * nodes
            call = f"unit_linear_accumulate_unit_{quotient}_s8({head}, &{ident}_tree, {tail})"
            kernels.add(f"unit_linear_accumulate_unit_{quotient}_s8")
        tables.append("\n")
        flash_linear = LayerFlash(op.name, tables_flash)
        kernels |= {"unit_linear_start_s8", "unit_linear_finish_s8"}
        functions.append(
            f"/* {_comment(op.name)}: row r of its input ([C][W] in the row buffer) added to the int32 sums */\n"
            "static int32_t unit_model_sink(int32_t r, int8_t *output) {\n    int32_t status;\n    (void)output;\n"
            f'    UNIT_MODEL_LAYER_START("{_comment(op.name)}");\n'
            f"    status = {call};\n    UNIT_MODEL_LAYER_STOP();\n"
            f"    UNIT_MODEL_ADD_COUNTS({counter});\n    return status;\n}}\n\n")
        start = [_status(f"unit_linear_start_s8({op.out_features}, &{ident}_requant, unit_model_sums)")]
        vector = tail_vector_exprs(plan)[0] if chain.tail else "output"  # an MLP head: its first vector
        finish = [f'    UNIT_MODEL_LAYER_START("{_comment(op.name)}");\n',
                  f"    status = unit_linear_finish_s8(unit_model_sums, {op.out_features}, &{ident}_requant, {vector});\n",
                  "    UNIT_MODEL_LAYER_STOP();\n    if (status != UNIT_OK) {\n        return status;\n    }\n",
                  *_elementwise(qmodel, chain.output_after, vector, op.out_features, kernels)]
        if chain.tail:  # the layers after the streamed Linear, layer by layer (fused_tail.py)
            tail = tail_code(qmodel, chain, plan, variant, linear_quotient, style, names, layers,
                             lambda ops, target, size: _elementwise(qmodel, ops, target, size, kernels))
            tables += tail.tables
            finish += tail.statements
            flash += tail.flash
            checks += tail.checks
            kernels |= tail.kernels
    else:
        flash_linear = None
        functions.append(
            "/* row r of the output ([C][W] in the row buffer) stored into the output [C][H][W] */\n"
            "static int32_t unit_model_sink(int32_t r, int8_t *output) {\n    int32_t c, i;\n"
            f"    for (c = 0; c < {sink_c}; c++) {{\n"
            f"        for (i = 0; i < {sink_w}; i++) {{\n"
            f"            output[(int32_t)c * {sink_h * sink_w} + {'i * ' + str(sink_h) + ' + r' if columns else 'r * ' + str(sink_w) + ' + i'}] = "
            f"{sink_row}[c * {sink_w} + i];\n        }}\n    }}\n    return UNIT_OK;\n}}\n\n")
        start, finish = [], []

    # the stages, last first (each calls the next)
    stage_code: list[str] = []
    sum_arrays: list[str] = []
    for k in reversed(range(len(chain.stages))):
        stage = chain.stages[k]
        op = qmodel.ops[stage.op]
        if stage.accumulates:
            nxt = f"unit_model_push_{k + 1}({row}, {stage.out_width}, output)" if k + 1 < len(chain.stages) else \
                "unit_model_sink(r, output)"
            strided = k > 0 and chain.stages[k - 1].block_rows > 1  # rows of a block: channels nb * OW apart
            stage_code.append(_accumulating_stage(qmodel, chain, k, row, nxt, kernels, strided))
            sum_arrays.append(f"/* {_comment(stage.name)}: int32 window sums */\n"
                              f"static int32_t unit_model_pool_sums_{k}[{stage.channels * stage.out_width}];\n")
            continue
        target = outs[k]
        if stage.in_place:  # a pool of the previous conv's block, where it is
            stage_code.append(_in_place_stage(qmodel, chain, k, target, row, kernels))
            continue
        window = "source" if k in direct else f"(unit_model_arena + {offsets[f'window of {stage.name}']})"
        tail = stage.out_height % stage.block_rows
        if stage.kind == "conv":
            ident = names.add(op.name)
            counter = layers.index(op.name)
            lf: dict[str, int] = {}
            conv = conv_kernel(op, variant, conv_kernels.sparse, conv_kernels.zeroact)
            steps = [(stage.block_rows, "params")] + ([(tail, "tail_params")] if tail else [])
            pool = pooling.get(k)  # its max-pool taken on the accumulators: unit_conv2d_dense_pool_s8
            pool_op = qmodel.ops[pool.op] if pool is not None else None
            assert pool is None or conv == "dense", "the fused plan pools only its dense convs"
            pooled_text = (f", max-pooled {pool_op.kernel[0]}x{pool_op.kernel[1]} on the accumulators "
                           f"({_comment(pool.name)})" if pool is not None else "")
            tables.append(f"/* {_comment(op.name)}: Conv{'1d' if op.is_conv1d else '2d'} {op.in_channels}->"
                          f"{op.out_channels}, kernel {op.kernel_height}x{op.kernel_width}, stride {op.stride}, "
                          f"dilation {op.dilation}, padding {op.padding}, groups {op.groups}; "
                          f"{stage.block_rows} output row(s) per step on a window of {stage.span_rows} rows; "
                          f"unit_conv2d_{conv}_s8{pooled_text} */\n")
            weights, levels = _conv_tables(op, ident, conv, conv_kernels, tables, lf, style)
            size = _SCRATCH_SIZE.get(conv, "unit_conv2d_s8_scratch_size")
            for rows_out, what in steps:
                block = unit_sparse_block_rows(window_op(op, stage, rows_out)) if conv == "unit_sparse" else 0
                block = pool.stride_y if pool is not None else block  # accumulators: the pool window's rows
                params = ", ".join(str(v) for v in _window_params(stage, op, rows_out, block))
                tables.append(f"static const unit_conv2d_params {ident}_{what} = {{{params}}};\n")
                levels_arg = f", {levels}" if conv == "unit_sparse" else ""  # the UnIT sparse kernel's tau levels
                checks.append(f"{size}(&{ident}_{what}{levels_arg})")
            tables += _requant_tables(ident, op.requant, lf, style)
            tables.append("\n")
            flash.append(LayerFlash(op.name, lf))

            kernel, pool_args = conv, ""
            if pool is not None:
                kernel, pool_args = "dense_pool", f"{pool_op.kernel[0]}, {pool_op.kernel[1]}, "
                kernels.add("unit_conv2d_dense_pool_s8")  # its runs: unit_conv2d_dense_s8's assembly (linked)

            def compute(what: str, ident=ident, weights=weights, counter=counter, op=op, kernel=kernel,
                        pool_args=pool_args) -> str:
                return (f'    UNIT_MODEL_LAYER_START("{_comment(op.name)}");\n'
                        f"    status = unit_conv2d_{kernel}_s8(&{ident}_{what}, {pool_args}{window}, {weights[what]}"
                        f"&{ident}_requant, {target}, unit_model_scratch, UNIT_MODEL_CALL_COUNTS);\n"
                        "    UNIT_MODEL_LAYER_STOP();\n"
                        "    if (status != UNIT_OK) {\n        return status;\n    }\n"
                        f"    UNIT_MODEL_ADD_COUNTS({counter});\n")
            kernels |= {f"unit_conv2d_{conv}_s8", size}
            if conv == "sparse_zeroact":  # its runs are in unit_conv2d_sparse_s8's assembly (linked with it)
                kernels.add("unit_conv2d_sparse_s8")
        else:
            pool = "maxpool2d" if stage.kind == "maxpool" else "avgpool2d"
            kernels.add(f"unit_{pool}_s8")

            def compute(what: str, pool=pool, op=op) -> str:
                return (f'    UNIT_MODEL_LAYER_START("{_comment(op.name)}");\n'
                        f"    status = unit_{pool}_s8({window}, 1, {op.channels}, {stage.window_rows}, {op.in_width}, "
                        f"{op.kernel[0]}, {op.kernel[1]}, 1, {op.stride[1]}, {target});\n"
                        "    UNIT_MODEL_LAYER_STOP();\n"
                        "    if (status != UNIT_OK) {\n        return status;\n    }\n")
        if k in direct:
            stage_code.append(_direct_stage(qmodel, chain, k, target, compute, kernels))
        else:
            stage_code.append(_window_stage(qmodel, chain, k, window, target, row, compute, kernels))
    if flash_linear is not None:
        flash.append(flash_linear)
    # flash in op order (conv/linear)
    order = {name: i for i, name in enumerate(layers)}
    flash.sort(key=lambda layer: order[layer.name])

    c0, h0, w0 = chain.input_shape
    first = f"unit_model_push_0({row}, {w0}, output)" if chain.stages else "unit_model_sink(h, output)"
    init_rows = "".join(f"    unit_model_rows[{2 * k}] = 0;\n    unit_model_rows[{2 * k + 1}] = 0;\n"
                        for k in range(len(chain.stages)))
    top = "".join(f"    for (h = 0; h < {stage.pad_top}; h++) {{ /* {_comment(stage.name)}: top padding rows */\n"
                  + _indent(_status(f"unit_model_push_{k}(0, 0, output)"), 4) + "    }\n"
                  for k, stage in reversed(list(enumerate(chain.stages))) if stage.pad_top)
    bottom = ("".join(f"    for (h = 0; h < {chain.stages[0].pad_bottom}; h++) {{ /* bottom padding rows */\n"
                      + _indent(_status("unit_model_push_0(0, 0, output)"), 4) + "    }\n")
              if chain.stages and chain.stages[0].pad_bottom else "")
    run = ("int32_t unit_model_run_rows(unit_model_reader read, const void *context, int8_t *output) {\n"
           f"    int32_t h, c, {'i, ' if columns else ''}status;\n"
           "    if (read == 0 || output == 0) {\n        return UNIT_ERR_ARGUMENT;\n    }\n"
           + init_rows + "".join(start) + top
           + f"    for (h = 0; h < {h0}; h++) {{\n"
           + f"        for (c = 0; c < {c0}; c++) {{\n"
           + (f"            for (i = 0; i < {w0}; i++) {{ /* column h of the input */\n"
              f"                read(context, c * {h0 * w0} + i * {h0} + h, {row} + c * {w0} + i, 1);\n"
              "            }\n" if columns else
              f"            read(context, c * {h0 * w0} + h * {w0}, {row} + c * {w0}, {w0});\n") + "        }\n"
           + _indent("".join(_elementwise(qmodel, chain.input_after, row, c0 * w0, kernels)), 4)
           + _indent(_status(first), 4) + "    }\n" + bottom + "".join(finish)
           + "    return UNIT_OK;\n}\n\n")
    memory_run = ("/* the reader of an input in memory */\n"
                  "static void unit_model_read_memory(const void *context, int32_t offset, int8_t *target, int32_t n) {\n"
                  "    const int8_t *input = (const int8_t *)context;\n    int32_t i;\n"
                  "    for (i = 0; i < n; i++) {\n        target[i] = input[offset + i];\n    }\n}\n\n"
                  "int32_t unit_model_run(const int8_t *input, int8_t *output) {\n"
                  "    if (input == 0) {\n        return UNIT_ERR_ARGUMENT;\n    }\n"
                  "    return unit_model_run_rows(unit_model_read_memory, input, output);\n}\n")
    scratch_words = max(1, (max(plan.conv_scratch_bytes, plan.tail_scratch_bytes) + 3) // 4)
    sums = qmodel.ops[chain.linear].out_features if chain.linear is not None else 0
    arena = "\n".join(f" *   {b['offset']:6d}: {_comment(b['name'])}, {b['bytes']} bytes ({b['rows']} rows)"
                      for b in plan.buffers)
    helpers = ("/* n values from source to target (target <= source where they overlap: the window moving up),\n"
               " * or zeros for a padding row (source 0) */\n"
               "static void unit_model_fill(int8_t *target, const int8_t *source, int32_t n) {\n"
               "    const int8_t *end = target + n;\n"
               "    if (source == 0) {\n        while (target != end) {\n            *target++ = 0;\n        }\n"
               "    } else {\n        while (target != end) {\n            *target++ = *source++;\n        }\n"
               "    }\n}\n\n")
    text = [codegen.file_header("model.c", "constant tables, row buffers and the fused, row-streamed "
                                "unit_model_run", source),
            "#include \"model.h\"\n\n",
            "/* the fixed part of model.c: markers, counters (c_templates/unit_model_internal.h) */\n",
            codegen.c_define("UNIT_MODEL_FAR_TABLES", int(far)),
            codegen.c_define("UNIT_MODEL_NEEDS_COPY", 0),
            "#include \"unit_model_internal.h\"\n",
            "#include \"unit_kernels_stream_s8.h\"\n\n",
            *tables,
            f"/* fused plan: the windows and the row buffer ({plan.arena_bytes - plan.state_bytes} bytes)\n{arena} */\n",
            f"static int8_t unit_model_arena[{plan.arena_bytes - plan.state_bytes}];\n",
            f"/* per stage: rows received, and the received row after which the next output row is due */\n"
            f"static int32_t unit_model_rows[{max(1, 2 * len(chain.stages))}];\n" if chain.stages else "",
            (f"/* int32 scratch of the convs (one output row) and the tail Linears: "
             f"{max(plan.conv_scratch_bytes, plan.tail_scratch_bytes)} bytes */\n"
             f"static int32_t unit_model_scratch[{scratch_words}];\n") if checks else "",
            f"/* the Linear's int32 sums */\nstatic int32_t unit_model_sums[{sums}];\n" if sums else "",
            *sum_arrays,
            "\n",
            helpers if any(not stage.accumulates and k not in direct for k, stage in enumerate(chain.stages)) else "",
            "".join(functions), "".join(stage_code),
            "int32_t unit_model_check(void) {\n",
            *[f"    if ({check} > (int32_t)sizeof(unit_model_scratch)) {{\n        return UNIT_ERR_SCRATCH;\n    }}\n"
              for check in checks],
            "    return UNIT_OK;\n}\n\n", run, memory_run]
    return ModelC("".join(text), flash, kernels, layers)


#: The scratch size function of a conv kernel (the others': unit_conv2d_s8_scratch_size).
_SCRATCH_SIZE = {"unit_skipfree": "unit_conv2d_unit_skipfree_s8_scratch_size",
                 "unit_sparse": "unit_conv2d_unit_sparse_s8_scratch_size",
                 "sparse_zeroact": "unit_conv2d_sparse_zeroact_s8_scratch_size"}


def _conv_tables(op: QConv, ident: str, conv: str, conv_kernels: FusedKernels, tables: list[str],
                 flash: dict[str, int], style: _TableStyle) -> tuple[dict[str, str], int]:
    """The tables of a fused conv on ``unit_conv2d_<conv>_s8`` (appended to ``tables``, their bytes to
    ``flash``); returns the kernel's weight arguments per step (``params``, ``tail_params``: the
    text between the input and the requantization) and its tau levels (UnIT sparse)."""
    levels = 0
    if conv in ("sparse", "sparse_zeroact"):  # the window's nonzero weights (.fused_kernels)
        tables += _sparse_tables(ident, conv_kernels.sparse[op.name], flash, style)
        full = tail = f"&{ident}_sparse, "
        own = conv_kernels.tails.get(op.name)
        if own is not None:  # the shorter last step's window: its own offsets, the same counts and taps
            tables.append(style.array("int16_t", f"{ident}_records_tail", own.records,
                                      comment="the records' offsets on the last step's window"))
            flash["records_tail"] = 4 * own.stored
            taps = f"{ident}_taps" if own.taps is not None and own.stored else "0"
            tables.append(f"static const unit_sparse_s8 {ident}_sparse_tail = {{{ident}_nonzeros, "
                          f"{ident}_records_tail, {taps}}};\n")
            tail = f"&{ident}_sparse_tail, "
        if conv == "sparse_zeroact":
            tables.append(style.array("uint16_t", f"{ident}_row_starts", conv_kernels.zeroact[op.name],
                                      comment="the first record of each output channel's kernel rows"))
            flash["row_starts"] = 2 * conv_kernels.zeroact[op.name].size
            full, tail = f"{full}{ident}_row_starts, ", f"{tail}{ident}_row_starts, "
        return {"params": full, "tail_params": tail}, levels
    if conv == "unit_sparse":  # the stored weights with their levels: no dense weight or tau
        sparse_tables, levels = unit_sparse_tables_text(op, ident, flash, style)
        tables += sparse_tables
        return {"params": f"&{ident}_usparse, ", "tail_params": f"&{ident}_usparse, "}, levels
    tables.append(style.array("int8_t", f"{ident}_weight", op.weight))
    flash["weight"] = op.weight.size
    weights = f"{ident}_weight, "
    if conv.startswith("unit"):
        tables.append(style.array("uint8_t", f"{ident}_tau", op.tau))
        flash["tau"] = op.tau.size
        weights += f"{ident}_tau, "
    return {"params": weights, "tail_params": weights}, levels


def _sorted_sink_tables(op: QLinear, ident: str, shape: tuple[int, int, int], sink_row: str, tables: list[str],
                        flash: dict[str, int], style: _TableStyle) -> str:
    """The early-exit Linear's tables in arrival order (appended to ``tables``): each input's column
    sorted by |w| with a zero sentinel, and its outputs; returns the accumulate call's head (row
    ``r``'s inputs and tables)."""
    from ...kernels.unit_fast_s8 import sorted_columns

    c, h, w = shape
    n, out = c * w, op.out_features
    arrival = permuted_linear_weight(op, shape).reshape(-1, out).T  # [out][in], inputs in arrival order
    weight_sorted, index = sorted_columns(arrival)
    tables.append(f"/* {_comment(op.name)}: Linear {op.in_features}->{out}, each input's column (arrival order "
                  f"[row {h}][C {c}][W {w}]) sorted by |w| (zero sentinel), with its output indices */\n")
    tables.append(style.array("int8_t", f"{ident}_weight_sorted", weight_sorted))
    tables.append(style.array("uint16_t", f"{ident}_index", index))
    flash.update(weight_sorted=weight_sorted.size, index=2 * index.size)
    head = (f"{sink_row}, {n}, {out}, unit_table_offset_s8({ident}_weight_sorted, r * {n * (out + 1)}), "
            f"(const UNIT_TABLE uint16_t *)unit_table_offset_s8((const UNIT_TABLE int8_t *){ident}_index, "
            f"r * {2 * n * out})")
    return head


def _output_buffers(chain: FusedChain, direct: frozenset[int], offsets: dict[str, int]) -> list[str]:
    """Where each stage writes its output rows: its own block (``B > 1``), the row buffer, or for a
    stage that reads its input in place (``direct``) the row buffer its input is not in; a conv whose
    max-pool is pooled (``Stage.pooled``) writes the pool's rows."""
    buffers = {name: f"(unit_model_arena + {offsets[name]})" for name in ("row", "second row") if name in offsets}
    outs, current = [], buffers["row"]
    for k, stage in enumerate(chain.stages):
        if k + 1 < len(chain.stages) and chain.stages[k + 1].pooled:
            current = None  # the pool's, below
        elif stage.block_bytes:
            current = f"(unit_model_arena + {offsets[f'rows of {stage.name}']})"
        elif k in direct:
            current = buffers["second row"] if current == buffers["row"] else buffers["row"]
        else:
            current = buffers["row"]
        outs.append(current)
        if stage.pooled:
            outs[k - 1] = current
    return outs


def _next_bottom_padding(chain: FusedChain, k: int, condition: str | None) -> str:
    """After stage ``k`` passed on its last output row (when ``condition`` holds; ``None``: the code
    runs only then), the zero rows of the next stage's bottom padding; empty for the last stage or
    a next stage without it."""
    if k + 1 == len(chain.stages) or not chain.stages[k + 1].pad_bottom:
        return ""
    push = (f"for (i = 0; i < {chain.stages[k + 1].pad_bottom}; i++) {{ /* the next stage's bottom padding rows */\n"
            + _indent(_status(f"unit_model_push_{k + 1}(0, 0, output)"), 4) + "}\n")
    if condition is None:
        return _indent(push, 4)
    return f"    if ({condition}) {{\n" + _indent(push, 8) + "    }\n"


def _direct_stage(qmodel: QuantizedModel, chain: FusedChain, k: int, target: str, compute,
                  kernels: set[str]) -> str:
    """The push function of a stage without a window (:func:`.fused_plan.direct_stages`): output row
    ``r`` computed from input row ``r`` where it is, into ``target``, and passed on."""
    stage = chain.stages[k]
    op = qmodel.ops[stage.op]
    last = k + 1 == len(chain.stages)
    nxt = _status("unit_model_sink(r, output)") if last else \
        _status(f"unit_model_push_{k + 1}({target}, {stage.out_width}, output)")
    pad_bottom = _next_bottom_padding(chain, k, f"r == {stage.out_height - 1}")
    return (f"/* stage {k}, {_comment(op.name)} (conv, one-row kernel): reads its input row where it is */\n"
            f"static int32_t unit_model_push_{k}(const int8_t *source, int32_t stride, int8_t *output) {{\n"
            f"    int32_t {'i, ' if pad_bottom else ''}r, status;\n    (void)stride; /* the row's channels are {stage.in_width} apart */\n"
            f"    r = unit_model_rows[{2 * k}]++;\n"
            + ("" if last or pad_bottom else "    (void)r;\n")
            + compute("params")
            + "".join(_elementwise(qmodel, stage.after, target, stage.row_bytes, kernels))
            + nxt + pad_bottom + "    return UNIT_OK;\n}\n\n")


def _window_stage(qmodel: QuantizedModel, chain: FusedChain, k: int, window: str, target: str, row: str, compute,
                  kernels: set[str]) -> str:
    """The push function of a stage with a window (module docstring of :mod:`.fused_plan`): row ``n``
    of the (padded) input goes to place ``p = n - r * stride_y`` of the window, ``r`` the first
    output row of the step being filled (rows before it, not needed, are dropped); when the window
    holds the input rows of the step's ``nb`` output rows they are computed into ``target``
    (``compute(params)``), the window moves up ``B * stride_y`` rows, and the rows are passed on."""
    stage = chain.stages[k]
    op = qmodel.ops[stage.op]
    b, s, kh, span, width, oh = (stage.block_rows, stage.stride_y, stage.window_rows, stage.span_rows,
                                 stage.in_width, stage.out_height)
    oc, ow = stage.out_channels, stage.out_width
    tail = oh % b
    last = k + 1 == len(chain.stages)
    move = (f"    for (c = 0; c < {stage.channels}; c++) {{ /* the window moves up {b * s} rows */\n"
            f"        unit_model_fill(window + c * {span * width}, window + c * {span * width} + {b * s * width}, "
            f"{(span - b * s) * width});\n    }}\n" if b * s < span else "")
    need = (b - 1) * s + kh
    step = f"    nb = r + {b} <= {oh} ? {b} : {tail};\n" if tail else f"    nb = {b};\n"
    full = compute("params")
    if tail:
        tail_need = (tail - 1) * s + kh
        body = (f"    if (nb == {b}) {{\n" + _indent(full + move, 4) + "    } else {\n"
                f"        /* the last, shorter step: the window's channels closed up ({tail_need} rows each) */\n"
                f"        for (c = 1; c < {stage.channels}; c++) {{\n"
                f"            unit_model_fill(window + c * {tail_need * width}, window + c * {span * width}, "
                f"{tail_need * width});\n        }}\n" + _indent(compute("tail_params"), 4) + "    }\n")
        due = f"(nb - 1) * {s} + {kh - 1}"
    else:
        body = full + move
        due = str(need - 1)
    # the rows passed on: from the shared row buffer (B = 1) or the stage's own block [C][nb][OW]
    if last:
        pass_on = _pass_on_to_sink(target, row, oc, ow, b)
    elif chain.stages[k + 1].in_place:  # the next stage pools the whole block
        pass_on = ""
    else:
        pass_on = _indent(_status(f"unit_model_push_{k + 1}({target} + i * {ow}, nb * {ow}, output)"), 4)
    pass_on = ("    for (i = 0; i < nb; i++) {\n" + pass_on + "    }\n" if pass_on else
               _status(f"unit_model_push_{k + 1}({target}, nb, output)"))
    pad_bottom = _next_bottom_padding(chain, k, f"r + nb == {oh}")
    what = "conv" if stage.kind == "conv" else stage.kind
    loop_index = "i, " if re.search(r"\bi\b", pass_on + pad_bottom) else ""
    return (f"/* stage {k}, {_comment(op.name)} ({what}): window of {span} rows of {stage.channels} x {width}, "
            f"{b} output row(s) per step */\n"
            f"static int32_t unit_model_push_{k}(const int8_t *source, int32_t stride, int8_t *output) {{\n"
            f"    int8_t *window = {window};\n    int32_t c, {loop_index}r, p, nb, status;\n"
            f"    r = unit_model_rows[{2 * k + 1}]; /* the first output row of the step being filled */\n"
            f"    p = unit_model_rows[{2 * k}]++ - r * {s}; /* this row's place in the window */\n"
            f"    if (r >= {oh} || p < 0) {{\n        return UNIT_OK;\n    }}\n"
            f"    for (c = 0; c < {stage.channels}; c++) {{\n"
            f"        unit_model_fill(window + c * {span * width} + p * {width}, "
            f"source == 0 ? source : source + c * stride, {width});\n    }}\n"
            + step
            + f"    if (p != {due}) {{\n        return UNIT_OK;\n    }}\n"
            + f"    unit_model_rows[{2 * k + 1}] = r + {b};\n"
            + body
            + "".join(_elementwise(qmodel, stage.after, target, f"nb * {oc * ow}", kernels))
            + pass_on + pad_bottom + "    return UNIT_OK;\n}\n\n")


def _pass_on_to_sink(target: str, row: str, oc: int, ow: int, b: int) -> str:
    """The loop body passing row ``i`` of a step (``r + i`` of the stage) to the sink: from the row
    buffer (``b == 1``) or copied there from the stage's block ``[C][nb][OW]``."""
    return (f"        for (c = 0; c < {oc}; c++) {{\n"
            f"            unit_model_fill({row} + c * {ow}, {target} + (c * nb + i) * {ow}, {ow});\n"
            "        }\n" if b > 1 else "") + _indent(_status("unit_model_sink(r + i, output)"), 4)


def _in_place_stage(qmodel: QuantizedModel, chain: FusedChain, k: int, target: str, row: str,
                    kernels: set[str]) -> str:
    """The push function of a pool that reads the previous conv's block in place (``Stage.in_place``,
    :func:`.fused_plan.with_fused_rows`): called once per conv step with its ``rows`` output rows
    ``[C][rows][W]``, it pools them into ``rows / s`` rows (``target``) and passes them on; a pooled
    max-pool (``Stage.pooled``) finds its ``rows / s`` rows in ``target``, written by the conv."""
    stage = chain.stages[k]
    op = qmodel.ops[stage.op]
    pool = "maxpool2d" if stage.kind == "maxpool" else "avgpool2d"
    if not stage.pooled:
        kernels.add(f"unit_{pool}_s8")
    before = chain.stages[k - 1]
    s, b, oc, ow, oh = stage.stride_y, stage.block_rows, stage.out_channels, stage.out_width, stage.out_height
    tail = before.out_height % before.block_rows // s  # the conv's shorter last step, in pool rows
    last = k + 1 == len(chain.stages)
    if last:
        pass_on = _pass_on_to_sink(target, row, oc, ow, b)
    else:
        pass_on = _indent(_status(f"unit_model_push_{k + 1}({target} + i * {ow}, nb * {ow}, output)"), 4)
    what = (f"taken by {_comment(before.name)} on its accumulators" if stage.pooled else
            f"pools each step's block of {_comment(before.name)}")
    return (f"/* stage {k}, {_comment(op.name)} ({stage.kind} {op.kernel[0]}x{op.kernel[1]}, in place): {what}, "
            f"{b} row(s) */\n"
            f"static int32_t unit_model_push_{k}(const int8_t *source, int32_t rows, int8_t *output) {{\n"
            f"    int32_t {'c, ' if last and b > 1 else ''}i, r, nb, status;\n"
            f"    nb = {f'rows == {before.block_rows} ? {b} : {tail}' if tail else b}; /* output rows of this step */\n"
            f"    r = unit_model_rows[{2 * k}];\n    unit_model_rows[{2 * k}] = r + nb;\n"
            + (f"    (void)source;{'' if tail else ' (void)rows;'} /* its rows: written by {_comment(before.name)} */\n"
               if stage.pooled else
               f'    UNIT_MODEL_LAYER_START("{_comment(op.name)}");\n'
               f"    status = unit_{pool}_s8(source, 1, {stage.channels}, rows, {stage.in_width}, {op.kernel[0]}, "
               f"{op.kernel[1]}, {s}, {op.stride[1]}, {target});\n"
               "    UNIT_MODEL_LAYER_STOP();\n    if (status != UNIT_OK) {\n        return status;\n    }\n")
            + "".join(_elementwise(qmodel, stage.after, target, f"nb * {oc * ow}", kernels))
            + "    for (i = 0; i < nb; i++) {\n" + pass_on + "    }\n"
            + _next_bottom_padding(chain, k, f"r + nb == {oh}") + "    return UNIT_OK;\n}\n\n")


def _accumulating_stage(qmodel: QuantizedModel, chain: FusedChain, k: int, row: str, nxt: str, kernels: set[str],
                        strided: bool = False) -> str:
    """The push function of an average pool over the whole input height: each row's window sums
    added to int32 sums; after the last row the means (output row 0) are passed on, then the next
    stage's bottom padding rows."""
    stage = chain.stages[k]
    op = qmodel.ops[stage.op]
    kernels |= {"unit_avgpool2d_accumulate_s8", "unit_avgpool2d_finish_s8"}
    sums, n = f"unit_model_pool_sums_{k}", stage.channels * stage.out_width
    return (f"/* stage {k}, {_comment(op.name)} (average pool {op.kernel[0]}x{op.kernel[1]} over the whole height): "
            f"int32 window sums, no window */\n"
            f"static int32_t unit_model_push_{k}(const int8_t *source, int32_t stride, int8_t *output) {{\n"
            "    int32_t i, r = 0, status;\n" + ("" if strided else "    (void)stride;\n") + "    (void)r;\n"
            f"    if (unit_model_rows[{2 * k}] == 0) {{\n        for (i = 0; i < {n}; i++) {{\n"
            f"            {sums}[i] = 0;\n        }}\n    }}\n"
            f'    UNIT_MODEL_LAYER_START("{_comment(op.name)}");\n'
            + (f"    for (i = 0; i < {stage.channels}; i++) {{ /* the row's channels are stride apart */\n"
               f"        status = unit_avgpool2d_accumulate_s8(source + i * stride, 1, {stage.in_width}, {op.kernel[1]}, "
               f"{op.stride[1]}, {sums} + i * {stage.out_width});\n"
               "        if (status != UNIT_OK) {\n            break;\n        }\n    }\n" if strided else
               f"    status = unit_avgpool2d_accumulate_s8(source, {stage.channels}, {stage.in_width}, {op.kernel[1]}, "
               f"{op.stride[1]}, {sums});\n")
            + "    UNIT_MODEL_LAYER_STOP();\n    if (status != UNIT_OK) {\n        return status;\n    }\n"
            f"    if (++unit_model_rows[{2 * k}] != {stage.in_height}) {{\n        return UNIT_OK;\n    }}\n"
            + _status(f"unit_avgpool2d_finish_s8({sums}, {n}, {op.kernel[0] * op.kernel[1]}, {row})")
            + "".join(_elementwise(qmodel, stage.after, row, stage.row_bytes, kernels))
            + _status(nxt) + _next_bottom_padding(chain, k, None) + "    return UNIT_OK;\n}\n\n")


def _indent(text: str, spaces: int) -> str:
    pad = " " * spaces
    return "".join(pad + line if line.strip() else line for line in text.splitlines(keepends=True))


def fused_model_h_api() -> str:
    """The streamed-input API that model.h of a fused export adds."""
    return ("/* unit_model_reader: copies n int8 values of the input, from element offset on ([C][H][W]\n"
            " * order), into target. unit_model_run_rows reads the input row by row through it (rows of\n"
            " * every channel in turn), so the input need not be in SRAM: e.g. from flash, or from a\n"
            " * sensor's frames. Returns UNIT_OK or the first kernel's error code. */\n"
            "typedef void (*unit_model_reader)(const void *context, int32_t offset, int8_t *target, int32_t n);\n"
            "int32_t unit_model_run_rows(unit_model_reader read, const void *context, int8_t *output);\n\n")
