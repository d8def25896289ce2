"""Cycles of the integer operations on each MCU target: the MSP430 runtime helpers (software and
hardware multiplier) next to AVR's libgcc, measured with the test firmware
``tests/mcu_firmware/arith.c`` (random operands of mixed magnitudes, checked bit-exactly against
Python by the same code as ``tests/test_mcu_targets.py``).

Usage: ``PYTHONPATH=src python benchmarks/mcu_runtime.py`` (writes benchmarks/results/mcu_runtime.md
and .json). Figures are cycles per loop iteration: the operation plus the loop's loads and store.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests/ holds the firmware
from tests import test_mcu_targets as arith  # noqa: E402
from unitprune.mcu import targets

RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = ("avr", "msp430", "msp430-hwmult")


def measure() -> dict:
    ops = arith.make_operands()
    expected = arith.expected_results(ops)
    rows: dict[str, dict[str, float]] = {}
    sizes = {}
    with tempfile.TemporaryDirectory(prefix="mcu_runtime_") as temporary:
        root = Path(temporary)
        arith.write_data_header(root, ops)
        for target in TARGETS:
            firmware = targets.build(target, [arith.FIRMWARE], include_dirs=[root], build_dir=root / target)
            result = targets.run(firmware)
            for label, (width, want) in expected.items():
                if arith.decode(result.region(label), width) != want:
                    raise RuntimeError(f"{target} {label}: results differ from Python")
            for label, cycles in result.cycles().items():
                if cycles is not None:
                    rows.setdefault(label, {})[target] = cycles if label == "empty" else cycles / arith.N
            sizes[target] = {"flash_bytes": firmware.flash_bytes, "compiler": firmware.compiler}
    return {"n": arith.N, "cycles": rows, "builds": sizes}


def render(result: dict) -> str:
    lines = [f"# Integer operations on the MCU targets ({time.strftime('%Y-%m-%d %H:%M')})", "",
             f"tests/mcu_firmware/arith.c, N = {result['n']} random operand pairs, all results bit-exact against "
             "Python. Cycles per loop iteration (operation + loads + store); `empty`: one empty marker region.", "",
             "| operation | " + " | ".join(TARGETS) + " |", "|---" * (len(TARGETS) + 1) + "|"]
    for label, cells in result["cycles"].items():
        lines.append(f"| {label} | " + " | ".join(f"{cells[t]:.1f}" for t in TARGETS) + " |")
    lines.append("")
    lines.append("Compilers: " + "; ".join(f"{t}: {b['compiler']}" for t, b in result["builds"].items()) + ".")
    return "\n".join(lines) + "\n"


def main() -> None:
    result = measure()
    text = render(result)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "mcu_runtime.json").write_text(json.dumps(result, indent=1))
    (RESULTS / "mcu_runtime.md").write_text(text)


if __name__ == "__main__":
    main()
