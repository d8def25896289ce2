"""unitprune.mcu.targets on every target: a test firmware (tests/mcu_firmware/arith.c) runs every
integer operation the MSP430 runtime helpers implement on random operands; the results must equal
Python's integer arithmetic (C semantics) bit for bit on host, AVR (simavr), MSP430 and
MSP430+hwmult (mspdebug sim). Cycle counts are exact: two runs agree, the empty region costs what
docs/mcu.md says, the hardware multiplier beats the software multiply, the stack high-water mark
covers a recursion of known depth."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest

from tests.mcu_tools import require_program, require_target
from unitprune.mcu import targets
from unitprune.mcu.codegen import c_array

FIRMWARE = Path(__file__).parent / "mcu_firmware" / "arith.c"
N = 24
STACK_DEPTH, STACK_FRAME_BYTES = 8, 24
EMPTY_REGION_CYCLES = {"avr": 2, "msp430": 8, "msp430-hwmult": 8}  # docs/mcu.md, unit_mcu.h


def wrap(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def c_div(a: int, b: int) -> int:
    quotient = abs(a) // abs(b)
    return quotient if (a < 0) == (b < 0) else -quotient


def c_rem(a: int, b: int) -> int:
    return a - c_div(a, b) * b


def _values(rng: random.Random, bits: int, n: int, nonzero: bool = False) -> list[int]:
    """Signed values of every magnitude class: full width, int16-, int8-sized, tiny, extremes."""
    values = []
    while len(values) < n:
        width = rng.choice([bits, bits, 16, 8, 3]) if bits > 8 else 8
        width = min(width, bits)
        value = rng.randrange(-(1 << (width - 1)), 1 << (width - 1))
        if rng.random() < 0.08:
            value = rng.choice([-(1 << (bits - 1)), (1 << (bits - 1)) - 1, -1, 0, 1])
        if nonzero and value == 0:
            continue
        values.append(value)
    return values


def make_operands(seed: int = 7) -> dict[str, list[int]]:
    rng = random.Random(seed)
    ops = {"a8": _values(rng, 8, N), "b8": _values(rng, 8, N), "a16": _values(rng, 16, N), "b16": _values(rng, 16, N),
           "d16": _values(rng, 16, N, nonzero=True), "a32": _values(rng, 32, N), "b32": _values(rng, 32, N),
           "d32": _values(rng, 32, N, nonzero=True), "a64": _values(rng, 64, N), "b64": _values(rng, 64, N),
           "n16": [rng.randrange(16) for _ in range(N)], "n32": [rng.randrange(32) for _ in range(N)],
           "n64": [rng.randrange(64) for _ in range(N)]}
    for a, d, bits in (("a16", "d16", 16), ("a32", "d32", 32)):  # MIN / -1 overflows in C
        ops[d] = [2 if (x == -(1 << (bits - 1)) and y == -1) else y for x, y in zip(ops[a], ops[d])]
    return ops


def expected_results(ops: dict[str, list[int]]) -> dict[str, tuple[int, list[int]]]:
    """label -> (bytes per value, values), from Python integers with C's semantics."""
    z = list(zip(ops["a16"], ops["b16"], ops["d16"], ops["n16"]))
    y = list(zip(ops["a32"], ops["b32"], ops["d32"], ops["n32"]))
    x = list(zip(ops["a64"], ops["b64"], ops["n64"]))
    u16, u32, u64 = (lambda v: v & 0xFFFF), (lambda v: v & 0xFFFFFFFF), (lambda v: v & (2**64 - 1))
    return {
        "mul16": (2, [wrap(a * b, 16) for a, b, _, _ in z]),
        "mul16x16_32": (4, [a * b for a, b, _, _ in z]),
        "mul32": (4, [wrap(a * b, 32) for a, b, _, _ in y]),
        "mul32x32_64": (8, [a * b for a, b, _, _ in y]),
        "mul64": (8, [wrap(a * b, 64) for a, b, _ in x]),
        "shl16": (2, [wrap(a << n, 16) for a, _, _, n in z]),
        "sra16": (2, [a >> n for a, _, _, n in z]),
        "srl16": (2, [wrap(u16(a) >> n, 16) for a, _, _, n in z]),
        "shl32": (4, [wrap(a << n, 32) for a, _, _, n in y]),
        "sra32": (4, [a >> n for a, _, _, n in y]),
        "srl32": (4, [wrap(u32(a) >> n, 32) for a, _, _, n in y]),
        "shl64": (8, [wrap(a << n, 64) for a, _, n in x]),
        "sra64": (8, [a >> n for a, _, n in x]),
        "srl64": (8, [wrap(u64(a) >> n, 64) for a, _, n in x]),
        "div16": (2, [c_div(a, d) for a, _, d, _ in z]),
        "rem16": (2, [c_rem(a, d) for a, _, d, _ in z]),
        "divu16": (2, [wrap(u16(a) // u16(d), 16) for a, _, d, _ in z]),
        "remu16": (2, [wrap(u16(a) % u16(d), 16) for a, _, d, _ in z]),
        "div32": (4, [c_div(a, d) for a, _, d, _ in y]),
        "rem32": (4, [c_rem(a, d) for a, _, d, _ in y]),
        "divu32": (4, [wrap(u32(a) // u32(d), 32) for a, _, d, _ in y]),
        "remu32": (4, [wrap(u32(a) % u32(d), 32) for a, _, d, _ in y]),
        "dot": (4, [sum(a * b for a, b in zip(ops["a8"], ops["b8"]))]),
        "recurse": (1, [sum(depth + depth % STACK_FRAME_BYTES for depth in range(1, STACK_DEPTH + 1)) & 0xFF]),
    }


def write_data_header(directory, ops: dict[str, list[int]]) -> None:
    types = {"8": "int8_t", "16": "int16_t", "32": "int32_t", "64": "int64_t"}
    parts = [f"#define ARITH_N {N}\n#define STACK_DEPTH {STACK_DEPTH}\n#define STACK_FRAME_BYTES {STACK_FRAME_BYTES}\n"]
    for name, values in ops.items():
        parts.append(c_array("int16_t" if name.startswith("n") else types[name[1:]], name, values, const=False,
                             volatile=True))
    (directory / "arith_data.h").write_text("".join(parts))


def decode(region: targets.Region, width: int) -> list[int]:
    data = region.data
    return [int.from_bytes(data[i:i + width], "little", signed=True) for i in range(0, len(data), width)]


@pytest.fixture(scope="module")
def operands():
    return make_operands()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, operands):
    directory = tmp_path_factory.mktemp("arith_data")
    write_data_header(directory, operands)
    return directory


_RUNS: dict[str, tuple] = {}


def built_and_run(target: str, data_dir, tmp_path_factory):
    """Builds the test firmware for ``target`` once per session and runs it twice."""
    if target not in _RUNS:
        require_target(target)
        firmware = targets.build(target, [FIRMWARE], include_dirs=[data_dir],
                                 build_dir=tmp_path_factory.mktemp(f"build-{target}"))
        _RUNS[target] = (firmware, targets.run(firmware, max_cycles=20_000_000), targets.run(firmware, max_cycles=20_000_000))
    return _RUNS[target]


@pytest.mark.parametrize("target", targets.TARGETS)
def test_results_bit_exact_against_python(target, operands, data_dir, tmp_path_factory):
    _, result, _ = built_and_run(target, data_dir, tmp_path_factory)
    for label, (width, want) in expected_results(operands).items():
        got = decode(result.region(label), width)
        assert got == want, f"{target} {label}: first mismatch at " + str(
            next((i, g, w) for i, (g, w) in enumerate(zip(got, want)) if g != w) if len(got) == len(want) else len(got))


@pytest.mark.parametrize("target", ["avr", "msp430", "msp430-hwmult"])
def test_cycles_exact_and_deterministic(target, data_dir, tmp_path_factory):
    firmware, first, second = built_and_run(target, data_dir, tmp_path_factory)
    assert first.cycles() == second.cycles() and first.total_cycles == second.total_cycles
    assert first.region("empty").cycles == EMPTY_REGION_CYCLES[target]
    timed = {label: cycles for label, cycles in first.cycles().items() if label not in ("empty", "recurse")}
    assert all(cycles is not None and cycles > EMPTY_REGION_CYCLES[target] for cycles in timed.values())
    assert first.region("recurse").cycles is None  # a record with no START/STOP has no cycle count
    assert 0 < firmware.sram_static_bytes < 8192 and firmware.flash_bytes > firmware.sections["text"] > 0
    assert first.total_cycles > sum(timed.values())


@pytest.mark.parametrize("target", ["avr", "msp430", "msp430-hwmult"])
def test_stack_high_water_covers_the_recursion(target, data_dir, tmp_path_factory):
    firmware, result, _ = built_and_run(target, data_dir, tmp_path_factory)
    frames = STACK_DEPTH * STACK_FRAME_BYTES
    # at least the frames themselves, at most frames + ~24 bytes per call level of saved registers,
    # return addresses and main's own frame
    assert frames <= result.stack_bytes <= frames + STACK_DEPTH * 24 + 96, result.stack_bytes
    assert firmware.sram_static_bytes + result.stack_bytes < 8192


def test_hardware_multiplier_beats_software_multiply(data_dir, tmp_path_factory):
    _, soft, _ = built_and_run("msp430", data_dir, tmp_path_factory)
    _, hard, _ = built_and_run("msp430-hwmult", data_dir, tmp_path_factory)
    for label in ("mul16", "mul16x16_32", "mul32", "mul32x32_64", "mul64", "dot"):
        assert hard.region(label).cycles < soft.region(label).cycles, label
    for label in ("shl32", "div16", "divu32"):  # no multiply: the same code, the same cycles
        assert hard.region(label).cycles == soft.region(label).cycles, label


def test_missing_tools_name_the_packages(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(targets.ToolMissing, match="clang-14 lld-14 mspdebug"):
        targets.check_tools("msp430")
    with pytest.raises(targets.ToolMissing, match="gcc-avr avr-libc binutils-avr simavr libsimavr-dev libelf-dev"):
        targets.check_tools("avr")


def test_build_dir_made_by_the_user_is_not_overwritten(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(targets.FirmwareError, match="not empty and was not made by unitprune"):
        targets.build("host", [FIRMWARE], build_dir=tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_energy_estimates_follow_the_datasheet_figures():
    assert targets.ENERGY_MODELS["msp430"].nj_per_cycle == pytest.approx(0.354)
    assert targets.ENERGY_MODELS["avr"].nj_per_cycle == pytest.approx(2.4)
    assert targets.energy_uj_estimate("msp430", 1_000_000) == pytest.approx(354.0)
    assert targets.energy_uj_estimate("host", 1000) is None


def test_mspdebug_cycle_table_is_the_documented_one(tmp_path):
    """mspdebug 0.22 counts a constant-generator operand as the addressing mode its encoding reuses
    (docs/mcu.md): DEC (SUB #1) 3 cycles (silicon 1), INCD (ADD #2) 2 (silicon 1); register and
    immediate operands, CALL #imm (5) and RET (3) as the family guide says."""
    require_target("msp430")
    firmware = targets.build("msp430", [FIRMWARE.parent / "msp430_cycle_table.c"], build_dir=tmp_path)
    cycles = targets.run(firmware).cycles()
    marker = 3 + 5  # the start stub's RET and the stop marker's CALL #imm, in every region
    assert cycles["empty"] == marker
    assert cycles["dec_loop"] == marker + 2 + 1000 * (3 + 2)
    assert cycles["register_loop"] == marker + 2 + 2 + 143 * (1 + 2)
    assert cycles["incd"] == marker + 2


@pytest.mark.parametrize("target", ["avr", "msp430"])
def test_firmware_without_done_marker_is_an_error(target, tmp_path):
    """A firmware that returns from main without unit_mcu_done() is reported, not read as a result."""
    require_target(target)
    source = tmp_path / "no_done.c"
    source.write_text('#include "unit_mcu.h"\nint main(void) {\n    unit_mcu_label("x");\n    UNIT_MCU_START();\n'
                      '    UNIT_MCU_STOP();\n    return 0;\n}\n')
    firmware = targets.build(target, [source], build_dir=tmp_path / "build")
    with pytest.raises(targets.FirmwareError, match="did not reach unit_mcu_done"):
        targets.run(firmware, max_cycles=100_000, timeout=30)


@pytest.mark.parametrize("target,region,size", [("avr", "text", 256 * 1024), ("msp430", "FRAM", 49_024)])
def test_firmware_beyond_the_flash_is_too_large_with_the_excess(target, region, size, tmp_path):
    """A constant table as large as the flash region: the link fails with FirmwareTooLarge, whose excess
    is at least the table's overshoot (the code comes on top) and whose message is not ld's."""
    require_target(target)
    table = size + 100
    source = tmp_path / "huge.c"
    # avr: a far table in progmem, anywhere in the 256 KB; msp430: constants in FRAM
    space, section = ("__memx ", ".progmemx.data.huge") if target == "avr" else ("", ".rodata.huge")
    source.write_text(f'#include <stdint.h>\n#include "unit_mcu.h"\nextern const {space}int8_t huge[];\n'
                      f'__asm__(".section {section},\\"a\\",@progbits\\nhuge:\\n.fill {table}, 1, 7\\n.previous\\n");\n'
                      'volatile int16_t index = 3;\nint main(void) {\n    volatile int8_t v = huge[index];\n'
                      '    (void)v;\n    unit_mcu_done();\n    return 0;\n}\n')
    with pytest.raises(targets.FirmwareTooLarge) as raised:
        targets.build(target, [source], build_dir=tmp_path / "build")
    assert raised.value.region == region and 100 < raised.value.overflow_bytes < 100 + 4096
    assert f"{raised.value.overflow_bytes:,} bytes" in str(raised.value) and "overflowed" not in str(raised.value)


@pytest.mark.parametrize("target", ["avr", "msp430"])
def test_section_sizes_agree_with_binutils(target, data_dir, tmp_path_factory):
    """The ELF header reader (targets/elf.py) against binutils' avr-size -A, section by section."""
    size_tool = require_program("avr-size", "binutils-avr")
    firmware, _, _ = built_and_run(target, data_dir, tmp_path_factory)
    listing = subprocess.run([size_tool, "-A", str(firmware.elf)], capture_output=True, text=True, check=True).stdout
    binutils = {line.split()[0]: int(line.split()[1]) for line in listing.splitlines()
                if line.startswith(".") and len(line.split()) == 3}
    assert firmware.sections["text"] == binutils[".text"]
    assert firmware.sections["data"] == binutils.get(".data", 0)
    assert firmware.sections["bss"] == binutils.get(".bss", 0) + binutils.get(".noinit", 0)
    assert firmware.sections["rodata"] == binutils.get(".rodata", 0) + binutils.get(".vectors", 0)
    assert firmware.flash_bytes == binutils[".text"] + firmware.sections["rodata"] + firmware.sections["data"]


@pytest.mark.parametrize("target", ["avr", "msp430"])
def test_too_long_label_is_an_error(target, tmp_path):
    require_target(target)
    source = tmp_path / "long_label.c"
    source.write_text('#include "unit_mcu.h"\nint main(void) {\n    unit_mcu_label("' + "x" * 130 + '");\n'
                      '    unit_mcu_done();\n}\n')
    firmware = targets.build(target, [source], build_dir=tmp_path / "build")
    with pytest.raises(targets.FirmwareError, match="label longer than 127"):
        targets.run(firmware, max_cycles=1_000_000, timeout=30)


def test_an_avr_stack_that_runs_into_the_static_data_is_an_error(tmp_path):
    """The stack of tests/mcu_firmware/stack_overflow.c (recursion of ~6.8 KB beside 2,000 B of
    .bss) overwrites every painted byte above the static data: the run raises FirmwareError naming
    a stack overflow instead of returning its outputs (they cannot be trusted)."""
    require_target("avr")
    firmware = targets.build("avr", [FIRMWARE.parent / "stack_overflow.c"], build_dir=tmp_path)
    assert 2000 < firmware.sram_static_bytes < 2100
    with pytest.raises(targets.FirmwareError, match="stack overflow"):
        targets.run(firmware, max_cycles=5_000_000)


@pytest.mark.parametrize("target", ["msp430", "msp430-hwmult"])
def test_an_msp430_stack_that_runs_into_the_static_data_is_an_error(target, tmp_path):
    """The same firmware on the MSP430 (8 KB SRAM 0x1C00-0x3BFF, link.ld): its recursion goes on
    until its frame lies ~1,000 B inside the 2,000 B of .bss, so crt0's paint between __bss_end and
    the SRAM top is all touched: R12 at __unit_mcu_end covers every free byte and the run raises
    FirmwareError naming the stack overflow, the free bytes and the static data."""
    require_target(target)
    firmware = targets.build(target, [FIRMWARE.parent / "stack_overflow.c"], build_dir=tmp_path)
    assert 2000 < firmware.sram_static_bytes < 2100
    free = firmware.symbols["__stack_top"] - firmware.symbols["__stack_paint_start"]
    assert free == 8192 - firmware.sram_static_bytes
    message = rf"all {free} bytes of SRAM above the static data \({firmware.sram_static_bytes} bytes\): a stack overflow"
    with pytest.raises(targets.FirmwareError, match=message):
        targets.run(firmware, max_cycles=20_000_000)
