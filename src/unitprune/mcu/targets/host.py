"""The host target: the same firmware sources built with the host C compiler (``cc``); unit_mcu.h
prints its records as "@unit_mcu ..." lines. Cycles, flash and SRAM are not measured."""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from .common import define_flags, firmware_from_elf, include_flags, source_paths
from .records import Firmware, Recorder, RunResult
from .specs import HOST_CFLAGS
from .tools import FirmwareError, ToolMissing, run_tool, tool_version

BASE_FLAGS = [flag for flag in HOST_CFLAGS if not flag.startswith("-O")]  # the level is build()'s opt
PREFIX = "@unit_mcu "


def compiler() -> str:
    for name in ("cc", "gcc", "clang"):
        path = shutil.which(name)
        if path:
            return path
    raise ToolMissing("no host C compiler (cc, gcc or clang) found; install with: apt-get install -y gcc")


def build(sources: Sequence[Path | str], include_dirs: Sequence[Path | str] | None, defines: Mapping | Sequence | None,
          build_dir: Path, opt: str = "O2", cflags: Sequence[str] = (), name: str = "firmware") -> Firmware:
    cc = compiler()
    binary = build_dir / f"{name}.host"
    command = [cc, f"-{opt}", *BASE_FLAGS, *cflags, *include_flags(include_dirs), *define_flags(defines),
               *map(str, source_paths(sources)), "-o", str(binary)]
    run_tool(command, 300, f"host cc ({binary.name})")
    return firmware_from_elf("host", binary, build_dir, [command], tool_version([cc, "--version"], "host"), sizes=False)


def run(firmware: Firmware, max_cycles: int, timeout: float) -> RunResult:
    del max_cycles  # the host does not count cycles; the timeout bounds the run
    process = run_tool([str(firmware.elf)], timeout, f"host run of {firmware.elf.name}", check=False)
    recorder, other = Recorder(), []
    for line in process.stdout.splitlines():
        if not line.startswith(PREFIX):
            other.append(line)
            continue
        kind, _, argument = line[len(PREFIX):].partition(" ")
        if kind == "label":
            recorder.label(argument)
        elif kind == "start":
            recorder.start(None)
        elif kind == "stop":
            recorder.stop(None)
        elif kind == "data":
            recorder.data(bytes.fromhex(argument))
        elif kind == "done":
            recorder.done(None)
    if not recorder.finished:
        raise FirmwareError(f"host run of {firmware.elf} did not reach unit_mcu_done() (exit {process.returncode}): "
                            f"{process.stderr.strip()}")
    return RunResult("host", recorder.regions, None, None, "\n".join(other))
