"""build() and run(): the one entry point for every target (see the package docstring)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from . import avr, emulated, host, msp430
from .records import Firmware, RunResult
from .specs import CORE_TARGETS, RUN_TARGETS, check_run_target
from .tools import prepare_build_dir

TARGETS = RUN_TARGETS
DEFAULT_MAX_CYCLES = 500_000_000
SIMULATED_CYCLES_PER_SECOND = 2_000_000  # conservative: both simulators run 10-20 M cycles/s here


def check_tools(target: str) -> dict[str, str]:
    """The target's tools (paths, versions); ToolMissing naming the Debian packages if one is absent."""
    check_run_target(target)
    if target == "host":
        return {"compiler": host.compiler()}
    if target in CORE_TARGETS:
        return emulated.check_tools(target)
    return avr.check_tools() if target == "avr" else msp430.check_tools()


def build(target: str, sources: Sequence[Path | str], include_dirs: Sequence[Path | str] | None = None,
          defines: Mapping[str, object] | Sequence[str] | None = None, build_dir: Path | str | None = None,
          opt: str = "O2", cflags: Sequence[str] = (), name: str = "firmware") -> Firmware:
    """Compiles and links ``sources`` (C or assembly files that use unit_mcu.h, which is on the
    include path) for ``target`` into ``build_dir``/``name``.elf.

    ``defines``: {"NAME": value or None} or ["NAME=value"]; ``opt``: optimisation level without
    the dash ("O2", "Os"); ``cflags``: extra compiler flags. ``build_dir`` None makes a temporary
    directory; an existing directory must be empty or made by this function (never overwritten
    otherwise). Raises ToolMissing (naming the packages) or FirmwareError (with the compiler's
    message)."""
    check_run_target(target)
    directory = prepare_build_dir(None if build_dir is None else Path(build_dir), f"unitprune-{target}-")
    if target == "host":
        return host.build(sources, include_dirs, defines, directory, opt, cflags, name)
    if target in CORE_TARGETS:
        return emulated.build(target, sources, include_dirs, defines, directory, opt, cflags, name)
    if target == "avr":
        return avr.build(sources, include_dirs, defines, directory, opt, cflags, name)
    return msp430.build(sources, include_dirs, defines, directory, target == "msp430-hwmult", opt, cflags, name)


def run(firmware: Firmware, max_cycles: int = DEFAULT_MAX_CYCLES, timeout: float | None = None) -> RunResult:
    """Runs a built firmware to its unit_mcu_done() and returns its regions, total cycles and stack
    high-water mark. FirmwareError if it crashes, never reports done, or exceeds ``max_cycles``;
    ``timeout`` (seconds, default from max_cycles) bounds the simulator's wall-clock time."""
    check_run_target(firmware.target)
    seconds = timeout if timeout is not None else 30.0 + max_cycles / SIMULATED_CYCLES_PER_SECOND
    if firmware.target == "host":
        return host.run(firmware, max_cycles, seconds)
    if firmware.target in CORE_TARGETS:
        return emulated.run(firmware, max_cycles, seconds)
    if firmware.target == "avr":
        return avr.run(firmware, max_cycles, seconds)
    return msp430.run(firmware, max_cycles, seconds)
