"""Render a ``results.json`` document: ``report.md``, ``results.csv``, the figure, a console table.

Everything here reads only the results dictionary, so ``unitprune report RUN_DIR`` can redo it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from .plot import plot_accuracy_vs_macs
from .results import write_csv, write_json

logger = logging.getLogger(__name__)

__all__ = ["write_run", "render_markdown", "summary_table", "FIGURE_NAME"]

FIGURE_NAME = "accuracy_vs_macs.png"


def write_run(results: dict, run_dir: Path, *, write_results_json: bool = True) -> None:
    """Write ``results.json``, ``results.csv``, ``report.md`` and the figure into ``run_dir``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if write_results_json:
        write_json(results, run_dir / "results.json")
    write_csv(results, run_dir / "results.csv")
    plot_accuracy_vs_macs(results, run_dir / FIGURE_NAME)
    (run_dir / "report.md").write_text(render_markdown(results))
    logger.info("wrote results.json, results.csv, report.md, %s to %s", FIGURE_NAME, run_dir)


# ----------------------------------------------------------------------------------------------
# Formatting helpers
# ----------------------------------------------------------------------------------------------

def _pct(value) -> str:
    return "n/a" if value is None else f"{100.0 * value:.1f}%"


def _pts(value) -> str:
    return "n/a" if value is None else f"{value:+.2f}"


def _knob(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value.is_integer():
        return f"{value:g}"
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _best_within_1pt(records: list[dict]) -> dict | None:
    within = [r for r in records if r["accuracy_drop"] <= 1.0 + 1e-9]
    return max(within, key=lambda r: (r["macs_skipped_fraction"], -r["accuracy_drop"]), default=None)


# ----------------------------------------------------------------------------------------------
# Sections
# ----------------------------------------------------------------------------------------------

def _summary_rows(results: dict) -> list[list[str]]:
    rows = []
    for method, info in results["summary"].items():
        knob_name = results.get("knobs", {}).get(method, "knob")
        chosen = info.get("selected_on_validation")
        rows.append([
            method, knob_name,
            _pct(info["max_skipped_fraction_at_1pt_drop"]), _knob(info["knob_at_1pt_drop"]),
            _pts(info["accuracy_drop_at_1pt_point"]),
            "-" if chosen is None else _knob(chosen["knob"]),
            "-" if chosen is None else _pts(chosen["accuracy_drop"]),
            "-" if chosen is None else _pct(chosen["macs_skipped_fraction"]),
        ])
    return rows


def _autotune_section(results: dict) -> list[str]:
    records = results["methods"].get("unit-autotuned") or []
    if not records:
        return []
    approx = records[0]["details"].get("approx", "exact")
    global_records = results["methods"].get(f"unit-{approx}", [])
    rows = []
    for r in records:
        budget = r["knob"]
        within = [g for g in global_records if g["val_accuracy_drop"] <= budget + 1e-9]
        best_global = max(within, key=lambda g: g["macs_skipped_fraction"], default=None)
        if best_global is not None:
            rows.append([f"global percentile (unit-{approx})", _knob(budget), f"all layers {_knob(best_global['knob'])}",
                         _pts(best_global["val_accuracy_drop"]), _pts(best_global["accuracy_drop"]),
                         _pct(best_global["macs_skipped_fraction"])])
        percentiles = ", ".join(f"{name} {_knob(p)}" for name, p in r["details"].get("percentiles", {}).items())
        rows.append([f"autotuned per layer (unit-{approx})", _knob(budget), percentiles,
                     _pts(r["val_accuracy_drop"]), _pts(r["accuracy_drop"]), _pct(r["macs_skipped_fraction"])])
    return [
        "## Autotuned per-layer percentiles vs one global percentile", "",
        "Both settings are chosen on validation data within the same budget (largest global percentile "
        "whose validation drop is within budget, vs the greedy per-layer search of "
        "`unitprune.experiments.autotune`); the test columns are the outcome.", "",
        _table(["setting", "val budget (pts)", "percentiles", "val drop", "test drop", "MACs skipped (test)"], rows),
        "",
    ]


def _points_section(results: dict) -> list[str]:
    lines = ["## All points (test set)", "",
             "Skipped MACs by cause, as fractions of the dense MACs: zero weight (pruned), zero activation "
             "(ReLU/FATReLU/padding), threshold (UnIT test).", ""]
    for method, records in results["methods"].items():
        knob_name = results.get("knobs", {}).get(method, "knob")
        rows = []
        for r in records:
            causes = r["skipped_fraction_by_cause"]
            rows.append([_knob(r["knob"]), f"{100 * r['accuracy']:.2f}", _pts(r["accuracy_drop"]),
                         _pts(r["val_accuracy_drop"]), _pct(r["macs_skipped_fraction"]),
                         _pct(causes["zero_weight"]), _pct(causes["zero_activation"]), _pct(causes["threshold"]),
                         _pct(r["macs_remaining_fraction"])])
        lines += [f"### {method}", "", _table(
            [knob_name, "test acc (%)", "drop (pts)", "val drop", "skipped", "zero weight", "zero act.", "threshold",
             "remaining"], rows), ""]
    return lines


def _per_layer_section(results: dict) -> list[str]:
    lines = ["## Per-layer MACs at each method's best point within 1 point (test set, summed over samples)", ""]
    for method, records in results["methods"].items():
        best = _best_within_1pt(records)
        if best is None:
            continue
        rows = [[name, f"{c['dense']:,}", f"{c['zero_weight']:,}", f"{c['zero_activation']:,}", f"{c['threshold']:,}",
                 f"{c['executed']:,}", _pct(c["skipped_fraction"]), f"{c['compares']:,}", f"{c['divisions']:,}"]
                for name, c in [*best["per_layer"].items(),
                                *((f"{n} (not UnIT, dense)", c) for n, c in best.get("other_layers", {}).items())]]
        total = best["counts"]
        rows.append(["**total**", f"{total['dense']:,}", f"{total['zero_weight']:,}", f"{total['zero_activation']:,}",
                     f"{total['threshold']:,}", f"{total['executed']:,}", _pct(best["macs_skipped_fraction"]),
                     f"{total['compares']:,}", f"{total['divisions']:,}"])
        knob = "" if best["knob"] is None else f"{results.get('knobs', {}).get(method, 'knob')} {_knob(best['knob'])}, "
        lines += [f"### {method} ({knob}drop {_pts(best['accuracy_drop'])})", "",
                  _table(["layer", "dense", "zero weight", "zero act.", "threshold", "executed", "skipped", "compares",
                          "divisions"], rows), ""]
    return lines


def _environment_section(results: dict) -> list[str]:
    env = results.get("environment")
    if not env:
        return []
    packages = ", ".join(f"{name} {version}" for name, version in env.get("packages", {}).items() if version)
    rows = [["CPU", f"{env.get('cpu_model', '?')} ({env.get('cpu_count', '?')} logical cores), torch CPU capability "
                    f"{env.get('torch_cpu_capability', '?')}"],
            ["torch threads", str(env.get("torch_threads", "?"))],
            ["packages", packages],
            ["python / platform", f"{env.get('python', '?')} / {env.get('platform', '?')}"],
            ["UnIT C kernels", "built" if env.get("unitprune_c_kernels") else "not built (reference path)"],
            ["numeric environment variables", ", ".join(f"{k}={v}" for k, v in env.get("env", {}).items()) or "none"]]
    training = results.get("training") or {}
    if training:
        rows.append(["training", "cached checkpoint " + str(training.get("checkpoint", "")) if training.get("cached")
                     else f"trained in this run ({training.get('train_seconds', '?')} s)"])
    return ["## What produced these numbers", "",
            "Same machine and software: identical numbers on every run. Another CPU or torch version trains "
            "slightly different weights (CPU-specific kernels round differently; see docs/results/experiments.md).", "",
            _table(["", "value"], rows), ""]


def render_markdown(results: dict) -> str:
    """The ``report.md`` text of a results document."""
    unpruned = (results["methods"].get("unpruned") or [None])[0]
    free = unpruned["macs_skipped_fraction"] if unpruned else None
    lines = [
        f"# UnIT sweep: model `{results['model']}` on `{results['dataset']}`", "",
        f"* Unpruned test accuracy: **{100 * results['baseline_accuracy']:.2f}%** on "
        f"{results.get('num_test_samples', '?')} test samples; validation accuracy "
        f"{100 * results.get('baseline_val_accuracy', float('nan')):.2f}% on {results.get('num_val_samples', '?')} samples.",
        f"* Dense MACs per sample: {results.get('dense_macs_per_sample', 0):,}. Accuracy budget: "
        f"{results.get('budget_points', 1.0):g} point(s).",
        "* Protocol: validation data calibrates thresholds and chooses settings; test data only gives the "
        "numbers below. Drops are in accuracy points vs the unpruned model on the same split.",
        "* Accounting: every method runs through UnIT layers (threshold 0 for the non-UnIT baselines), so a "
        "skipped MAC is a zero weight, a zero activation or a UnIT threshold skip, counted the same way for all. "
        f"Under this accounting the unpruned model already skips {_pct(free)} (zero activations, for a kernel "
        "that tests for zeros).",
    ]
    if results.get("input_normalization_folded"):
        lines.append("* Input: the dataset's normalisation `(x - mean) / std` is folded into the first layer "
                     "(exact: same outputs; see `unitprune.experiments.folding`), so the model reads raw-scaled "
                     "inputs and black pixels are zero activations, as on a microcontroller.")
    lines += [
        "", "![accuracy drop vs remaining MACs](accuracy_vs_macs.png)", "",
        "## Summary", "",
        "`max skipped at <= 1 pt` reads the test curve (like the paper's Figure 5). `selected on validation` is "
        "the setting an engineer would deploy: the most MACs skipped with validation drop within the budget, "
        "with its test outcome.", "",
        _table(["method", "knob", "max skipped at <= 1 pt", "at knob", "drop (pts)", "selected on val: knob",
                "test drop", "test skipped"], _summary_rows(results)),
        "",
    ]
    lines += _autotune_section(results)
    pareto_rows = [[p["method"], _knob(p["knob"]), _pts(p["accuracy_drop"]), _pct(p["macs_skipped_fraction"])]
                   for p in results.get("pareto", [])]
    lines += ["## Pareto frontier (all methods, test set)", "",
              _table(["method", "knob", "drop (pts)", "MACs skipped"], pareto_rows), ""]
    lines += _points_section(results)
    lines += _per_layer_section(results)
    lines += _environment_section(results)
    timing = results.get("timing_s", {})
    if timing:
        lines += ["## Wall time (s)", "", _table(["step", "seconds"], [[k, f"{v:.1f}"] for k, v in timing.items()]), ""]
    return "\n".join(lines)


def summary_table(results: dict) -> str:
    """A plain-text table for the console: one line per method."""
    header = f"{'method':<15} {'max skipped @<=1pt':>19} {'knob':>6} {'drop':>6}   {'val-selected: knob':>18} {'drop':>6} {'skipped':>8}"
    lines = [f"{results['model']} on {results['dataset']}: unpruned test accuracy "
             f"{100 * results['baseline_accuracy']:.2f}%", header, "-" * len(header)]
    for method, info in results["summary"].items():
        chosen = info.get("selected_on_validation") or {}
        lines.append(
            f"{method:<15} {_pct(info['max_skipped_fraction_at_1pt_drop']):>19} {_knob(info['knob_at_1pt_drop']):>6} "
            f"{_pts(info['accuracy_drop_at_1pt_point']):>6}   {_knob(chosen.get('knob')):>18} "
            f"{_pts(chosen.get('accuracy_drop')):>6} {_pct(chosen.get('macs_skipped_fraction')):>8}")
    return "\n".join(lines)
