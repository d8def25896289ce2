"""Sweeps and reports: how many MACs each method skips, at what accuracy cost.

* :func:`run_sweep` measures every method of a :class:`SweepConfig` (unpruned, train-time
  pruning, FATReLU, UnIT with each division approximation, UnIT on TTP / FATReLU, autotuned
  per-layer UnIT) on a trained model and writes a run folder (``results.json``,
  ``results.csv``, ``report.md``, ``accuracy_vs_macs.png``).
* :func:`autotune_percentiles` searches per-layer UnIT percentiles within an accuracy budget.
* :func:`run_demo` is ``unitprune demo``: train the MNIST Table-1 model (cached), sweep, report.

See docs/experiments.md.

The names are imported on first use: a worker process that runs one task function (a sweep
knob, a simulator batch) imports only that function's modules, not the demo's and the plots'.
"""

from importlib import import_module

#: Where each public name lives (imported on first use).
_EXPORTS = {
    "AutotuneConfig": ".autotune", "AutotuneResult": ".autotune", "autotune_percentiles": ".autotune",
    "ALL_METHODS": ".sweep_config", "KNOBS": ".sweep_config", "SweepConfig": ".sweep_config",
    "DemoConfig": ".demo", "run_demo": ".demo",
    "Evaluation": ".evaluation", "evaluate_unit_model": ".evaluation",
    "max_skipped_within_drop": ".pareto", "pareto_frontier": ".pareto",
    "render_markdown": ".run_report", "summary_table": ".run_report", "write_run": ".run_report",
    "Point": ".results", "build_results": ".results", "load_results": ".results",
    "run_sweep": ".sweep",
}

__all__ = [
    "ALL_METHODS", "KNOBS", "SweepConfig", "run_sweep",
    "AutotuneConfig", "AutotuneResult", "autotune_percentiles",
    "DemoConfig", "run_demo",
    "Evaluation", "evaluate_unit_model",
    "pareto_frontier", "max_skipped_within_drop",
    "Point", "build_results", "load_results", "render_markdown", "summary_table", "write_run",
]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
