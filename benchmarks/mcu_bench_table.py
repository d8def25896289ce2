"""The Figure 6/7 tables of docs/mcu.md ("Whole models") from a ``unitprune mcu-bench`` run, with the
UnIT conv kernel each row ran per layer, the fastest configuration within the budget per target,
UnIT against TTP as measured, and the kept fractions at which each UnIT conv kernel beats dense
and the TTP model's layer (from ``benchmarks/unit_kernels_mcu.py``'s conv2 measurements).

Usage: ``PYTHONPATH=src python benchmarks/mcu_bench_table.py RUN_DIR [--kernels
docs/results/unit_kernels/unit_kernels_mcu.json] [--output docs/results/mcu_bench/mcu_bench.md]``
(RUN_DIR from ``unitprune mcu-bench -v [OPTIONS] --run-dir RUN_DIR``, OPTIONS repeated in the header
with ``--bench-options``; rows in the run's ``not_fitted`` show "does not fit" and their reason; also
copies its mcu.json and the latency / energy figures beside the Markdown).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from unitprune.experiments.mcu_bench.fastest import fastest_table

HERE = Path(__file__).resolve().parent
KERNELS_JSON = HERE.parent / "docs" / "results" / "unit_kernels" / "unit_kernels_mcu.json"
OUTPUT = HERE.parent / "docs" / "results" / "mcu_bench" / "mcu_bench.md"
PLAN_NAMES = {"skipfree": "skip-free", "sparse": "sparse", "unit": "per-position", "dense": "dense", "static": "static",
              "sorted": "early-exit"}
#: The benchmark layers of the table: (layer, what it is, the kernels to show).
PAY_LAYERS = (("conv2", "conv2 shape 6x12x12 -> 16x8x8, 5x5, tau = T // |w|", ("skipfree", "unit")),
              ("conv2_pruned", "the same with 77 % zero weights, tau = T >> bit_length(|w|)",
               ("sparse", "skipfree", "unit")))


def _kernels(document: dict, method: str, target: str) -> str:
    detail = next(d for d in document["details"] if d["method"] == method and d["target"] == target)
    plan = detail["checks"].get("unit_kernel_plan")
    if not plan:
        return ""
    return ", ".join(f"{layer} {_plan_name(c)}" for layer, c in plan["layers"].items())


def _plan_name(layer: dict) -> str:
    """A layer's planned kernel by name; a linear layer (its candidates ``unit`` and ``sorted``)
    on ``unit`` runs the unsorted UnIT linear kernel."""
    if layer["kernel"] == "unit" and "sorted" in layer["predicted_cycles"]:
        return "unsorted"
    return PLAN_NAMES.get(layer["kernel"], layer["kernel"])  # e.g. sparse_tau: its own name


def _breakeven(points: list[dict], kernel: str, cycles: float) -> str:
    """The largest measured kept fraction at which ``kernel`` takes fewer cycles than ``cycles``."""
    kept = [p["kept_fraction"] for p in points if p[kernel] < cycles]
    return f"{100 * max(kept):.1f} %" if kept else "never (none measured)"


def tables(document: dict, kernels: dict | None) -> str:
    targets = document["config"]["targets"]
    rows = {(r["method"], r["target"]): r for r in document["rows"]}
    methods = list(dict.fromkeys(r["method"] for r in document["rows"]))
    dense = {t: rows.get(("dense", t)) for t in targets}
    lines = ["| method | knob | int8 test acc. | MACs skipped | "
             + " | ".join(f"{t} M cycles" for t in targets) + " | "
             + " | ".join(f"{t} uJ (est.)" for t in targets) + " | UnIT conv kernels (" + ", ".join(targets) + ") |",
             "|---|---|---|---|" + "---|" * (2 * len(targets) + 1)]
    for method in methods:
        measured = [t for t in targets if (method, t) in rows]  # the others do not fit (listed below)
        first = rows[(method, measured[0])]
        knob = "" if first["knob"] is None else f"{first['knob']:g}"
        accuracies = sorted({f"{100 * rows[(method, t)]['quantized_accuracy']:.1f}%" for t in measured})
        skipped = sorted({f"{100 * rows[(method, t)]['macs_skipped_fraction']:.1f}%" for t in measured})
        cycles, energy = [], []
        for t in targets:
            r = rows.get((method, t))
            if r is None:
                cycles.append("does not fit")
                energy.append("")
                continue
            ratio = f" ({dense[t]['cycles'] / r['cycles']:.2f}x)" if dense[t] else ""
            cycles.append(f"{r['cycles'] / 1e6:.2f}{ratio}" + ("" if r["bit_exact"] else " NOT bit-exact"))
            energy.append(f"{r['energy_uj_estimate']:,.0f}")
        plans = sorted({_kernels(document, method, t) for t in measured} - {""})
        lines.append(f"| {method} | {knob} | {' / '.join(accuracies)} | {' / '.join(skipped)} | "
                     + " | ".join(cycles) + " | " + " | ".join(energy) + f" | {' / '.join(plans)} |")
    lines += ["", "Speed-ups against dense on the same target. Accuracy / skipped per target differ only where "
              "a layer was planned dense on that target (its UnIT off).", ""]
    if document.get("not_fitted"):
        lines += ["**Does not fit the target** (no firmware built):", ""]
        lines += [f"* {r['method']} on {r['target']}: {r['why']}" for r in document["not_fitted"]]
        lines.append("")

    lines += fastest_table(document)
    lines += ["**UnIT against TTP, measured** (cycles per inference, same budget):", ""]
    # each TTP allocation against UnIT on its own model (ttp: also UnIT alone and on FATReLU)
    pairs = (("ttp", ("unit-bitshift", "ttp+unit", "fatrelu+unit")), ("ttp-macs", ("ttp-macs+unit",)))
    for t in targets:
        parts, layer_lines = [], []
        for base, methods in pairs:
            ttp = rows.get((base, t))
            for method in methods:
                r = rows.get((method, t))
                if ttp and r:
                    ratio = ttp["cycles"] / r["cycles"]
                    parts.append(f"{method} {'faster' if ratio > 1 else 'slower'} than {base} ({ratio:.2f}x: "
                                 f"{r['cycles'] / 1e6:.2f} M against {ttp['cycles'] / 1e6:.2f} M)")
            combo = f"{base}+unit"
            combined = rows.get((combo, t))
            if ttp and combined:
                layers = [f"{layer} {combined['cycles_per_layer'][layer] / 1e6:.2f} M against "
                          f"{ttp['cycles_per_layer'][layer] / 1e6:.2f} M" for layer in ttp["cycles_per_layer"]
                          if layer in combined["cycles_per_layer"] and ttp["cycles_per_layer"][layer] > 0]
                layer_lines.append(f"  {combo} per layer ({_kernels(document, combo, t)}): " + "; ".join(layers) + ".")
        if parts:
            lines.append(f"* {t}: " + "; ".join(parts) + ".")
        lines += layer_lines
    lines.append("")

    if kernels:
        lines += ["**Where each UnIT conv kernel starts to pay** (`benchmarks/unit_kernels_mcu.py`, exact "
                  "cycles, the MNIST conv2 shape): the largest measured kept fraction (executed / dense MACs) at "
                  "which the kernel takes fewer cycles than the dense kernel on the same layer, and than the TTP "
                  "model's conv2 in this run (its static-sparse kernel).", "",
                  "| target | layer | kernel | beats dense at kept <= | beats TTP's conv2 at kept <= |",
                  "|---|---|---|---|---|"]
        for t in targets:
            build = kernels["builds"].get(t)
            if not build:
                continue
            ttp = rows.get(("ttp", t))
            ttp_conv2 = ttp["cycles_per_layer"].get("conv2") if ttp else None
            for layer, what, shown in PAY_LAYERS:
                if layer not in build["layers"]:
                    continue
                points = build["layers"][layer]["points"]
                for kernel in shown:
                    beats_dense = _breakeven(points, kernel, points[0]["dense"])
                    beats_ttp = _breakeven(points, kernel, ttp_conv2) if ttp_conv2 else ""
                    lines.append(f"| {t} | {layer} ({what}) | {PLAN_NAMES[kernel]} | {beats_dense} | {beats_ttp} |")
        lines.append("")
    return "\n".join(lines)


def _shown(path: Path) -> str:
    """``path`` relative to the repository when inside it (as the command is typed there)."""
    try:
        return str(path.resolve().relative_to(HERE.parent))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--kernels", type=Path, default=KERNELS_JSON)
    parser.add_argument("--no-kernels", action="store_true",
                        help="leave out the UnIT conv kernels' break-even table (measured on the MNIST conv2 shape: "
                             "not comparable with another model's layers)")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--bench-options", default="", help="the run's other mcu-bench options, for the header "
                                                             "(e.g. '--task kws --targets avr --samples 10')")
    args = parser.parse_args(argv)
    document = json.loads((args.run_dir / "mcu.json").read_text())
    kernels = json.loads(args.kernels.read_text()) if args.kernels.is_file() and not args.no_kernels else None
    environment = document.get("environment", {})
    options = f"{args.bench_options} " if args.bench_options else ""
    command = f"PYTHONPATH=src python benchmarks/mcu_bench_table.py {args.run_dir}"
    if args.output.resolve() != OUTPUT:
        command += f" --output {_shown(args.output)}"
    if args.no_kernels:
        command += " --no-kernels"
    if args.bench_options:
        command += f" --bench-options '{args.bench_options}'"
    head = [f"# Whole models on the MCUs: {document['model']} ({document.get('dataset', '')})", "",
            f"Generated by `{command}` from a "
            f"`unitprune mcu-bench -v {options}--run-dir {args.run_dir}` run ({document['config']['samples']} test samples "
            f"per firmware, median cycles, exact simulator counts; every row bit-exact: "
            f"{all(r['bit_exact'] for r in document['rows'])}; {document['seconds']:.0f} s wall in its last invocation: a `--resume` counts only its own tasks). "
            f"Environment: "
            f"{json.dumps(environment)}. Tools: {json.dumps(document.get('tools', {}))}. Energy is an ESTIMATE "
            "(cycles x datasheet figure).", ""]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(head) + "\n" + tables(document, kernels))
    shutil.copyfile(args.run_dir / "mcu.json", args.output.with_suffix(".json"))
    for figure in ("mcu_latency.png", "mcu_energy.png"):  # the Figure 6 / 7 panels of the run
        if (args.run_dir / figure).is_file():
            shutil.copyfile(args.run_dir / figure, args.output.parent / figure)
    print(f"wrote {args.output}, {args.output.with_suffix('.json')} and the run's figures beside them")


if __name__ == "__main__":
    main()
