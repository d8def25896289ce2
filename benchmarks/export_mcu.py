"""Export a trained MNIST model (the demo's checkpoint) for AVR and MSP430, build each export with its
own Makefile, run the firmware in the simulators (unitprune.mcu.targets) and check every emitted
output against the integer reference. Writes benchmarks/results/export_mcu.json.

    PYTHONPATH=src python benchmarks/export_mcu.py --weights runs/demo/train/model.pt [--samples 5]

A check that the exported C runs bit-exactly on the MCUs, with the cycles it took; the comparison
of methods at their calibrated operating points is ``unitprune mcu-bench``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch

import unitprune
from unitprune.experiments.folding import fold_input_normalization
from unitprune.experiments.inputs import load_data, load_model
from unitprune.mcu import targets
from unitprune.mcu.reference import quantize_input, run_reference
from unitprune.mcu.targets.common import firmware_from_elf

ELFS = {"avr": [("avr", "model.elf"), ("avr", "model_layers.elf")],
        "msp430": [("msp430", "model.elf"), ("msp430", "model_layers.elf"), ("msp430-hwmult", "model_hwmult.elf")]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="runs/demo/train/model.pt", help="state_dict of the mnist model")
    parser.add_argument("--samples", type=int, default=5, help="test samples embedded and run")
    parser.add_argument("--percentile", type=float, default=20.0)
    parser.add_argument("--output", default="benchmarks/results/export_mcu.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    splits = load_data("mnist", None, seed=0)
    model, _ = load_model("mnist", args.weights, None, num_classes=10)
    model, splits = fold_input_normalization(model, splits)
    unit_model = unitprune.convert(model, unitprune.UnITConfig(approx="bitshift", percentile=args.percentile))
    unitprune.calibrate(unit_model, splits.val.tensors[0], percentile=args.percentile)
    qmodel = unitprune.quantize(unit_model, splits.val.tensors[0])
    x = quantize_input(qmodel, splits.test.tensors[0][:args.samples])
    rows = []
    with tempfile.TemporaryDirectory(prefix="unitprune-export-mcu-") as work:
        for variant in ("dense", "unit"):
            expected = run_reference(qmodel, x, variant=variant)[0].reshape(len(x), -1)
            for target, elfs in ELFS.items():
                out = Path(work) / f"{target}-{variant}"
                result = unitprune.export_c(qmodel, out, target=target, variant=variant, samples=x)
                subprocess.run(["make", "-s", *[elf for _, elf in elfs]], cwd=out, check=True)
                for name, elf in elfs:
                    firmware = firmware_from_elf(name, out / elf, out, [], "")
                    run = targets.run(firmware)
                    emitted = np.stack([np.frombuffer(bytes(r.data), np.int8) for r in run.regions if r.data])
                    cycles: dict[str, list[int]] = {}
                    for region in run.regions:
                        cycles.setdefault(region.label, []).append(region.cycles)
                    row = {"variant": variant, "target": name, "elf": elf,
                           "bit_exact": bool(np.array_equal(emitted, expected)), "samples": len(x),
                           "median_cycles": {k: int(np.median(v)) for k, v in cycles.items()},
                           "flash_bytes": firmware.flash_bytes, "stack_bytes": run.stack_bytes,
                           "model_sram_bytes": result.memory.peak_sram_bytes,
                           "sram_with_io_bytes": result.memory.peak_sram_with_io_bytes}
                    print(json.dumps(row))
                    rows.append(row)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps({"weights": args.weights, "percentile": args.percentile,
                                             "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
