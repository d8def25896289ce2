"""``unitprune mcu-bench``: every method's int8 model on the simulated MCUs (latency, energy estimate).

By default it uses the demo's checkpoint (``runs/demo/train/model.pt``: the MNIST Table-1 model,
input normalisation folded as the demo does) on MNIST, or with ``--task kws`` the KWS demo's
(``runs/kws/train/model.pt``, ``make demo-kws``: the Table-1 KWS model) on its synthesized speech,
exported fused where it does not fit a chip's SRAM layer by layer; ``--model NAME --weights FILE`` or
``--model-file FILE --trust-model-file`` with ``--data`` measure another model. The work is
:func:`unitprune.experiments.mcu_bench.bench.run_bench`; this module parses options and prints the table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .user_errors import CLIError
from .executor_options import add_executor_options, executor_config

__all__ = ["add_mcu_bench_parser", "cmd_mcu_bench"]

DEMO_CHECKPOINT = Path("runs/demo/train/model.pt")
#: The checkpoint, model and data of each ``--task`` without ``--model``: the demos' (``make demo``,
#: ``make demo-kws``).
TASKS = {"mnist": (DEMO_CHECKPOINT, "mnist", "mnist", "unitprune demo` (or `make demo`)"),
         "kws": (Path("runs/kws/train/model.pt"), "kws", "synth_speech", "unitprune demo --task kws` (or `make demo-kws`)")}


def add_mcu_bench_parser(commands, formatter, add_common, add_model_options, add_data_options) -> None:
    """Register ``mcu-bench`` (called by :func:`unitprune.cli.parser.build_parser` with its helpers)."""
    from ..experiments.mcu_bench.bench import DEFAULT_TARGETS, METHODS, MCU_TARGETS

    bench = commands.add_parser(
        "mcu-bench", formatter_class=formatter, help="cycles and energy (estimate) per method on simulated MCUs",
        description="Choose each method's operating point on validation (within --budget points of the quantized "
                    "dense model), quantize, export to C, run --samples test inputs on each target's simulator "
                    "(AVR in simavr, MSP430 in mspdebug), check every output bit for bit and write mcu.json, mcu.md "
                    "and the latency/energy figures. Without --model/--model-file: the demo's checkpoint "
                    f"({DEMO_CHECKPOINT}) on MNIST.")
    add_common(bench)
    add_model_options(bench)
    add_data_options(bench)
    group = bench.add_argument_group("benchmark")
    group.add_argument("--task", choices=tuple(TASKS), default="mnist",
                       help="without --model/--model-file: the demo checkpoint measured, mnist (runs/demo) or kws "
                            "(runs/kws: the Table-1 KWS model on synthesized speech, exported fused where it does "
                            "not fit a chip's SRAM layer by layer)")
    group.add_argument("--targets", default=",".join(DEFAULT_TARGETS),
                       help=f"comma-separated MCU targets ({', '.join(MCU_TARGETS)})")
    group.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated methods ({', '.join(METHODS)})")
    group.add_argument("--samples", type=int, default=20, help="test samples run per firmware (median cycles)")
    group.add_argument("--layer-samples", type=int, default=3,
                       help="samples of the per-layer firmware (a second simulator pass; <= --samples)")
    group.add_argument("--budget", type=float, default=1.0,
                       help="points of quantized validation accuracy a method may lose against quantized dense")
    group.add_argument("--confidence", type=float, default=0.9,
                       help="a knob is admissible when the exact upper bound of its paired int8 validation drop at "
                            "this confidence is within --budget; 0: the observed drop (docs/experiments.md)")
    group.add_argument("--unit-percentiles", metavar="P,P,...",
                       help="UnIT calibration percentiles swept (default: the sweep's)")
    group.add_argument("--fatrelu-percentiles", metavar="P,P,...",
                       help="FATReLU threshold percentiles swept (default: the sweep's)")
    group.add_argument("--ttp-sparsities", metavar="S,S,...", help="TTP schedule (default: the sweep's)")
    group.add_argument("--ttp-finetune-epochs", type=int, help="TTP fine-tuning epochs per step (default: the sweep's)")
    group.add_argument("--ttp-allocation", choices=("global", "macs"),
                       help="TTP allocation of the ttp and ttp+unit methods: global (the schedule's fractions of "
                            "the weights, smallest |w|) or macs (fractions of the dense MACs, smallest |w| per MAC "
                            "saved) (default: the sweep's, global); ttp-macs and ttp-macs+unit always use macs, "
                            "each with its own operating point, so the fastest-within-budget table can pick either")
    group.add_argument("--combo-base-budget", type=float, metavar="PTS",
                       help="ttp+unit, ttp-macs+unit and fatrelu+unit put UnIT on the most aggressive TTP sparsity / "
                            "FATReLU percentile whose float validation drop the budget rule admits within PTS points "
                            "(default: the sweep's, 0.5; --budget's value gives the base the whole budget)")
    group.add_argument("--run-dir", default="runs/mcu-bench", help="output folder (must be empty)")
    group.add_argument("--overwrite", action="store_true", help="replace the files of a non-empty --run-dir")
    group.add_argument("--threads", type=int, default=1, help="torch threads")
    group.add_argument("--batch-samples", type=int, metavar="N",
                       help="test samples per simulator task (default: 25; the tasks of one method and target "
                            "run in parallel)")
    add_executor_options(bench)
    bench.set_defaults(handler=cmd_mcu_bench)


def _floats(text: str | None, option: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise CLIError(f"{option} must be comma-separated numbers, got {text!r}") from None


def _bench_config(args: argparse.Namespace):
    from dataclasses import replace

    from ..experiments.mcu_bench.bench import DEFAULT_SWEEP, BenchConfig

    changes = {"progress": False}
    for option, key in (("unit_percentiles", "unit_percentiles"), ("fatrelu_percentiles", "fatrelu_percentiles"),
                        ("ttp_sparsities", "ttp_sparsities")):
        values = _floats(getattr(args, option), "--" + option.replace("_", "-"))
        if values is not None:
            changes[key] = values
    if args.ttp_finetune_epochs is not None:
        changes["ttp_finetune_epochs"] = args.ttp_finetune_epochs
    if args.ttp_allocation is not None:
        changes["ttp_allocation"] = args.ttp_allocation
    if args.combo_base_budget is not None:
        changes["combo_base_budget"] = args.combo_base_budget
    try:
        sweep = replace(DEFAULT_SWEEP, **changes)
        return BenchConfig(targets=tuple(t.strip() for t in args.targets.split(",") if t.strip()),
                           methods=tuple(m.strip() for m in args.methods.split(",") if m.strip()),
                           samples=args.samples, layer_samples=min(args.layer_samples, args.samples),
                           budget=args.budget, confidence=args.confidence, sweep=sweep,
                           progress=not args.no_progress)
    except ValueError as exc:
        raise CLIError(str(exc)) from None


def _load(args: argparse.Namespace):
    from .commands import _load_model_and_data

    if args.model is None and args.model_file is None:
        checkpoint, model, data, how = TASKS[args.task]
        if not checkpoint.is_file():
            raise CLIError(f"no model given and no {args.task} demo checkpoint at {checkpoint}: run `{how} first, "
                           "or pass --model NAME --weights FILE / --model-file FILE --data ...")
        args.model, args.weights = model, str(checkpoint)
        args.data = args.data or data
        args.fold_input = True  # as the demos measure it
    return _load_model_and_data(args)


def cmd_mcu_bench(args: argparse.Namespace) -> int:
    from ..mcu import targets
    from ..experiments.mcu_bench.bench import run_bench

    from .commands import guard_run_dir

    run_dir = guard_run_dir(args, args.run_dir)
    executor = executor_config(args, threads=args.threads)
    if args.batch_samples is not None and args.batch_samples < 1:
        raise CLIError(f"--batch-samples must be >= 1, got {args.batch_samples}")
    config = _bench_config(args)
    for target in config.targets:
        try:
            targets.check_tools(target)
        except targets.ToolMissing as exc:
            raise CLIError(f"mcu-bench --targets {target}: {exc}") from None
    from ..experiments.executor import executor_session

    # Ray: its workers boot while the model and the data load here
    warm = ("unitprune.experiments.mcu_bench.bench", "unitprune.experiments.mcu_bench.bench_plan",
            "unitprune.data.splits")
    with executor_session(executor, warm=warm):
        model, name, splits = _load(args)
        if run_dir.is_dir() and not args.resume:
            _clear_previous_run(run_dir)
        try:
            document = run_bench(model, splits, config, run_dir=run_dir, model_name=name, threads=args.threads,
                                 executor=executor, batch_samples=args.batch_samples)
        except targets.ToolMissing as exc:  # on a cluster node (NodeSetupError names it)
            raise CLIError(str(exc)) from None
    print((run_dir / "mcu.md").read_text())
    print(f"wrote {run_dir / 'mcu.json'}, {run_dir / 'mcu.md'}, {run_dir / 'mcu_latency.png'}, "
          f"{run_dir / 'mcu_energy.png'} in {document['seconds']:.0f} s")
    return 0 if all(row["bit_exact"] for row in document["rows"]) else 1


def _clear_previous_run(run_dir: Path) -> None:
    """Remove what an earlier mcu-bench wrote (its files and work/); anything else is left alone."""
    import shutil

    from ..experiments.mcu_bench.bench import RUN_FILES

    for name in RUN_FILES:
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
