"""Sweeps and reports: how many MACs each method skips, at what accuracy cost.

* :func:`run_sweep` measures every method of a :class:`SweepConfig` (unpruned, train-time
  pruning, FATReLU, UnIT with each division approximation, UnIT on TTP / FATReLU, autotuned
  per-layer UnIT) on a trained model and writes a run folder (``results.json``,
  ``results.csv``, ``report.md``, ``accuracy_vs_macs.png``).
* :func:`autotune_percentiles` searches per-layer UnIT percentiles within an accuracy budget.
* :func:`run_demo` is ``unitprune demo``: train the MNIST Table-1 model (cached), sweep, report.

See docs/experiments.md.
"""

from .autotune import AutotuneConfig, AutotuneResult, autotune_percentiles
from .sweep_config import ALL_METHODS, KNOBS, SweepConfig
from .demo import DemoConfig, run_demo
from .evaluation import Evaluation, evaluate_unit_model
from .pareto import max_skipped_within_drop, pareto_frontier
from .run_report import render_markdown, summary_table, write_run
from .results import Point, build_results, load_results
from .sweep import run_sweep

__all__ = [
    "ALL_METHODS", "KNOBS", "SweepConfig", "run_sweep",
    "AutotuneConfig", "AutotuneResult", "autotune_percentiles",
    "DemoConfig", "run_demo",
    "Evaluation", "evaluate_unit_model",
    "pareto_frontier", "max_skipped_within_drop",
    "Point", "build_results", "load_results", "render_markdown", "summary_table", "write_run",
]
