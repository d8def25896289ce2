"""Markdown table over seeds from the JSON lines of ``benchmarks/shrink_method.py`` (one method per line).

    python benchmarks/shrink_method_table.py runs/dscnn-v4.jsonl --methods differentiable dpf tp-magnitude

Per seed: the base's and every method's test accuracy (channels per group), the methods' wall
time over DPF's of the same seed; then the mean (min-max) over the seeds each method has. When a
(seed, method) pair occurs more than once, the last line counts. A line with a ``source`` field
(a run made by another driver with the same calls) is marked with it.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def load(paths: list[str]) -> dict[tuple[int, str], dict]:
    rows: dict[tuple[int, str], dict] = {}
    for path in paths:
        for line in Path(path).read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                rows[(int(row["seed"]), row["method"])] = row
    return rows


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.fmean(values):.2f} ({min(values):.2f}-{max(values):.2f}), n={len(values)}"


def table(rows: dict[tuple[int, str], dict], methods: list[str]) -> str:
    seeds = sorted({s for s, _ in rows})
    lines = ["| seed | base | " + " | ".join(methods) + " |", "|---" * (len(methods) + 2) + "|"]
    base: dict[int, float] = {}
    accuracy: dict[str, list[float]] = {m: [] for m in methods}
    notes: list[str] = []
    for seed in seeds:
        cells = []
        for m in methods:
            row = rows.get((seed, m))
            if row is None:
                cells.append("not run")
                continue
            base[seed] = 100 * row["base_accuracy"]
            accuracy[m].append(100 * row["accuracy"])
            text = f"{100 * row['accuracy']:.2f}%"
            if row.get("channels"):
                text += " (" + "/".join(str(v) for v in row["channels"].values()) + ")"
            if row.get("source"):
                notes.append(f"seed {seed}, {m}: {row['source']}")
                text += f" [{len(notes)}]"
            cells.append(text)
        lines.append(f"| {seed} | {base[seed]:.2f}% | " + " | ".join(cells) + " |" if seed in base else
                     f"| {seed} | - | " + " | ".join(cells) + " |")
    lines.append("| mean (min-max) | " + _spread(list(base.values())) + " | "
                 + " | ".join(_spread(accuracy[m]) for m in methods) + " |")
    lines += ["", "Wall time (s) and over DPF's of the same seed (shared machine: compare within a seed):", "",
              "| seed | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    for seed in seeds:
        dpf = rows.get((seed, "dpf"))
        cells = []
        for m in methods:
            row = rows.get((seed, m))
            if row is None:
                cells.append("-")
                continue
            text = f"{row['train_seconds']:.0f}"
            if dpf and m != "dpf":
                text += f" ({row['train_seconds'] / dpf['train_seconds']:.2f}x)"
            cells.append(text)
        lines.append(f"| {seed} | " + " | ".join(cells) + " |")
    if notes:
        lines += [""] + [f"[{i}] {n}" for i, n in enumerate(notes, 1)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("jsonl", nargs="+")
    parser.add_argument("--methods", nargs="+", default=["differentiable", "dpf"])
    args = parser.parse_args()
    print(table(load(args.jsonl), args.methods), end="")


if __name__ == "__main__":
    main()
