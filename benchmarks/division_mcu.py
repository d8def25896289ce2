"""Cycle-exact cost of the UnIT quotient on AVR (simavr) and MSP430 (mspdebug sim): true division
against the approximations.

The MCU counterpart of ``benchmarks/division.py``. It

1. generates the operands on the host (float32 thresholds/controls as in ``division_bench.c``;
   integer controls with a calibration-like bit-length distribution) and the binary search trees
   (``unitprune.approx.BinTree``: the optimal alphabetic tree of a separate calibration sample,
   and a balanced one) as C tables and unrolled code, into ``division_data.h``;
2. builds the firmware ``benchmarks/mcu/division.c`` with ``unitprune.mcu.targets.build`` for
   each target and optimisation level, including the library's own
   ``src/unitprune/csrc/unit_internal.h`` for the float approximations (AVR only: Debian has no
   msp430 soft-float library; MSP430 runs the integer variants);
3. runs it with ``unitprune.mcu.targets.run`` (AVR: simavr; MSP430: mspdebug sim, with the
   project's software division helpers), which reports the exact cycles of every variant's loop
   and streams its results back; every result is compared bit for bit with ``unitprune.approx``
   (float) or Python integer arithmetic -- a mismatch is an error, not a footnote;
4. writes ``benchmarks/results/division_<avr|msp430>.json`` and ``.md``: cycles per quotient (loop
   cycles minus the empty loop's, divided by N) and throughput ratios against true division.

Usage: ``python benchmarks/division_mcu.py [--targets avr msp430] [--n 256] [--opt Os O2]``
Needs: ``apt-get install gcc-avr avr-libc binutils-avr simavr libsimavr-dev libelf-dev pkg-config``
(AVR) and ``clang-14 lld-14 mspdebug`` (MSP430).
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import unitprune
from unitprune import approx
from unitprune.mcu.codegen import c_array
from unitprune.mcu import targets
from unitprune.mcu.targets import ToolMissing

logger = logging.getLogger("division_mcu")

HERE = Path(__file__).resolve().parent
MCU_DIR = HERE / "mcu"
CSRC = Path(unitprune.__file__).resolve().parent / "csrc"
RESULTS = HERE / "results"
CONTROL_BITS = (1, 15)  # integer controls are 1..15-bit magnitudes (int16 activations)
FIRMWARE = MCU_DIR / "division.c"
FIRMWARE_FLAGS = ["-Wno-unused-function"]
# Debian has no soft-float library for msp430 (the library's float approximations need int-to-float
# conversions, __mspabi_fltlif): the float variants are AVR-only.
SOFT_FLOAT = {"avr": True, "msp430": False}
MCU_NAMES = {"avr": "atmega2560", "msp430": "MSP430 (mspdebug sim, no hardware multiplier)"}
DEFAULT_OPTS = {"avr": ("Os", "O2"), "msp430": ("O2",)}

# (label, baseline, approximation): throughput ratio = baseline cycles / approximation cycles.
RATIOS = [
    ("float: bitmask vs true division", "f32_true_division", "f32_bitmask"),
    ("float: bitmask vs library exact", "f32_exact", "f32_bitmask"),
    ("float: bitshift vs true division", "f32_true_division", "f32_bitshift"),
    *[(f"{bits}-bit int: {name} vs integer division", f"u{bits}_true_division", f"u{bits}_{variant}")
      for bits in (32, 16)
      for name, variant in [("bitshift loop", "bitshift_loop"), ("bitshift (T shifted in the loop)", "bitshift_fused"),
                            ("bintree (table walk)", "bintree_table"), ("bintree (unrolled, optimal)", "bintree_unrolled"),
                            ("bintree (unrolled, balanced)", "bintree_unrolled_balanced")]],
]


@dataclass
class Operands:
    """Benchmark operands and the trees, all as exact integers / float32 bit patterns."""

    t_f32: np.ndarray  # uint32 bit patterns
    c_f32: np.ndarray
    t_u32: np.ndarray  # int64 values
    c_u32: np.ndarray
    t_u16: np.ndarray
    c_u16: np.ndarray
    edge_t_f32: np.ndarray  # EDGE_CASES repeated to n, as the firmware loads them
    edge_c_f32: np.ndarray
    optimal: approx.BinTree
    balanced: approx.BinTree


# (T bits, c bits): zeros, subnormals, overflow to +inf, underflow to 0 / subnormal results (with
# rounding), the largest finite values and negative controls (the sign is ignored).
EDGE_CASES = [
    (0x00000000, 0x3F800000), (0x3F800000, 0x00000000), (0x00000000, 0x00000000), (0x00000001, 0x3F800000),
    (0x00400000, 0x40000000), (0x3F800000, 0x00000001), (0x3F800000, 0x007FFFFF), (0x7F000000, 0x00800000),
    (0x00800000, 0x7F000000), (0x0C5A5A5B, 0x72345678), (0x7F7FFFFF, 0x3E800000), (0x7F7FFFFF, 0x7F7FFFFF),
    (0x3F800000, 0xBF400000), (0x00000003, 0x40400000), (0x0000FFFF, 0x00000010), (0x42F6E979, 0x80000000),
]


def check_tools(target: str = "avr") -> dict[str, str]:
    """The target's compiler and simulator (unitprune.mcu.targets); ToolMissing naming the apt packages."""
    return targets.check_tools(target)


def _random_floats(rng: np.random.Generator, n: int, lowest_field: int, fields: int) -> np.ndarray:
    """Positive normal float32 bit patterns with exponent fields lowest_field..+fields-1, random mantissas."""
    field = rng.integers(lowest_field, lowest_field + fields, n, dtype=np.uint32)
    mantissa = rng.integers(0, 1 << 23, n, dtype=np.uint32)
    return (field << np.uint32(23)) | mantissa


def _controls(rng: np.random.Generator, n: int) -> np.ndarray:
    """Integer magnitudes whose bit lengths cluster like quantised activations (mean 8, sd 2.5)."""
    lo, hi = CONTROL_BITS
    bits = np.clip(np.rint(rng.normal(8.0, 2.5, n)), lo, hi).astype(np.int64)
    return np.array([int(rng.integers(1 << (b - 1), 1 << b)) for b in bits], dtype=np.int64)


def make_operands(n: int, seed: int = 2024) -> Operands:
    rng = np.random.default_rng(seed)
    lo, hi = CONTROL_BITS
    calibration = _controls(rng, 4096)  # the tree is fitted on other data than it is timed on
    return Operands(
        t_f32=_random_floats(rng, n, 107, 20),  # thresholds 2**-20 .. 2**0
        c_f32=_random_floats(rng, n, 117, 20),  # |activations| 2**-10 .. 2**10
        t_u32=rng.integers(0, 1 << 24, n, dtype=np.int64),  # 24-bit thresholds
        c_u32=_controls(rng, n),
        t_u16=rng.integers(0, 1 << 16, n, dtype=np.int64),
        c_u16=_controls(rng, n),
        edge_t_f32=np.resize(np.array([t for t, _ in EDGE_CASES], dtype=np.uint32), n),
        edge_c_f32=np.resize(np.array([c for _, c in EDGE_CASES], dtype=np.uint32), n),
        optimal=approx.BinTree.from_samples(calibration, lo, hi),
        balanced=approx.BinTree.balanced(lo, hi),
    )


def _tree_code(tree: approx.BinTree, ctype: str, name: str) -> str:
    """The tree as nested ifs with a constant shift at each leaf (what firmware would inline)."""
    def emit(node: int, depth: int) -> list[str]:
        pad = "    " * depth
        if tree.left[node] < 0:
            return [f"{pad}return t >> {tree.leaf[node]};"]
        pivot = 1 << (tree.split[node] - 1)
        return ([f"{pad}if (v < {pivot}u) {{"] + emit(tree.left[node], depth + 1) + [f"{pad}}} else {{"]
                + emit(tree.right[node], depth + 1) + [f"{pad}}}"])
    body = "\n".join(emit(0, 1))
    return (f"static inline __attribute__((always_inline)) {ctype} {name}({ctype} t, {ctype} v) {{\n"
            f"{body}\n}}\n")


def write_data_header(path: Path, ops: Operands) -> None:
    tree = ops.optimal
    parts = [
        "/* Generated by benchmarks/division_mcu.py: operands and bintree tables. Do not edit. */\n",
        "#include <stdint.h>\n",
        f"#define DIV_N {len(ops.t_f32)}\n",
        # Operands are mutable SRAM data like a layer's activations (the firmware overwrites the
        # float ones with the edge cases at the end).
        c_array("uint32_t", "t_f32", ops.t_f32, const=False), c_array("uint32_t", "c_f32", ops.c_f32, const=False),
        c_array("uint32_t", "t_u32", ops.t_u32, const=False), c_array("uint32_t", "c_u32", ops.c_u32, const=False),
        f"#define DIV_EDGE_N {len(EDGE_CASES)}\n",
        c_array("uint32_t", "edge_t_f32", [t for t, _ in EDGE_CASES], const=True),
        c_array("uint32_t", "edge_c_f32", [c for _, c in EDGE_CASES], const=True),
        c_array("uint16_t", "t_u16", ops.t_u16, const=False), c_array("uint16_t", "c_u16", ops.c_u16, const=False),
        "/* unitprune.approx.BinTree.from_samples flat arrays; pivot = 2**(split-1), 0 at leaves */\n",
        c_array("uint16_t", "tree_pivot", [(1 << (s - 1)) if s > 0 else 0 for s in tree.split], const=True),
        c_array("int8_t", "tree_left", tree.left, const=True), c_array("int8_t", "tree_right", tree.right, const=True),
        c_array("uint8_t", "tree_leaf", tree.leaf, const=True),
    ]
    for ctype, prefix in (("uint32_t", "u32"), ("uint16_t", "u16")):
        parts.append(_tree_code(ops.optimal, ctype, f"{prefix}_bintree_shift_optimal"))
        parts.append(_tree_code(ops.balanced, ctype, f"{prefix}_bintree_shift_balanced"))
    path.write_text("".join(parts))


def _f32_bits(tensor: torch.Tensor) -> np.ndarray:
    return tensor.contiguous().view(torch.int32).numpy().view(np.uint32).astype(np.int64)


def _f32_tensor(bits: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(bits.astype(np.uint32).view(np.int32).copy()).view(torch.float32)


def expected_results(ops: Operands, soft_float: bool = True) -> dict[str, np.ndarray]:
    """What every variant must produce, from unitprune.approx and Python integers (the float
    divisions only when the target has a soft-float library)."""
    t, c = _f32_tensor(ops.t_f32), _f32_tensor(ops.c_f32)
    edge_t, edge_c = _f32_tensor(ops.edge_t_f32), _f32_tensor(ops.edge_c_f32).abs()
    bitmask = _f32_bits(approx.bitmask(t, c))
    expected = {} if not soft_float else {
        "f32_empty": ops.t_f32.astype(np.int64),
        "f32_true_division": _f32_bits(t / c),
        "f32_exact": _f32_bits(approx.exact(t, c)),
        "f32_bitmask": bitmask,
        "f32_bitshift": _f32_bits(approx.bitshift(t, c)),
        "edge_f32_bitmask": _f32_bits(approx.bitmask(edge_t, edge_c)),
        "edge_f32_bitshift": _f32_bits(approx.bitshift(edge_t, edge_c)),
    }
    for prefix, tt, cc in (("u32", ops.t_u32, ops.c_u32), ("u16", ops.t_u16, ops.c_u16)):
        shifted = np.asarray(approx.bitshift_int(tt, cc))
        expected.update({
            f"{prefix}_empty": tt,
            f"{prefix}_true_division": np.asarray(approx.exact_int(tt, cc)),
            f"{prefix}_bitshift_loop": shifted,
            f"{prefix}_bitshift_fused": shifted,
            f"{prefix}_bintree_table": np.asarray(approx.bintree_int(tt, cc, ops.optimal)),
            f"{prefix}_bintree_unrolled": np.asarray(approx.bintree_int(tt, cc, ops.optimal)),
            f"{prefix}_bintree_unrolled_balanced": np.asarray(approx.bintree_int(tt, cc, ops.balanced)),
        })
    return expected


def build_and_run(target: str, opt: str, data_dir: Path, build_dir: Path | None) -> tuple[list[dict], list[str], dict]:
    """Builds division.c for ``target`` at ``opt`` and runs it; the region records, the compiler
    flags and the firmware sizes."""
    firmware = targets.build(target, [FIRMWARE], include_dirs=[CSRC, data_dir],
                             defines={"DIV_FLOAT": int(SOFT_FLOAT[target])}, build_dir=build_dir,
                             opt=opt, cflags=FIRMWARE_FLAGS, name=f"division_{target}_{opt}")
    result = targets.run(firmware, max_cycles=200_000_000)
    records = [{"label": r.label, "cycles": -1 if r.cycles is None else r.cycles, "data": r.data.hex()}
               for r in result.regions]
    flags = [f for f in firmware.commands[0] if f.startswith("-") and not f.startswith(("-I", "-o", "-isystem", "-c"))]
    sizes = {"flash_bytes": firmware.flash_bytes, "sram_static_bytes": firmware.sram_static_bytes,
             "stack_bytes": result.stack_bytes, "compiler": firmware.compiler}
    return records, flags, sizes


def decode(record: dict, bytes_per_value: int) -> np.ndarray:
    raw = np.frombuffer(bytes.fromhex(record["data"]), dtype=np.uint8)  # AVR is little-endian
    return raw.reshape(-1, bytes_per_value).astype(np.int64) @ (256 ** np.arange(bytes_per_value, dtype=np.int64))


def check_results(records: list[dict], expected: dict[str, np.ndarray]) -> None:
    """Every variant ran, has a cycle count, and produced exactly the expected values."""
    labels = [record["label"] for record in records]
    if sorted(labels) != sorted(expected):
        raise RuntimeError(f"firmware regions {labels} do not match the expected variants {sorted(expected)}")
    for record in records:
        label = record["label"]
        got = decode(record, 2 if label.startswith("u16") else 4)
        want = expected[label]
        if record["cycles"] < 0:
            raise RuntimeError(f"{label}: region has no stop marker")
        if got.shape != want.shape or not np.array_equal(got, want):
            bad = np.flatnonzero(got != want) if got.shape == want.shape else []
            detail = f"first mismatch at {bad[0]}: got {got[bad[0]]:#x}, expected {want[bad[0]]:#x}" if len(bad) else \
                f"got {got.shape[0]} values, expected {want.shape[0]}"
            raise RuntimeError(f"{label}: results differ from unitprune.approx ({len(bad)} mismatches; {detail})")


def measure(n: int = 256, target: str = "avr", opts: tuple[str, ...] | None = None,
            build_dir: Path | None = None) -> dict:
    """Builds, runs and checks; returns {"settings": ..., "builds": {opt: {...}}}."""
    if target not in SOFT_FLOAT:
        raise ValueError(f"division benchmark targets are {sorted(SOFT_FLOAT)}, not {target!r}")
    check_tools(target)
    opts = opts or DEFAULT_OPTS[target]
    ops = make_operands(n)
    expected = expected_results(ops, SOFT_FLOAT[target])
    with tempfile.TemporaryDirectory(prefix="division_mcu_") as temporary:
        root = Path(build_dir or temporary)
        data_dir = root / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        write_data_header(data_dir / "division_data.h", ops)
        builds, compiler = {}, ""
        for opt in opts:
            records, flags, sizes = build_and_run(target, opt, data_dir, root / f"{target}_{opt}")
            check_results(records, expected)
            compiler = sizes.pop("compiler")
            loop_cycles = {record["label"]: record["cycles"] for record in records}
            builds[opt] = {"flags": flags, "loop_cycles": loop_cycles, "cycles_per_quotient": per_quotient(loop_cycles, n),
                           **sizes}
            logger.info("%s -%s: %d regions checked bit-exactly", target, opt, len(records))
    simulator = "simavr (libsimavr)" if target == "avr" else "mspdebug 0.22 sim (classic MSP430 cycle table)"
    return {"settings": {"target": target, "mcu": MCU_NAMES[target], "n": n, "compiler": compiler,
                         "simulator": simulator,
                         "optimal_tree_expected_comparisons": ops.optimal.expected_comparisons(ops.c_u32),
                         "balanced_tree_expected_comparisons": ops.balanced.expected_comparisons(ops.c_u32)},
            "builds": builds}


def per_quotient(loop_cycles: dict[str, int], n: int) -> dict[str, float]:
    """(loop cycles - empty loop cycles of the same operand type) / n, for every non-empty variant."""
    result = {}
    for label, cycles in loop_cycles.items():
        if label.endswith("_empty") or label.startswith("edge_"):
            continue
        empty = loop_cycles[label.split("_")[0] + "_empty"]
        result[label] = (cycles - empty) / n
    return result


def ratios(build: dict) -> dict[str, float]:
    """The RATIOS whose two variants were measured (no float division on MSP430)."""
    q = build["cycles_per_quotient"]
    return {label: q[baseline] / q[variant] for label, baseline, variant in RATIOS if baseline in q and variant in q}


def render_markdown(result: dict) -> str:
    settings, builds = result["settings"], result["builds"]
    opts = list(builds)
    n = settings["n"]
    title = "AVR" if settings["target"] == "avr" else "MSP430"
    lines = [f"# Division on {title}, cycle-exact ({time.strftime('%Y-%m-%d %H:%M')})", "",
             f"MCU {settings['mcu']} in {settings['simulator']}, {settings['compiler']}, N = {n} operand pairs per loop, "
             "every result checked bit-exactly against `unitprune.approx`. Flags: "
             + "; ".join(f"`{' '.join(builds[o]['flags'])}`" for o in opts) + ".", "",
             "Cycles per quotient = (loop cycles - empty loop cycles) / N; the empty loop loads both operands "
             "and stores one result like every variant. Raw loop cycles per pair in parentheses.", "",
             "| variant | " + " | ".join(f"-{o}" for o in opts) + " |", "|---" * (len(opts) + 1) + "|"]
    for label in builds[opts[0]]["loop_cycles"]:
        if label.startswith("edge_"):
            continue
        cells = []
        for o in opts:
            raw = builds[o]["loop_cycles"][label] / n
            net = builds[o]["cycles_per_quotient"].get(label)
            cells.append(f"({raw:.1f})" if net is None else f"{net:.1f} ({raw:.1f})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "Throughput ratio = cycles of the baseline / cycles of the approximation (> 1: faster).", "",
              "| ratio | " + " | ".join(f"-{o}" for o in opts) + " |", "|---" * (len(opts) + 1) + "|"]
    all_ratios = {o: ratios(builds[o]) for o in opts}
    for label, _, _ in RATIOS:
        if label in all_ratios[opts[0]]:
            lines.append(f"| {label} | " + " | ".join(f"{all_ratios[o][label]:.2f}x" for o in opts) + " |")
    lines.append("")
    if not SOFT_FLOAT[settings["target"]]:
        lines.append("Integer variants only: Debian has no msp430 soft-float library, which the float division and "
                     "the library's float approximations (int-to-float conversions) need.")
    lines.append("Flash bytes (text+rodata+data) / static SRAM (data+bss) / stack high-water: " + "; ".join(
        f"-{o}: {builds[o]['flash_bytes']} / {builds[o]['sram_static_bytes']} / {builds[o]['stack_bytes']}" for o in opts)
        + ".")
    for name, key in (("library bitmask (unit__approx_bits)", "float: bitmask vs true division"),):
        if key not in all_ratios[opts[0]]:
            continue
        lines.append(f"Target (bitmask >= 1.8x the throughput of true division), {name}: " + ", ".join(
            f"-{o}: {all_ratios[o][key]:.2f}x ({'met' if all_ratios[o][key] >= 1.8 else 'missed'})" for o in opts) + ".")
    edge = [label[5:] for label in builds[opts[0]]["loop_cycles"] if label.startswith("edge_")]
    if edge:
        lines.append(f"Edge cases (zeros, subnormals, overflow, underflow, negative controls) of the float approximations "
                     f"also checked bit-exactly on the MCU: {len(EDGE_CASES)} pairs for each of "
                     + ", ".join(f"`{label}`" for label in edge) + ".")
    lines += [
        f"Bintree mean comparisons on the timed 32-bit controls: optimal tree "
        f"{settings['optimal_tree_expected_comparisons']:.2f}, balanced {settings['balanced_tree_expected_comparisons']:.2f}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--targets", nargs="+", default=["avr", "msp430"], choices=sorted(SOFT_FLOAT))
    parser.add_argument("--n", type=int, default=256, help="operand pairs per loop (SRAM: <= 256 in 8 KB)")
    parser.add_argument("--opt", nargs="+", default=None,
                        help="optimisation levels (default: Os O2 on AVR, O2 on MSP430)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--build-dir", type=Path, default=None, help="keep the builds here (default: temporary)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.output.mkdir(parents=True, exist_ok=True)
    for target in args.targets:
        try:
            result = measure(args.n, target, tuple(args.opt) if args.opt else None,
                             args.build_dir / target if args.build_dir else None)
        except ToolMissing as error:
            raise SystemExit(f"division_mcu: {error}")
        for build in result["builds"].values():
            build["ratios"] = ratios(build)
        text = render_markdown(result)
        print(text)
        (args.output / f"division_{target}.json").write_text(json.dumps(result, indent=1))
        (args.output / f"division_{target}.md").write_text(text)
        print(f"wrote {args.output / f'division_{target}.json'} and {args.output / f'division_{target}.md'}")


if __name__ == "__main__":
    main()
