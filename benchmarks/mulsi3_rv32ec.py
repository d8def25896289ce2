"""What libgcc's multiply costs the skipping kernels on RV32EC (no M extension): calls of ``__mulsi3``
per inference, by calling function, against the MACs the kernels execute.

On ``rv32ec`` every ``a * b`` the compiler cannot turn into shifts is a call of ``__mulsi3`` (a
shift-and-add loop). The zeroskip and UnIT kernels multiply each kept MAC that way (one call per
executed MAC: the integer reference's ``executed`` counter); every other call is index arithmetic
or the requantization. For the MNIST demo model (``runs/demo/train/model.pt``, input
normalisation folded, as ``unitprune mcu-bench`` loads it) as ``zeroskip`` and as UnIT (bitshift
linear quotient, calibration percentile ``--percentile``), exported for ``rv32ec`` and run in
unicorn on ``--samples`` test inputs, this reports per inference: instructions (exact, the
project's emulator), outputs against the NumPy integer reference, and from a second unicorn run
with a hook at ``__mulsi3``: its calls by caller, the instructions spent inside it, and the calls
beyond the executed MACs.

Writes docs/results/mulsi3_rv32ec/mulsi3_rv32ec.json and .md (``--out``).
Usage: ``PYTHONPATH=src python benchmarks/mulsi3_rv32ec.py [--samples 2] [--percentile 70]``
Needs ``make mcu-tools`` (riscv64-unknown-elf-gcc, picolibc) and unicorn.
"""

from __future__ import annotations

import argparse
import bisect
import copy
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from results_io import core_target_provenance, write_results
from unitprune.calibrate import calibrate
from unitprune.config import UnITConfig
from unitprune.convert import convert
from unitprune.experiments.evaluation import dataset_tensors
from unitprune.experiments.folding import fold_input_normalization
from unitprune.experiments.inputs import load_data, load_model
from unitprune.mcu import targets
from unitprune.mcu.export import export_c
from unitprune.mcu.quantize import quantize
from unitprune.mcu.reference import quantize_input, run_reference
from unitprune.mcu.targets.emulated import load_segments
from unitprune.mcu.targets.specs import CORE_TARGETS

HERE = Path(__file__).resolve().parent
DEMO = Path("runs/demo/train/model.pt")
TARGET = "rv32ec"


def variants(samples: int, percentile: float) -> dict:
    splits = load_data("mnist", None, seed=0)
    model, _ = load_model("mnist", str(DEMO), None, trust_model_file=False, num_classes=10)
    model, splits = fold_input_normalization(model, splits)
    x_val, _ = dataset_tensors(splits.val)
    x_test, _ = dataset_tensors(splits.test)
    unit = convert(copy.deepcopy(model), UnITConfig(approx="bitshift"))
    calibrate(unit, x_val[:100], percentile=percentile)  # on the first 100 validation inputs
    chosen = {"zeroskip": quantize(model.eval(), x_val, variant="zeroskip"),
              "unit": quantize(unit.eval(), x_val, variant="unit", linear_quotient="bitshift")}
    return {name: (qmodel, quantize_input(qmodel, x_test[:samples])) for name, qmodel in chosen.items()}


def mulsi3_profile(firmware: targets.Firmware) -> dict:
    """Calls of __mulsi3 by calling function and the instructions executed inside it, from reset to
    unit_mcu_done (a unicorn run with hooks; the label/emit stubs return at once, as in the
    project's emulator)."""
    import unicorn
    from unicorn import riscv_const

    symbols = firmware.symbols
    spec = CORE_TARGETS[TARGET]
    uc = unicorn.Uc(unicorn.UC_ARCH_RISCV, unicorn.UC_MODE_RISCV32)
    for memory in (spec.flash, spec.sram):
        uc.mem_map(memory.origin, (memory.length + 0xFFF) & ~0xFFF)
    for address, data, _size in load_segments(firmware.elf):
        uc.mem_write(address, data)
    starts = sorted((address, name) for name, address in symbols.items())
    addresses = [a for a, _ in starts]
    mul = symbols["__mulsi3"]
    mul_end = addresses[bisect.bisect_right(addresses, mul)]  # the next symbol
    callers: Counter = Counter()
    inside = [0]

    def function_of(address: int) -> str:
        return starts[bisect.bisect_right(addresses, address) - 1][1]

    def on_call(uc, _address, _size, _data):
        callers[function_of(uc.reg_read(riscv_const.UC_RISCV_REG_RA) - 2)] += 1

    def on_inside(_uc, _address, _size, _data):
        inside[0] += 1

    def on_done(uc, _address, _size, _data):
        uc.emu_stop()

    def on_io(uc, _address, _size, _data):
        uc.reg_write(riscv_const.UC_RISCV_REG_PC, uc.reg_read(riscv_const.UC_RISCV_REG_RA))

    uc.hook_add(unicorn.UC_HOOK_CODE, on_call, begin=mul, end=mul)
    uc.hook_add(unicorn.UC_HOOK_CODE, on_inside, begin=mul, end=mul_end - 1)
    uc.hook_add(unicorn.UC_HOOK_CODE, on_done, begin=symbols["__unit_mcu_done"], end=symbols["__unit_mcu_done"])
    for stub in ("label", "emit", "start", "stop"):
        address = symbols[f"__unit_mcu_{stub}"]
        uc.hook_add(unicorn.UC_HOOK_CODE, on_io, begin=address, end=address)
    uc.emu_start(symbols["__unit_reset"], -1)
    return {"calls_by_caller": dict(callers.most_common()), "calls": sum(callers.values()),
            "instructions_inside": inside[0]}


def measure(name: str, qmodel, x_q, work: Path) -> dict:
    samples = len(x_q)
    out = work / "export"
    export_c(qmodel, out, target=TARGET, samples=x_q)
    manifest = json.loads((out / "memory_plan.json").read_text())
    firmware = targets.build(TARGET, [out / s for s in manifest["sources"]], include_dirs=[out, out / "kernels"],
                             defines={"UNIT_SKIP_BRANCH": 1, "UNIT_S8_COUNTS": 0, "UNIT_MODEL_MARKERS": 0},
                             build_dir=work / "build")
    result = targets.run(firmware, max_cycles=2_000_000_000)
    expected, counts = run_reference(qmodel, x_q)
    outputs = np.stack([np.frombuffer(r.data, dtype=np.int8) for r in result.regions if r.data])
    inference = [r.instructions for r in result.regions if r.label == "inference"]
    profile = mulsi3_profile(firmware)
    executed = sum(c.executed for c in counts.values())
    return {"variant": name, "samples": samples, "bit_exact": bool(np.array_equal(outputs, expected.reshape(samples, -1))),
            "instructions_per_inference": int(np.median(inference)),
            "executed_macs_per_inference": executed / samples,
            "mulsi3_calls_per_inference": profile["calls"] / samples,
            "mulsi3_calls_beyond_macs_per_inference": (profile["calls"] - executed) / samples,
            "mulsi3_instructions_per_inference": profile["instructions_inside"] / samples,
            "mulsi3_instructions_per_call": profile["instructions_inside"] / max(profile["calls"], 1),
            "calls_by_caller_per_inference": {k: v / samples for k, v in profile["calls_by_caller"].items()}}


def markdown(document: dict) -> str:
    lines = ["# `__mulsi3` in the skipping kernels on rv32ec", "",
             f"Generated by `benchmarks/mulsi3_rv32ec.py` on {document['machine']}; {document['tools']}; "
             f"MNIST demo model, {document['samples']} test samples, UnIT at percentile {document['percentile']}. "
             "Per inference; instructions are exact (unicorn).", "",
             "| variant | instructions | executed MACs | `__mulsi3` calls | calls beyond the MACs | instructions in "
             "`__mulsi3` | per call | bit-exact |", "|---|---|---|---|---|---|---|---|"]
    for row in document["rows"]:
        lines.append(f"| {row['variant']} | {row['instructions_per_inference']:,} | "
                     f"{row['executed_macs_per_inference']:,.0f} | {row['mulsi3_calls_per_inference']:,.0f} | "
                     f"{row['mulsi3_calls_beyond_macs_per_inference']:,.0f} | "
                     f"{row['mulsi3_instructions_per_inference']:,.0f} | {row['mulsi3_instructions_per_call']:.1f} | "
                     f"{row['bit_exact']} |")
    lines += ["", "Calls by calling function, per inference:", ""]
    for row in document["rows"]:
        callers = ", ".join(f"`{k}` {v:,.0f}" for k, v in row["calls_by_caller_per_inference"].items())
        lines.append(f"* {row['variant']}: {callers}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--percentile", type=float, default=70.0)
    parser.add_argument("--out", type=Path, default=HERE.parent / "docs" / "results" / "mulsi3_rv32ec")
    args = parser.parse_args()
    t0 = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="unitprune-mulsi3-") as tmp:
        for name, (qmodel, x_q) in variants(args.samples, args.percentile).items():
            rows.append(measure(name, qmodel, x_q, Path(tmp) / name))
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "calls_by_caller_per_inference"}))
    document = {"rows": rows, "samples": args.samples, "percentile": args.percentile, **core_target_provenance(TARGET, t0)}
    for path in write_results(args.out, "mulsi3_rv32ec", document, markdown(document)):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
