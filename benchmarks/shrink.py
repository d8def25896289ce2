"""Benchmark of ``unitprune shrink`` over seeds: accuracy, resources and the wall-time ratio.

For each seed, runs :func:`unitprune.shrink.experiment.run_shrink_experiment` (base training and
each method, side by side in one process) into ``RUN_ROOT/seed-N`` and writes
``benchmarks/results/shrink.json`` (every seed's shrink.json, plus per method the median and range
of test accuracy and of the pruning-run / base-training wall-time ratio) and ``shrink.md``.

    python benchmarks/shrink.py --seeds 0 1 2 --methods differentiable tp-magnitude tp-taylor
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
from pathlib import Path

from unitprune.shrink import PRESETS
from unitprune.shrink.experiment import METHODS, ExperimentConfig, run_shrink_experiment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=["differentiable", "tp-magnitude", "tp-taylor"],
                        choices=METHODS)
    parser.add_argument("--preset", default="atmega2560", choices=sorted(PRESETS))
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--no-unit", dest="unit", action="store_false",
                        help="skip UnIT on each result (its skipped share and the UnIT firmware need it)")
    parser.add_argument("--run-root", default="runs/bench-shrink")
    parser.add_argument("--out", default="benchmarks/results/shrink.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    runs = {}
    for seed in args.seeds:
        run_dir = Path(args.run_root) / f"seed-{seed}"
        existing = run_dir / "shrink.json"
        if existing.exists():  # resume: never overwrite a finished run
            runs[seed] = json.loads(existing.read_text())
            continue
        runs[seed] = run_shrink_experiment(ExperimentConfig(budget=PRESETS[args.preset], epochs=args.epochs,
                                                            methods=tuple(args.methods), unit=args.unit, seed=seed,
                                                            progress=False,
                                                            run_dir=str(run_dir)))
    summary = {}
    for name in args.methods:
        accuracy = [runs[s]["methods"][name]["accuracy"] for s in runs]
        ratio = [runs[s]["methods"][name]["train_seconds"] / runs[s]["base"]["train_seconds"] for s in runs]
        summary[name] = {"accuracy_median": statistics.median(accuracy), "accuracy_min": min(accuracy),
                         "accuracy_max": max(accuracy), "time_ratio_median": statistics.median(ratio),
                         "fits_all": all(runs[s]["methods"][name]["fits_budget"] for s in runs)}
    base = [runs[s]["base"]["accuracy"] for s in runs]
    summary["base"] = {"accuracy_median": statistics.median(base), "accuracy_min": min(base),
                       "accuracy_max": max(base)}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"preset": args.preset, "epochs": args.epochs, "seeds": args.seeds,
                               "summary": summary, "runs": {str(k): v for k, v in runs.items()}}, indent=2))
    lines = ["| model | test accuracy median (min-max) | time / base training (median) | fits |", "|---|---|---|---|"]
    for name, s in summary.items():
        ratio = f"{s['time_ratio_median']:.2f}x" if "time_ratio_median" in s else "1.00x"
        fits = "" if name == "base" else ("all seeds" if s["fits_all"] else "NOT all")
        lines.append(f"| {name} | {100 * s['accuracy_median']:.2f}% ({100 * s['accuracy_min']:.2f}-"
                     f"{100 * s['accuracy_max']:.2f}) | {ratio} | {fits} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
