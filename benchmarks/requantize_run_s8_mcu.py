"""The dense kernels' output stage as the kernels run it (``UNIT__REQUANTIZE_RUN`` of
``unit_conv2d_dense_s8.c``: one output channel's constants computed once by
``unit__requant_run_init_s8``, then a run of accumulators requantized and clamped in one assembly
loop) on AVR, MSP430 and MSP430 + hardware multiplier, checked against the NumPy integer reference
(``unitprune.mcu.reference.requantize`` then the clamp), with its cycles per output.

Three measurements per target:

* ``exact``: every edge case is run (runs of up to 64 outputs per channel constants) and checked.
  Channel constants: multipliers 2**30, 2**31 - 1 and random ones in [2**30, 2**31) with shifts
  -8, -9, -10, -12, -15 (the fast form of ``unit_internal_requant_s8.h``) and, for the general
  routine, shifts -7, -16, -17, -31, 0, 3 and multipliers 0, 1, 2**29; act_min -128 and 0 (ReLU),
  act_max 127 (and [-7, 5], [-128, -5]: clamps the quantizer does not emit, which take the longest
  clamp paths). Accumulators: 0, +-1, the saturation thresholds of the
  channel +-1 (the smallest |acc| whose result reaches 128 and 129 in magnitude, for each sign),
  +-(2**16 - 1), +-2**16, +-(2**24 - 1), +-2**24, INT32_MIN, INT32_MAX, the ties of the negative
  nudge (acc < 0 with ``|acc| * m * 2**(17-e) + 2**47 + 2**(47-e)`` a multiple of 2**48) +-1, and
  random ones of every bit length.
* ``per_output``: the cycles one output adds to a run, for a subset of the cases: a run of two
  copies of the accumulator minus a run of one (exact: the loop's path depends only on the value);
  the maximum over the fast-form cases is the worst case per output. MSP430 without a multiplier
  has no fast form (``fast_form`` false): its channels take the general shift-and-add routine, and
  ``fast_*`` then names the same channel constants on that routine.
* ``table`` (MSP430 and MSP430+hwmult): the same cases with every channel's threshold table
  (``unitprune.mcu.requant_table``; the channels beyond one, multipliers 0 and 1 and shift -31, keep
  the multiplying routine), 24 channels per firmware (the tables of all exceed the FRAM), and the
  MNIST layers with the tables the exporter gives the convolutions (not the linear layer).
* ``mnist``: the accumulators of the demo MNIST model (``runs/demo/train/model.pt``, int8 as
  ``unitprune.quantize`` makes it, the first ``--mnist-samples`` test digits) requantized in the
  kernels' runs (conv1: rows of 24 outputs, conv2: rows of 8, fc: runs of one), the whole calls
  timed per output channel: the mean per output includes each run's call.

Usage: ``PYTHONPATH=src python benchmarks/requantize_run_s8_mcu.py [--targets avr msp430 msp430-hwmult]``
Writes ``docs/results/kernels_floor/requantize_run_s8_mcu.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import subprocess
import tempfile
from pathlib import Path

import numpy as np

import unitprune
from unitprune.mcu import reference, requant_table, targets
from unitprune.mcu.codegen import c_array

logger = logging.getLogger("requantize_run_s8_mcu")
CSRC = Path(unitprune.__file__).resolve().parent / "csrc"
RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results" / "kernels_floor"
TARGETS = ("avr", "msp430", "msp430-hwmult")
#: The targets measured with threshold tables too (the "msp430" export's tables serve both builds).
TABLE_TARGETS = ("msp430", "msp430-hwmult")
INT32_MIN, INT32_MAX = -2**31, 2**31 - 1
RUN = 64  # outputs per run in the exactness firmware


def is_fast(multiplier: int, shift: int) -> bool:
    """Whether the channel takes the fast form (unit__requant_run_init_s8)."""
    return -15 <= shift <= -8 and multiplier >= 2**30


def _requantize(acc, multiplier: int, shift: int) -> np.ndarray:
    acc = np.asarray(acc, np.int64)
    return reference.requantize(acc, np.full(acc.shape, multiplier, np.int64), np.full(acc.shape, shift, np.int64))


def _smallest_reaching(multiplier: int, shift: int, value: int, sign: int) -> int | None:
    """The smallest |acc| (acc of the given sign, |acc| < 2**31) whose requantized magnitude is >=
    value, by bisection on the reference (monotone in |acc|); None when no int32 acc reaches it."""
    lo, hi = 0, 2**31 - 1 if sign > 0 else 2**31
    if shift > 0:
        hi = min(hi, (2**31 - 1) >> shift)
    if abs(int(_requantize([sign * hi], multiplier, shift)[0])) < value:
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        if abs(int(_requantize([sign * mid], multiplier, shift)[0])) >= value:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _ties(multiplier: int, shift: int) -> list[int]:
    """Negative accumulators at the tie of the fast form's negative nudge (X mod 2**48 == 0)."""
    e = -shift
    if not is_fast(multiplier, shift):
        return []
    mod = 2**(31 + e)
    target = (-(2**(30 + e) + 2**30)) % mod
    zeros = (multiplier & -multiplier).bit_length() - 1
    if target % 2**zeros:
        return []
    odd, reduced = multiplier >> zeros, mod >> zeros
    first = (target >> zeros) * pow(odd, -1, reduced) % reduced
    return [-a for a in (first, first + reduced) if 0 < a < 2**24]


def channel_cases(multiplier: int, shift: int, rng: np.random.Generator) -> list[int]:
    """The accumulators of one channel's constants (see the module docstring)."""
    accs = [0, 1, -1, 2**16 - 1, -(2**16 - 1), 2**16, -2**16, 2**24 - 1, -(2**24 - 1), 2**24, -2**24,
            INT32_MIN, INT32_MAX]
    for sign in (1, -1):
        for value in (128, 129):
            edge = _smallest_reaching(multiplier, shift, value, sign)
            if edge is not None:
                accs += [sign * max(edge - 1, 0), sign * edge, sign * (edge + 1)]
    for tie in _ties(multiplier, shift):
        accs += [tie - 1, tie, tie + 1]
    for bits in range(1, 31, 2):
        accs += [int(rng.integers(-(2**bits), 2**bits))]
    if shift > 0:  # acc * 2**shift must stay inside int32 (the kernels' accumulator bound)
        limit = 2**(31 - shift)
        accs = [a for a in accs if -limit <= a < limit]
    return [a for a in accs if INT32_MIN <= a <= INT32_MAX]


def channels(seed: int = 0) -> list[dict]:
    """Every channel's constants and accumulators."""
    rng = np.random.default_rng(seed)
    multipliers = [2**30, 2**31 - 1, *rng.integers(2**30, 2**31, size=2).tolist()]
    rows = []
    for m in multipliers:
        for s in (-8, -9, -10, -12, -15):
            for act_min, act_max in ((-128, 127), (0, 127)):
                rows.append({"multiplier": int(m), "shift": s, "act_min": act_min, "act_max": act_max})
    rows.append({"multiplier": int(multipliers[2]), "shift": -9, "act_min": -7, "act_max": 5})
    rows.append({"multiplier": 2**30, "shift": -9, "act_min": -128, "act_max": -5})  # results above act_max < 0
    for m, s in ((multipliers[2], -7), (multipliers[2], -16), (multipliers[3], -17), (multipliers[3], -31), (multipliers[2], 0),
                 (multipliers[3], 3), (0, -9), (1, -9), (2**29, -9)):
        for act_min in (-128, 0):
            rows.append({"multiplier": int(m), "shift": s, "act_min": act_min, "act_max": 127})
    for row in rows:
        row["acc"] = channel_cases(row["multiplier"], row["shift"], rng)
    return rows


def _stored(target: str, acc: np.ndarray) -> np.ndarray:
    """What a run stores for the value acc with base 0 (unit__dot_value_s8: base - stored on AVR),
    as int32."""
    acc = np.asarray(acc, np.int64)
    wrapped = (-acc if target == "avr" else acc) % 2**32
    return np.where(wrapped >= 2**31, wrapped - 2**32, wrapped).astype(np.int64)


PROLOGUE = r'''#include <stdint.h>
#include "unit_mcu.h"
#include "unit_internal_requant_s8.h"
#if defined(__AVR__)
void unit__requantize_run_fast_s8_avr(int8_t *y, const int32_t *stored, uint8_t count, const unit__requant_run_s8 *s);
#define RUN(y, stored, count, s) unit__requantize_run_fast_s8_avr(y, stored, (uint8_t)(count), s)
#else
void __unit_requantize_run_fast_s8(int8_t *y, const int32_t *stored, int16_t count, const unit__requant_run_s8 *s);
#define RUN(y, stored, count, s) __unit_requantize_run_fast_s8(y, stored, (int16_t)(count), s)
#endif
'''


def group_tables(groups: list[dict]) -> np.ndarray:
    """Each group's threshold table (``unitprune.mcu.requant_table``) as ``group["table"]`` (its index,
    -1: none, the channel is beyond a table), and the tables one after the other."""
    tables = []
    for g in groups:
        row = requant_table.channel_table(g["multiplier"], g["shift"])
        g["table"] = -1 if row is None else len(tables)
        if row is not None:
            tables.append(row)
    return np.concatenate(tables) if tables else np.zeros(requant_table.ENTRIES, np.uint32)


def firmware_source(groups: list[dict], stored: np.ndarray, timed: list[tuple[int, int]], runs: list[int],
                    tables: np.ndarray | None = None) -> str:
    """groups: channel constants with ``first``/``count`` into ``stored`` (int32 values); timed: (group, index) cases measured per output; runs:
    the run lengths inside each timed group; tables: the groups' threshold tables (:func:`group_tables`; None: none)."""
    n = int(stored.size)
    table_lines = []
    if tables is not None:
        table_lines = [c_array("uint32_t", "thresholds", tables, flash=True),
                       c_array("int16_t", "g_table", [g["table"] for g in groups], flash=True)]
    set_table = ["    if (UNIT_READ_S16(g_table + g) >= 0) s.thresholds = thresholds + 128 * UNIT_READ_S16(g_table + g);"]
    lines = [PROLOGUE, *table_lines,
             c_array("int32_t", "stored_flash", stored, flash=True),
             c_array("int32_t", "g_mult", [g["multiplier"] for g in groups], flash=True),
             c_array("int8_t", "g_shift", [g["shift"] for g in groups], flash=True),
             c_array("int8_t", "g_min", [g["act_min"] for g in groups], flash=True),
             c_array("int8_t", "g_max", [g["act_max"] for g in groups], flash=True),
             c_array("int16_t", "g_first", [g["first"] for g in groups], flash=True),
             c_array("int16_t", "g_count", [g["count"] for g in groups], flash=True),
             c_array("int16_t", "t_group", [t[0] for t in timed] or [0], flash=True),
             c_array("int16_t", "t_index", [t[1] for t in timed] or [0], flash=True),
             f"static int32_t buffer[{max(g['count'] for g in groups)}];",
             f"static int8_t y[{n}];",
             "static unit__requant_run_s8 s;",
             "static void channel(uint16_t g) {",
             "    unit__requant_run_init_s8(&s, UNIT_READ_S32(g_mult + g), UNIT_READ_S8(g_shift + g),"
             " UNIT_READ_S8(g_min + g), UNIT_READ_S8(g_max + g));",
             *(set_table if tables is not None else []),
             "}",
             "static void load(uint16_t first, uint16_t count) {",
             "    uint16_t i;",
             "    for (i = 0; i < count; i++) buffer[i] = UNIT_READ_S32(stored_flash + first + i);",
             "}",
             "int main(void) {",
             "    uint16_t g, i, done;",
             "    int8_t pair[2];",
             "    for (g = 0; g < sizeof g_count / sizeof g_count[0]; g++) {",
             "        uint16_t first = (uint16_t)UNIT_READ_S16(g_first + g), count = (uint16_t)UNIT_READ_S16(g_count + g);",
             "        channel(g);",
             "        load(first, count);",
             "        done = 0;",
             "        while (done < count) {",
             f"            uint16_t part = count - done < {RUN} ? count - done : {RUN};",
             "            RUN(y + first + done, buffer + done, part, &s);",
             "            done += part;",
             "        }",
             "    }",
             '    unit_mcu_label("exact");',
             "    UNIT_MCU_START();",
             "    UNIT_MCU_STOP();",
             f"    unit_mcu_emit(y, {n});"]
    if timed:
        lines += [f"    for (i = 0; i < {len(timed)}; i++) {{",
                  "        uint16_t gi = (uint16_t)UNIT_READ_S16(t_group + i);",
                  "        int32_t v = UNIT_READ_S32(stored_flash + (uint16_t)UNIT_READ_S16(g_first + gi) + (uint16_t)UNIT_READ_S16(t_index + i));",
                  "        channel(gi);",
                  "        buffer[0] = (int32_t)v;",
                  "        buffer[1] = (int32_t)v;",
                  '        unit_mcu_label("one");',
                  "        UNIT_MCU_START();",
                  "        RUN(pair, buffer, 1, &s);",
                  "        UNIT_MCU_STOP();",
                  '        unit_mcu_label("two");',
                  "        UNIT_MCU_START();",
                  "        RUN(pair, buffer, 2, &s);",
                  "        UNIT_MCU_STOP();",
                  "    }"]
    if runs:
        lines += ["    for (g = 0; g < sizeof g_count / sizeof g_count[0]; g++) {",
                  "        uint16_t first = (uint16_t)UNIT_READ_S16(g_first + g), count = (uint16_t)UNIT_READ_S16(g_count + g);",
                  "        channel(g);",
                  "        load(first, count);",
                  '        unit_mcu_label("channel");',
                  "        UNIT_MCU_START();",
                  "        for (done = 0; done < count; done += " + str(runs[0]) + ") {",
                  f"            RUN(y + first + done, buffer + done, {runs[0]}, &s);",
                  "        }",
                  "        UNIT_MCU_STOP();",
                  "    }"]
    lines += ["    unit_mcu_done();", "    return 0;", "}", ""]
    return "\n".join(lines)


def expected(groups: list[dict], acc: np.ndarray) -> np.ndarray:
    out = np.empty(acc.size, np.int8)
    for g in groups:
        part = slice(g["first"], g["first"] + g["count"])
        out[part] = np.clip(_requantize(acc[part], g["multiplier"], g["shift"]), g["act_min"], g["act_max"])
    return out


def _build_run(target: str, source_text: str, directory: Path) -> targets.RunResult:
    kernels = [*sorted(CSRC.glob("*_s8*.c")), *sorted(CSRC.glob("*_s8*.S"))]
    directory.mkdir(parents=True, exist_ok=True)
    source = directory / "main.c"
    source.write_text(source_text)
    firmware = targets.build(target, [source, *kernels], include_dirs=[CSRC], build_dir=directory / "build",
                             opt="O2", name="requantize_run")
    return firmware, targets.run(firmware, max_cycles=200_000_000)


def _check(target: str, what: str, got: np.ndarray, want: np.ndarray, acc: np.ndarray, groups: list[dict]) -> None:
    bad = np.flatnonzero(got != want)
    if bad.size:
        i = int(bad[0])
        g = next(g for g in groups if g["first"] <= i < g["first"] + g["count"])
        raise RuntimeError(f"{target} {what}: acc={acc[i]} multiplier={g['multiplier']} shift={g['shift']} "
                           f"act=[{g['act_min']}, {g['act_max']}] gives {got[i]}, the reference {want[i]} "
                           f"({bad.size} of {acc.size} outputs differ)")


def measure_cases(target: str, rows: list[dict], root: Path, timed_every: int = 1, tables: bool = False) -> dict:
    """The exactness and per-output measurements of one target (``tables``: every channel a threshold
    table can hold gets one, ``table`` in the per-output records)."""
    groups, acc, timed, first = [], [], [], 0
    for gi, row in enumerate(rows):
        groups.append({**{k: row[k] for k in ("multiplier", "shift", "act_min", "act_max")},
                       "first": first, "count": len(row["acc"])})
        acc += row["acc"]
        timed += [(gi, i) for i in range(len(row["acc"]))][::timed_every]
        first += len(row["acc"])
    acc = np.array(acc, np.int64)
    table_array = group_tables(groups) if tables else None
    firmware, result = _build_run(target, firmware_source(groups, _stored(target, acc), timed, [], table_array), root)
    regions = result.regions
    got = np.frombuffer(next(r for r in regions if r.label == "exact").data, np.int8)
    _check(target, "exact", got, expected(groups, acc), acc, groups)
    ones = [r.cycles for r in regions if r.label == "one"]
    twos = [r.cycles for r in regions if r.label == "two"]
    per_output = [{"multiplier": groups[g]["multiplier"], "shift": groups[g]["shift"],
                   "act_min": groups[g]["act_min"], "act_max": groups[g]["act_max"],
                   "acc": int(acc[groups[g]["first"] + i]), "cycles": two - one, "run_of_one": one,
                   "fast": is_fast(groups[g]["multiplier"], groups[g]["shift"]),
                   **({"table": groups[g]["table"] >= 0} if tables else {})}
                  for (g, i), one, two in zip(timed, ones, twos, strict=True)]
    if tables:
        return {"compiler": firmware.compiler, "outputs_checked": int(acc.size),
                "table_channels": sum(g["table"] >= 0 for g in groups), "channels": len(groups),
                "per_output": per_output}
    fast = [c["cycles"] for c in per_output if c["fast"]]
    general = [c["cycles"] for c in per_output if not c["fast"]]
    worst = max((c for c in per_output if c["fast"]), key=lambda c: c["cycles"])
    return {"compiler": firmware.compiler, "fast_form": target != "msp430", "outputs_checked": int(acc.size),
            "timed": len(per_output),
            "fast_worst": max(fast), "fast_worst_case": worst, "fast_mean_edge_cases": float(np.mean(fast)),
            "general_worst": max(general), "general_mean_edge_cases": float(np.mean(general)),
            "per_output": per_output}


def measure_table_cases(target: str, rows: list[dict], root: Path, part: int = 24) -> dict:
    """:func:`measure_cases` with threshold tables, ``part`` channels per firmware (the tables of
    every channel at once exceed the MSP430's FRAM)."""
    parts = [measure_cases(target, rows[i:i + part], root / str(i), tables=True) for i in range(0, len(rows), part)]
    per_output = [c for p in parts for c in p["per_output"]]
    table = [c for c in per_output if c["table"]]
    worst = max(table, key=lambda c: c["cycles"])
    return {"compiler": parts[0]["compiler"], "firmwares": len(parts),
            "outputs_checked": sum(p["outputs_checked"] for p in parts), "timed": len(per_output),
            "table_channels": sum(p["table_channels"] for p in parts), "channels": len(rows),
            "table_worst": worst["cycles"], "table_worst_case": worst,
            "table_mean_edge_cases": float(np.mean([c["cycles"] for c in table])),
            "fast_form_table_worst": max(c["cycles"] for c in table if c["fast"]),
            "without_table_worst": max((c["cycles"] for c in per_output if not c["table"]), default=None),
            "per_output": per_output}


def mnist_layers(weights: str, samples: int) -> list[dict]:
    """The demo model's layers: constants and accumulators (bias included) per output channel."""
    import torch

    from unitprune.experiments.folding import fold_input_normalization
    from unitprune.experiments.inputs import load_data, load_model
    torch.set_num_threads(1)
    splits = load_data("mnist", None, seed=0)
    model, _ = load_model("mnist", weights, None, num_classes=10)
    model, splits = fold_input_normalization(model, splits)
    unit_model = unitprune.convert(model, unitprune.UnITConfig(approx="bitshift", percentile=20.0))
    unitprune.calibrate(unit_model, splits.val.tensors[0], percentile=20.0)
    qmodel = unitprune.quantize(unit_model, splits.val.tensors[0])
    recorded = []
    original = reference._requantize_outputs

    def record(acc, op, channel_axis):
        recorded.append((op, np.moveaxis(np.asarray(acc, np.int64), channel_axis, 1)))
        return original(acc, op, channel_axis=channel_axis)

    reference._requantize_outputs = record
    try:
        reference.run_reference(qmodel, reference.quantize_input(qmodel, splits.test.tensors[0][:samples]),
                                variant="dense")
    finally:
        reference._requantize_outputs = original
    layers = []
    for op, acc in recorded:
        r = op.requant
        per_channel = acc.reshape(acc.shape[0], acc.shape[1], -1)  # (samples, channels, positions)
        conv = hasattr(op, "out_width")
        layers.append({"name": op.name, "run": int(op.out_width) if conv else 1, "channels": [
            {"multiplier": int(r.multiplier[c]), "shift": int(r.shift[c]), "act_min": int(r.act_min),
             "act_max": int(r.act_max), "acc": (per_channel[:, c, :].reshape(-1) + int(r.bias[c])).tolist()}
            for c in range(per_channel.shape[1])]})
    return layers


def measure_mnist(target: str, layers: list[dict], root: Path, tables: bool = False) -> dict:
    """Cycles of the kernels' runs over the demo model's accumulators, per layer (``tables``: the
    convolutions' channels with threshold tables, as ``unitprune.mcu.requant_table`` exports them)."""
    out = {}
    for layer in layers:
        rows, run = layer["channels"], layer["run"]  # linear: one run per output (constants per output)
        groups, acc, first = [], [], 0
        for row in rows:
            groups.append({**{k: row[k] for k in ("multiplier", "shift", "act_min", "act_max")},
                           "first": first, "count": len(row["acc"])})
            acc += row["acc"]
            first += len(row["acc"])
        acc = np.array(acc, np.int64)
        table_array = group_tables(groups) if tables and run > 1 else None
        firmware, result = _build_run(target, firmware_source(groups, _stored(target, acc), [], [run], table_array),
                                      root / layer["name"])
        got = np.frombuffer(next(r for r in result.regions if r.label == "exact").data, np.int8)
        _check(target, f"mnist {layer['name']}", got, expected(groups, acc), acc, groups)
        cycles = sum(r.cycles for r in result.regions if r.label == "channel")
        out[layer["name"]] = {"outputs": int(acc.size), "run": run, "cycles": int(cycles),
                              "cycles_per_output": cycles / acc.size,
                              "fast_channels": sum(is_fast(g["multiplier"], g["shift"]) for g in groups),
                              "channels": len(groups), "relu_shortcut": float(np.mean(acc <= 0)),
                              "table_channels": sum(g.get("table", -1) >= 0 for g in groups) if table_array is not None else 0,
                              "table_flash_bytes": int(4 * table_array.size) if table_array is not None else 0}
    total_cycles = sum(v["cycles"] for v in out.values())
    total_outputs = sum(v["outputs"] for v in out.values())
    return {"layers": out, "mean_cycles_per_output": total_cycles / total_outputs, "outputs": total_outputs}


def _version(command: list[str]) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, check=False).stdout.splitlines()[0]
    except (OSError, IndexError):
        return "unknown"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--targets", nargs="+", default=list(TARGETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--weights", default="runs/demo/train/model.pt", help="the demo MNIST state_dict ('' skips)")
    parser.add_argument("--mnist-samples", type=int, default=1)
    parser.add_argument("--output", type=Path, default=RESULTS / "requantize_run_s8_mcu.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = channels(args.seed)
    layers = mnist_layers(args.weights, args.mnist_samples) if args.weights else []
    document = {"command": "PYTHONPATH=src python benchmarks/requantize_run_s8_mcu.py " + " ".join(argv or []),
                "machine": {"python": platform.python_version(), "processor": platform.processor() or platform.machine(),
                            "avr-gcc": _version(["avr-gcc", "--version"]), "clang-14": _version(["clang-14", "--version"]),
                            "mspdebug": _version(["dpkg-query", "-W", "-f=${Version}", "mspdebug"]),
                            "simavr": _version(["dpkg-query", "-W", "-f=${Version}", "simavr"])},
                "seed": args.seed, "mnist_samples": args.mnist_samples, "targets": {}}
    with tempfile.TemporaryDirectory(prefix="requantize_run_s8_mcu_") as temporary:
        for target in args.targets:
            result = measure_cases(target, rows, Path(temporary) / target / "cases")
            if layers:
                result["mnist"] = measure_mnist(target, layers, Path(temporary) / target / "mnist")
            if target in TABLE_TARGETS:  # the threshold tables (unitprune.mcu.requant_table)
                result["table"] = measure_table_cases(target, rows, Path(temporary) / target / "table")
                if layers:
                    result["table"]["mnist"] = measure_mnist(target, layers, Path(temporary) / target / "mnist_table",
                                                             tables=True)
                logger.info("%s with threshold tables: worst %d per output (mean over the edge cases %.1f); MNIST mean %s",
                            target, result["table"]["table_worst"], result["table"]["table_mean_edge_cases"],
                            round(result["table"]["mnist"]["mean_cycles_per_output"], 1) if layers else "-")
            document["targets"][target] = result
            logger.info("%s: %d outputs exact; per output, fast form worst %d (mean over the edge cases %.1f), "
                        "general routine worst %d; MNIST mean %s", target, result["outputs_checked"],
                        result["fast_worst"], result["fast_mean_edge_cases"], result["general_worst"],
                        round(result["mnist"]["mean_cycles_per_output"], 1) if layers else "-")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=1) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
