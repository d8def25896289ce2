"""Cortex-M0+ and RV32 kernels against the floor: cycles (instructions on RV32) per MAC.

1. The floor loops of benchmarks/mcu/floor_m0plus.c (hand-written Thumb-1 int8 dot products:
   the plain loop, a 4-MAC unrolled one, and the two-channel loop the m0plus convolution uses)
   on ``m0plus`` and ``m0plus-smallmul``: cycles per MAC, results checked against NumPy.
2. The MNIST demo model (``runs/demo/train/model.pt``, input normalisation folded, as
   ``unitprune mcu-bench`` loads it), dense int8, exported for each target and run on ``--samples``
   test inputs: whole-model cycles per MAC (all layers' cycles over the convolution and linear
   MACs) and per layer, every output checked against the NumPy integer reference; on every target
   twice: with the export's kernels (``unit_conv2d_dense_s8_mcu32``: Thumb-1 on Arm, its C form on
   RV32) and with the portable ``unit_conv2d_dense_s8`` (the same export, the call renamed back).

Writes benchmarks/results/cores_mcu.json and .md.
Usage: ``PYTHONPATH=src python benchmarks/cores_mcu.py [--samples 3] [--targets m0plus rv32ec ...]``
Needs ``make mcu-tools`` (arm-none-eabi-gcc, riscv64-unknown-elf-gcc, picolibc, QEMU) and unicorn.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from results_io import cpu_model, write_results
from unitprune.experiments.evaluation import dataset_tensors
from unitprune.experiments.folding import fold_input_normalization
from unitprune.experiments.inputs import load_data, load_model
from unitprune.mcu import targets
from unitprune.mcu.export import export_c
from unitprune.mcu.quantize import quantize
from unitprune.mcu.reference import quantize_input, run_reference

HERE = Path(__file__).resolve().parent
FLOOR = HERE / "mcu" / "floor_m0plus.c"
FLOOR_N = 1024
DEMO = Path("runs/demo/train/model.pt")
CORES = ("m0plus", "m0plus-smallmul", "rv32ec", "rv32imc")


def floor_loops(target: str) -> dict:
    firmware = targets.build(target, [FLOOR])
    result = targets.run(firmware)
    i = np.arange(FLOOR_N)
    x, w0, w1 = (((i * a + b) & 255).astype(np.uint8).view(np.int8).astype(np.int64) for a, b in
                 ((37, 11), (91, 5), (53, 77)))
    expected = {"dot1": [x @ w0], "dot4": [x @ w0], "pair": [x @ w0, x @ w1]}
    empty = result.region("empty").cycles
    rows = {}
    for label, sums in expected.items():
        region = result.region(label)
        got = list(np.frombuffer(region.data, dtype="<i4"))
        macs = FLOOR_N * len(sums)
        rows[label] = {"cycles": region.cycles, "macs": macs, "cycles_per_mac": (region.cycles - empty) / macs,
                       "bit_exact": got == [int(s) for s in sums]}
    rows["strict_qemu"] = targets.check_isa(firmware, result)["agree"]
    return rows


def demo_case(samples: int):
    splits = load_data("mnist", None, seed=0)
    model, _ = load_model("mnist", str(DEMO), None, trust_model_file=False, num_classes=10)
    model, splits = fold_input_normalization(model, splits)
    x_val, _ = dataset_tensors(splits.val)
    qmodel = quantize(model.eval(), x_val, variant="dense")
    x_test, _ = dataset_tensors(splits.test)
    x_q = quantize_input(qmodel, x_test[:samples])
    expected, counts = run_reference(qmodel, x_q)
    macs = {layer: c.dense // samples for layer, c in counts.items()}
    return qmodel, x_q, expected.reshape(samples, -1), macs


def measure(qmodel, x_q, expected, macs: dict, target: str, work: Path, portable: bool) -> dict:
    out = work / "export"
    export_c(qmodel, out, target=target, samples=x_q)
    manifest = json.loads((out / "memory_plan.json").read_text())
    if portable:  # the portable convolution: the same export with the call renamed back
        model_c = (out / "model.c").read_text().replace("unit_conv2d_dense_s8_mcu32(", "unit_conv2d_dense_s8(")
        (out / "model.c").write_text(model_c)
        manifest["sources"] = [s for s in manifest["sources"] if not s.endswith("unit_conv2d_dense_s8_mcu32.c")]
        if "kernels/unit_conv2d_dense_s8.c" not in manifest["sources"]:
            manifest["sources"].append("kernels/unit_conv2d_dense_s8.c")
    results = {}
    for markers in (False, True):
        firmware = targets.build(target, [out / s for s in manifest["sources"]], include_dirs=[out, out / "kernels"],
                                 defines={"UNIT_SKIP_BRANCH": 1, "UNIT_S8_COUNTS": 0, "UNIT_MODEL_MARKERS": int(markers)},
                                 build_dir=work / f"build-{int(markers)}")
        results[markers] = targets.run(firmware, max_cycles=1_000_000_000)
    inference = [r for r in results[False].regions if r.label == "inference"]
    outputs = np.stack([np.frombuffer(r.data, dtype=np.int8) for r in results[False].regions if r.data])
    per_layer: dict[str, list] = {}
    for region in results[True].regions:
        if region.cycles is not None:
            per_layer.setdefault(region.label, []).append((region.cycles, region.instructions))
    total_macs = sum(macs.values())
    cycles = int(np.median([r.cycles for r in inference]))
    instructions = int(np.median([r.instructions for r in inference]))
    return {"target": target, "conv_kernel": "unit_conv2d_dense_s8" if portable else "unit_conv2d_dense_s8_mcu32", "cycles": cycles, "instructions": instructions,
            "cycles_per_mac": cycles / total_macs, "instructions_per_mac": instructions / total_macs,
            "per_layer_cycles_per_mac": {layer: float(np.median([c for c, _ in v])) / macs[layer]
                                         for layer, v in per_layer.items() if macs.get(layer)},
            "per_layer_cycles": {layer: int(np.median([c for c, _ in v])) for layer, v in per_layer.items()},
            "bit_exact": bool(np.array_equal(outputs, expected)), "samples": len(inference),
            "cycle_source": results[False].cycle_source}


def markdown(document: dict) -> str:
    lines = ["# Cortex-M0+ / RV32 int8 kernels against the floor", "",
             f"Generated by `benchmarks/cores_mcu.py` on {document['machine']}; {document['tools']}.", "",
             "## Floor loops (hand-written Thumb-1, 1024 MACs each)", "",
             "| target | loop | cycles/MAC | bit-exact |", "|---|---|---|---|"]
    for target, rows in document["floor"].items():
        for label, row in rows.items():
            if isinstance(row, dict):
                lines.append(f"| {target} | {label} | {row['cycles_per_mac']:.2f} | {row['bit_exact']} |")
    lines += ["", f"## MNIST demo model, dense int8 ({document['macs_per_inference']:,} MACs per inference, "
              f"{document['samples']} test samples)", "",
              "Whole model: every layer's cycles (pools included) over the convolution and linear MACs. "
              "RV32 cycles are the documented MODEL (1 per instruction, +1 load, +1 taken branch/jump); "
              "instructions are exact.", "",
              "| target | conv kernel | cycles/inference | cycles/MAC | instructions/MAC | conv1 | conv2 | fc | bit-exact |",
              "|---|---|---|---|---|---|---|---|---|"]
    for row in document["demo"]:
        layer = row["per_layer_cycles_per_mac"]
        lines.append(f"| {row['target']} | `{row['conv_kernel']}` | {row['cycles']:,} | {row['cycles_per_mac']:.2f} | "
                     f"{row['instructions_per_mac']:.2f} | {layer.get('conv1', 0):.2f} | {layer.get('conv2', 0):.2f} | "
                     f"{layer.get('fc', 0):.2f} | {row['bit_exact']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--targets", nargs="+", default=list(CORES), choices=CORES)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    t0 = time.perf_counter()
    floor = {t: floor_loops(t) for t in args.targets if t.startswith("m0plus")}
    qmodel, x_q, expected, macs = demo_case(args.samples)
    demo = []
    with tempfile.TemporaryDirectory(prefix="unitprune-cores-") as tmp:
        for target in args.targets:
            for portable in (False, True):
                work = Path(tmp) / f"{target}-{int(portable)}"
                demo.append(measure(qmodel, x_q, expected, macs, target, work, portable))
                print(json.dumps(demo[-1]))
    tools = {t: targets.check_tools(t) for t in args.targets}
    document = {"floor": floor, "demo": demo, "macs_per_inference": sum(macs.values()), "macs_per_layer": macs,
                "samples": args.samples, "machine": f"{cpu_model()}, Python {platform.python_version()}",
                "tools": "; ".join(sorted({f"{v['compiler_version']}, {v['emulator']}" for v in tools.values()})),
                "seconds": round(time.perf_counter() - t0, 1)}
    for path in write_results(args.out, "cores_mcu", document, markdown(document)):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
