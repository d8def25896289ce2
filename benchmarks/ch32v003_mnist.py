"""The CH32V003 preset on MNIST: ``unitprune shrink`` makes the Table-1 MNIST model fit 2 KB of SRAM and
16 KB of flash, and the result runs bit-exact on ``rv32ec``, over seeds.

Per seed the same run as the CLI line

    unitprune shrink --model mnist --data mnist --preset ch32v003 --conv-block-rows min --epochs 10 \\
        --methods differentiable --measure rv32ec --measure-samples 3 --seed S --run-dir RUN_ROOT/seed-S

(a finished run folder is reused; one without measurements gets them). With ``--execution fused`` the
budget counts the fused, row-streamed plan's SRAM (``unitprune shrink --execution fused``: one output
row per conv step, the input read row by row from flash) and the firmware runs that plan; the
results go to ``ch32v003_mnist_fused.*`` and the runs to ``RUN_ROOT-fused``. The table: base and shrunk
float test accuracy (the shrink run's 1,000 test digits), the shrunk model's int8 accuracy (NumPy
integer reference), the firmware's flash (ELF text + rodata + data without the embedded samples,
and with them) and SRAM (ELF data + bss plus the stack high-water mark the emulator measured)
against the chip's 16 KB / 2 KB (``specs.CH32V003``), instructions and model cycles per inference,
bit-exactness on every embedded sample.

Writes docs/results/ch32v003/ch32v003_mnist[_fused].json and .md (``--out``).
Usage: ``PYTHONPATH=src python benchmarks/ch32v003_mnist.py [--seeds 0 1 2] [--run-root runs/ch32v003]
[--execution layers|fused]``
Needs ``make mcu-tools`` (riscv64-unknown-elf-gcc, picolibc) and unicorn.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from results_io import core_target_provenance, write_results
from unitprune.experiments.shrink_study.shrink_experiment import ExperimentConfig, add_measurements, run_shrink_experiment
from unitprune.mcu.targets.specs import CH32V003
from unitprune.shrink.budget import PRESETS

HERE = Path(__file__).resolve().parent
TARGET = "rv32ec"


def run_seed(seed: int, run_dir: Path, epochs: int, samples: int, execution: str = "layers") -> dict:
    budget = PRESETS["ch32v003"].with_(conv_block_rows="min", execution=execution)
    if (run_dir / "report.md").exists():  # a finished run: reuse it, add what it lacks
        document = json.loads((run_dir / "shrink.json").read_text())
        if "measured" not in document["methods"]["differentiable"]:
            document = add_measurements(run_dir, (TARGET,), samples)
        return document
    return run_shrink_experiment(ExperimentConfig(
        model="mnist", data="mnist", budget=budget, epochs=epochs, methods=("differentiable",), seed=seed,
        progress=False, run_dir=str(run_dir), measure=(TARGET,), measure_samples=samples))


def row(seed: int, document: dict, run_dir: Path) -> dict:
    shrunk = document["methods"]["differentiable"]
    channels = json.loads((run_dir / "details.json").read_text())["methods"]["differentiable"]["channels"]
    measured = shrunk["measured"]
    entry = measured["targets"][TARGET]
    dense = entry["dense"]
    flash_with_samples = dense["flash_bytes"] + dense["samples"] * 28 * 28
    return {"seed": seed, "base_accuracy": document["base"]["accuracy"], "accuracy": shrunk["accuracy"],
            "int8_accuracy": measured["variants"]["dense"]["int8_test_accuracy"],
            "model_flash_bytes": shrunk["flash_bytes"], "model_sram_bytes": shrunk["sram_bytes"],
            "macs": shrunk["macs"], "firmware_flash_bytes": dense["flash_bytes"],
            "firmware_flash_with_samples_bytes": flash_with_samples, "sram_static_bytes": dense["sram_static_bytes"],
            "stack_bytes": dense["stack_bytes"], "sram_peak_bytes": dense["sram_peak_bytes"],
            "fits_ch32v003": (dense["sram_peak_bytes"] <= CH32V003["sram_bytes"]
                              and dense["flash_bytes"] <= CH32V003["flash_bytes"]),
            "fits_with_samples": (dense["sram_peak_bytes"] <= CH32V003["sram_bytes"]
                                  and flash_with_samples <= CH32V003["flash_bytes"]),
            "cycles_model": {k: v["cycles"] for k, v in entry.items() if isinstance(v, dict) and "cycles" in v},
            "bit_exact": all(v["bit_exact"] for v in entry.values() if isinstance(v, dict) and "bit_exact" in v),
            "channels": list(channels.values()),
            "unit_int8_accuracy": measured["variants"].get("unit", {}).get("int8_test_accuracy"),
            "unit_skipped": measured["variants"].get("unit", {}).get("macs_skipped_fraction")}


def markdown(document: dict) -> str:
    fused = document.get("execution", "layers") == "fused"
    plan = ("fused, row-streamed execution (`--execution fused`: SRAM counted and firmware run with one output "
            "row per conv step, the input read row by row from flash)" if fused else
            "layer-by-layer execution, conv accumulators one row at a time (`--conv-block-rows min`)")
    command = "benchmarks/ch32v003_mnist.py" + (" --execution fused" if fused else "")
    lines = [f"# CH32V003 preset on MNIST (2 KB SRAM, 16 KB flash, rv32ec), {'fused' if fused else 'layer by layer'}", "",
             f"Generated by `{command}` on {document['machine']}; {document['tools']}. "
             f"Model `mnist` (Table 1: 6 and 16 channels), {document['epochs']} epochs, method `differentiable`, {plan}; "
             "firmware figures from the rv32ec ELF and the emulator "
             f"({document['samples']} embedded test samples; 'fits' counts the firmware without them, the input "
             "a caller's, and in brackets with them). RV32 cycles are the documented MODEL.", "",
             "| seed | base acc. | shrunk acc. | channels | int8 acc. | MACs | firmware flash (+samples) B | "
             "SRAM static + stack B | fits 16 KB / 2 KB (with the samples) | dense M cycles | UnIT M cycles (skipped) | bit-exact |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in document["rows"]:
        cycles = r["cycles_model"]
        unit = (f"{cycles['unit'] / 1e6:.2f} ({100 * r['unit_skipped']:.0f}%)" if "unit" in cycles else "-")
        lines.append(f"| {r['seed']} | {100 * r['base_accuracy']:.1f}% | {100 * r['accuracy']:.1f}% | "
                     f"{'/'.join(str(c) for c in r.get('channels', [])) or '-'} | "
                     f"{100 * r['int8_accuracy']:.1f}% | {r['macs']:,} | {r['firmware_flash_bytes']:,} "
                     f"({r['firmware_flash_with_samples_bytes']:,}) | {r['sram_static_bytes']:,} + {r['stack_bytes']} = "
                     f"{r['sram_peak_bytes']:,} | {'yes' if r['fits_ch32v003'] else 'NO'} "
                     f"({'yes' if r.get('fits_with_samples', r['fits_ch32v003']) else 'no'}) | "
                     f"{cycles['dense'] / 1e6:.2f} | {unit} | {'yes' if r['bit_exact'] else 'NO'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--run-root", type=Path, default=Path("runs/ch32v003"))
    parser.add_argument("--execution", choices=("layers", "fused"), default="layers",
                        help="the plan the budget counts and the firmware runs")
    parser.add_argument("--out", type=Path, default=HERE.parent / "docs" / "results" / "ch32v003")
    args = parser.parse_args()
    t0 = time.perf_counter()
    rows = []
    fused = args.execution == "fused"
    run_root = args.run_root.with_name(args.run_root.name + "-fused") if fused else args.run_root
    for seed in args.seeds:
        run_dir = run_root / f"seed-{seed}"
        rows.append(row(seed, run_seed(seed, run_dir, args.epochs, args.samples, args.execution), run_dir))
        print(json.dumps(rows[-1]))
    document = {"rows": rows, "epochs": args.epochs, "samples": args.samples, "execution": args.execution,
                **core_target_provenance(TARGET, t0)}
    name = "ch32v003_mnist_fused" if fused else "ch32v003_mnist"
    for path in write_results(args.out, name, document, markdown(document)):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
