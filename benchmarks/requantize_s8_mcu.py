"""The int8 kernels' output stage (TFLite ``MultiplyByQuantizedMultiplier`` then the clamp) on AVR,
MSP430 and MSP430 + hardware multiplier, checked against the NumPy integer reference
(``unitprune.mcu.reference.requantize``) over edge multipliers, shifts and accumulators, with its
cycles per output.

Cases: multipliers 0, 1, 2**30, 2**31 - 1 and random ones in [2**30, 2**31); shifts -31..-1 (the
rounding shift: e - 1 >= 16 and below), 0 and left shifts up to 30 (accumulators that keep
``acc * 2**shift`` inside int32); accumulators 0, +-1, +-(2**15 - 1), +-2**15, +-2**16 +- 1,
+-2**24, INT32_MIN, INT32_MAX and random ones of every bit length; the ties of the negative nudge
(``|acc| * m mod 2**31 == 2**30``). Each case is run through ``UNIT__REQUANTIZE_OUTPUT`` (the
per-target routine: its 32-bit result, exact for a shift >= 0; for a shift < 0 exact below 2**8 in
magnitude, and a larger result comes back with its sign and a magnitude of at least 2**8, where the
int8 clamp gives the same output) and through ``unit__requantize_clamp_s8`` with act_min -128 and 0 (ReLU's shortcut).

Usage: ``PYTHONPATH=src python benchmarks/requantize_s8_mcu.py [--targets avr msp430 msp430-hwmult]``
Writes ``docs/results/kernels_floor/requantize_s8_mcu.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

import numpy as np

import unitprune
from unitprune.mcu import reference, targets
from unitprune.mcu.codegen import c_array

logger = logging.getLogger("requantize_s8_mcu")
CSRC = Path(unitprune.__file__).resolve().parent / "csrc"
RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results" / "kernels_floor"
TARGETS = ("avr", "msp430", "msp430-hwmult")
INT32_MIN, INT32_MAX = -2**31, 2**31 - 1


def cases(seed: int = 0, random_count: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(acc, multiplier, shift) int64 arrays of the edge cases and ``random_count`` random ones."""
    rng = np.random.default_rng(seed)
    multipliers = [0, 1, 2**30, 2**31 - 1, *rng.integers(2**30, 2**31, size=3).tolist()]
    shifts = [-31, -30, -18, -17, -16, -15, -9, -8, -2, -1, 0, 1, 5, 30]
    accs = [0, 1, -1, 2**15 - 1, -(2**15 - 1), 2**15, -2**15, 2**16 - 1, -(2**16 - 1), 2**16 + 1, -(2**16 + 1),
            2**24, -2**24, INT32_MIN, INT32_MAX, *(int(s) * int(rng.integers(2**(b - 1), 2**b))
                                                   for b in range(2, 32) for s in (1, -1))]
    rows = []
    for m in multipliers:
        for s in shifts:
            for a in accs:
                if INT32_MIN <= a * 2**max(s, 0) <= INT32_MAX:
                    rows.append((a, m, s))
    # ties of the negative nudge: |a| * m = 2**30 (mod 2**31), e.g. a = -2**k, m = 2**(30 - k)
    rows += [(-2**k, 2**(30 - k), s) for k in range(0, 31) for s in (-1, -16, -20, 0)]
    # and with an odd factor: a = -2**k, m = odd * 2**(30 - k) (odd < 2**(k + 1)), or a = -3 * 2**k
    rows += [(-2**k, (2**(k + 1) - 1) * 2**(30 - k), s) for k in range(1, 31) for s in (-1, -7, -17)]
    rows += [(-3 * 2**k, 2**(30 - k), s) for k in range(0, 29) for s in (-3, 0)]
    for _ in range(random_count):  # every bit length of the accumulator, the shift of real layers
        bits = int(rng.integers(1, 32))
        a = int(rng.integers(-(2**bits) + 1, 2**bits)) if bits < 31 else int(rng.integers(INT32_MIN + 1, INT32_MAX))
        rows.append((a, int(rng.integers(2**30, 2**31)), int(rng.integers(-20, 0))))
    table = np.array(rows, np.int64)
    return table[:, 0], table[:, 1], table[:, 2]


def expected(acc: np.ndarray, multiplier: np.ndarray, shift: np.ndarray) -> dict[str, np.ndarray]:
    """The reference's results: raw (int64; the routines' contract is checked by :func:`raw_ok`),
    clamped to int8 with act_min -128 and with act_min 0."""
    exact = reference.requantize(acc, multiplier, shift)
    return {"raw": exact.astype(np.int64), "clamp": np.clip(exact, -128, 127).astype(np.int8),
            "relu": np.clip(exact, 0, 127).astype(np.int8)}


def raw_ok(raw: np.ndarray, exact: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Per case, whether a routine's 32-bit result meets the contract: equal to the reference for a
    shift >= 0 or a result below 2**8 in magnitude, else the same sign and at least 2**8."""
    big = (shift < 0) & (np.abs(exact) >= 2**8)
    return np.where(big, (np.sign(raw) == np.sign(exact)) & (np.abs(raw) >= 2**8), raw == exact)


def firmware_source(acc: np.ndarray, multiplier: np.ndarray, shift: np.ndarray) -> str:
    n = acc.size
    return "\n".join([
        '#include <stdint.h>\n#include "unit_mcu.h"\n#include "unit_internal_s8.h"\n',
        c_array("int32_t", "acc", acc.astype(np.int32), flash=True),
        c_array("int32_t", "mult", multiplier.astype(np.int32), flash=True),
        c_array("int8_t", "shift", shift.astype(np.int8), flash=True),
        f"static int32_t raw[{n}];\nstatic int8_t y[{n}];\n",
        "int main(void) {",
        "    int16_t i;",
        '    unit_mcu_label("raw");',
        "    UNIT_MCU_START();",
        f"    for (i = 0; i < {n}; i++) {{",
        "        raw[i] = UNIT__REQUANTIZE_OUTPUT(UNIT_READ_S32(acc + i), UNIT_READ_S32(mult + i), UNIT_READ_S8(shift + i));",
        "    }",
        "    UNIT_MCU_STOP();",
        f"    unit_mcu_emit(raw, {4 * n});",
        *(line for act_min, label in ((-128, "clamp"), (0, "relu")) for line in (
            f'    unit_mcu_label("{label}");',
            "    UNIT_MCU_START();",
            f"    for (i = 0; i < {n}; i++) {{",
            "        y[i] = unit__requantize_clamp_s8(UNIT_READ_S32(acc + i), UNIT_READ_S32(mult + i),"
            f" UNIT_READ_S8(shift + i), {act_min}, 127);",
            "    }",
            "    UNIT_MCU_STOP();",
            f"    unit_mcu_emit(y, {n});")),
        "    unit_mcu_done();\n    return 0;\n}\n"])


def measure(target_names=TARGETS, seed: int = 0, random_count: int = 200, build_dir: Path | None = None,
            every: int = 1) -> dict:
    """Builds and runs the cases on every target; raises RuntimeError naming the first differing case.
    ``every``: every ``every``-th case only (the tests' shorter run). The cases are spread over
    firmwares of 400 cases each, which fit the targets' memory."""
    acc, multiplier, shift = (column[::every] for column in cases(seed, random_count))
    want = expected(acc, multiplier, shift)
    chunk = 400  # cases per firmware: flash tables and the raw results fit an ATmega2560's 8 KB SRAM
    results = {"cases": int(acc.size), "seed": seed, "builds": {}}
    with tempfile.TemporaryDirectory(prefix="requantize_s8_mcu_") as temporary:
        root = Path(build_dir or temporary)
        kernels = [*sorted(CSRC.glob("*_s8*.c")), *sorted(CSRC.glob("*_s8*.S"))]
        for target in target_names:
            got = {"raw": [], "clamp": [], "relu": []}
            cycles = {"raw": 0, "clamp": 0, "relu": 0}
            for start in range(0, acc.size, chunk):
                part = slice(start, start + chunk)
                source = root / f"{target}-{start}.c"
                source.parent.mkdir(parents=True, exist_ok=True)
                source.write_text(firmware_source(acc[part], multiplier[part], shift[part]))
                firmware = targets.build(target, [source, *kernels], include_dirs=[CSRC],
                                         build_dir=root / f"{target}-{start}", opt="O2", name="requantize")
                regions = {region.label: region for region in targets.run(firmware, max_cycles=100_000_000).regions}
                got["raw"].append(np.frombuffer(regions["raw"].data, "<i4").astype(np.int64))
                for label in ("clamp", "relu"):
                    got[label].append(np.frombuffer(regions[label].data, np.int8))
                for label in cycles:
                    cycles[label] += regions[label].cycles
            for label in got:
                values = np.concatenate(got[label])
                ok = raw_ok(values, want[label], shift) if label == "raw" else values == want[label]
                bad = np.flatnonzero(~ok)
                if bad.size:
                    i = int(bad[0])
                    raise RuntimeError(f"{target}: {label} requantization of acc={acc[i]}, multiplier={multiplier[i]}, "
                                       f"shift={shift[i]} gives {values[i]}, the reference {want[label][i]} "
                                       f"({bad.size} of {acc.size} cases differ)")
            results["builds"][target] = {
                "compiler": firmware.compiler,
                "cycles_per_case": {label: value / acc.size for label, value in cycles.items()}}
            logger.info("%s: %d cases exact; cycles per case %s", target, acc.size,
                        {k: round(v / acc.size, 1) for k, v in cycles.items()})
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--targets", nargs="+", default=list(TARGETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=RESULTS / "requantize_s8_mcu.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    result = measure(tuple(args.targets), seed=args.seed)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
