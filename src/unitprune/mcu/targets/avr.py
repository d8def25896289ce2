"""The AVR target: avr-gcc for an ATmega2560, run cycle-exactly in libsimavr by the harness
``avr/simavr_cycles.c`` (built on demand with the host gcc, cached), which watches the GPIOR
marker registers of unit_mcu.h and paints the free SRAM to measure the stack."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from .common import check_stack, define_flags, firmware_from_elf, include_flags, source_paths
from .records import Firmware, Region, RunResult
from .tools import (AVR_PACKAGES, FirmwareError, FirmwareTooLarge, ToolMissing, cache_dir, content_key, find_tool,
                    run_tool, tool_version)

MCU = "atmega2560"
HARNESS_SOURCE = Path(__file__).resolve().parent / "avr" / "simavr_cycles.c"
DATA_SPACE = 0x800000  # avr-gcc's ELF address of data space (SRAM) address 0
SRAM_END = 0x2200  # the ATmega2560's RAMEND + 1 (internal SRAM 0x200-0x21FF)
# gnu99, not c99: constant tables live in flash through avr-gcc's named address space __flash, a
# GNU extension (the sources themselves are C99 otherwise).
#: GNU ld's message when a memory region of the ATmega2560 (text: 256 KB of flash, data: 8 KB of SRAM) is exceeded.
OVERFLOW = re.compile(r"region `(\w+)' overflowed by (\d+) bytes")
REGIONS = {"text": "flash (256 KB: code, constant tables and the .data image)", "data": "SRAM (8 KB: .data and .bss)"}
BASE_FLAGS = ["-std=gnu99", "-Wall", "-Wextra", "-ffunction-sections", "-fdata-sections", "-Wl,--gc-sections"]


def check_tools() -> dict[str, str]:
    """avr-gcc (with avr-libc's headers) and libsimavr; ToolMissing naming the packages."""
    compiler = find_tool("avr-gcc", "avr")
    find_tool("gcc", "avr")
    find_tool("pkg-config", "avr")
    flags = run_tool(["pkg-config", "--cflags", "--libs", "simavr"], 30, "pkg-config simavr", check=False)
    include_dirs = [Path(flag[2:]) for flag in flags.stdout.split() if flag.startswith("-I")]
    if flags.returncode != 0 or not any((directory / "sim_avr.h").exists() for directory in include_dirs):
        raise ToolMissing(f"libsimavr (pkg-config simavr) not found; install with: apt-get install -y "
                          f"--no-install-recommends {AVR_PACKAGES}")
    probe = run_tool([compiler, f"-mmcu={MCU}", "-E", "-x", "c", os.devnull, "-include", "avr/io.h", "-o", os.devnull],
                     60, "avr-gcc probe", check=False)
    if probe.returncode != 0:
        raise ToolMissing(f"avr-libc headers not usable ({probe.stderr.strip()}); install with: apt-get install -y "
                          f"--no-install-recommends {AVR_PACKAGES}")
    return {"compiler": compiler, "simavr_flags": flags.stdout.strip(),
            "compiler_version": tool_version([compiler, "--version"], "avr")}


def harness() -> Path:
    """The simavr harness executable, built once per source/flags into the cache directory."""
    tools = check_tools()
    key = content_key([HARNESS_SOURCE], tools["simavr_flags"])
    path = cache_dir() / f"simavr_cycles-{key}"
    if not path.exists():
        partial = Path(tempfile.mkdtemp(prefix=path.name + ".partial-", dir=path.parent)) / "simavr_cycles"
        run_tool(["gcc", "-O2", "-Wall", "-o", str(partial), str(HARNESS_SOURCE), *tools["simavr_flags"].split(), "-lelf"],
                 120, "building the simavr harness")
        os.replace(partial, path)  # atomic; a concurrent build of the same source gives the same program
        shutil.rmtree(partial.parent, ignore_errors=True)
    return path


def build(sources: Sequence[Path | str], include_dirs: Sequence[Path | str] | None, defines: Mapping | Sequence | None,
          build_dir: Path, opt: str = "O2", cflags: Sequence[str] = (), name: str = "firmware") -> Firmware:
    tools = check_tools()
    elf = build_dir / f"{name}.elf"
    command = [tools["compiler"], f"-mmcu={MCU}", f"-{opt}", *BASE_FLAGS, *cflags, *include_flags(include_dirs),
               *define_flags(defines), *map(str, source_paths(sources)), "-o", str(elf)]
    try:
        run_tool(command, 300, f"avr-gcc ({elf.name}; a too large program overflows the {MCU}'s 8 KB SRAM at link "
                               "time)")
    except FirmwareError as error:  # a region overflow becomes FirmwareTooLarge, without the raw linker lines
        overflows = [(int(excess), region) for region, excess in OVERFLOW.findall(str(error))]
        if not overflows:
            raise
        excess, region = max(overflows)
        raise FirmwareTooLarge(f"{elf.name} does not fit the {MCU}: its {REGIONS.get(region, region)} is "
                               f"{excess:,} bytes too small for it (GNU ld, region {region}); a smaller model is "
                               "needed", region, excess) from None
    return firmware_from_elf("avr", elf, build_dir, [command], tools["compiler_version"])


def run(firmware: Firmware, max_cycles: int, timeout: float) -> RunResult:
    paint = firmware.symbols.get("_end", firmware.symbols.get("__heap_start"))
    command = [str(harness()), str(firmware.elf), MCU, str(max_cycles)]
    if paint is not None:
        command.append(hex(paint - DATA_SPACE))
    process = run_tool(command, timeout, f"simavr run of {firmware.elf.name}", check=False)
    records = [json.loads(line) for line in process.stdout.splitlines() if line.startswith("{")]
    if process.returncode != 0 or not records or not records[-1].get("done"):
        raise FirmwareError(f"simavr run of {firmware.elf} did not reach unit_mcu_done() (exit "
                            f"{process.returncode}, limit {max_cycles} cycles): {process.stderr.strip()}")
    summary = records.pop()
    if paint is not None and summary.get("stack_bytes") is not None:
        # painted: the bytes between the end of .bss and RAMEND
        check_stack(firmware, "simavr", summary["stack_bytes"], SRAM_END - (paint - DATA_SPACE))
    regions = [Region(record["label"], record["cycles"] if record["cycles"] >= 0 else None,
                      bytes.fromhex(record["data"])) for record in records]
    return RunResult("avr", regions, summary["total_cycles"], summary.get("stack_bytes"), process.stderr)
