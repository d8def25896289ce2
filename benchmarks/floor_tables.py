"""The markdown tables of docs/mcu.md ("Dense int8 at the instruction floor") and docs/kernels.md
("Dense int8 kernels at the floor") from the benchmark JSON in docs/results/kernels_floor/:
``mnist_dense_kernels_old.json`` / ``_new.json`` (benchmarks/conv_block_rows.py),
``conv_dense_s8_mcu.json``, ``linear_dense_s8_mcu.json``, ``requantize_s8_mcu.json`` and
``requantize_run_s8_mcu.json`` (benchmarks/requantize_run_s8_mcu.py).

Usage: ``python benchmarks/floor_tables.py [--results docs/results/kernels_floor]`` (prints them).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results" / "kernels_floor"
NAMES = {"avr": "AVR", "msp430": "MSP430", "msp430-hwmult": "MSP430+hwmult"}


def _load(results: Path, name: str) -> dict:
    return json.loads((results / name).read_text())


def whole_model(results: Path) -> str:
    """Per target: M cycles per inference old -> new, per layer, flash and SRAM."""
    old = {row["target"]: row for row in _load(results, "mnist_dense_kernels_old.json")["rows"]}
    new = {row["target"]: row for row in _load(results, "mnist_dense_kernels_new.json")["rows"]}
    lines = ["| target | old | new | speed-up | conv1 old -> new | conv2 old -> new | pools old -> new | "
             "fc old -> new | flash B old / new | SRAM B old / new |", "|---|---|---|---|---|---|---|---|---|---|"]
    for target, label in NAMES.items():
        o, n = old[target], new[target]
        lo, ln = o["cycles_per_layer"], n["cycles_per_layer"]

        def pair(*names):
            return f"{sum(lo[k] for k in names) / 1e6:.2f} -> {sum(ln[k] for k in names) / 1e6:.2f}"
        lines.append(f"| {label} | {o['cycles'] / 1e6:.2f} | {n['cycles'] / 1e6:.2f} | "
                     f"{o['cycles'] / n['cycles']:.2f}x | {pair('conv1')} | {pair('conv2')} | "
                     f"{pair('pool1', 'pool2')} | {pair('fc')} | {o['flash_bytes']:,} / {n['flash_bytes']:,} | "
                     f"{o['sram_bytes']:,} / {n['sram_bytes']:,} |")
    return "\n".join(lines)


def conv_layers(results: Path) -> str:
    """Per layer and target: kernel / accumulation cycles per MAC, requantization cycles per output."""
    data = _load(results, "conv_dense_s8_mcu.json")
    titles = {"conv1": "conv1 1x28x28 -> 6x24x24, 5x5", "conv2": "conv2 6x12x12 -> 16x8x8, 5x5",
              "depthwise3x3": "depthwise 3x3, 8x12x12, padding 1",
              "conv1_nonneg": "conv1, inputs in [0, 127] (the demo's)", "conv2_nonneg": "conv2, inputs in [0, 127] (the demo's)",
              "depthwise3x3_nonneg": "depthwise 3x3, inputs in [0, 127]"}
    lines = ["| layer | MACs | " + " | ".join(f"{label} kernel / accumulation / requant."
                                               for label in NAMES.values()) + " |", "|---|---|---|---|---|"]
    for name, title in titles.items():
        cells = []
        for target in NAMES:
            layer = data["builds"][target]["layers"][name]
            cells.append(f"{layer['cycles_per_mac']:.1f} / {layer['floor_style_accumulation_cycles_per_mac']:.1f} / "
                         f"{layer['requantize_cycles_per_output']:.0f}")
        macs = data["builds"]["avr"]["layers"][name]["macs"]
        lines.append(f"| {title} | {macs:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def zeroskip(results: Path) -> str:
    data = _load(results, "conv_dense_s8_mcu.json")
    lines = ["| layer | " + " | ".join(f"{label} 50 % / 85 %" for label in NAMES.values()) + " |", "|---|---|---|---|"]
    for name in ("conv1", "conv2", "depthwise3x3"):
        cells = [" / ".join(f"{data['builds'][t]['zeroskip'][f'{name}:zeroskip_{p}']['speedup_over_new_dense']:.2f}"
                            for p in (50, 85)) for t in NAMES]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def linear_and_requant(results: Path) -> str:
    linear = _load(results, "linear_dense_s8_mcu.json")
    requant = _load(results, "requantize_s8_mcu.json")
    lines = ["| | " + " | ".join(NAMES.values()) + " |", "|---|---|---|---|",
             "| fc 256 -> 10, cycles per MAC (with its 10 requantizations) | " +
             " | ".join(f"{linear['builds'][t]['layers']['fc']['cycles_per_mac']:.1f}" for t in NAMES) + " |"]
    for label, key in (("general requantization routine alone (linear and static-sparse kernels), cycles per case", "raw"),
                       ("general requantize + clamp (C call per output), cycles per case", "clamp"),
                       ("the same under ReLU (act_min 0), cycles per case", "relu")):
        lines.append(f"| {label} ({requant['cases']:,} edge/random cases) | " +
                     " | ".join(f"{requant['builds'][t]['cycles_per_case'][key]:.0f}" for t in NAMES) + " |")
    return "\n".join(lines)


def requantize_run(results: Path) -> str:
    """The kernels' output stage per output (benchmarks/requantize_run_s8_mcu.py): the worst case and
    the mean over the edge cases of the fast form, the general routine's worst case, the demo
    model's mean per layer and over all its outputs; then the same with the threshold tables (MSP430)."""
    data = _load(results, "requantize_run_s8_mcu.json")
    runs = data["targets"]
    lines = ["| cycles per output | " + " | ".join(NAMES.values()) + " |", "|---|---|---|---|"]

    def row(label, value):
        lines.append(f"| {label} | " + " | ".join(value(runs[t]) for t in NAMES) + " |")

    row("fast form, worst case (edge cases; MSP430: none, the general routine)",
        lambda r: f"**{r['fast_worst']}**" if r["fast_form"] else f"{r['fast_worst']} (general)")
    row("fast form, mean over the edge cases",
        lambda r: f"{r['fast_mean_edge_cases']:.1f}" if r["fast_form"] else f"{r['fast_mean_edge_cases']:.1f} (general)")
    row("general routine (other multipliers/shifts), worst case", lambda r: f"{r['general_worst']}")
    for name in runs["avr"]["mnist"]["layers"]:
        layer = runs["avr"]["mnist"]["layers"][name]
        row(f"MNIST demo {name}: mean ({layer['outputs']:,} outputs, runs of {layer['run']}, "
            f"{100 * layer['relu_shortcut']:.0f} % <= 0)",
            lambda r, name=name: f"{r['mnist']['layers'][name]['cycles_per_output']:.1f}")
    row(f"MNIST demo, mean over all {runs['avr']['mnist']['outputs']:,} outputs (each run's call included)",
        lambda r: f"{r['mnist']['mean_cycles_per_output']:.1f}")

    def table(value):  # the threshold tables (MSP430 exports; AVR: none)
        return lambda r: value(r["table"]) if "table" in r else "-"

    row("threshold table (channels with one), worst case", table(lambda t: f"**{t['table_worst']}**"))
    row("threshold table, mean over the edge cases", table(lambda t: f"{t['table_mean_edge_cases']:.1f}"))
    for name in runs["avr"]["mnist"]["layers"]:
        row(f"MNIST demo {name} with the exported tables: mean",
            table(lambda t, name=name: f"{t['mnist']['layers'][name]['cycles_per_output']:.1f}"
                  + ("" if t["mnist"]["layers"][name]["table_channels"] else " (no table)")))
    row("MNIST demo with the exported tables, mean over all outputs",
        table(lambda t: f"{t['mnist']['mean_cycles_per_output']:.1f}"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    for title, table in (("whole model (docs/mcu.md)", whole_model), ("conv layers (docs/kernels.md)", conv_layers),
                         ("zero-skipping vs dense (docs/kernels.md)", zeroskip),
                         ("linear and requantization (docs/kernels.md)", linear_and_requant),
                         ("the kernels' output stage (docs/kernels.md)", requantize_run)):
        print(f"<!-- {title} -->\n{table(args.results)}\n")


if __name__ == "__main__":
    main()
