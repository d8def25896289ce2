"""Cycle-exact cost of the UnIT quotient on AVR (simavr): true division against the approximations.

The MCU counterpart of ``benchmarks/division.py``. It

1. generates the operands on the host (float32 thresholds/controls as in ``division_bench.c``;
   integer controls with a calibration-like bit-length distribution) and the binary search trees
   (``unitprune.approx.BinTree``: the optimal alphabetic tree of a separate calibration sample,
   and a balanced one) as C tables and unrolled code, into ``division_data.h``;
2. builds the harness ``benchmarks/mcu/simavr_cycles.c`` against libsimavr (host gcc) and the
   firmware ``benchmarks/mcu/division_avr.c`` with avr-gcc at each optimisation level, including
   the library's own ``src/unitprune/csrc/unit_internal.h`` for the float approximations;
3. runs the firmware in simavr, which reports the exact cycles of every variant's loop and streams
   its results back; every result is compared bit for bit with ``unitprune.approx`` (float) or
   Python integer arithmetic -- a mismatch is an error, not a footnote;
4. writes ``benchmarks/results/division_avr.json`` and ``.md``: cycles per quotient (loop cycles
   minus the empty loop's, divided by N) and throughput ratios against true division.

Usage: ``python benchmarks/division_mcu.py [--n 256] [--mcu atmega2560] [--opt Os O2]``
Needs: ``apt-get install gcc-avr avr-libc binutils-avr simavr libsimavr-dev libelf-dev pkg-config``.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import unitprune
from unitprune import approx

logger = logging.getLogger("division_mcu")

HERE = Path(__file__).resolve().parent
MCU_DIR = HERE / "mcu"
CSRC = Path(unitprune.__file__).resolve().parent / "csrc"
RESULTS = HERE / "results"
APT_PACKAGES = "gcc-avr avr-libc binutils-avr simavr libsimavr-dev libelf-dev pkg-config"
CONTROL_BITS = (1, 15)  # integer controls are 1..15-bit magnitudes (int16 activations)
FIRMWARE_FLAGS = ["-std=gnu99", "-Wall", "-Wextra", "-Wno-unused-function"]

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


class ToolMissing(RuntimeError):
    """avr-gcc, libsimavr or a host compiler is not installed."""


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


def check_tools() -> dict[str, str]:
    """libsimavr's host compiler/linker flags and the avr-gcc version; raises ToolMissing naming the apt packages."""
    missing = [tool for tool in ("avr-gcc", "gcc", "pkg-config") if shutil.which(tool) is None]
    if missing:
        raise ToolMissing(f"{', '.join(missing)} not found; install with: apt-get install -y --no-install-recommends "
                          f"{APT_PACKAGES}")
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "simavr"], capture_output=True, text=True)
    include_dirs = [Path(flag[2:]) for flag in flags.stdout.split() if flag.startswith("-I")]
    if flags.returncode != 0 or not any((directory / "sim_avr.h").exists() for directory in include_dirs):
        raise ToolMissing(f"libsimavr (pkg-config simavr) not found; install with: apt-get install -y "
                          f"--no-install-recommends {APT_PACKAGES}")
    # avr-libc's headers are a separate package from the compiler
    probe = subprocess.run(["avr-gcc", "-mmcu=atmega2560", "-E", "-x", "c", "-", "-o", "/dev/null"],
                           input="#include <avr/io.h>\n", capture_output=True, text=True)
    if probe.returncode != 0:
        raise ToolMissing(f"avr-libc headers not usable ({probe.stderr.strip()}); install with: apt-get install -y "
                          f"--no-install-recommends {APT_PACKAGES}")
    version = subprocess.run(["avr-gcc", "--version"], capture_output=True, text=True, check=True).stdout
    return {"simavr_flags": flags.stdout.strip(), "avr_gcc_version": version.splitlines()[0]}


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


def _c_array(ctype: str, name: str, values, suffix: str = "") -> str:
    items = ", ".join(f"{int(v)}{suffix}" for v in values)
    return f"static {ctype} {name}[] = {{{items}}};\n"


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
        _c_array("uint32_t", "t_f32", ops.t_f32, "UL"), _c_array("uint32_t", "c_f32", ops.c_f32, "UL"),
        _c_array("uint32_t", "t_u32", ops.t_u32, "UL"), _c_array("uint32_t", "c_u32", ops.c_u32, "UL"),
        f"#define DIV_EDGE_N {len(EDGE_CASES)}\n",
        _c_array("const uint32_t", "edge_t_f32", [t for t, _ in EDGE_CASES], "UL"),
        _c_array("const uint32_t", "edge_c_f32", [c for _, c in EDGE_CASES], "UL"),
        _c_array("uint16_t", "t_u16", ops.t_u16, "U"), _c_array("uint16_t", "c_u16", ops.c_u16, "U"),
        "/* unitprune.approx.BinTree.from_samples flat arrays; pivot = 2**(split-1), 0 at leaves */\n",
        _c_array("const uint16_t", "tree_pivot", [(1 << (s - 1)) if s > 0 else 0 for s in tree.split], "U"),
        _c_array("const int8_t", "tree_left", tree.left), _c_array("const int8_t", "tree_right", tree.right),
        _c_array("const uint8_t", "tree_leaf", tree.leaf),
    ]
    for ctype, prefix in (("uint32_t", "u32"), ("uint16_t", "u16")):
        parts.append(_tree_code(ops.optimal, ctype, f"{prefix}_bintree_shift_optimal"))
        parts.append(_tree_code(ops.balanced, ctype, f"{prefix}_bintree_shift_balanced"))
    path.write_text("".join(parts))


def _f32_bits(tensor: torch.Tensor) -> np.ndarray:
    return tensor.contiguous().view(torch.int32).numpy().view(np.uint32).astype(np.int64)


def _f32_tensor(bits: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(bits.astype(np.uint32).view(np.int32).copy()).view(torch.float32)


def expected_results(ops: Operands) -> dict[str, np.ndarray]:
    """What every variant must produce, from unitprune.approx and Python integers."""
    t, c = _f32_tensor(ops.t_f32), _f32_tensor(ops.c_f32)
    edge_t, edge_c = _f32_tensor(ops.edge_t_f32), _f32_tensor(ops.edge_c_f32).abs()
    bitmask = _f32_bits(approx.bitmask(t, c))
    expected = {
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


def build_harness(build: Path, simavr_flags: str) -> Path:
    harness = build / "simavr_cycles"
    command = ["gcc", "-O2", "-Wall", "-o", str(harness), str(MCU_DIR / "simavr_cycles.c"), *simavr_flags.split(), "-lelf"]
    subprocess.run(command, check=True)
    return harness


def build_firmware(build: Path, mcu: str, opt: str) -> tuple[Path, list[str]]:
    elf = build / f"division_avr_{mcu}_{opt}.elf"
    flags = [f"-mmcu={mcu}", f"-{opt}", *FIRMWARE_FLAGS]
    process = subprocess.run(["avr-gcc", *flags, "-I", str(CSRC), "-I", str(MCU_DIR), "-I", str(build),
                              str(MCU_DIR / "division_avr.c"), "-o", str(elf)], capture_output=True, text=True)
    if process.returncode != 0:
        raise RuntimeError(f"avr-gcc failed for {elf.name} (a too large --n overflows the MCU's SRAM at link "
                           f"time):\n{process.stderr.strip()}")
    if process.stderr.strip():
        logger.warning("avr-gcc: %s", process.stderr.strip())
    return elf, flags


def run_firmware(harness: Path, elf: Path, mcu: str) -> list[dict]:
    """Runs the firmware in simavr; returns the harness's region records (raises if not done)."""
    process = subprocess.run([str(harness), str(elf), mcu], capture_output=True, text=True, timeout=300)
    records = [json.loads(line) for line in process.stdout.splitlines() if line.strip()]
    if process.returncode != 0 or not records or not records[-1].get("done"):
        raise RuntimeError(f"simavr run of {elf.name} failed (exit {process.returncode}): {process.stderr.strip()}")
    return records[:-1]


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


def measure(n: int = 256, mcu: str = "atmega2560", opts: tuple[str, ...] = ("Os", "O2"),
            build_dir: Path | None = None) -> dict:
    """Builds, runs and checks; returns {"settings": ..., "builds": {opt: {...}}}."""
    tools = check_tools()
    ops = make_operands(n)
    expected = expected_results(ops)
    with tempfile.TemporaryDirectory(prefix="division_mcu_") as temporary:
        build = Path(build_dir or temporary)
        build.mkdir(parents=True, exist_ok=True)
        write_data_header(build / "division_data.h", ops)
        harness = build_harness(build, tools["simavr_flags"])
        builds = {}
        for opt in opts:
            elf, flags = build_firmware(build, mcu, opt)
            records = run_firmware(harness, elf, mcu)
            check_results(records, expected)
            loop_cycles = {record["label"]: record["cycles"] for record in records}
            builds[opt] = {"flags": flags, "loop_cycles": loop_cycles, "cycles_per_quotient": per_quotient(loop_cycles, n)}
            logger.info("%s -%s: %d regions checked bit-exactly", mcu, opt, len(records))
    return {"settings": {"mcu": mcu, "n": n, "compiler": tools["avr_gcc_version"], "simulator": "simavr (libsimavr)",
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
    q = build["cycles_per_quotient"]
    return {label: q[baseline] / q[variant] for label, baseline, variant in RATIOS}


def render_markdown(result: dict) -> str:
    settings, builds = result["settings"], result["builds"]
    opts = list(builds)
    n = settings["n"]
    lines = [f"# Division on AVR, cycle-exact ({time.strftime('%Y-%m-%d %H:%M')})", "",
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
        lines.append(f"| {label} | " + " | ".join(f"{all_ratios[o][label]:.2f}x" for o in opts) + " |")
    lines.append("")
    for name, key in (("library bitmask (unit__approx_bits)", "float: bitmask vs true division"),):
        lines.append(f"Target (bitmask >= 1.8x the throughput of true division), {name}: " + ", ".join(
            f"-{o}: {all_ratios[o][key]:.2f}x ({'met' if all_ratios[o][key] >= 1.8 else 'missed'})" for o in opts) + ".")
    lines += [
        f"Edge cases (zeros, subnormals, overflow, underflow, negative controls) of the float approximations "
        f"also checked bit-exactly on the MCU: {len(EDGE_CASES)} pairs for each of "
        + ", ".join(f"`{label[5:]}`" for label in builds[opts[0]]["loop_cycles"] if label.startswith("edge_")) + ".",
        f"Bintree mean comparisons on the timed 32-bit controls: optimal tree "
        f"{settings['optimal_tree_expected_comparisons']:.2f}, balanced {settings['balanced_tree_expected_comparisons']:.2f}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=256, help="operand pairs per loop (SRAM: <= 256 on atmega2560)")
    parser.add_argument("--mcu", default="atmega2560")
    parser.add_argument("--opt", nargs="+", default=["Os", "O2"], help="avr-gcc optimisation levels")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--build-dir", type=Path, default=None, help="keep the build here (default: temporary)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        result = measure(args.n, args.mcu, tuple(args.opt), args.build_dir)
    except ToolMissing as error:
        raise SystemExit(f"division_mcu: {error}")
    for o, build in result["builds"].items():
        build["ratios"] = ratios(build)
    text = render_markdown(result)
    print(text)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "division_avr.json").write_text(json.dumps(result, indent=1))
    (args.output / "division_avr.md").write_text(text)
    print(f"wrote {args.output / 'division_avr.json'} and {args.output / 'division_avr.md'}")


if __name__ == "__main__":
    main()
