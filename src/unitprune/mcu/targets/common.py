"""Pieces every target's build and run share: the flag lists for include directories and defines,
the Firmware record from a linked ELF, and the stack overflow check of a run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from .elf import read_elf
from .records import Firmware
from .tools import FirmwareError

INCLUDE_DIR = Path(__file__).resolve().parent / "include"  # unit_mcu.h


def define_flags(defines: Mapping[str, object] | Sequence[str] | None) -> list[str]:
    """-D flags from {"NAME": value or None} or ["NAME=value", ...]."""
    if not defines:
        return []
    if isinstance(defines, Mapping):
        return [f"-D{name}" if value is None else f"-D{name}={value}" for name, value in defines.items()]
    return [f"-D{item}" for item in defines]


def include_flags(include_dirs: Sequence[Path | str] | None) -> list[str]:
    return [f"-I{Path(directory)}" for directory in [INCLUDE_DIR, *(include_dirs or [])]]


def source_paths(sources: Sequence[Path | str]) -> list[Path]:
    paths = [Path(source) for source in sources]
    if not paths:
        raise ValueError("no firmware sources given")
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"firmware sources not found: {', '.join(missing)}")
    return paths


def firmware_from_elf(target: str, elf: Path, build_dir: Path, commands: list[list[str]], compiler: str,
                      sizes: bool = True) -> Firmware:
    info = read_elf(elf)
    if not sizes:
        return Firmware(target, elf, build_dir, None, None, None, info.symbols, commands, compiler)
    sections = info.sizes()
    return Firmware(target, elf, build_dir, sections, sections["text"] + sections["rodata"] + sections["data"],
                    sections["data"] + sections["bss"], info.symbols, commands, compiler)


def check_stack(firmware: Firmware, simulator: str, stack_bytes: int, free: int) -> None:
    """FirmwareError when the stack high-water mark ``stack_bytes`` covers all ``free`` painted bytes
    between the end of the static data (.data + .bss) and the top of SRAM: the stack may have run
    into the static data, so the run's outputs cannot be trusted (bit-exact or not)."""
    if stack_bytes >= free:
        raise FirmwareError(f"{simulator} run of {firmware.elf.name}: the stack used all {free} bytes of SRAM above "
                            f"the static data ({firmware.sram_static_bytes} bytes): a stack overflow; the model "
                            "needs less SRAM (a smaller arena or scratch)")
