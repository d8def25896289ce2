"""Test overshoots of the accuracy budget by the points selected on validation (issue 25), per confidence.

Runs ``unitprune demo`` (MNIST, every method) at each seed and confidence, one training per seed
(the checkpoint of the first confidence's run folder is copied to the others), and tallies, over
every method but ``unpruned`` (9 methods x seeds selections):

* overshoots: selected points whose *test* drop exceeds the budget;
* the skipped-fraction gap: the most MACs skipped by a point within the budget on the test curve
  (``max_skipped_fraction_within_budget``, what the test split would allow) minus the selected
  point's, in points (a selection with no admitted knob deploys the unpruned model: its skipped
  fraction counts).

Writes ``--json`` (every selection) and ``--markdown`` (the table, with machine, versions and command).

    nice -n 10 python benchmarks/budget_coverage.py --seeds 0 1 2 --confidences 0 0.9 \\
        --work-dir runs/budget_coverage --json docs/results/budget_coverage.json \\
        --markdown docs/results/budget_coverage.md

``--tally-only`` reads the run folders without running anything. ``--mcu`` also chooses
``mcu-bench``'s int8 operating points (:func:`unitprune.experiments.mcu_bench.bench.select_operating_points`, no
simulator: the choice and the int8 test accuracy come from the integer reference) from each seed's
checkpoint, and counts the int8 test overshoots.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

logger = logging.getLogger("budget_coverage")

METHODS = ("ttp", "fatrelu", "unit-exact", "unit-bitshift", "unit-bintree", "unit-bitmask", "ttp+unit",
           "fatrelu+unit", "unit-autotuned")


def run_dir(work: Path, seed: int, confidence: float, val_fraction: float | None) -> Path:
    split = "" if val_fraction is None else f"-val{val_fraction:g}"
    return work / f"seed-{seed}{split}" / f"confidence-{confidence:g}"


def run_demo(folder: Path, seed: int, confidence: float, val_fraction: float | None, budget: float,
             donor: Path | None) -> None:
    if (folder / "results.json").is_file():
        logger.info("%s: results exist, not run again", folder)
        return
    if donor is not None and (donor / "train" / "model.pt").is_file() and not (folder / "train").exists():
        shutil.copytree(donor / "train", folder / "train")  # same seed and split: the same checkpoint
    command = [sys.executable, "-m", "unitprune", "demo", "--seed", str(seed), "--run-dir", str(folder),
               "--confidence", f"{confidence:g}", "--budget", f"{budget:g}", "--no-progress"]
    if val_fraction is not None:
        command += ["--val-fraction", f"{val_fraction:g}"]
    logger.info("running %s", " ".join(command))
    subprocess.run(command, check=True, env=dict(os.environ, OMP_NUM_THREADS="1"))


def mcu_selections(checkpoint: Path, seed: int, confidence: float, budget: float) -> list[dict]:
    """``mcu-bench``'s chosen int8 points for the demo checkpoint (input normalisation folded, as the
    command does by default) and their int8 test drop against quantized dense."""
    import torch

    from unitprune.data import load_dataset
    from unitprune.experiments.folding import fold_input_normalization
    from unitprune.experiments.mcu_bench.bench import BenchConfig, select_operating_points
    from unitprune.models import build_model

    torch.set_num_threads(1)
    splits = load_dataset("mnist", seed=seed)
    model = build_model("mnist", seed=seed, num_classes=splits.num_classes)
    model.load_state_dict(torch.load(checkpoint, weights_only=True))
    model, splits = fold_input_normalization(model.eval(), splits)
    config = BenchConfig(budget=budget, confidence=confidence, progress=False,
                         methods=("dense", "ttp", "unit-bitshift", "unit-bintree", "ttp+unit", "fatrelu",
                                  "fatrelu+unit"))
    points = select_operating_points(model, splits, config)
    rows = []
    for name, point in points.items():
        selection = point.details.get("selection")
        if selection is None:
            continue
        rows.append({"method": name, "knob": point.knob, "val_drop": selection["val_drop"],
                     "val_drop_bound": selection["val_drop_bound"], "test_drop": selection["test_drop"],
                     "selected_skipped": point.macs_skipped_fraction, "fallback": selection["fallback"],
                     "over_budget": selection["test_drop"] > budget + 1e-9})
    return rows


#: Methods whose measured points do not depend on the rule (the combinations' bases and the
#: autotuner's search do): the rule can be re-applied to their stored paired counts at any confidence.
RULE_FREE = ("ttp", "fatrelu", "unit-exact", "unit-bitshift", "unit-bintree", "unit-bitmask")


def reapplied(results: dict, budget: float, confidence: float) -> list[dict]:
    """The summary's choice re-made from ``val_paired`` at another confidence, for :data:`RULE_FREE`."""
    from unitprune.experiments.results import summarize as summarize_results

    methods = {m: results["methods"][m] for m in ("unpruned", *RULE_FREE) if m in results["methods"]}
    summary, _ = summarize_results(methods, budget, confidence)
    return tally({"methods": methods, "summary": summary}, budget)


def cached_mcu_selections(work: Path, seed: int, confidence: float, args) -> list[dict]:
    """:func:`mcu_selections`, kept in ``<work>/seed-N/mcu-confidence-C.json`` (computed once)."""
    cache = run_dir(work, seed, confidence, args.val_fraction).parent / f"mcu-confidence-{confidence:g}.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    checkpoint = run_dir(work, seed, args.confidences[0], args.val_fraction) / "train" / "model.pt"
    rows = mcu_selections(checkpoint, seed, confidence, args.budget)
    cache.write_text(json.dumps(rows, indent=1) + "\n")
    return rows


def tally(results: dict, budget: float) -> list[dict]:
    unpruned = results["methods"]["unpruned"][0]["macs_skipped_fraction"]
    rows = []
    for method in METHODS:
        info = results["summary"].get(method)
        if info is None:
            continue
        chosen = info["selected_on_validation"]
        best = info["max_skipped_fraction_within_budget"]
        skipped = unpruned if chosen is None else chosen["macs_skipped_fraction"]
        rows.append({
            "method": method,
            "knob": None if chosen is None else chosen["knob"],
            "val_drop": None if chosen is None else chosen["val_accuracy_drop"],
            "val_drop_bound": None if chosen is None else chosen.get("val_drop_bound"),
            "test_drop": 0.0 if chosen is None else chosen["accuracy_drop"],
            "selected_skipped": skipped,
            "best_skipped_on_test": best,
            "gap_points": None if best is None else 100.0 * (best - skipped),
            "over_budget": chosen is not None and chosen["accuracy_drop"] > budget + 1e-9,
            "none_admitted": chosen is None,
        })
    return rows


def summarize(rows: list[dict]) -> dict:
    gaps = [r["gap_points"] for r in rows if r["gap_points"] is not None]
    return {"selections": len(rows), "over_budget": sum(r["over_budget"] for r in rows),
            "none_admitted": sum(r["none_admitted"] for r in rows),
            "mean_gap_points": sum(gaps) / len(gaps) if gaps else None,
            "max_test_drop": max(r["test_drop"] for r in rows) if rows else None}


def markdown(document: dict) -> str:
    env = document["environment"]
    packages = ", ".join(f"{k} {v}" for k, v in env.get("packages", {}).items() if v)
    lines = ["# Budget coverage: MNIST demo, selected on validation, judged on test", "",
             f"Budget {document['budget']:g} point(s); seeds {', '.join(map(str, document['seeds']))}; "
             f"validation fraction {document['val_fraction'] or 'default (0.1: 400 digits)'}; 1,000 test digits. "
             "`over budget`: selections whose test drop exceeds the budget; `gap`: most MACs skipped within the "
             "budget on the test curve minus the selected point's (points; negative when an overshooting point "
             "skips more than any point within the budget).", "",
             "| confidence | selections | over budget | none admitted | mean gap (pts) | worst test drop (pts) |",
             "|---|---|---|---|---|---|"]
    for confidence, s in document["summary"].items():
        lines.append(f"| {confidence} | {s['selections']} | {s['over_budget']} | {s['none_admitted']} | "
                     f"{s['mean_gap_points']:.2f} | {s['max_test_drop']:+.2f} |")
    lines += ["", f"## Confidence trade-off ({', '.join(RULE_FREE)}: {len(RULE_FREE)} methods x seeds)", "",
              "The rule re-applied to the stored paired validation counts of the methods whose points do not "
              "depend on it (the combinations' bases and the autotuner's search do).", "",
              "| confidence | selections | over budget | none admitted | mean gap (pts) | worst test drop (pts) |",
              "|---|---|---|---|---|---|"]
    for confidence, s in document["trade_off"].items():
        lines.append(f"| {confidence} | {s['selections']} | {s['over_budget']} | {s['none_admitted']} | "
                     f"{s['mean_gap_points']:.2f} | {s['max_test_drop']:+.2f} |")
    lines += ["", "## Every selection", "",
              "| confidence | seed | method | knob | val drop | val bound | test drop | skipped | best on test | gap |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in document["selections"]:
        def pts(v):
            return "-" if v is None else f"{v:+.2f}"
        knob = "-" if r["knob"] is None else f"{r['knob']:g}"
        best = "-" if r["best_skipped_on_test"] is None else f"{100 * r['best_skipped_on_test']:.1f}%"
        lines.append(f"| {r['confidence']} | {r['seed']} | {r['method']} | {knob} | {pts(r['val_drop'])} | "
                     f"{pts(r['val_drop_bound'])} | {pts(r['test_drop'])}{' **over**' if r['over_budget'] else ''} | "
                     f"{100 * r['selected_skipped']:.1f}% | {best} | {pts(r['gap_points'])} |")
    for confidence, block in document.get("mcu_bench", {}).items():
        if confidence == next(iter(document["mcu_bench"])):
            lines += ["", "## mcu-bench operating points (int8, integer reference, vs quantized dense)", "",
                      "| confidence | seed | method | knob | val drop | val bound | test drop | skipped |",
                      "|---|---|---|---|---|---|---|---|"]
        for r in block["selections"]:
            lines.append(f"| {confidence} | {r['seed']} | {r['method']} | {r['knob']:g} | {r['val_drop']:+.2f} | "
                         f"{r['val_drop_bound']:+.2f} | {r['test_drop']:+.2f}{' **over**' if r['over_budget'] else ''}"
                         f" | {100 * r['selected_skipped']:.1f}% |")
    for confidence, block in document.get("mcu_bench", {}).items():
        lines.append(f"\nmcu-bench, confidence {confidence}: {block['over_budget']} of {block['count']} int8 "
                     "selections over the budget on test.")
    lines += ["", "## What produced these numbers", "",
              f"* Command: `{document['command']}`",
              f"* CPU: {env.get('cpu_model', '?')} ({env.get('cpu_count', '?')} logical cores); "
              f"python {env.get('python', '?')}; {env.get('platform', '?')}",
              f"* Packages: {packages}", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--confidences", nargs="+", type=float, default=[0.0, 0.9])
    parser.add_argument("--budget", type=float, default=1.0)
    parser.add_argument("--val-fraction", type=float, help="validation share of the non-test digits (default: 0.1)")
    parser.add_argument("--work-dir", default="runs/budget_coverage")
    parser.add_argument("--tally-only", action="store_true", help="read the run folders; run nothing")
    parser.add_argument("--json", help="write the tally here")
    parser.add_argument("--markdown", help="write the table here")
    parser.add_argument("--mcu", action="store_true", help="also tally mcu-bench's int8 operating points")
    parser.add_argument("--mcu-only", action="store_true",
                        help="only compute (and cache) mcu-bench's int8 operating points; no demo, no tally")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    work = Path(args.work_dir)
    if args.mcu_only:
        for seed in args.seeds:
            for confidence in args.confidences:
                rows = cached_mcu_selections(work, seed, confidence, args)
                print(f"mcu-bench seed {seed} confidence {confidence:g}: "
                      f"{sum(r['over_budget'] for r in rows)} of {len(rows)} over budget on test")
        return 0
    selections, summary, environment = [], {}, {}
    for confidence in args.confidences:
        rows = []
        for seed in args.seeds:
            folder = run_dir(work, seed, confidence, args.val_fraction)
            if not args.tally_only:
                donor = run_dir(work, seed, args.confidences[0], args.val_fraction)
                run_demo(folder, seed, confidence, args.val_fraction, args.budget, None if donor == folder else donor)
            results = json.loads((folder / "results.json").read_text())
            environment = results.get("environment", environment)
            for row in tally(results, args.budget):
                rows.append(row)
                selections.append({"confidence": f"{confidence:g}", "seed": seed, **row})
        summary[f"{confidence:g}"] = summarize(rows)
        print(f"confidence {confidence:g}: {json.dumps(summary[f'{confidence:g}'])}")
    # the rule re-applied to the last confidence's run folders, on the methods it cannot influence
    trade_off = {}
    for confidence in (0.0, 0.5, 0.8, 0.9, 0.95, 0.99):
        rows = []
        for seed in args.seeds:
            results = json.loads((run_dir(work, seed, args.confidences[-1], args.val_fraction) / "results.json")
                                 .read_text())
            rows += reapplied(results, args.budget, confidence)
        trade_off[f"{confidence:g}"] = summarize(rows)
    mcu = {}
    if args.mcu:
        for confidence in args.confidences:
            rows = []
            for seed in args.seeds:
                rows += [{"seed": seed, **r} for r in cached_mcu_selections(work, seed, confidence, args)]
            mcu[f"{confidence:g}"] = {"selections": rows, "over_budget": sum(r["over_budget"] for r in rows),
                                      "count": len(rows)}
            print(f"mcu-bench, confidence {confidence:g}: {mcu[f'{confidence:g}']['over_budget']} of {len(rows)} "
                  "int8 selections over budget on test")
    document = {"budget": args.budget, "seeds": args.seeds, "val_fraction": args.val_fraction,
                "summary": summary, "selections": selections, "trade_off": trade_off, "mcu_bench": mcu,
                "environment": environment,
                "command": "python benchmarks/budget_coverage.py " + " ".join(sys.argv[1:] if argv is None else argv)}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(markdown(document))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
