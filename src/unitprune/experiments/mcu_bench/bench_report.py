"""The files of an MCU benchmark run: ``mcu.json``, ``mcu.md``, ``mcu_latency.png`` and ``mcu_energy.png``.

The figures follow the paper's Figures 6 (latency) and 7 (energy): one panel per target, one bar
per method. Energy is an ESTIMATE (cycles x a datasheet figure); the figure, its title and the
table say so and name the source.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402

from .fastest import fastest_markdown  # noqa: E402

__all__ = ["markdown", "plot", "write_report"]

_COLORS = {"dense": "black", "zeroskip": "tab:gray", "ttp": "tab:red", "unit-bitshift": "tab:cyan",
           "unit-bintree": "tab:olive", "ttp+unit": "tab:brown",
           "ttp-macs": "tab:pink", "ttp-macs+unit": "tab:purple"}


def _by_target(document: dict) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {}
    for row in document["rows"]:
        rows.setdefault(row["target"], []).append(row)
    return rows


def _speedup(row: dict, rows: list[dict]) -> str:
    dense = next((r for r in rows if r["method"] == "dense"), None)
    return f"{dense['cycles'] / row['cycles']:.2f}x" if dense and row["cycles"] else ""


def _confidence_clause(confidence: float) -> str:
    if not confidence:
        return " (observed drop, no confidence)"
    return (f" at confidence {confidence:g} (exact upper bound of the paired int8 validation drop, "
            "unitprune.accuracy_budget)")


def _selection_section(document: dict) -> list[str]:
    """Per method: the chosen knob's int8 validation drop, its bound, and the int8 test drop beside it."""
    seen, rows = set(), []
    for d in document["details"]:
        selection = (d.get("point") or {}).get("selection")
        if selection is None or d["method"] in seen:
            continue
        seen.add(d["method"])
        knob = next(r["knob"] for r in document["rows"] if r["method"] == d["method"])
        rows.append(f"| {d['method']} | {knob:g} | {selection['val_drop']:+.2f} | {selection['val_drop_bound']:+.2f} | "
                    f"{selection['confidence']:g} | {selection['test_drop']:+.2f} |"
                    + (" none admitted: mildest knob |" if selection["fallback"] else " |"))
    if not rows:
        return []
    return ["## Operating points (int8, points vs dense int8)", "",
            "| method | knob | val drop | val drop bound | confidence | test drop | note |",
            "|---|---|---|---|---|---|---|", *rows, ""]


def markdown(document: dict) -> str:
    """``mcu.md``: the rows per target, per-layer cycles, the energy source, what was not measured."""
    lines = [f"# MCU benchmark: {document['model']} ({document.get('dataset', '')})", "",
             f"Cycles: median over {document['config']['samples']} test samples per inference (per layer: "
             f"{document['config']['layer_samples']}), exact simulator counts. Every output was checked bit for "
             "bit against the host build of the same C, itself checked against the integer reference. Operating "
             f"points: most aggressive knob within {document['config']['budget_points']:g} point(s) of the "
             "quantized dense model's validation accuracy"
             f"{_confidence_clause(document['config'].get('confidence', 0.0))}. **Energy is an estimate** (cycles x datasheet figure, "
             "sources below). Flash excludes the embedded test samples; SRAM = static data+bss + measured stack.",
             ""]
    for target, rows in _by_target(document).items():
        lines += [f"## {target}", "",
                  "| method | knob | int8 test acc. | MACs skipped | cycles | speed-up vs dense | energy uJ (estimate) "
                  "| flash B | SRAM B | checked | bit-exact |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            knob = "" if r["knob"] is None else f"{r['knob']:g}"
            lines.append(f"| {r['method']} | {knob} | {100 * r['quantized_accuracy']:.2f}% | "
                         f"{100 * r['macs_skipped_fraction']:.1f}% | {r['cycles']:,} | {_speedup(r, rows)} | "
                         f"{r['energy_uj_estimate']:.1f} | {r['flash_bytes']:,} | {r['sram_bytes']:,} | "
                         f"{r['samples_checked']} | {'yes' if r['bit_exact'] else 'NO'} |")
        layers = list(dict.fromkeys(k for r in rows for k in r["cycles_per_layer"]))  # FATReLU adds ops
        lines += ["", "Cycles per layer (median):", "", "| method | " + " | ".join(layers) + " |",
                  "|---|" + "---|" * len(layers)]
        for r in rows:
            lines.append(f"| {r['method']} | " + " | ".join(f"{r['cycles_per_layer'].get(k, 0):,}" for k in layers)
                         + " |")
        lines.append("")
    lines += _selection_section(document)
    lines += fastest_markdown(document)
    lines += ["## Energy estimate sources", ""]
    lines += [f"* {t}: {e['nj_per_cycle']:.3f} nJ/cycle, {e['source']}" for t, e in document["energy"].items()]
    lines += ["", "## Not measured", ""]
    lines += [f"* {m}: {reason}" for m, reason in document["not_measured"].items()] or ["* none"]
    if document.get("not_fitted"):
        lines += ["", "## Does not fit the target", ""]
        lines += [f"* {r['method']} on {r['target']}: {r['why']}" for r in document["not_fitted"]]
    tools = document.get("tools", {})
    lines += ["", "## Tools", "", *[f"* {t}: {json.dumps(v)}" for t, v in tools.items()], ""]
    return "\n".join(lines)


def plot(document: dict, path: Path, key: str) -> None:
    """One panel per target, one bar per method, of ``key`` (``cycles`` or ``energy_uj_estimate``)."""
    by_target = _by_target(document)
    fig, axes = plt.subplots(1, len(by_target), figsize=(4.2 * len(by_target), 4.2), dpi=110, squeeze=False)
    for ax, (target, rows) in zip(axes[0], by_target.items()):
        methods = [r["method"] for r in rows]
        scale = 1e6 if key == "cycles" else 1.0
        values = [r[key] / scale for r in rows]
        ax.bar(range(len(rows)), values, color=[_COLORS.get(m, "tab:blue") for m in methods])
        for i, r in enumerate(rows):
            ax.text(i, values[i], f"{100 * r['macs_skipped_fraction']:.0f}%", ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(rows)), methods, rotation=40, ha="right", fontsize=8)
        ax.set_title(target, fontsize=10)
        ax.set_ylabel("M cycles per inference" if key == "cycles" else "uJ per inference (ESTIMATE)")
        ax.grid(True, axis="y", alpha=0.3)
    what = "latency" if key == "cycles" else "energy (estimate: cycles x datasheet nJ/cycle)"
    fig.suptitle(f"{document['model']}: {what} per method (bar labels: MACs skipped)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(document: dict, run_dir: Path) -> None:
    """Write ``mcu.json``, ``mcu.md``, ``mcu_latency.png`` and ``mcu_energy.png`` into ``run_dir``."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "mcu.json").write_text(json.dumps(document, indent=2) + "\n")
    (run_dir / "mcu.md").write_text(markdown(document))
    plot(document, run_dir / "mcu_latency.png", "cycles")
    plot(document, run_dir / "mcu_energy.png", "energy_uj_estimate")
