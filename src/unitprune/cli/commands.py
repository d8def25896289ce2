"""What each command does. Heavy imports (torch models, datasets) happen inside the commands,
so ``unitprune --help`` stays fast."""

from __future__ import annotations

import argparse
import json
import logging
import time
import warnings
from pathlib import Path

import torch.nn as nn

from .user_errors import CLIError
from .executor_options import executor_config

logger = logging.getLogger("unitprune.cli")

__all__ = ["cmd_demo", "cmd_train", "cmd_calibrate", "cmd_sweep", "cmd_report"]


def _sweep_config(args: argparse.Namespace, methods=None, base=None):
    """The sweep given by the options; unset options keep ``base``'s values (default: ``SweepConfig()``)."""
    from dataclasses import replace

    from ..experiments import SweepConfig

    mapping = {"methods": "methods", "unit_percentiles": "unit_percentiles",
               "fatrelu_percentiles": "fatrelu_percentiles", "ttp_sparsities": "ttp_sparsities",
               "ttp_epochs": "ttp_finetune_epochs", "ttp_allocation": "ttp_allocation", "combo_approx": "combo_approx",
               "combo_base_budget": "combo_base_budget", "budget": "budget", "autotune_budgets": "autotune_budgets", "confidence": "confidence",
               "calibration_samples": "calibration_samples", "eval_batch_size": "eval_batch_size",
               "threads": "num_threads"}
    values = {field: getattr(args, option) for option, field in mapping.items() if getattr(args, option) is not None}
    if methods is not None:
        values["methods"] = methods
    if "seed" in args:
        values["seed"] = args.seed
    return replace(base or SweepConfig(), progress=not args.no_progress, **values)


def sweep_workers(args: argparse.Namespace) -> int:
    """``--workers``, or min(2, CPUs) when unset."""
    import os

    workers = getattr(args, "workers", None)
    if workers is not None and workers < 1:
        raise CLIError(f"--workers must be >= 1, got {workers}")
    return workers if workers is not None else max(1, min(2, os.cpu_count() or 1))


def _load_model_and_data(args: argparse.Namespace):
    from ..experiments.inputs import load_data, load_model

    if not args.data:
        raise CLIError(f"unitprune {args.command}: --data is required (a dataset name or a .pt/.npz file)")
    splits = load_data(args.data, args.data_root, seed=args.seed)
    model, name = load_model(args.model, args.weights, args.model_file, trust_model_file=args.trust_model_file,
                             num_classes=splits.num_classes if args.model else None)
    _check_model_runs(model, splits)
    if args.fold_input:
        from ..experiments.folding import fold_input_normalization

        model, splits = fold_input_normalization(model, splits)
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
    from ..experiments.sweep_config import ALL_METHODS, FATRELU_METHODS, TRAINING_METHODS

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


def guard_run_dir(args: argparse.Namespace, run_dir, reusable=()) -> Path:
    """The run-folder rule of :mod:`unitprune.run_folder` for ``--run-dir`` (checked, nothing written)."""
    from ..run_folder import check_output_folder

    resume = getattr(args, "resume", False)  # --resume continues the run in a non-empty folder
    return check_output_folder(run_dir, overwrite=args.overwrite or resume, option="--run-dir", reusable=reusable)


def guard_output_files(args: argparse.Namespace, options: dict[str, str | None]) -> None:
    """The output-file rule of :mod:`unitprune.run_folder` for ``{option: path}`` (checked, nothing written)."""
    from ..run_folder import check_output_file

    for option, path in options.items():
        if path:
            check_output_file(path, overwrite=args.overwrite, option=option)


def _print_results(results: dict, run_dir: Path) -> None:
    from ..experiments import summary_table

    print(summary_table(results))
    print(f"\nreport: {run_dir / 'report.md'}\nfigure: {run_dir / 'accuracy_vs_macs.png'}\n"
          f"data:   {run_dir / 'results.json'}, {run_dir / 'results.csv'}")


# ----------------------------------------------------------------------------------------------
# Commands
# ----------------------------------------------------------------------------------------------

def cmd_demo(args: argparse.Namespace) -> int:
    from ..experiments import DemoConfig, run_demo

    if args.task == "kws":
        if args.val_fraction is not None:
            raise CLIError("unitprune demo: --val-fraction applies to --task mnist (the KWS speaker split is fixed)")
        from .kws_commands import cmd_kws_demo

        from ..experiments.kws import KWS_SWEEP

        guard_run_dir(args, args.run_dir or "runs/kws", reusable=("train",))
        return cmd_kws_demo(args, _sweep_config(args, base=KWS_SWEEP), executor_config(args), _print_results)
    args.run_dir = args.run_dir or "runs/demo"
    guard_run_dir(args, args.run_dir, reusable=("train",))  # train/: the cached checkpoint, reused
    t0 = time.perf_counter()
    config = DemoConfig(run_dir=args.run_dir, retrain=args.retrain, epochs=args.epochs or DemoConfig.epochs,
                        seed=args.seed, val_fraction=args.val_fraction,
                        fold_input_normalization=not args.no_fold_input, sweep=_sweep_config(args),
                        workers=sweep_workers(args), executor=executor_config(args))
    try:
        results = run_demo(config)
    except ValueError as exc:  # a bad --val-fraction, or a checkpoint trained on another split
        raise CLIError(f"unitprune demo: {exc}") from None
    _print_results(results, Path(args.run_dir))
    training = results.get("training", {})
    trained = "cached checkpoint" if training.get("cached") else f"{training.get('train_seconds', 0):.0f} s"
    print(f"wall time: {time.perf_counter() - t0:.0f} s (training: {trained})")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from ..data import DATASET_NAMES, load_dataset
    from ..models import DATASET_MODEL, build_model
    from ..training import TrainConfig, train

    if not args.data:
        raise CLIError(f"unitprune train: --data is required ({', '.join(DATASET_NAMES)})")
    splits = load_dataset(args.data, args.data_root, seed=args.seed)
    model_name = args.model or DATASET_MODEL.get(splits.name, splits.name)
    model = build_model(model_name, seed=args.seed, num_classes=splits.num_classes)
    run_dir = guard_run_dir(args, args.run_dir or f"runs/train-{splits.name}")
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
    from ..experiments.sweep import torch_threads

    with torch_threads(args.threads):
        return _calibrate(args)


def _calibrate(args: argparse.Namespace) -> int:
    import torch

    from ..calibrate import CalibrationTieWarning, calibrate
    from ..config import UnITConfig
    from ..convert import convert
    from ..experiments.evaluation import evaluate_unit_model
    from ..run_folder import atomic_save, atomic_write_text

    guard_output_files(args, {"--output": args.output, "--save-state-dict": args.save_state_dict})
    model, name, splits = _load_model_and_data(args)
    unit_model = convert(model, UnITConfig(approx=args.approx, percentile=args.percentile, group_size=args.group_size))
    with warnings.catch_warnings(record=True) as caught:  # shown in the summary below
        warnings.simplefilter("always", CalibrationTieWarning)
        thresholds = calibrate(unit_model, splits.val.tensors[0], percentile=args.percentile,
                               per_layer=_parse_per_layer(args.per_layer))
    ties = [str(w.message) for w in caught if issubclass(w.category, CalibrationTieWarning)]
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
    for message in ties:
        print(f"warning: {message.removeprefix('calibrate: ')}")
    if args.output:
        document = {"model": name, "dataset": splits.name, "approx": args.approx, "percentile": args.percentile,
                    "per_layer_percentiles": _parse_per_layer(args.per_layer),
                    "thresholds": {k: v.tolist() for k, v in thresholds.items()},
                    "test_accuracy": test.accuracy, "unpruned_test_accuracy": baseline.accuracy,
                    "macs": {"total": test.total.to_dict(),
                             "per_layer": {k: v.to_dict() for k, v in test.per_layer.items()}}}
        atomic_write_text(args.output, json.dumps(document, indent=2) + "\n")
        print(f"wrote {args.output}")
    if args.save_state_dict:
        atomic_save(args.save_state_dict, lambda path: torch.save(unit_model.state_dict(), path))
        print(f"wrote {args.save_state_dict} (state_dict with thresholds)")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from ..experiments import run_sweep

    executor = executor_config(args)  # option errors first
    run_dir = guard_run_dir(args, args.run_dir)
    model, name, splits = _load_model_and_data(args)
    config = _sweep_config(args, methods=_applicable_methods(args, model, splits))
    results = run_sweep(model, splits, config, dataset=splits.name, model_name=name, run_dir=run_dir,
                        input_normalization_folded=args.fold_input, workers=executor.workers, executor=executor)
    _print_results(results, run_dir)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from ..experiments import load_results, write_run

    run_dir = Path(args.run_dir)
    results = load_results(run_dir)
    folder = run_dir if run_dir.is_dir() else run_dir.parent
    write_run(results, folder, write_results_json=False)
    _print_results(results, folder)
    return 0
