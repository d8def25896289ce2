"""``unitprune shrink``: make a model fit an MCU budget (differentiable structured pruning) and
compare it with Torch-Pruning, DPF and TTP at the same budget and epochs (unitprune.shrink)."""

from __future__ import annotations

import argparse

from ..mcu.targets.specs import CORE_TARGETS
from .user_errors import CLIError

__all__ = ["add_shrink_parser", "cmd_shrink"]

_METHODS = ("differentiable", "tp-magnitude", "tp-taylor", "tp-bn-scale", "dpf", "uniform", "ttp")
_DEFAULT_METHODS = ("differentiable", "tp-magnitude", "tp-taylor", "dpf", "ttp")


def add_shrink_parser(commands, formatter_class, add_common) -> None:
    """Register the ``shrink`` sub-command on the parser's sub-command set."""
    p = commands.add_parser(
        "shrink", formatter_class=formatter_class, help="prune a model until it fits an MCU budget",
        description="Train the base model, then make a copy fit the budget (peak SRAM, flash, MACs of the "
                    "int8 export) with differentiable, resource-aware channel pruning during training, and the "
                    "baselines at the same budget. Writes RUN_DIR/shrink.json, details.json, report.md and plots.")
    add_common(p)
    p.add_argument("--model", default="mnist-wide", help="built-in architecture")
    p.add_argument("--weights", metavar="FILE", help="trained state_dict of --model (skips base training)")
    p.add_argument("--data", default="mnist", help="built-in dataset (mnist, digits, cifar10, speech_commands, synth_speech)")
    p.add_argument("--data-root", metavar="DIR",
                   help="data folder (cifar10, speech_commands, full MNIST, the synth_speech cache)")
    p.add_argument("--feature-pool", metavar="BxF",
                   help="speech sets: average the 80x124 log-mel map over BxF blocks (bands x frames), "
                        "e.g. 2x2 for 40x62 inputs (unitprune.data.audio.pool_features)")
    p.add_argument("--preset", choices=("atmega2560", "msp430fr5994", "samd21", "rp2040", "ch32v003"),
                   help="chip budget: 8 KB SRAM, 256 KB flash/FRAM (atmega2560, msp430fr5994); 32 KB SRAM, "
                        "256 KB flash (samd21, Cortex-M0+); 264 KB SRAM, 2 MB flash (rp2040, Cortex-M0+); 2 KB "
                        "SRAM, 16 KB flash (ch32v003, RV32EC). --sram/--flash/--macs override it")
    p.add_argument("--sram", metavar="SIZE", help="peak SRAM budget, e.g. 8KB")
    p.add_argument("--flash", metavar="SIZE", help="flash budget, e.g. 256KB")
    p.add_argument("--macs", metavar="N", help="MAC budget, e.g. 500k")
    p.add_argument("--unit-tables", action="store_true", help="count UnIT's conv tau tables in flash")
    p.add_argument("--target", choices=("avr", "msp430", "host", "cortex-m", "m0plus", "m0plus-smallmul", "rv32ec",
                                        "rv32imc"),
                   help="exporter target whose RAM descriptor layout SRAM counts (default: the preset's, else avr)")
    p.add_argument("--conv-block-rows", metavar="{plane,min,N}",
                   help="count SRAM for the export's conv accumulator blocks: plane (whole output planes, the "
                        "default), min (1 row) or N rows (unitprune export --conv-block-rows; the blocks of "
                        "UnIT's convs, --unit-tables; the dense convs hold one row whatever the option)")
    p.add_argument("--execution", choices=("layers", "fused"), default="layers",
                   help="count SRAM for the export's plan: layers (layer by layer, the default) or fused "
                        "(row-streamed, one output row per conv step, the input read row by row: unitprune "
                        "export --execution fused --fused-rows 1); --measure then runs that plan")
    p.add_argument("--epochs", type=int, default=8, help="epochs of the base training and of every method")
    p.add_argument("--prune-epochs", type=int, help="epochs with pruning (default: epochs - 2)")
    p.add_argument("--methods", nargs="+", choices=_METHODS, default=list(_DEFAULT_METHODS),
                   help="methods to run (default: %(default)s; tp-bn-scale needs BatchNorm; uniform trains the "
                        "uniform-width model from scratch for twice --epochs)")
    p.add_argument("--unit", action="store_true", help="run UnIT on every result (MACs skipped within 1 point)")
    p.add_argument("--measure", nargs="+", metavar="TARGET", default=[], choices=("avr", "msp430", "msp430-hwmult", *CORE_TARGETS),
                   help="also quantize, export and run every result (and the base, if it fits the exporter) on "
                        "these simulated MCUs (simavr, mspdebug, unicorn): firmware flash/SRAM, cycles dense/zeroskip/UnIT, "
                        "bit-exactness; implies --unit")
    p.add_argument("--measure-samples", type=int, default=5, metavar="N",
                   help="test samples embedded in and run by each firmware (default 5)")
    p.add_argument("--sweep-sram", nargs="+", metavar="SIZE", default=[],
                   help="also run the structured methods at these SRAM budgets (accuracy-vs-resource plot)")
    p.add_argument("--start", choices=("base", "init"), default="base",
                   help="what differentiable and dpf prune: the trained base (default) or the base's "
                        "initialisation (pruning while the model first trains)")
    p.add_argument("--regrow", type=float, default=0.05, metavar="CHANNELS",
                   help="channels every group's count grows by per step before the projection onto the budget: "
                        "how fast the allocation can move channels between groups (default 0.05)")
    p.add_argument("--seed", type=int, default=0, help="seed of data split, initialisation and data order")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--run-dir", default="runs/shrink", help="output folder (must be empty, except with --resume)")
    p.add_argument("--overwrite", action="store_true", help="replace the files of a non-empty --run-dir")
    from .executor_options import add_executor_options

    add_executor_options(p, default_workers=1)  # one: train_seconds are timed side by side, not contended
    p.set_defaults(handler=cmd_shrink)


def _budget(args: argparse.Namespace):
    from ..shrink import PRESETS, MCUBudget, parse_count, parse_size

    values = {}
    try:
        if args.sram:
            values["sram_bytes"] = parse_size(args.sram)
        if args.flash:
            values["flash_bytes"] = parse_size(args.flash)
        if args.macs:
            values["macs"] = parse_count(args.macs)
        from ..mcu.export.memory_plan import parse_conv_block_rows

        values["conv_block_rows"] = parse_conv_block_rows(args.conv_block_rows) or None
        values["execution"] = args.execution
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    if args.preset:
        return PRESETS[args.preset].with_(unit_tables=args.unit_tables or None, target=args.target, **values)
    if not set(values) - {"conv_block_rows", "execution"}:
        raise CLIError("unitprune shrink: give a budget: --preset, or --sram/--flash/--macs")
    return MCUBudget(name="custom", unit_tables=args.unit_tables, target=args.target or "avr", **values)


def _feature_pool(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) >= 1 for p in parts):
        raise CLIError(f"--feature-pool: expected BxF with positive integers (e.g. 2x2), got {text!r}")
    return int(parts[0]), int(parts[1])


def cmd_shrink(args: argparse.Namespace) -> int:
    from ..extras import require

    require("torch_pruning", "shrink", "unitprune shrink")  # before anything else (MissingExtraError: exit 2)
    from ..shrink import parse_size
    from ..experiments.shrink_study.shrink_experiment import ExperimentConfig, run_shrink_experiment
    from .executor_options import executor_config

    budget = _budget(args)
    try:
        sweep = tuple(parse_size(s) for s in args.sweep_sram)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    config = ExperimentConfig(model=args.model, data=args.data, data_root=args.data_root,
                              feature_pool=_feature_pool(args.feature_pool), weights=args.weights,
                              budget=budget, epochs=args.epochs, prune_epochs=args.prune_epochs,
                              methods=tuple(args.methods), unit=args.unit, sweep_sram=sweep, seed=args.seed,
                              threads=args.threads, progress=not args.no_progress, start=args.start,
                              regrow=args.regrow, run_dir=args.run_dir, overwrite=args.overwrite,
                              measure=tuple(args.measure), measure_samples=args.measure_samples)
    try:
        document = run_shrink_experiment(config, executor_config(args, threads=args.threads))
    except ValueError as exc:
        if args.measure and "samples" in str(exc):  # MeasureConfig's message
            raise CLIError(f"unitprune shrink: --measure-samples: {exc}") from None
        raise
    base = document["base"]
    print(f"budget: {', '.join(f'{k} {v:,}' for k, v in document['budget'].items() if v is not None)}")
    print(f"{'model':<16}{'accuracy':>9}{'flash B':>11}{'SRAM B':>9}{'MACs':>12}{'train s':>9}  fits")
    print(f"{'base':<16}{100 * base['accuracy']:>8.2f}%{base['flash_bytes']:>11,}{base['sram_bytes']:>9,}"
          f"{base['macs']:>12,}{base['train_seconds']:>9.1f}")
    for name, m in document["methods"].items():
        print(f"{name:<16}{100 * m['accuracy']:>8.2f}%{m['flash_bytes']:>11,}{m['sram_bytes']:>9,}"
              f"{m['macs']:>12,}{m['train_seconds']:>9.1f}  {'yes' if m['fits_budget'] else 'NO'}")
    for name, m in {"base": base, **document["methods"]}.items():
        for target, entry in m.get("measured", {}).get("targets", {}).items():
            if not entry["exported"]:
                print(f"{name} on {target}: not exported: {entry['why']}")
                continue
            cycles = ", ".join(f"{k} {entry[k]['cycles']:,}" for k in ("dense", "zeroskip", "unit")
                               if "cycles" in entry.get(k, {}))
            dense = entry["dense"]
            exact = all(entry[k].get("bit_exact", False) for k in ("dense", "zeroskip", "unit") if k in entry)
            print(f"{name} on {target}: cycles {cycles}; flash {dense['flash_bytes']:,} B, SRAM peak "
                  f"{dense['sram_peak_bytes']:,} B; bit-exact {'yes' if exact else 'NO'}")
    print(f"wrote {args.run_dir}/shrink.json, report.md")
    return 0
