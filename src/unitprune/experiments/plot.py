"""``accuracy_vs_macs.png``: accuracy drop vs remaining MACs per method (the paper's Figure 5 style)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["plot_accuracy_vs_macs"]

_STYLE = {  # method: (color, marker)
    "unpruned": ("black", "*"),
    "ttp": ("tab:red", "s"),
    "fatrelu": ("tab:orange", "^"),
    "unit-exact": ("tab:blue", "o"),
    "unit-bitshift": ("tab:cyan", "v"),
    "unit-bintree": ("tab:olive", "x"),
    "unit-bitmask": ("tab:purple", "D"),
    "ttp+unit": ("tab:brown", "P"),
    "fatrelu+unit": ("tab:pink", "X"),
    "unit-autotuned": ("tab:green", "*"),
}


def _mark_selected(ax, results: dict) -> None:
    """Ring each method's point selected on validation (its test outcome), labelled once."""
    confidence = results.get("confidence")
    label = "selected on validation" + ("" if confidence is None else f" (confidence {confidence:g})")
    ax.plot([], [], linestyle="none", marker="o", markersize=11, markerfacecolor="none", markeredgecolor="black",
            markeredgewidth=1.8, label=label)
    for method, info in results.get("summary", {}).items():
        chosen = info.get("selected_on_validation")
        if chosen is None:
            continue
        color, _ = _STYLE.get(method, (None, "o"))
        ax.plot([100.0 * (1.0 - chosen["macs_skipped_fraction"])], [chosen["accuracy_drop"]], linestyle="none",
                marker="o", markersize=15, markerfacecolor="none", markeredgecolor=color or "black",
                markeredgewidth=1.8, zorder=4)


def plot_accuracy_vs_macs(results: dict, path: Path) -> None:
    """Write the figure for a ``results.json`` document to ``path`` (PNG).

    The y range shows the interesting region (a few budgets above zero, as the paper's Figure 5);
    points above it are drawn on the top edge as hollow up-triangles in their method's colour, and
    a note names how many there are and the largest drop, so nothing leaves the plot silently.
    """
    drops = [r["accuracy_drop"] for records in results["methods"].values() for r in records] or [0.0]
    budget = results.get("budget_points")
    top = min(max(drops) + 0.5, max(6.0 * (budget or 1.0), 3.0))
    bottom = min(drops) - 0.5
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    off_scale = []
    for method, records in results["methods"].items():
        if not records:
            continue
        color, marker = _STYLE.get(method, (None, "o"))
        ordered = sorted(records, key=lambda r: r["macs_remaining_fraction"], reverse=True)
        xs = [100.0 * r["macs_remaining_fraction"] for r in ordered]
        ys = [r["accuracy_drop"] for r in ordered]
        single = len(records) == 1
        line, = ax.plot(xs, ys, color=color, marker=marker, linestyle="none" if single else "-",
                        markersize=13 if marker == "*" else 6, linewidth=1.3, label=method, zorder=3 if single else 2)
        above = [(x, y) for x, y in zip(xs, ys) if y > top]
        if above:
            ax.plot([x for x, _ in above], [top] * len(above), linestyle="none", marker="^", markersize=9,
                    markerfacecolor="none", markeredgecolor=line.get_color(), clip_on=False, zorder=4)
            off_scale += [y for _, y in above]
    _mark_selected(ax, results)
    if budget is not None:
        ax.axhline(budget, color="gray", linestyle="--", linewidth=0.9, label=f"{budget:g}-point budget")
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.set_xlabel("remaining MACs (% of dense, test set)")
    ax.set_ylabel("accuracy drop vs unpruned (points, test set)")
    ax.set_title(f"{results['model']} on {results['dataset']}: accuracy drop vs remaining MACs")
    ax.invert_xaxis()  # more pruning to the right
    ax.grid(True, alpha=0.3)
    ax.set_ylim(bottom=bottom, top=top)
    if off_scale:
        ax.plot([], [], linestyle="none", marker="^", markerfacecolor="none", markeredgecolor="gray",
                label=f"above the plot ({len(off_scale)} points, up to +{max(off_scale):.1f})")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
