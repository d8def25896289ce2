"""Throughput of the UnIT quotient: true division against the approximations, in C.

Compiles benchmarks/division_bench.c twice with gcc against the library's own approximation code
(``src/unitprune/csrc/unit_internal.h``) -- once with the flags of setup.py (the compiler may
vectorise) and once without auto-vectorisation (one quotient at a time, like the linear kernel's
per-input quotient and like an MCU without SIMD) -- runs both, and writes
``benchmarks/results/division.json`` and ``benchmarks/results/division.md``.

Variants (nanoseconds per quotient, medians of 9 repeats, over 4096 independent pairs):

* float32: ``true_division`` (``T / c``), the library's ``exact`` (division plus the zero cases),
  ``bitmask``, ``bitmask_normal_only`` (the bitmask fast path as branch-free masks, valid when
  operands and result are normal floats, checked against the library on the data) and
  ``bitshift``;
* int32: ``true_division`` (``T / c``), ``bitshift_loop`` (the paper's shift-until-zero loop),
  ``bintree_table`` (walk of a balanced BinTree stored as flat tables, as firmware holds it) and
  ``bintree_unrolled`` (the same balanced tree as branch-free steps).

Usage: ``python benchmarks/division.py [--quick]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import unitprune

HERE = Path(__file__).resolve().parent
CSRC = Path(unitprune.__file__).resolve().parent / "csrc"
RESULTS = HERE / "results"
HOST_FLAGS = ["-std=c99", "-O3", "-fno-math-errno"]  # as setup.py
BUILDS = {"host (may vectorise)": HOST_FLAGS,
          "no SIMD (one quotient at a time)": HOST_FLAGS + ["-fno-tree-vectorize", "-fno-tree-slp-vectorize"]}
RATIOS = [  # (name, baseline, approximation)
    ("float: bitmask vs true division", "f32_true_division", "f32_bitmask"),
    ("float: bitmask (normal operands) vs true division", "f32_true_division", "f32_bitmask_normal_only"),
    ("float: bitmask vs library exact", "f32_exact", "f32_bitmask"),
    ("float: bitshift vs true division", "f32_true_division", "f32_bitshift"),
    ("int: bitshift loop vs integer division", "i32_true_division", "i32_bitshift_loop"),
    ("int: bintree (table walk) vs integer division", "i32_true_division", "i32_bintree_table"),
    ("int: bintree (unrolled) vs integer division", "i32_true_division", "i32_bintree_unrolled"),
]


def run_build(flags: list[str], passes: int, workdir: Path, name: str) -> dict:
    binary = workdir / f"division_{abs(hash(name))}"
    subprocess.run(["gcc", *flags, "-I", str(CSRC), str(HERE / "division_bench.c"), "-o", str(binary)], check=True)
    output = subprocess.run([str(binary), str(passes)], check=True, capture_output=True, text=True).stdout
    return json.loads(output)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer passes per repeat")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    passes = 300 if args.quick else 2000
    results = {}
    with tempfile.TemporaryDirectory() as workdir:
        for name, flags in BUILDS.items():
            results[name] = run_build(flags, passes, Path(workdir), name)
            results[name]["flags"] = flags
    lines = [f"# Division throughput ({time.strftime('%Y-%m-%d %H:%M')})", "",
             "Nanoseconds per quotient (medians); ratio = throughput of the approximation / throughput of "
             "the baseline (> 1: the approximation is faster).", ""]
    header = "| variant | " + " | ".join(BUILDS) + " |"
    lines += [header, "|---" * (len(BUILDS) + 1) + "|"]
    for variant in next(iter(results.values()))["ns_per_quotient"]:
        lines.append(f"| {variant} | " + " | ".join(f"{results[b]['ns_per_quotient'][variant]:.3f}" for b in BUILDS)
                     + " |")
    lines += ["", "| ratio | " + " | ".join(BUILDS) + " |", "|---" * (len(BUILDS) + 1) + "|"]
    summary = {}
    for label, baseline, variant in RATIOS:
        ratios = {b: results[b]["ns_per_quotient"][baseline] / results[b]["ns_per_quotient"][variant] for b in BUILDS}
        summary[label] = ratios
        lines.append(f"| {label} | " + " | ".join(f"{ratios[b]:.2f}x" for b in BUILDS) + " |")
    target = summary["float: bitmask vs true division"]
    lines += ["", "Target: bitmask >= 1.8x the throughput of true division: " + ", ".join(
        f"{b}: {r:.2f}x ({'met' if r >= 1.8 else 'missed'})" for b, r in target.items())]
    text = "\n".join(lines) + "\n"
    print(text)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "division.json").write_text(json.dumps({"builds": results, "ratios": summary}, indent=1))
    (args.output / "division.md").write_text(text)
    print(f"wrote {args.output / 'division.json'} and {args.output / 'division.md'}")


if __name__ == "__main__":
    main()
