"""Regenerate docs/export.md's "Measured" table: the demo's MNIST model exported with each kernel variant.

    PYTHONPATH=src python benchmarks/export_table.py [--run-dir runs/demo]

Trains the demo's model as ``unitprune demo`` does (or reuses ``RUN_DIR/train/model.pt``), then runs
``unitprune export --model mnist --weights RUN_DIR/train/model.pt --data mnist --fold-input`` once
per row (``--variant V [--linear-quotient Q]``), reads each ``host_check.json`` and prints the
Markdown table; also the model SRAM of the same export for AVR (descriptor sizes differ by target:
pointer width). Writes benchmarks/results/export_table.json (with the machine and versions).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

ROWS = [("unit", "bitshift"), ("unit", "bintree"), ("unit", "table"), ("zeroskip", None), ("dense", None)]


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> None:
    from unitprune.cli import main as cli
    from unitprune.data import load_dataset
    from unitprune.experiments.demo import DemoConfig, train_or_load

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", default="runs/demo", help="demo run folder (train/model.pt is reused)")
    parser.add_argument("--output", default="benchmarks/results/export_table.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    config = DemoConfig(run_dir=args.run_dir)
    _, training = train_or_load(config, load_dataset("mnist", seed=config.seed))
    weights = Path(args.run_dir) / "train" / "model.pt"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for variant, quotient in ROWS:
            out = Path(tmp) / f"{variant}-{quotient}"
            argv = ["export", "--model", "mnist", "--weights", str(weights), "--data", "mnist", "--fold-input",
                    "--variant", variant, "--out-dir", str(out), "--no-progress"]
            argv += ["--linear-quotient", quotient] if quotient else []
            t0 = time.perf_counter()
            code = cli(argv)
            if code != 0:
                raise SystemExit(f"unitprune {' '.join(argv)} exited {code}")
            check = json.loads((out / "host_check.json").read_text())
            plan = json.loads((out / "memory_plan.json").read_text())["memory"]
            rows.append({"variant": variant, "linear_quotient": quotient, "seconds": round(time.perf_counter() - t0, 1),
                         **{k: check[k] for k in ("int8_accuracy", "float_accuracy", "float_unit_accuracy",
                                                  "macs_skipped_fraction", "macs", "flash_table_bytes",
                                                  "model_sram_bytes", "arena_bytes", "scratch_bytes", "bit_exact",
                                                  "test_samples")},
                         "descriptor_bytes": plan["descriptor_bytes"], "peak_op": plan["peak_op"]})
        avr = _avr_plan(weights, tmp)
    print("| variant | linear quotient | int8 accuracy (C) | MACs skipped | zero weight | zero activation | threshold "
          "| flash tables | model SRAM | bit-exact |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        macs = row["macs"]
        dense = macs["dense"]
        print(f"| {row['variant']} | {row['linear_quotient'] or ''} | {100 * row['int8_accuracy']:.2f}% | "
              f"{100 * row['macs_skipped_fraction']:.1f}% | {100 * macs['zero_weight'] / dense:.1f}% | "
              f"{100 * macs['zero_activation'] / dense:.1f}% | {100 * macs['threshold'] / dense:.1f}% | "
              f"{row['flash_table_bytes']:,} B | {row['model_sram_bytes']:,} B | {'yes' if row['bit_exact'] else 'NO'} |")
    first = rows[0]
    print(f"\nhost: model SRAM {first['model_sram_bytes']:,} = arena {first['arena_bytes']:,} (peak at "
          f"{first['peak_op']}) + scratch {first['scratch_bytes']:,} + descriptors {first['descriptor_bytes']}; "
          f"avr: model SRAM {avr['peak_sram_bytes']:,}, descriptors {avr['descriptor_bytes']}")
    document = {"rows": rows, "avr_unit_bitshift_memory": avr, "training": training,
                "machine": {"cpu": _cpu(), "python": platform.python_version(), "torch": torch.__version__}}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {args.output}")


def _avr_plan(weights: Path, tmp: str) -> dict:
    """Memory plan of the default export (unit, bitshift) for target avr (no build needed)."""
    import unitprune
    from unitprune.experiments.folding import fold_input_normalization
    from unitprune.experiments.inputs import load_data, load_model
    from unitprune.mcu.reference import quantize_input

    splits = load_data("mnist")
    model, _ = load_model("mnist", str(weights), num_classes=splits.num_classes)
    model, splits = fold_input_normalization(model, splits)
    unit_model = unitprune.convert(model, unitprune.UnITConfig(approx="bitshift", percentile=20.0))
    x_val = splits.val.tensors[0]
    unitprune.calibrate(unit_model, x_val, percentile=20.0)
    qmodel = unitprune.quantize(unit_model, x_val)
    samples = quantize_input(qmodel, splits.test.tensors[0][:1])
    result = unitprune.export_c(qmodel, Path(tmp) / "avr", target="avr", samples=samples)
    return {"peak_sram_bytes": result.memory.peak_sram_bytes, "descriptor_bytes": result.memory.descriptor_bytes,
            "arena_bytes": result.memory.arena_bytes, "scratch_bytes": result.memory.scratch_bytes}


if __name__ == "__main__":
    main()
