"""The export pipeline, top to bottom: :func:`export_c`.

    checks (checks.py) -> memory plan (memory_plan.py) -> model C (model_c.py)
        -> build files (build_files.py) -> manifest and files on disk (manifest.py)

Each step is a small module; this one only calls them in order.
"""

from __future__ import annotations

import logging

from .. import kernel_choice
from ...kernels.sparse_zeroact_s8 import zeroact_scratch_bytes
from ..qmodel import QuantizedModel
from ..requant_table import with_tables
from ..zeroact_plan import plans_zeroact, zeroact_layers
from .build_files import CSRC, kernel_files, makefile, support_files, template_files
from .checks import check_fits_target, check_model, check_request
from .conv_rows import conv_block_rows as kernel_rows
from .core_targets import CORE_EXPORT_TARGETS, core_kernels, core_memory_ld
from .export_types import ExportError, ExportResult, layer_names
from .fused_axis import AXES, choose_axis, transposed_model
from .fused_c import fused_model_c, fused_model_h_api
from .fused_kernels import FusedKernels, conv_kernel, fused_kernels, window_op
from .fused_plan import (EXECUTIONS, FusedUnsupported, fused_chain, fused_rows_choices, plan_fused_memory,
                         pooled_by, tail_steps, with_fused_rows, with_pooled_convs)
from .manifest import export_readme, manifest, write_export
from .memory_plan import model_descriptor_bytes, plan_memory, scratch_sizes
from .model_c import describe_source, model_c, model_h, samples_h
from .pooled_conv import pooled_convs

logger = logging.getLogger(__name__)

__all__ = ["export_c"]


def export_c(qmodel: QuantizedModel, out_dir, target: str = "host", variant: str | None = None,
             linear_quotient: str | None = None, samples=None, counters: bool | None = None,
             overwrite: bool = False, conv_block_rows=None, execution: str = "layers",
             kernels: str = "auto", fused_rows: int = 1, fused_axis: str = "auto") -> ExportResult:
    """Write ``qmodel`` as a self-contained C project into ``out_dir`` (:mod:`unitprune.mcu.export`).

    Args:
        qmodel: the quantized model.
        out_dir: the folder to write; must be empty or missing unless ``overwrite``.
        target: ``"host"``, ``"avr"`` (ATmega2560, avr-gcc, simavr), ``"msp430"``, or a Cortex-M0+ /
            RV32 target (``m0plus``, ``m0plus-smallmul``, ``rv32ec``, ``rv32imc``)
            (:data:`unitprune.mcu.targets.specs.EXPORT_TARGETS`).
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
            and counters are the same for every block size. The weight-stationary convs (zeroskip,
            UnIT) hold the block; the output-stationary ones hold at most their own rows, whatever
            the option (dense and static-sparse 1, the Cortex-M0+/RV32 dense kernel 2: :mod:`.conv_rows`).
        execution: ``"layers"`` (layer by layer, the default), ``"fused"`` (row-streamed: each
            output row computed as soon as its input rows exist, windows of the rows still needed,
            a final Linear accumulated per row, the input read row by row; :mod:`.fused_plan`) or
            ``"auto"`` (fused only when layer by layer does not fit the target's SRAM). Outputs and
            counters are the same for every execution.
        fused_rows: under the fused plan, the output rows each conv computes per step (clipped to
            its output height): 1 (the default) keeps the least SRAM; ``B`` rows need a window of
            ``K + (B - 1) * stride`` input rows and a ``B``-row output block, and share the kernel's
            per-call work among ``B`` rows (fewer cycles); ``"auto"``: the most rows per step whose
            plan fits the target's SRAM (:func:`.fused_plan.fused_rows_choices`; 1 on the host).
            Outputs and counters do not change.
        fused_axis: the axis the fused plan streams along: ``"height"`` (rows), ``"width"``
            (columns: the time axis of a bands x frames spectrogram, the length of a Conv1d's
            input; :mod:`.fused_axis`) or ``"auto"`` (the one needing less SRAM, the height on a tie).
        kernels: ``auto`` (the kernels' per-target assembly where a layer allows it) or ``portable``
            (the C99 kernels everywhere, ``UNIT_PORTABLE_KERNELS=1``); see
            :mod:`unitprune.mcu.kernel_choice`. The manifest records each layer's path.

    Raises:
        ExportError: a non-empty ``out_dir`` without ``overwrite``, an unknown target/variant, an op
            the kernels cannot run (naming the layer), constants beyond the target's flash reads or
            buffers beyond its SRAM (naming the layer).
    """
    # 1. checks: arguments and ops
    request = check_request(qmodel, out_dir, target, variant, linear_quotient, samples, counters, overwrite,
                            conv_block_rows)
    spec, variant, linear_quotient = request.spec, request.variant, request.linear_quotient
    check_model(qmodel, variant, linear_quotient)
    if kernels not in kernel_choice.KERNEL_SETS:
        raise ExportError(f"unknown kernel set {kernels!r} (one of {', '.join(kernel_choice.KERNEL_SETS)})")
    layers = layer_names(qmodel)
    source = describe_source(qmodel, variant, linear_quotient)

    if execution not in EXECUTIONS:
        raise ExportError(f"unknown execution {execution!r} (one of {', '.join(EXECUTIONS)})")
    if fused_axis not in AXES:
        raise ExportError(f"unknown fused_axis {fused_axis!r} (one of {', '.join(AXES)})")
    if execution == "layers" and (fused_rows != 1 or fused_axis != "auto"):
        raise ExportError(f"fused_rows={fused_rows!r}, fused_axis={fused_axis!r}: options of the fused plan; "
                          "give execution='fused' or 'auto'")
    chain, fused_q, axis, rows_tried = None, qmodel, "height", [fused_rows]
    if execution != "layers":
        try:
            fused_q, chain, axis = fused_form(qmodel, 1 if fused_rows == "auto" else fused_rows, fused_axis)
            if fused_rows == "auto":  # the most rows per step that fit the target's SRAM
                rows_tried = fused_rows_choices(chain, spec.sram_bytes)
        except FusedUnsupported as error:
            if execution == "fused":
                raise ExportError(f"execution='fused': {error}") from None
        except ValueError as error:  # fused_rows, or fused_axis="width" of a one-dimensional input
            raise ExportError(str(error)) from None
    samples = request.samples
    samples_bytes = 0 if samples is None or target == "host" else samples.size

    # static-sparse layers (variant zeroskip, layer by layer): kernel_choice.sparse_layers. Chosen
    # without the embedded samples, as the threshold tables are: the firmware is the one deployed,
    # whatever the number of samples (too many for the flash: SamplesTooLarge, embed fewer)
    requant_bytes = sum(9 * op.requant.bias.size for op in qmodel.ops if hasattr(op, "requant"))
    code_bytes = spec.code_reserve_bytes + (spec.zeroact_code_bytes if plans_zeroact(qmodel) else 0)
    sparse = kernel_choice.sparse_layers(qmodel.ops, variant, spec.flash_read_limit, requant_bytes + code_bytes)
    # the dense convolutions' output stage by threshold tables where the flash allows (MSP430); the
    # fused plan gives them to its convs in generate (not to its static-sparse ones)
    plain, qmodel = qmodel, with_tables(qmodel, target, variant, kernels, sparse)
    # of those, the convs planned to skip zero activations too (zeroact_plan), with their scratch
    zeroact = zeroact_layers(qmodel, sparse)
    # the dense (and static-sparse) convs max-pooled on their accumulators (pooled_conv.py)
    pooled = pooled_convs(qmodel.ops, variant, target, sparse, zeroact)
    # each conv's accumulator rows: the export's block for the weight-stationary kernels, at most the
    # rows an output-stationary one holds (conv_rows.py), the pool's rows for a pooled conv; they
    # size its scratch
    conv_rows = kernel_rows(qmodel, request.block_rows, target, set(sparse), variant)
    conv_rows.update({name: entry.kernel[0] for name, entry in pooled.items()})
    scratch = scratch_sizes(qmodel, request.block_rows, target, set(sparse), variant, pooled)
    scratch.update({op.name: zeroact_scratch_bytes(op.in_channels, op.in_height, op.out_channels, op.out_width,
                                                   op.in_channels // op.groups * op.kernel_height)
                    for op in qmodel.ops if op.name in zeroact})

    # 2. memory plan and 3. model C, with near tables, or far ones when the near ones do not fit
    def generate(far: bool, fused: bool):
        layout = spec.far_layout if far else spec.layout
        if fused:  # every conv's kernel on its windows (fused_kernels.py): the sparse tables, the scratch
            try:
                convs = fused_kernels(fused_q, chain, variant, spec.flash_read_limit, requant_bytes + code_bytes)
            except ValueError as error:
                raise ExportError(f"execution='fused': {error}") from None
            descriptors = model_descriptor_bytes(qmodel, layout, variant, linear_quotient, convs.sparse_structs,
                                                 tail_steps(chain))
            stream = fused_pooled(fused_q, chain, variant, target, convs)
            plan = plan_fused_memory(fused_q, stream, descriptors, axis, convs.scratch)
            generated[fused] = convs
            generated["chain"] = stream
            tabled = with_tables(fused_q, target, variant, kernels, convs.sparse)  # the threshold tables, as above
            return plan, fused_model_c(tabled, stream, plan, variant, linear_quotient, source, spec.max_object_bytes,
                                       far, columns=axis == "width", conv_kernels=convs)
        descriptors = model_descriptor_bytes(qmodel, layout, variant, linear_quotient, len(sparse))
        plan = plan_memory(qmodel, scratch, descriptors, pooled)
        return plan, model_c(qmodel, plan, variant, linear_quotient, source, request.block_rows,
                             spec.max_object_bytes, far, sparse, zeroact, conv_rows, pooled)

    generated: dict = {}  # the fused plan's kernels (True) and its chain with the pooled convs ("chain")

    def generate_fitting(fused: bool):
        far = False
        plan, code = generate(far, fused)
        if spec.needs_far_tables(sum(layer.total for layer in code.flash)):  # AVR, tables beyond 64 KB
            far = True
            plan, code = generate(far, fused)
        check_fits_target(spec, plan, code.flash, samples_bytes, request.counters and bool(layers), len(layers), far)
        return plan, code, far

    fused = execution == "fused"
    if execution == "auto":
        try:
            plan, code, far = generate_fitting(False)
        except ExportError:
            if chain is None:
                raise
            fused = True
    if execution != "auto" or fused:
        for rows in rows_tried if fused else [1]:
            if fused and rows_tried != [fused_rows]:  # fused_rows="auto": try the next candidate
                fused_q, chain, axis = fused_form(plain, rows, fused_axis)
            try:
                plan, code, far = generate_fitting(fused)
                break
            except ExportError:
                if rows == rows_tried[-1] or not fused:
                    raise
        fused_rows = rows

    # 4. build files (the Cortex-M0+/RV32 targets call their kernel variants, e.g. the mcu32 convolution)
    # main.c of a far-tables export finds its samples through unit_table_offset_s8
    runner = {"unit_table_offset_s8"} if far and target != "host" else set()
    model_text, functions = core_kernels(target, code.text, set(code.kernels) | runner)
    files_needed = kernel_files(functions)
    kernel_sources = [name for name in files_needed if name.endswith((".c", ".S"))]
    kernel_defines = kernel_choice.build_defines(kernels)
    support = support_files(target)
    templates = template_files(target, streamed=fused)
    make_text, commands = makefile(spec, kernel_sources, list(support), request.counters, source, far, kernel_defines)
    header = model_h(qmodel, plan, layers, source)
    if fused:  # the streamed-input API, before the header's closing guard
        header = header.replace("#endif /* UNIT_MODEL_H */", fused_model_h_api() + "#endif /* UNIT_MODEL_H */")
    texts = {"model.h": header, "model.c": model_text, "Makefile": make_text}
    if target != "host":
        texts["samples.h"] = samples_h(samples, source, far, spec.max_object_bytes)
    if target in CORE_EXPORT_TARGETS:
        name, text = core_memory_ld(target)
        texts[name] = text
    copies = {**templates, **{f"kernels/{name}": CSRC / name for name in files_needed}, **support}
    binaries = {"samples.bin": samples.tobytes()} if samples is not None and target == "host" else {}

    # 5. manifest, README and the files on disk
    data = manifest(source=source, target=target, chip=spec.chip, variant=variant, linear_quotient=linear_quotient,
                    block_rows=request.block_rows, far=far, qmodel=qmodel, plan=plan, layers=layers,
                    flash=code.flash, samples_bytes=samples_bytes, samples=0 if samples is None else len(samples),
                    counters=request.counters, commands=commands,
                    files=[*texts, "README.md", "memory_plan.json", *copies, *binaries],
                    kernel_sources=kernel_sources, host_main="main.c" if target == "host" else "main_host.c",
                    kernel_defines=kernel_defines,
                    kernel_paths=_kernel_paths(qmodel, fused_q, chain if fused else None, target, variant, kernels,
                                               far, generated.get(True) if fused else None, sparse, zeroact,
                                               linear_quotient))
    data["execution"] = "fused" if fused else "layers"
    if not fused and pooled:  # pooled_conv.py: the convs that write their max-pool's output
        data["pooled_convs"] = {name: entry.to_dict() for name, entry in pooled.items()}
        for name in pooled:
            data["kernels"]["layers"][name]["kernel"] = pooled[name].function
    if fused:
        data["fused_axis"], data["fused_rows"] = axis, fused_rows
        stream = generated["chain"]
        data["pooled_convs"] = {stream.stages[k].name: {"pool": pool.name, "kernel": list(fused_q.ops[pool.op].kernel),
                                                        "function": "unit_conv2d_dense_pool_s8"}
                                for k, pool in pooled_by(stream).items()}
        for name in data["pooled_convs"]:
            data["kernels"]["layers"][name]["kernel"] = "unit_conv2d_dense_pool_s8"
        if not data["pooled_convs"]:
            del data["pooled_convs"]
    if "zeroact_plan" in qmodel.source:  # unitprune.mcu.zeroact_plan: the choice per layer
        data["zeroact_plan"] = qmodel.source["zeroact_plan"]
    if variant == "unit" and "unit_kernel_plan" in qmodel.source:  # unitprune.mcu.unit_plan: the predictions
        data["unit_kernel_plan"] = qmodel.source["unit_kernel_plan"]
    texts["README.md"] = export_readme(data)
    write_export(request.out_dir, texts, copies, binaries, data)
    logger.info("exported %s to %s (%s, variant %s): model SRAM %d bytes, flash tables %d bytes", source,
                request.out_dir, target, variant, plan.peak_sram_bytes, data["flash"]["tables_bytes"])
    return ExportResult(out_dir=request.out_dir, target=target, variant=variant, linear_quotient=linear_quotient,
                        files=data["files"], memory=plan, flash=code.flash, layers=layers,
                        input_size=plan.input_bytes, output_size=plan.output_bytes, samples=data["samples"],
                        build_commands=commands, conv_block_rows=request.block_rows, far_tables=far,
                        execution="fused" if fused else "layers", fused_axis=axis if fused else None,
                        fused_rows=fused_rows if fused else None)


def fused_form(qmodel: QuantizedModel, fused_rows: int, fused_axis: str):
    """(the model the fused code is generated from, its chain, the axis): ``qmodel`` streamed along
    the height, or its transpose along the width (:mod:`.fused_axis`; ``unit_plan.sram_fits`` asks
    it too). Raises :class:`.fused_plan.FusedUnsupported` for a model the plan cannot stream."""
    forms = {}
    if fused_axis in ("auto", "height"):
        forms["height"] = (qmodel, with_fused_rows(fused_chain(qmodel), fused_rows))
    if fused_axis in ("auto", "width"):
        if len(qmodel.input_shape) < 2:
            if fused_axis == "width":
                raise ValueError(f"fused_axis='width': the input {tuple(qmodel.input_shape)} has no width to stream")
        else:
            transposed = transposed_model(qmodel)
            forms["width"] = (transposed, with_fused_rows(fused_chain(transposed), fused_rows))
    chain = next(iter(forms.values()))[1]
    linear_out = qmodel.ops[chain.linear].out_features if chain.linear is not None else 0
    axis = choose_axis({name: form[1] for name, form in forms.items()}, linear_out)
    return (*forms[axis], axis)


def fused_pooled(qmodel: QuantizedModel, chain, variant: str, target: str, convs: FusedKernels):
    """``chain`` (the fused plan of ``qmodel``) with the in-place max-pools of its dense convs taken on
    their accumulators where layer by layer would (:func:`.pooled_conv.pooled_convs`: window = stride,
    multipliers >= 0, a target whose convs call ``unit_conv2d_dense_pool_s8``;
    :func:`.fused_plan.with_pooled_convs`)."""
    chosen = pooled_convs(qmodel.ops, variant, target, convs.sparse, convs.zeroact)
    ops = {op.name: op for op in qmodel.ops}
    dense = {name for name, entry in chosen.items()
             if not entry.sparse and conv_kernel(ops[name], variant, convs.sparse, convs.zeroact) == "dense"}
    return with_pooled_convs(chain, dense)


def _kernel_paths(qmodel: QuantizedModel, fused_q: QuantizedModel, chain, target: str, variant: str, kernels: str,
                  far: bool, convs: FusedKernels | None, sparse: dict, zeroact: dict, linear_quotient: str) -> dict:
    """The manifest's kernel path of every conv/linear layer (:func:`kernel_choice.choose`); under the
    fused plan (``chain``) the convs as their full steps' windows run them (:mod:`.fused_kernels`)."""
    if chain is None:
        return kernel_choice.choose(qmodel.ops, target, variant, kernels, far, sparse, linear_quotient, zeroact)
    windows = {fused_q.ops[stage.op].name: window_op(fused_q.ops[stage.op], stage, stage.block_rows)
               for stage in chain.stages if stage.kind == "conv"}
    ops = [windows.get(op.name, op) for op in fused_q.ops]
    return kernel_choice.choose(ops, target, variant, kernels, far, convs.sparse, linear_quotient, convs.zeroact)
