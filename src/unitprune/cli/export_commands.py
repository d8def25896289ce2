"""``unitprune export``: a trained float model -> int8 model -> a C project, checked on the host.

Steps: load the model and data (the CLI's shared helpers), convert to UnIT and calibrate the
thresholds on the validation split, quantize (``unitprune.mcu.quantize``, calibrated on the same
validation inputs), export (``unitprune.export_c``), build and run the export on the host on the
test split (``unitprune.run_exported``), compare with the integer reference bit for bit (outputs
and every MAC counter), and print a summary. ``OUT_DIR/host_check.json`` keeps the figures.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from .user_errors import CLIError

__all__ = ["add_export_parser", "cmd_export"]


def _fused_rows(text: str):
    """``--fused-rows``: ``auto`` or an int >= 1."""
    if text == "auto":
        return text
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected auto or an integer >= 1, got {text!r}")
    return int(text)


def add_export_parser(commands, formatter, add_common, add_model_options, add_data_options) -> None:
    """Register ``export`` (called by :func:`unitprune.cli.parser.build_parser` with its helpers)."""
    from ..mcu.targets.specs import EXPORT_TARGETS as TARGETS
    from ..mcu.qmodel import LINEAR_QUOTIENTS, VARIANTS

    export = commands.add_parser(
        "export", formatter_class=formatter, help="quantize to int8 and write a C project, checked on the host",
        description="Convert and calibrate the model on validation data, quantize it to int8, write a self-contained "
                    "C project (model.c, kernels, main.c, Makefile, memory_plan.json) and check the host build "
                    "against the integer reference on the test split, bit for bit.")
    add_common(export)
    add_model_options(export)
    add_data_options(export)
    group = export.add_argument_group("export")
    group.add_argument("--percentile", type=float, default=20.0, help="UnIT calibration percentile of every layer")
    group.add_argument("--approx", default="bitshift", choices=("exact", "bitshift", "bintree", "bitmask"),
                       help="division approximation of the float model (bitmask becomes bitshift in integers; "
                            "exact needs --linear-quotient table, the default for it)")
    group.add_argument("--variant", default="unit", choices=VARIANTS,
                       help="kernels: dense (baseline), zeroskip (zero operands), unit")
    group.add_argument("--linear-quotient", choices=LINEAR_QUOTIENTS,
                       help="how linear layers compute their per-input quotient under --variant unit (default: "
                            "table for --approx exact, else bitshift)")
    group.add_argument("--target", default="host", choices=tuple(TARGETS), help="the C project's target")
    group.add_argument("--conv-block-rows", default="plane", metavar="{plane,min,N}",
                       help="output rows whose int32 accumulators a weight-stationary conv (zeroskip, unit) holds "
                            "at a time: plane (the whole output plane), min (1 row) or N; smaller blocks need less "
                            "scratch SRAM (4*N*OW bytes) and cost cycles, the outputs are the same (the "
                            "output-stationary dense and static-sparse convs hold one row whatever the option)")
    group.add_argument("--execution", default="layers", choices=("layers", "fused", "auto"),
                       help="layers: layer by layer (whole activation tensors); fused: row-streamed (each output "
                            "row as soon as its input rows exist, windows of the rows still needed, the final "
                            "Linear accumulated per row, the input read row by row); auto: fused only when layer "
                            "by layer does not fit the target's SRAM. The outputs are the same")
    group.add_argument("--fused-rows", type=_fused_rows, default=1, metavar="{B,auto}",
                       help="fused: output rows each conv computes per step (default 1, the least SRAM); B rows "
                            "need a window of K+(B-1)*stride input rows and a B-row block, and cost fewer cycles; "
                            "auto: the most rows whose plan fits the target's SRAM")
    group.add_argument("--fused-axis", default="auto", choices=("auto", "height", "width"),
                       help="fused: stream along the height (rows) or the width (columns: the time axis of a "
                            "bands x frames spectrogram); auto: the one needing less SRAM")
    group.add_argument("--kernels", default="auto", choices=("auto", "portable"),
                       help="auto: the int8 kernels' per-target assembly (AVR, MSP430) where a layer allows it; "
                            "portable: the C99 kernels everywhere (docs/kernels.md)")
    group.add_argument("--unit-kernels", default="auto", choices=("auto", "unit", "skipfree", "sparse", "dense"),
                       help="conv kernels under --variant unit: auto (per layer the skip-free kernel, the sparse "
                            "kernel over the nonzero weights, the per-position test or dense, whichever the cycle model of unitprune.mcu.unit_cost "
                            "predicts fastest on the target at the layer's kept fraction on validation data; "
                            "dense turns the layer's UnIT off; on the host: unit), or one for every layer")
    group.add_argument("--unit-cost-target", choices=("avr", "msp430", "msp430-hwmult"),
                       help="the cycle model --unit-kernels auto ranks by (default: the --target; msp430-hwmult "
                            "for an MSP430 with the hardware multiplier)")
    group.add_argument("--zeroact-kernels", default="auto", choices=("auto", "zeroact", "sparse"),
                       help="static-sparse convs under --variant zeroskip: auto (per layer "
                            "unit_conv2d_sparse_zeroact_s8, which also skips kernel rows that read zeros only, where "
                            "the cycle model of unitprune.mcu.zeroact_plan predicts it faster on the target "
                            "(--unit-cost-target) on validation data; on the host: sparse), or one for every layer")
    group.add_argument("--plan", default="fixed", choices=("fixed", "fastest"),
                       help="fixed: the model at --percentile with --variant; fastest: the configuration (method, "
                            "knob, kernel per layer) with the fewest cycles on --target (measured in its simulator) "
                            "whose int8 validation accuracy is within --budget points of the quantized dense "
                            "model (every mcu-bench method's operating point; --percentile/--variant/--approx "
                            "are then not used)")
    group.add_argument("--budget", type=float, default=1.0, help="--plan fastest: points of int8 validation accuracy")
    group.add_argument("--plan-methods", metavar="M,M,...",
                       help="--plan fastest: the candidate methods (default: every mcu-bench method)")
    group.add_argument("--plan-samples", type=int, default=3,
                       help="--plan fastest: test samples each candidate firmware runs in the simulator")
    group.add_argument("--samples", type=int, default=20,
                       help="test samples embedded in the firmware (MCU targets)")
    group.add_argument("--out-dir", default="runs/export", help="folder of the C project (must be empty)")
    group.add_argument("--overwrite", action="store_true", help="replace the files of a non-empty --out-dir")
    group.add_argument("--threads", type=int, default=1, help="torch threads")
    export.set_defaults(handler=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from ..experiments.sweep import torch_threads

    with torch_threads(args.threads):
        return _export(args)


def _fastest(args: argparse.Namespace, model, splits):
    """``--plan fastest``: :func:`unitprune.experiments.mcu_bench.fastest.fastest_plan` on the target."""
    import tempfile

    from ..experiments.mcu_bench.bench import MCU_TARGETS
    from ..experiments.mcu_bench.fastest import NoPointWithinBudget, fastest_plan
    from ..mcu import targets

    measure = args.unit_cost_target or args.target
    if measure not in MCU_TARGETS:
        raise CLIError(f"--plan fastest measures the firmware on an MCU target; --target {args.target} is not one "
                       f"(choose from {', '.join(t for t in MCU_TARGETS if t != 'msp430-hwmult')}; "
                       "--unit-cost-target msp430-hwmult for an MSP430 with the multiplier)")
    if not args.budget >= 0 or args.plan_samples < 1:
        raise CLIError(f"--budget must be >= 0 and --plan-samples >= 1, got {args.budget}, {args.plan_samples}")
    if args.unit_cost_target and {"msp430-hwmult": "msp430"}.get(measure, measure) != args.target:
        raise CLIError(f"--unit-cost-target {measure} does not run the --target {args.target} export")
    with tempfile.TemporaryDirectory(prefix="unitprune-fastest-") as work:
        try:
            methods = tuple(m.strip() for m in args.plan_methods.split(",") if m.strip()) if args.plan_methods else None
            return fastest_plan(model, splits, measure, work, budget=args.budget, samples=args.plan_samples,
                                methods=methods)
        except NoPointWithinBudget as error:
            raise CLIError(str(error)) from None
        except targets.ToolMissing as error:
            raise CLIError(f"--plan fastest --target {measure}: {error}") from None
        except ValueError as error:
            raise CLIError(f"--plan fastest: {error}") from None


def _plan_unit_kernels(qmodel, args: argparse.Namespace, x_val):
    """The conv kernels of a ``unit`` export (``--unit-kernels``; :mod:`unitprune.mcu.unit_plan`)."""
    from ..mcu.reference import quantize_input
    from ..mcu.unit_plan import COST_TARGETS, plan_unit_kernels

    cost_target = args.unit_cost_target or (args.target if args.target in COST_TARGETS else None)
    plan = args.unit_kernels
    if plan == "auto" and cost_target is None:
        plan = "unit"  # no cycle model for this target: the per-position kernel
    try:
        return plan_unit_kernels(qmodel, quantize_input(qmodel, x_val), cost_target, plan=plan)
    except ValueError as error:
        raise CLIError(f"--unit-kernels: {error}") from None


def _plan_zeroact(qmodel, args: argparse.Namespace, x_val):
    """The static-sparse conv kernels of a ``zeroskip`` export (``--zeroact-kernels``;
    :mod:`unitprune.mcu.zeroact_plan`)."""
    from ..mcu.reference import quantize_input
    from ..mcu.zeroact_plan import ZEROACT_TARGETS, plan_zero_activation

    cost_target = args.unit_cost_target or (args.target if args.target in ZEROACT_TARGETS else None)
    plan = args.zeroact_kernels
    if plan == "auto" and cost_target is None:
        plan = "sparse"  # no cycle model for this target
    try:
        return plan_zero_activation(qmodel, quantize_input(qmodel, x_val), cost_target, plan=plan)
    except ValueError as error:
        raise CLIError(f"--zeroact-kernels: {error}") from None


def _export(args: argparse.Namespace) -> int:
    import numpy as np

    from ..calibrate import calibrate
    from ..config import UnITConfig
    from ..convert import convert
    from ..mcu.export import export_c
    from ..mcu.host_runner import run_exported
    from ..counts import MacCounts
    from ..experiments.evaluation import evaluate_unit_model
    from ..mcu.quantize import quantize
    from ..mcu.reference import quantize_input, run_reference
    from .commands import _load_model_and_data

    from ..mcu.export.memory_plan import parse_conv_block_rows
    from ..run_folder import atomic_write_text, check_output_folder

    if args.samples < 1:
        raise CLIError(f"--samples must be >= 1, got {args.samples}")
    try:
        parse_conv_block_rows(args.conv_block_rows)
    except ValueError as error:
        raise CLIError(f"--conv-block-rows: {error}") from None
    out_dir = check_output_folder(args.out_dir, overwrite=args.overwrite, option="--out-dir")
    t0 = time.perf_counter()
    model, name, splits = _load_model_and_data(args)
    x_val = splits.val.tensors[0]
    if len(x_val) == 0:
        raise CLIError("the validation split is empty: the thresholds and the int8 scales are calibrated on it")
    fastest = None
    if args.plan == "fastest":
        fastest = _fastest(args, model, splits)
        qmodel, unit_model = fastest.qmodel, None
        qmodel.source.update(model=name, plan=f"fastest within {args.budget:g} points on {fastest.target}: "
                                              f"{fastest.method} at knob {fastest.knob}")
    else:
        unit_model = convert(model, UnITConfig(approx=args.approx, percentile=args.percentile))
        calibrate(unit_model, x_val, percentile=args.percentile)
        qmodel = quantize(unit_model, x_val, variant=args.variant, linear_quotient=args.linear_quotient)
        qmodel.source.setdefault("model", name)
        qmodel.source.setdefault("percentile", args.percentile)
        qmodel = _plan_zeroact(_plan_unit_kernels(qmodel, args, x_val), args, x_val)
    x_test, y_test = splits.test.tensors
    x_q = quantize_input(qmodel, x_test)
    samples = x_q[:args.samples] if args.target != "host" else None
    result = export_c(qmodel, out_dir, target=args.target, samples=samples, overwrite=args.overwrite,
                      conv_block_rows=args.conv_block_rows, execution=args.execution, kernels=args.kernels,
                      fused_rows=args.fused_rows, fused_axis=args.fused_axis)

    outputs, counts = run_exported(out_dir, x_q)
    reference, reference_counts = run_reference(qmodel, x_q)
    reference = reference.reshape(len(x_q), -1)
    outputs_equal = bool(np.array_equal(outputs, reference))
    counts_equal = {layer: counts[layer] == reference_counts[layer] for layer in result.layers}
    bit_exact = outputs_equal and all(counts_equal.values())

    labels = y_test.numpy()
    int8_accuracy = float(np.mean(outputs.argmax(axis=1) == labels))
    float_unit = evaluate_unit_model(unit_model, splits.test) if unit_model is not None else None
    float_dense = evaluate_unit_model(convert(model), splits.test)
    total = sum(counts.values(), MacCounts())
    plan = result.memory
    summary = {
        "model": name, "dataset": splits.name, "target": args.target, "variant": result.variant,
        "linear_quotient": result.linear_quotient, "approx": args.approx, "percentile": args.percentile,
        "test_samples": len(x_q), "float_accuracy": float_dense.accuracy, "float_unit_accuracy": float_unit and float_unit.accuracy,
        "int8_accuracy": int8_accuracy, "macs": total.to_dict(), "macs_skipped_fraction": total.skipped_fraction,
        "per_layer": {layer: c.to_dict() for layer, c in counts.items()},
        "flash_table_bytes": result.flash_table_bytes, "model_sram_bytes": plan.peak_sram_bytes,
        "arena_bytes": plan.arena_bytes, "scratch_bytes": plan.scratch_bytes,
        "conv_block_rows": result.conv_block_rows or "plane", "execution": result.execution,
        "fused_axis": result.fused_axis,
        "input_bytes": plan.input_bytes,
        "output_bytes": plan.output_bytes, "bit_exact": bit_exact, "outputs_bit_exact": outputs_equal,
        "counters_bit_exact": counts_equal, "unit_kernel_plan": qmodel.source.get("unit_kernel_plan"),
        "fastest": None if fastest is None else fastest.to_dict(),
    }
    atomic_write_text(out_dir / "host_check.json", json.dumps(summary, indent=2) + "\n")
    setting = (f"plan fastest within {args.budget:g} points" if fastest is not None
               else f"approx {args.approx}, percentile {args.percentile:g}")
    print(f"{name} on {splits.name}: {result.variant} kernels"
          + (f" (linear quotient {result.linear_quotient})" if result.variant == "unit" else "")
          + f", {setting}, target {args.target}")
    if fastest is not None:
        print(f"fastest within {args.budget:g} points on {fastest.target}: {fastest.method}"
              + ("" if fastest.knob is None else f" at knob {fastest.knob:g}")
              + f", {fastest.cycles:,} cycles per inference (median of {args.plan_samples} in the simulator), int8 "
              f"validation {100 * fastest.quantized_val_accuracy:.2f}%; kernels: "
              + ", ".join(f"{layer} {kernel}" for layer, kernel in fastest.kernels.items()))
        for candidate in fastest.candidates:
            cycles = f"{candidate['cycles']:,} cycles" if "cycles" in candidate else "not measured"
            print(f"  {candidate['method']}: {'admitted' if candidate['admitted'] else 'refused'} "
                  f"({candidate['why']}), {cycles}")
    float_unit_text = "" if float_unit is None else f"float UnIT {100 * float_unit.accuracy:.2f}%, "
    print(f"accuracy on {len(x_q)} test samples: float {100 * float_dense.accuracy:.2f}%, {float_unit_text}"
          f"int8 (exported C) {100 * int8_accuracy:.2f}%")
    print(f"MACs: {total.dense:,} dense, {total.skipped_fraction:.1%} skipped (zero weight "
          f"{total.zero_weight / max(total.dense, 1):.1%}, zero activation "
          f"{total.zero_activation / max(total.dense, 1):.1%}, threshold {total.threshold / max(total.dense, 1):.1%})")
    print(f"flash: {result.flash_table_bytes:,} bytes of constant tables; SRAM: {plan.peak_sram_bytes:,} bytes "
          f"(arena {plan.arena_bytes:,} peak at {plan.peak_op}, scratch {plan.scratch_bytes:,}, descriptors "
          f"{plan.descriptor_bytes:,}) + input {plan.input_bytes:,} and output {plan.output_bytes:,} (caller's)")
    if qmodel.source.get("unit_kernel_plan"):
        record = qmodel.source["unit_kernel_plan"]
        print(f"UnIT conv kernels ({record['plan']}" + (f", cycle model {record['target']}" if record["target"] else "")
              + "): " + ", ".join(f"{layer} {choice['kernel']} (kept {choice['kept_fraction']:.0%})"
                                  for layer, choice in record["layers"].items()))
    print(f"bit-exact against the integer reference (outputs and every counter): {'yes' if bit_exact else 'NO'}")
    print(f"C project: {out_dir} (build: make -C {out_dir}); summary: {out_dir / 'host_check.json'}; "
          f"{time.perf_counter() - t0:.0f} s")
    return 0 if bit_exact else 1
