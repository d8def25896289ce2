"""``report.md`` and the two figures of a ``unitprune shrink`` run folder.

* ``training.png``: the differentiable method's peak SRAM, flash and MACs (hard, with the
  scheduled budget) and validation accuracy per epoch.
* ``accuracy_vs_resources.png``: test accuracy against each resource, one point per method and
  budget (the main budget and any ``--sweep-sram`` budgets), the base model and the limits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display needed; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402

from ...shrink.resources import RESOURCE_NAMES  # noqa: E402

__all__ = ["write_report", "render_markdown", "measured_markdown"]

_LABELS = {"sram_bytes": "peak SRAM (bytes)", "flash_bytes": "flash (bytes)", "macs": "MACs"}
_COLORS = {"differentiable": "tab:green", "tp-magnitude": "tab:blue", "tp-taylor": "tab:cyan", "dpf": "tab:orange",
           "ttp": "tab:red"}


def _n(value) -> str:
    return "-" if value is None else f"{value:,}"


def render_markdown(document: dict, details: dict) -> str:
    budget, base = document["budget"], document["base"]
    lines = ["# unitprune shrink", "",
             "Budget: " + ", ".join(f"{k} {_n(v)}" for k, v in budget.items())
             + f" (SRAM of the {document.get('execution', 'layers')} plan). Accuracy is on the test split.",
             "", "| method | accuracy | flash (B) | peak SRAM (B) | MACs | training (s) | fits |",
             "|---|---|---|---|---|---|---|",
             f"| base | {100 * base['accuracy']:.2f}% | {_n(base['flash_bytes'])} | {_n(base['sram_bytes'])} | "
             f"{_n(base['macs'])} | {base['train_seconds']:.1f} | "
             f"{'yes' if all(v is None or base[k] <= v for k, v in budget.items()) else 'no'} |"]
    for name, m in document["methods"].items():
        lines.append(f"| {name} | {100 * m['accuracy']:.2f}% | {_n(m['flash_bytes'])} | {_n(m['sram_bytes'])} | "
                     f"{_n(m['macs'])} | {m['train_seconds']:.1f} | {'yes' if m['fits_budget'] else 'no'} |")
    lines += ["", "Reduction against the base model (base / method):", "",
              "| method | flash | peak SRAM | MACs |", "|---|---|---|---|"]
    for name, m in document["methods"].items():
        lines.append(f"| {name} | " + " | ".join(f"{base[k] / m[k]:.1f}x" for k in ("flash_bytes", "sram_bytes", "macs"))
                     + " |")
    if "differentiable" in document["methods"] and base["train_seconds"] > 0:
        ratio = document["methods"]["differentiable"]["train_seconds"] / base["train_seconds"]
        lines += ["", f"Differentiable pruning run / base training, same epochs, same process: {ratio:.2f}x wall time."]
    start = details.get("config", {}).get("start", "init")  # runs before --start began from the initialisation
    where = "the trained base" if start == "base" else "the base's initialisation"
    lines += ["", "Notes: `tp-*` and `ttp` start from the trained base (their time excludes its training); "
              f"`differentiable` and `dpf` start from {where}. `ttp` is unstructured: its flash "
              "and SRAM are those of the dense int8 export, its MACs count only nonzero weights.", ""]
    if details.get("unit"):
        lines += ["## UnIT on each result (largest calibration percentile within 1 point of the model's own "
                  "validation accuracy)", "", "| model | percentile | test accuracy | MACs skipped |", "|---|---|---|---|"]
        for name, u in details["unit"].items():
            p = "-" if u["percentile"] is None else f"{u['percentile']:g}"
            lines.append(f"| {name} | {p} | {100 * u['test_accuracy']:.2f}% (dense {100 * u['dense_test_accuracy']:.2f}%) "
                         f"| {100 * u['skipped_fraction']:.1f}% |")
        lines.append("")
    lines += measured_markdown(document)
    history = details.get("methods", {}).get("differentiable", {}).get("history")
    if history:
        lines += ["## Differentiable method per epoch", "",
                  "| epoch | phase | val accuracy | peak SRAM | flash | MACs | channels | s |", "|---|---|---|---|---|---|---|---|"]
        for h in history:
            lines.append(f"| {h['epoch']} | {h['phase']} | {100 * h['val_accuracy']:.2f}% | {_n(h['sram_bytes'])} | "
                         f"{_n(h['flash_bytes'])} | {_n(h['macs'])} | {'/'.join(str(v) for v in h['channels'].values())} "
                         f"| {h['seconds']:.1f} |")
        lines.append("")
    machine = details.get("machine", {})
    if machine:
        lines += ["Machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()) + ".", ""]
    lines += ["![training](training.png)", "", "![accuracy vs resources](accuracy_vs_resources.png)", ""]
    return "\n".join(lines)


def measured_markdown(document: dict) -> list[str]:
    """The ``measured`` objects (``--measure``) as a table: one row per model, target and kernels."""
    models = {"base": document["base"], **document["methods"]}
    measured = {name: m["measured"] for name, m in models.items() if "measured" in m}
    if not measured:
        return []
    lines = ["## Measured on simulated MCUs (int8 export, `--measure`)", "",
             "Firmware built from the export and run in simavr (ATmega2560) / mspdebug's simulator (MSP430) on the "
             "first test samples; cycles are the median per inference; latency at the clock shown; flash = ELF "
             "text+data without the embedded samples (model tables alone in brackets); SRAM = ELF data+bss, peak = "
             "with the measured stack; int8 accuracy on the whole test split (integer reference) and on the "
             "samples the firmware ran; bit-exact = firmware = host build = NumPy integer reference.", "",
             "| model | target | kernels | cycles | vs dense | latency (ms) | flash B (tables) | SRAM B static / peak "
             "| int8 test acc. | MACs skipped | samples acc. | bit-exact |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, m in measured.items():
        for target, entry in m["targets"].items():
            if not entry["exported"]:
                lines.append(f"| {name} | {target} | not exported: {entry['why']} |||||||||")
                continue
            for kernels, v in ((k, entry[k]) for k in ("dense", "zeroskip", "unit") if k in entry):
                if "cycles" not in v:
                    lines.append(f"| {name} | {target} | {kernels} | not exported: {v['why']} ||||||||")
                    continue
                variant = m["variants"][kernels]
                knob = f" (p{m['unit_percentile']:g})" if kernels == "unit" else ""
                latency = " / ".join(f"{ms:,.1f} @{clock}" for clock, ms in v["latency_ms"].items())
                lines.append(
                    f"| {name} | {target} | {kernels}{knob} | {v['cycles']:,} | "
                    f"{entry['dense']['cycles'] / v['cycles']:.2f}x | {latency} | {v['flash_bytes']:,} "
                    f"({v['flash_tables_bytes']:,}) | {v['sram_static_bytes']:,} / {v['sram_peak_bytes']:,} | "
                    f"{100 * variant['int8_test_accuracy']:.2f}% | {100 * variant['macs_skipped_fraction']:.1f}% | "
                    f"{100 * v['sample_accuracy']:.0f}% of {v['samples']} | {'yes' if v['bit_exact'] else 'NO'} |")
    return lines + [""]


def plot_training(history: list[dict], path: Path) -> None:
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.4), dpi=110)
    epochs = [h["epoch"] for h in history]
    for ax, key in zip(axes, RESOURCE_NAMES):
        ax.plot(epochs, [h[key] for h in history], "o-", color="tab:green", label="model")
        if f"budget_{key}" in history[0]:
            ax.plot(epochs, [h[f"budget_{key}"] for h in history], "--", color="gray", label="scheduled budget")
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(_LABELS[key])
        ax.legend(fontsize=7)
    axes[3].plot(epochs, [100 * h["val_accuracy"] for h in history], "o-", color="black")
    axes[3].set_xlabel("epoch")
    axes[3].set_title("validation accuracy (%)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _short(value: float, _position=None) -> str:
    """Tick label: 8K, 256K, 1.5M (K = 1000 for MACs and bytes alike: a label, not a unit)."""
    for size, suffix in ((1e6, "M"), (1e3, "K")):
        if abs(value) >= size:
            return f"{value / size:g}{suffix}"
    return f"{value:g}"


def plot_accuracy_vs_resources(document: dict, points: list[dict], path: Path) -> None:
    """Test accuracy against each resource (log x), one point per method and budget; the budget of
    each resource is a labelled dashed line; a few plain tick labels per axis (no overlaps)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.4), dpi=110)
    base = document["base"]
    for ax, key in zip(axes, RESOURCE_NAMES):
        for name in dict.fromkeys(p["method"] for p in points):
            mine = [p for p in points if p["method"] == name]
            ax.scatter([p[key] for p in mine], [100 * p["accuracy"] for p in mine], label=name,
                       color=_COLORS.get(name), s=28)
        ax.scatter([base[key]], [100 * base["accuracy"]], marker="*", s=120, color="black", label="base")
        limit = document["budget"].get(key)
        if limit:
            ax.axvline(limit, color="gray", linestyle="--", linewidth=1, label="budget")
            shown = f"{limit / 1024:g} KB" if key.endswith("_bytes") and limit >= 1024 else _short(limit)
            ax.annotate(f"budget {shown}", xy=(limit, 0.0), xycoords=("data", "axes fraction"),
                        xytext=(3, 4), textcoords="offset points", fontsize=8, color="dimgray")
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=6))
        ax.xaxis.set_major_formatter(FuncFormatter(_short))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(_LABELS[key])
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"accuracy vs {_LABELS[key].split(' (')[0]}")
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("Test accuracy against each resource: methods at every SRAM budget, the base model, the budgets")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(run_dir: Path, document: dict, details: dict[str, Any]) -> None:
    run_dir = Path(run_dir)
    (run_dir / "report.md").write_text(render_markdown(document, details))
    history = details.get("methods", {}).get("differentiable", {}).get("history")
    if history:
        plot_training(history, run_dir / "training.png")
    if details.get("sweep"):
        plot_accuracy_vs_resources(document, details["sweep"], run_dir / "accuracy_vs_resources.png")
