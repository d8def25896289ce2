"""The MSP430 targets: clang-14 --target=msp430 + ld.lld-14 with the project's own crt0, linker
script (an MSP430FR5994-like map in the simulator's 64 KB) and runtime helpers, run in mspdebug's
simulator under a timeout.

``msp430``: software multiply helpers (the paper's no-multiplier setting); ``msp430-hwmult``: the
same compiled code linked with helpers that use the 16-bit hardware multiplier, simulated by
``simio add hwmult``. Regions: mspdebug's ``tracer`` device, in verbose mode, prints every write
to the peripheral space with its MCLK cycle; unit_mcu.h writes its markers to ports 0x01F0
(control), 0x01F2 (data), 0x01F4 (label); crt0 writes the measured stack bytes to 0x01F6. The run
ends at the breakpoint on ``__unit_mcu_end``.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from .common import define_flags, firmware_from_elf, include_flags, source_paths
from .records import Firmware, Recorder, RunResult
from .tools import FirmwareError, cache_dir, content_key, find_tool, run_tool, tool_version

HERE = Path(__file__).resolve().parent / "msp430"
RUNTIME_DIR = HERE / "runtime"
LINKER_SCRIPT = HERE / "link.ld"
CRT0 = HERE / "crt0.S"
LIBC_INCLUDE = HERE / "include"  # string.h: the memory functions of the runtime
COMPILE_FLAGS = ["--target=msp430", "-ffreestanding", "-nostdlib", "-ffunction-sections", "-fdata-sections",
                 "-isystem", str(LIBC_INCLUDE)]
C_FLAGS = ["-std=c99", "-Wall", "-Wextra"]
RUNTIME_FLAGS = ["-O2", "-Wconversion", "-Wsign-conversion", "-Werror"]
PORT_CONTROL, PORT_DATA, PORT_LABEL, PORT_STACK = 0x01F0, 0x01F2, 0x01F4, 0x01F6
END_SYMBOL = "__unit_mcu_end"
# "      1234: write.b => 0x01f0 0x01" (reads, and writes elsewhere, e.g. the multiplier, are ignored)
EVENT = re.compile(r"^\s*(\d+): write\.[bw] => 0x([0-9a-fA-F]+) 0x([0-9a-fA-F]+)\s*$")


def check_tools() -> dict[str, str]:
    tools = {name: find_tool(name, "msp430") for name in ("clang-14", "ld.lld-14", "mspdebug")}
    tools["compiler_version"] = tool_version([tools["clang-14"], "--version"], "msp430")
    return tools


def runtime_objects(hwmult: bool) -> tuple[Path, list[Path]]:
    """(crt0.o, the helper objects) for the variant, compiled once per source/flags into the cache.
    Every helper is linked; --gc-sections drops the unreferenced ones (each is in its own section),
    so they cost no flash."""
    tools = check_tools()
    sources = sorted(RUNTIME_DIR.glob("*.[cS]"))
    flags = [*COMPILE_FLAGS, *C_FLAGS, *RUNTIME_FLAGS, f"-DUNIT_MSP430_HWMULT={int(hwmult)}"]
    key = content_key([*sources, *RUNTIME_DIR.glob("*.h"), CRT0], *flags, tools["compiler_version"])
    directory = cache_dir() / f"msp430-runtime-{'hwmult' if hwmult else 'soft'}-{key}"
    names = []
    for source in sources:
        # an assembly entry (mpyll.S) and its C part (mpyll.c) must not share an object name
        names.append(f"{source.stem}{'_entry' if source.suffix == '.S' else ''}.o")
    if not (directory / "crt0.o").exists():
        partial = directory.with_name(directory.name + f".{os.getpid()}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        for source, name in [*zip(sources, names), (CRT0, "crt0.o")]:
            run_tool([tools["clang-14"], *flags, "-c", str(source), "-o", str(partial / name)], 120,
                     f"compiling {source.name}")
        shutil.rmtree(directory, ignore_errors=True)
        os.replace(partial, directory)
    return directory / "crt0.o", [directory / name for name in names]


def build(sources: Sequence[Path | str], include_dirs: Sequence[Path | str] | None, defines: Mapping | Sequence | None,
          build_dir: Path, hwmult: bool, opt: str = "O2", cflags: Sequence[str] = (),
          name: str = "firmware") -> Firmware:
    tools = check_tools()
    crt0, runtime = runtime_objects(hwmult)
    objects_dir = build_dir / f"{name}.obj"
    objects_dir.mkdir(exist_ok=True)
    commands, objects = [], []
    for index, source in enumerate(source_paths(sources)):
        obj = objects_dir / f"{index:02d}_{source.stem}.o"
        command = [tools["clang-14"], *COMPILE_FLAGS, f"-{opt}", *C_FLAGS, *cflags, *include_flags(include_dirs),
                   *define_flags(defines), "-c", str(source), "-o", str(obj)]
        run_tool(command, 300, f"clang-14 --target=msp430 ({source.name})")
        commands.append(command)
        objects.append(str(obj))
    elf = build_dir / f"{name}.elf"
    link = [tools["ld.lld-14"], "-m", "msp430elf", "-T", str(LINKER_SCRIPT), "--gc-sections", str(crt0), *objects,
            *map(str, runtime), "-o", str(elf)]
    run_tool(link, 120, f"ld.lld-14 ({elf.name}; code and constants must fit 0x4000-0xFF7F, data+bss+256 bytes of "
                        f"stack the 8 KB SRAM)")
    commands.append(link)
    return firmware_from_elf("msp430-hwmult" if hwmult else "msp430", elf, build_dir, commands,
                             tools["compiler_version"])


def run(firmware: Firmware, max_cycles: int, timeout: float) -> RunResult:
    tools = check_tools()
    end = firmware.symbols.get(END_SYMBOL)
    if end is None:
        raise FirmwareError(f"{firmware.elf} has no {END_SYMBOL}: not linked with unitprune's msp430 crt0")
    command = [tools["mspdebug"], "-n", "sim", f"prog {firmware.elf}"]
    if firmware.target == "msp430-hwmult":
        command.append("simio add hwmult mult")
    command += ["simio add tracer trace", "simio config trace verbose", f"setbreak {end:#06x}", "run"]
    process = run_tool(command, timeout, f"mspdebug sim run of {firmware.elf.name} (limit {max_cycles} cycles)",
                       check=False)
    recorder, stack = Recorder(), None
    for line in process.stdout.splitlines():
        match = EVENT.match(line)
        if not match:
            continue
        cycle, address, value = int(match[1]), int(match[2], 16), int(match[3], 16)
        if address == PORT_CONTROL:
            if value == 1:
                recorder.start(cycle)
            elif value == 2:
                recorder.stop(cycle)
            elif value == 3:
                recorder.done(cycle)
        elif address == PORT_DATA:
            recorder.data(bytes([value & 0xFF]))
        elif address == PORT_LABEL:
            recorder.label(chr(value & 0xFF))
        elif address == PORT_STACK:
            stack = value
    if not recorder.finished or recorder.done_at is None:
        tail = "\n".join(process.stdout.strip().splitlines()[-8:])
        raise FirmwareError(f"mspdebug run of {firmware.elf} did not reach unit_mcu_done() (exit {process.returncode}); "
                            f"last output:\n{tail}\n{process.stderr.strip()}")
    if recorder.done_at > max_cycles:
        raise FirmwareError(f"{firmware.elf} ran {recorder.done_at} cycles, more than max_cycles={max_cycles}")
    return RunResult(firmware.target, recorder.regions, recorder.done_at, stack, process.stderr)
