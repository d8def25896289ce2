"""Benchmark of ``unitprune shrink`` over seeds: accuracy, resources, wall-time ratio, MCU measurements.

For each seed, runs :func:`unitprune.experiments.shrink_study.shrink_experiment.run_shrink_experiment` (base training and
each method side by side in one process, UnIT on every result, and with ``--measure`` every
result exported and run on the simulated MCUs) into ``RUN_ROOT/seed-N``, and writes ``--out``
(default ``benchmarks/results/shrink.json``: every seed's shrink.json and the spread over seeds)
and the same as a table next to it (``shrink.md``). Per method, mean / min / max over seeds of:
test accuracy, SRAM and MAC reduction against the base (base / method), the lead over the better
Torch-Pruning method of the same seed (points), the pruning-run / base-training wall-time ratio,
UnIT's skipped share of the remaining MACs, and per MCU target the measured cycles per inference
with the dense and the UnIT kernels (or how many seeds could not be exported, and why).

A seed whose folder already holds a finished run (shrink.json and report.md) is not run again
(resume); if it lacks the measurements, they are added (:func:`unitprune.experiments.shrink_study.shrink_experiment.add_measurements`).

    python benchmarks/shrink.py --seeds 0 1 2 --measure avr msp430
    # each seed's tasks on a Ray cluster; --resume continues seeds whose run was interrupted:
    python benchmarks/shrink.py --seeds 0 1 2 --executor ray --ray-address auto --resume
    # the exporter's limits as the flash budget, the bases of the run above:
    python benchmarks/shrink.py --seeds 0 1 2 --flash 32KB --base-root runs/bench-shrink \\
        --run-root runs/bench-shrink-32k --out benchmarks/results/shrink_32k.json
    # SRAM counted (and firmware exported) for the fused, row-streamed plan (a chain, one streamed Linear, an
    # MLP head after it layer by layer); the .md adds the SRAM reduction against the base fused and layer by layer:
    python benchmarks/shrink.py --seeds 0 1 2 --execution fused --run-root runs/bench-shrink-fused \
        --out benchmarks/results/shrink_fused.json
    # SRAM counted (and firmware exported) with conv accumulators of 4 output rows per block:
    python benchmarks/shrink.py --seeds 0 1 2 --conv-block-rows 4 --base-root runs/bench-shrink \\
        --run-root runs/bench-shrink-rows4 --out benchmarks/results/shrink_rows4.json
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
from pathlib import Path

from unitprune.mcu.export.memory_plan import parse_conv_block_rows
from unitprune.cli.executor_options import add_executor_options, executor_config
from unitprune.cli.user_errors import CLIError
from unitprune.shrink import PRESETS, parse_size
from unitprune.experiments.shrink_study.shrink_experiment import METHODS, ExperimentConfig, add_measurements, run_shrink_experiment

TP_METHODS = ("tp-magnitude", "tp-taylor", "tp-bn-scale")


def spread(values: list[float]) -> dict[str, float] | None:
    """Mean, min and max of ``values`` (None when empty)."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"mean": statistics.fmean(values), "min": min(values), "max": max(values), "n": len(values)}


def summarize(runs: dict[int, dict], details: dict[int, dict], methods: list[str]) -> dict[str, dict]:
    """The spread over seeds of every figure of the module docstring, per method (and the base)."""
    summary: dict[str, dict] = {}
    for name in methods:
        per_seed = {s: runs[s]["methods"][name] for s in runs}
        base = {s: runs[s]["base"] for s in runs}
        entry = {
            "accuracy": spread([m["accuracy"] for m in per_seed.values()]),
            "sram_reduction": spread([base[s]["sram_bytes"] / m["sram_bytes"] for s, m in per_seed.items()]),
            "mac_reduction": spread([base[s]["macs"] / m["macs"] for s, m in per_seed.items()]),
            "time_ratio": spread([m["train_seconds"] / base[s]["train_seconds"] if base[s]["train_seconds"] else None
                                  for s, m in per_seed.items()]),
            "fits_all": all(m["fits_budget"] for m in per_seed.values()),
            "unit_skipped": spread([details[s].get("unit", {}).get(name, {}).get("skipped_fraction") for s in runs]),
        }
        tp = [t for t in TP_METHODS if all(t in runs[s]["methods"] for s in runs)]
        if tp and name not in TP_METHODS:
            entry["lead_over_best_tp_points"] = spread(
                [100 * (m["accuracy"] - max(runs[s]["methods"][t]["accuracy"] for t in tp)) for s, m in per_seed.items()])
        for other in ("dpf", "uniform"):
            if name != other and all(other in runs[s]["methods"] for s in runs):
                entry[f"lead_over_{other}_points"] = spread(
                    [100 * (m["accuracy"] - runs[s]["methods"][other]["accuracy"]) for s, m in per_seed.items()])
        if name != "dpf" and all("dpf" in runs[s]["methods"] for s in runs):
            entry["time_over_dpf"] = spread([m["train_seconds"] / runs[s]["methods"]["dpf"]["train_seconds"]
                                             for s, m in per_seed.items()])
        entry["per_seed"] = {str(s): {"accuracy": m["accuracy"], "sram_bytes": m["sram_bytes"], "macs": m["macs"],
                                      "train_seconds": m["train_seconds"],
                                      "channels": details[s].get("methods", {}).get(name, {}).get("channels")}
                             for s, m in per_seed.items()}
        entry["measured"] = _measured_spread(per_seed)
        summary[name] = entry
    summary["base"] = {"accuracy": spread([runs[s]["base"]["accuracy"] for s in runs]),
                       "measured": _measured_spread({s: runs[s]["base"] for s in runs}),
                       "per_seed": {str(s): {"accuracy": runs[s]["base"]["accuracy"],
                                             "sram_bytes": runs[s]["base"]["sram_bytes"], "macs": runs[s]["base"]["macs"],
                                             "train_seconds": runs[s]["base"]["train_seconds"]} for s in runs}}
    return summary


def _measured_spread(per_seed: dict[int, dict]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for s, m in per_seed.items():
        for target, entry in m.get("measured", {}).get("targets", {}).items():
            row = out.setdefault(target, {"exported_seeds": 0, "not_exported": {}, "cycles": {}})
            if not entry["exported"]:
                row["not_exported"][str(s)] = entry["why"]
                continue
            row["exported_seeds"] += 1
            for kernels in ("dense", "zeroskip", "unit"):
                if "cycles" in entry.get(kernels, {}):
                    row["cycles"].setdefault(kernels, []).append(entry[kernels]["cycles"])
            row.setdefault("bit_exact", True)
            row["bit_exact"] = row["bit_exact"] and all(entry[k]["bit_exact"] for k in ("dense", "zeroskip", "unit")
                                                        if "cycles" in entry.get(k, {}))
            if "unit_speedup" in entry:
                row.setdefault("unit_speedup", []).append(entry["unit_speedup"])
    for row in out.values():
        row["cycles"] = {k: spread(v) for k, v in row["cycles"].items()}
        if "unit_speedup" in row:
            row["unit_speedup"] = spread(row["unit_speedup"])
    return out


def _fmt(s: dict | None, scale: float = 1.0, digits: int = 1, suffix: str = "") -> str:
    if s is None:
        return "-"
    return (f"{scale * s['mean']:,.{digits}f}{suffix} ({scale * s['min']:,.{digits}f}-"
            f"{scale * s['max']:,.{digits}f})")


def _per_seed_table(summary: dict[str, dict]) -> list[str]:
    """Test accuracy per seed and method (the channels per group under it), training seconds."""
    names = ["base"] + [n for n in summary if n != "base"]
    seeds = list(summary["base"]["per_seed"])
    lines = ["| seed | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for seed in seeds:
        cells = []
        for name in names:
            row = summary[name]["per_seed"][seed]
            channels = row.get("channels")
            text = f"{100 * row['accuracy']:.2f}%"
            if channels:
                text += " (" + "/".join(str(v) for v in channels.values()) + ")"
            cells.append(text)
        lines.append(f"| {seed} | " + " | ".join(cells) + " |")
    lines += ["", "Wall time of each run in seconds (shared machine: compare within a seed):", "",
              "| seed | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for seed in seeds:
        lines.append(f"| {seed} | " + " | ".join(f"{summary[n]['per_seed'][seed]['train_seconds']:.0f}" for n in names)
                     + " |")
    return lines


def markdown(summary: dict[str, dict]) -> str:
    lines = ["Mean (min-max) over seeds.", "",
             "| model | test accuracy % | SRAM reduction | MAC reduction | lead over best TP (points) | "
             "lead over dpf | lead over uniform | time / dpf | time / base training | UnIT skipped % | fits |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, s in summary.items():
        if name == "base":
            lines.append(f"| base | {_fmt(s['accuracy'], 100, 2)} | 1x | 1x | | | | | 1x | | |")
            continue
        lines.append(f"| {name} | {_fmt(s['accuracy'], 100, 2)} | {_fmt(s['sram_reduction'], suffix='x')} | "
                     f"{_fmt(s['mac_reduction'], suffix='x')} | {_fmt(s.get('lead_over_best_tp_points'))} | "
                     f"{_fmt(s.get('lead_over_dpf_points'))} | {_fmt(s.get('lead_over_uniform_points'))} | "
                     f"{_fmt(s.get('time_over_dpf'), digits=2, suffix='x')} | "
                     f"{_fmt(s['time_ratio'], digits=2, suffix='x')} | {_fmt(s['unit_skipped'], 100)} | "
                     f"{'all seeds' if s['fits_all'] else 'NOT all'} |")
    lines += ["", "Per seed: test accuracy (channels per group):", ""] + _per_seed_table(summary)
    if not any(s.get("measured") for s in summary.values()):
        return "\n".join(lines) + "\n"
    lines += ["", "Measured cycles per inference on the simulated MCUs (dense / UnIT kernels, UnIT speed-up):", "",
              "| model | target | exported (seeds) | dense cycles | zeroskip cycles | UnIT cycles | dense / UnIT | "
              "bit-exact | not exported: why |", "|---|---|---|---|---|---|---|---|---|"]
    for name, s in summary.items():
        for target, row in s.get("measured", {}).items():
            seeds = list(row["not_exported"])
            why = f"seeds {', '.join(seeds)}; seed {seeds[0]}: {row['not_exported'][seeds[0]]}" if seeds else ""
            cycles = row["cycles"]
            unit = _fmt(cycles.get("unit"), digits=0)
            if cycles.get("unit") and cycles["unit"]["n"] < row["exported_seeds"]:
                unit += f" [{cycles['unit']['n']} seeds: UnIT found no percentile within 1 point in the others]"
            lines.append(f"| {name} | {target} | {row['exported_seeds']} | {_fmt(cycles.get('dense'), digits=0)} | "
                         f"{_fmt(cycles.get('zeroskip'), digits=0)} | {unit} | "
                         f"{_fmt(row.get('unit_speedup'), digits=2, suffix='x')} | "
                         f"{'yes' if row.get('bit_exact') else ('-' if not row['exported_seeds'] else 'NO')} | "
                         f"{why} |")
    return "\n".join(lines) + "\n"


def fused_sram_table(runs: dict[int, dict], methods: list[str], base_layers_sram: int) -> str:
    """Per seed and method, under a fused budget: the SRAM of the fused plan, its reduction against the
    base's fused SRAM and against the base's layer-by-layer SRAM (both), and the flash tables."""
    lines = ["", f"SRAM of the fused plan per seed; the base needs {base_layers_sram:,} B layer by layer:", "",
             "| seed | model | SRAM (fused) | / base fused | / base layer by layer | flash tables | flash budget |",
             "|---|---|---|---|---|---|---|"]
    for seed, run in runs.items():
        base = run["base"]
        for name in ["base", *methods]:
            row = base if name == "base" else run["methods"][name]
            lines.append(f"| {seed} | {name} | {row['sram_bytes']:,} B | {base['sram_bytes'] / row['sram_bytes']:.2f}x | "
                         f"{base_layers_sram / row['sram_bytes']:.2f}x | {row['flash_bytes']:,} B | "
                         f"{run['budget']['flash_bytes']:,} B |")
    return "\n".join(lines) + "\n"


def base_layers_sram(model_name: str, budget) -> int:
    """The base architecture's peak SRAM layer by layer at the budget's target (no weights needed)."""
    from unitprune.models import build_model
    from unitprune.shrink.resources import resources

    model = build_model(model_name)
    options = budget.with_(execution="layers").resource_options()
    return resources(model, tuple(model.input_shape), **options).sram_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--model", default="mnist-wide", help="unitprune shrink --model")
    parser.add_argument("--data", default="mnist", help="unitprune shrink --data")
    parser.add_argument("--data-root", metavar="PATTERN",
                        help="data folder, {seed} replaced by the seed (synth_speech: one synthesized set per seed)")
    parser.add_argument("--feature-pool", metavar="BxF", help="unitprune shrink --feature-pool (ds-cnn: 2x2)")
    parser.add_argument("--methods", nargs="+", default=["differentiable", "tp-magnitude", "tp-taylor", "dpf", "uniform"],
                        choices=METHODS)
    parser.add_argument("--preset", default="atmega2560", choices=sorted(PRESETS))
    parser.add_argument("--flash", metavar="SIZE", help="flash budget instead of the preset's (e.g. 32KB)")
    parser.add_argument("--sram", metavar="SIZE", help="peak SRAM budget instead of the preset's (e.g. 6KB)")
    parser.add_argument("--conv-block-rows", metavar="{plane,min,N}",
                        help="count SRAM (budget, base and every method) and export for conv accumulator blocks of "
                             "N output rows: plane (whole output planes, the default), min (1 row) or N "
                             "(unitprune shrink --conv-block-rows)")
    parser.add_argument("--execution", choices=("layers", "fused"), default="layers",
                        help="count SRAM (budget, base and every method) and export for this plan "
                             "(unitprune shrink --execution)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--start", choices=("base", "init"), default="base",
                        help="what differentiable and dpf prune (unitprune shrink --start)")
    parser.add_argument("--no-unit", dest="unit", action="store_false",
                        help="skip UnIT on each result (its skipped share and the UnIT firmware need it)")
    parser.add_argument("--measure", nargs="*", default=["avr", "msp430"], metavar="TARGET",
                        help="simulated MCUs to measure every result on (none: --measure with no target)")
    parser.add_argument("--base-root", metavar="DIR",
                        help="reuse DIR/seed-N/base.pt as each seed's trained base (no base training: no time ratio)")
    parser.add_argument("--run-root", default="runs/bench-shrink")
    parser.add_argument("--out", default="benchmarks/results/shrink.json")
    add_executor_options(parser, default_workers=1)  # each seed's tasks; --resume: continue unfinished seeds
    parser.set_defaults(no_progress=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    budget = PRESETS[args.preset]
    if args.flash:
        budget = budget.with_(flash_bytes=parse_size(args.flash))
    if args.sram:
        budget = budget.with_(sram_bytes=parse_size(args.sram))
    try:
        budget = budget.with_(conv_block_rows=parse_conv_block_rows(args.conv_block_rows) or None)
    except ValueError as exc:
        parser.error(f"--conv-block-rows: {exc}")
    budget = budget.with_(execution=args.execution)
    try:
        executor = executor_config(args)
    except CLIError as exc:
        parser.error(str(exc))
    if executor.kind == "ray":  # one Ray session for every seed (the executor uses one already started)
        import ray

        ray.init(address=executor.ray_address, **({} if executor.ray_address else {"num_cpus": executor.workers}))
    runs, details = {}, {}
    for seed in args.seeds:
        run_dir = Path(args.run_root) / f"seed-{seed}"
        existing = run_dir / "shrink.json"
        unfinished = existing.exists() and not (run_dir / "report.md").exists()  # report.md is written last
        if unfinished and not args.resume:
            raise SystemExit(f"{run_dir} holds an unfinished run (shrink.json but no report.md): pass --resume to "
                             "continue it, or remove the folder")
        if existing.exists() and not unfinished:  # never rerun a finished run; add what it lacks
            runs[seed] = json.loads(existing.read_text())
            wanted = {k: getattr(budget, k) for k in runs[seed]["budget"]}
            if runs[seed]["budget"] != wanted:
                raise SystemExit(f"{run_dir} was run at the budget {runs[seed]['budget']}, not {wanted}: "
                                 "choose another --run-root")
            recorded_config = json.loads((run_dir / "details.json").read_text())["config"]
            if recorded_config.get("start", "init") != args.start:  # runs before --start began from the init
                raise SystemExit(f"{run_dir} was run with --start {recorded_config.get('start', 'init')}, not "
                                 f"{args.start}: choose another --run-root")
            recorded = recorded_config["budget"].get("conv_block_rows")
            if recorded != budget.conv_block_rows:
                raise SystemExit(f"{run_dir} was run with conv_block_rows={recorded!r}, not "
                                 f"{budget.conv_block_rows!r}: choose another --run-root")
            if recorded_config["budget"].get("execution", "layers") != budget.execution:
                raise SystemExit(f"{run_dir} was run with execution={recorded_config['budget'].get('execution', 'layers')!r}, "
                                 f"not {budget.execution!r}: choose another --run-root")
            if args.measure and any("measured" not in m for m in [runs[seed]["base"], *runs[seed]["methods"].values()]):
                runs[seed] = add_measurements(run_dir, tuple(args.measure))
        else:
            weights = str(Path(args.base_root) / f"seed-{seed}" / "base.pt") if args.base_root else None
            pool = tuple(int(v) for v in args.feature_pool.lower().split("x")) if args.feature_pool else None
            runs[seed] = run_shrink_experiment(ExperimentConfig(
                model=args.model, data=args.data, feature_pool=pool,
                data_root=args.data_root.format(seed=seed) if args.data_root else None,
                budget=budget, epochs=args.epochs, methods=tuple(args.methods), unit=args.unit, seed=seed,
                weights=weights, start=args.start, progress=False, run_dir=str(run_dir),
                measure=tuple(args.measure)), executor)
        details[seed] = json.loads((run_dir / "details.json").read_text())
    methods = [m for m in args.methods if all(m in runs[s]["methods"] for s in runs)]
    summary = summarize(runs, details, methods)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = details[args.seeds[0]].get("machine", {})
    out.write_text(json.dumps({"model": args.model, "data": args.data, "preset": args.preset,
                               "budget": runs[args.seeds[0]]["budget"], "machine": machine,
                               "conv_block_rows": budget.conv_block_rows or "plane", "execution": budget.execution,
                               "epochs": args.epochs,
                               "seeds": args.seeds, "summary": summary,
                               "runs": {str(k): v for k, v in runs.items()}}, indent=2))
    text = markdown(summary)
    if budget.execution == "fused":  # both reductions: against the base fused and layer by layer
        text += fused_sram_table(runs, methods, base_layers_sram(args.model, budget))
    text += "\nMachine: " + ", ".join(f"{k} {v}" for k, v in machine.items()) + "\n"
    out.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
