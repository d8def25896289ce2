"""``run_sweep``: measure every method at every knob value and write the run folder.

Protocol: validation data calibrates thresholds (UnIT, FATReLU), fine-tunes with early stopping
(TTP) and chooses settings (combination bases, autotuned percentiles, the "selected on
validation" summary); test data is used only for the reported numbers.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from .._version import __version__
from .sweep_config import ALL_METHODS, KNOBS, SweepConfig
from .methods import METHOD_RUNNERS, SweepContext, baseline_evaluations
from .parallel import run_methods
from .provenance import environment_record
from .run_report import write_run
from .results import build_results

logger = logging.getLogger(__name__)

__all__ = ["run_sweep", "torch_threads"]


def run_sweep(model: nn.Module, splits, config: SweepConfig | None = None, *, dataset: str = "", model_name: str = "",
              run_dir: str | Path | None = None, input_normalization_folded: bool = False, workers: int = 1) -> dict:
    """Run the sweep of ``config.methods`` on a trained ``model`` and return ``results.json``'s content.

    Args:
        model: the trained dense model (not modified). Any model :func:`unitprune.convert` supports.
        splits: a :class:`unitprune.data.DatasetSplits` (``train`` may be empty when no method
            needs fine-tuning).
        config: methods and knob values.
        dataset, model_name: names written in the results.
        run_dir: if given, ``results.json``, ``results.csv``, ``report.md`` and
            ``accuracy_vs_macs.png`` are written there.
        input_normalization_folded: recorded in the results (see :mod:`.folding`).
        workers: run the methods in this many worker processes (:mod:`.parallel`; same points as
            the serial run, 1 = serial in this process).
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    config = config or SweepConfig()
    with torch_threads(config.num_threads):
        return _run_sweep(model, splits, config, dataset, model_name, run_dir, input_normalization_folded, workers)


@contextmanager
def torch_threads(count: int):
    """Use ``count`` torch threads inside the block; restore the previous number afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _run_sweep(model, splits, config: SweepConfig, dataset: str, model_name: str, run_dir, folded: bool,
               workers: int = 1) -> dict:
    model.eval()
    environment = environment_record()  # inside torch_threads: records the sweep's thread count
    context = SweepContext(model=model, splits=splits, config=config)
    started = time.perf_counter()
    baseline, context.baseline_val_accuracy = baseline_evaluations(context)
    logger.info("unpruned: test accuracy %.4f, val accuracy %.4f, %d dense MACs per sample", baseline.accuracy,
                context.baseline_val_accuracy, baseline.total.dense // baseline.num_samples)

    methods = ["unpruned"] + [m for m in ALL_METHODS if m in config.methods and m != "unpruned"]
    points, timing = {}, {}
    if workers > 1:
        points, timing = run_methods(context, methods, workers)
    else:
        _run_serial(context, methods, points, timing)
    timing["total"] = round(time.perf_counter() - started, 2)

    results = build_results(
        dataset=dataset or getattr(splits, "name", ""), model=model_name or getattr(model, "name", type(model).__name__),
        baseline=baseline, baseline_val_accuracy=context.baseline_val_accuracy, points=points,
        knobs={m: KNOBS[m] for m in points}, budget=config.budget, config=config.to_dict(), timing=timing,
        extra={"num_val_samples": len(splits.val), "num_train_samples": len(splits.train),
               "input_normalization_folded": folded, "unitprune_version": __version__,
               "environment": environment, "workers": workers})
    if run_dir is not None:
        write_run(results, Path(run_dir))
    return results


def _run_serial(context: SweepContext, methods: list[str], points: dict, timing: dict) -> None:
    config = context.config
    with tqdm(methods, desc="sweep", disable=not config.progress) as bar:
        for method in bar:
            bar.set_postfix_str(method)
            t0 = time.perf_counter()
            points[method] = METHOD_RUNNERS[method](context)
            timing[method] = round(time.perf_counter() - t0, 2)
            logger.info("%s: %d points in %.1f s", method, len(points[method]), timing[method])
