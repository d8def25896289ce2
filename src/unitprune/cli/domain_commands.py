"""``unitprune domain-shift``: the paper's Table 2 (train in one context, test in another)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

__all__ = ["add_domain_parser", "cmd_domain_shift"]


def add_domain_parser(commands, formatter, add_common) -> None:
    """Register the ``domain-shift`` command."""
    from ..experiments.domain_shift import DomainShiftConfig
    from ..experiments.domain_tasks import DOMAIN_DATA_ROOT, DOMAIN_VARIANTS, KWSDomainTask
    from .data_commands import add_synth_options

    d = DomainShiftConfig()

    def shown(values) -> str:
        return " ".join(f"{v:g}" for v in values)

    parser = commands.add_parser(
        "domain-shift", formatter_class=formatter, help="train in one context, test in another (Table 2)",
        description="For each context (kws: disjoint speakers in room A / room B of the synthesized speech set; "
                    "widar: Widar3.0 BVP users and rooms), train the Table-1 model there, choose every method's "
                    "setting on that context's validation data, and measure macro F1 and MACs skipped on the test "
                    "split of every context. Writes RUN_DIR/domain_shift.json, report.md and domain_shift.png.")
    add_common(parser)
    parser.add_argument("--task", choices=("kws", "widar"), default="kws", help="which contexts")
    parser.add_argument("--run-dir", default=d.run_dir, help="output folder")
    parser.add_argument("--data-root", help=f"kws: synthesized speech cache (default: {DOMAIN_DATA_ROOT}; "
                                            "generated there when absent); "
                                            "widar: folder of Widar3.0 BVP .mat files (required)")
    parser.add_argument("--seed", type=int, default=0, help="seed of data, splits, initialisation and data order")
    parser.add_argument("--retrain", action="store_true", help="train even if RUN_DIR/train-*/model.pt exists")
    parser.add_argument("--epochs", type=int, default=d.epochs, help="maximum training epochs per context")
    parser.add_argument("--budget", type=float, default=d.budget,
                        help="validation macro-F1 budget (points) for choosing each method's setting")
    parser.add_argument("--unit-percentiles", nargs="+", type=float, metavar="P",
                        help=f"UnIT percentiles (default: {shown(d.unit_percentiles)})")
    parser.add_argument("--fatrelu-percentiles", nargs="+", type=float, metavar="P",
                        help=f"FATReLU percentiles (default: {shown(d.fatrelu_percentiles)})")
    parser.add_argument("--ttp-sparsities", nargs="+", type=float, metavar="S",
                        help=f"TTP schedule (default: {shown(d.ttp_sparsities)})")
    parser.add_argument("--ttp-epochs", type=int, default=d.ttp_finetune_epochs, help="fine-tuning epochs per TTP step")
    parser.add_argument("--autotune-budgets", nargs="+", type=float, metavar="PTS",
                        help=f"validation accuracy budgets of unit-autotuned (default: {shown(d.autotune_budgets)})")
    parser.add_argument("--autotune-grid", nargs="+", type=float, metavar="P",
                        help=f"percentiles a layer may take in unit-autotuned (default: {shown(d.autotune_grid)})")
    parser.add_argument("--val-fraction", type=float, default=KWSDomainTask.val_fraction,
                        help="kws: share of a context's non-test speakers held out for validation (the data the "
                             "thresholds are calibrated and the settings chosen on)")
    parser.add_argument("--no-augment", action="store_true",
                        help="kws: train without the KWS demo's time-shift / SpecAugment augmentation")
    parser.add_argument("--no-test-diagnosis", action="store_true",
                        help="do not measure every knob on the test splits (the diagnosis table; never used for "
                             "the choice)")
    parser.add_argument("--workers", type=int, help="training contexts in parallel processes (default: min(2, CPUs))")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    add_synth_options(parser)
    # kws: the study's own speaker set (384 speakers, see unitprune.experiments.domain_tasks)
    parser.set_defaults(handler=cmd_domain_shift, variants=list(DOMAIN_VARIANTS))
    for action in parser._actions:
        if action.dest == "variants":
            action.help = f"espeak-ng variants (default here: {' '.join(DOMAIN_VARIANTS)})"


def cmd_domain_shift(args: argparse.Namespace) -> int:
    from ..experiments.domain_shift import DomainShiftConfig, run_domain_shift
    from ..experiments.domain_tasks import DOMAIN_DATA_ROOT, KWSDomainTask, WidarDomainTask
    from ..experiments.kws import KWS_AUGMENT
    from .commands import sweep_workers
    from .data_commands import synth_config_from_args
    from .user_errors import CLIError

    t0 = time.perf_counter()
    if args.task == "kws":
        task = KWSDomainTask(data_root=args.data_root or DOMAIN_DATA_ROOT, synth=synth_config_from_args(args),
                             seed=args.seed, progress=not args.no_progress, val_fraction=args.val_fraction)
    else:
        if not args.data_root:
            raise CLIError("domain-shift --task widar needs --data-root DIR (a folder of Widar3.0 BVP .mat files; "
                           "unitprune never downloads data)")
        task = WidarDomainTask(data_root=args.data_root, seed=args.seed)
    values = {"run_dir": args.run_dir, "seed": args.seed, "retrain": args.retrain, "epochs": args.epochs,
              "budget": args.budget, "ttp_finetune_epochs": args.ttp_epochs, "num_threads": args.threads,
              "progress": not args.no_progress, "workers": sweep_workers(args),
              "test_every_point": not args.no_test_diagnosis,
              "augment": KWS_AUGMENT if args.task == "kws" and not args.no_augment else None}
    for option, name in (("unit_percentiles", "unit_percentiles"), ("fatrelu_percentiles", "fatrelu_percentiles"),
                         ("ttp_sparsities", "ttp_sparsities"), ("autotune_budgets", "autotune_budgets"),
                         ("autotune_grid", "autotune_grid")):
        if getattr(args, option):
            values[name] = tuple(getattr(args, option))
    document = run_domain_shift(task, DomainShiftConfig(**values))
    run_dir = Path(args.run_dir)
    print(f"{'train':>5} {'test':>5} {'method':<14} {'knob':>6} {'F1 %':>7} {'acc %':>7} {'skipped %':>9}")
    for row in document["rows"]:
        knob = "" if row["knob"] is None else f"{row['knob']:g}"
        print(f"{row['train_context']:>5} {row['test_context']:>5} {row['method']:<14} {knob:>6} {100 * row['f1']:>7.2f} "
              f"{100 * row['accuracy']:>7.2f} {100 * row['macs_skipped_fraction']:>9.1f}")
    print(f"\nreport: {run_dir / 'report.md'}\ndata:   {run_dir / 'domain_shift.json'}\n"
          f"wall time: {time.perf_counter() - t0:.0f} s")
    return 0
