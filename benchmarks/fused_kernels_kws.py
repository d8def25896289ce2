"""The Table-1 KWS model's TTP+UnIT operating point on the ATmega2560, fused (it does not fit the
8 KB layer by layer), with its convs on each UnIT kernel: the per-position test, the UnIT kernel
plan of ``mcu-bench`` (``unit_plan.plan_unit_kernels`` for AVR) and that plan without ``dense``
layers, the skip-free and the UnIT sparse lists. Exact simavr cycles per inference, every output
checked against the integer reference.

The operating point is the one ``unitprune mcu-bench --task kws`` chose, read from its task cache
(``--point``: ``<run-dir>/tasks/point-ttp+unit=<knob>.pkl``); the inputs are the first ``--samples``
test clips of the synthesized-speech set (``load_data("synth_speech", seed=0)``, the bench's split).

    PYTHONPATH=src OMP_NUM_THREADS=1 nice -n 10 python benchmarks/fused_kernels_kws.py \\
        --point runs/mcu-bench-kws/tasks/point-ttp+unit=20.pkl --samples 2

Writes ``benchmarks/results/fused_kernels_kws.json``.
"""

from __future__ import annotations

import argparse
import json
import pickle
import statistics
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from unitprune.experiments.evaluation import dataset_tensors
from unitprune.experiments.inputs import load_data
from unitprune.mcu import targets
from unitprune.mcu.export import export_c
from unitprune.mcu.qmodel import QConv
from unitprune.mcu.reference import quantize_input, run_reference
from unitprune.mcu.targets.common import firmware_from_elf
from unitprune.mcu.unit_plan import plan_unit_kernels, with_unit_kernels

RESULTS = Path(__file__).resolve().parent / "results" / "fused_kernels_kws.json"


def _run(qmodel, x_q: np.ndarray, out_dir: Path) -> dict:
    result = export_c(qmodel, out_dir, target="avr", samples=x_q, execution="auto", fused_rows="auto")
    made = subprocess.run(["make", "-s", "model.elf"], cwd=out_dir, capture_output=True, text=True)
    if made.returncode != 0:
        raise RuntimeError(made.stderr)
    firmware = firmware_from_elf("avr", out_dir / "model.elf", out_dir, [], "")
    run = targets.run(firmware, max_cycles=4_000_000_000)
    inferences = [region for region in run.regions if region.label == "inference"]
    emitted = np.stack([np.frombuffer(bytes(region.data), np.int8) for region in inferences])
    expected, _ = run_reference(qmodel, x_q)
    manifest = json.loads((out_dir / "memory_plan.json").read_text())
    return {"kernels": {name: layer["kernel"] for name, layer in manifest["kernels"]["layers"].items()},
            "execution": result.execution, "fused_rows": result.fused_rows, "fused_axis": result.fused_axis,
            "far_tables": result.far_tables, "cycles": [region.cycles for region in inferences],
            "cycles_median": statistics.median(region.cycles for region in inferences),
            "firmware_sram_bytes": firmware.sram_static_bytes + run.stack_bytes,
            "bit_exact": bool(np.array_equal(emitted, expected.reshape(len(x_q), -1)))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--point", required=True, help="mcu-bench's cached operating point (point-ttp+unit=K.pkl)")
    parser.add_argument("--samples", type=int, default=2)
    args = parser.parse_args()
    with open(args.point, "rb") as handle:  # the project's own task cache
        point = pickle.load(handle)[1]
    qmodel = point.qmodel
    splits = load_data("synth_speech", seed=0)
    x_val, _ = dataset_tensors(splits.val)
    x_test, _ = dataset_tensors(splits.test)
    x_q = quantize_input(qmodel, x_test[:args.samples])
    convs = [op.name for op in qmodel.ops if isinstance(op, QConv)]
    planned = plan_unit_kernels(qmodel, quantize_input(qmodel, x_val), "avr")
    no_dense = plan_unit_kernels(qmodel, quantize_input(qmodel, x_val), "avr", allow_dense=False)
    cases = {"per-position": with_unit_kernels(qmodel, {name: "unit" for name in convs}),
             "plan": planned, "plan-without-dense": no_dense,
             "skipfree": with_unit_kernels(qmodel, {name: "skipfree" for name in convs}),
             "sparse": with_unit_kernels(qmodel, {name: "sparse" for name in convs})}
    rows = {}
    with tempfile.TemporaryDirectory() as work:
        for name, model in cases.items():
            try:
                rows[name] = _run(model, x_q, Path(work) / name)
            except Exception as error:  # noqa: BLE001 - a kernel whose firmware does not fit: recorded
                rows[name] = {"error": str(error)[:400]}
            print(name, json.dumps(rows[name])[:400], flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"point": args.point, "knob": point.knob, "samples": args.samples,
                                   "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
