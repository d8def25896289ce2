"""The facts of the Cortex-M0+ and RV32 targets, one record per target: compiler and flags,
memory map, stack reserve, multiplier timing, cycle source, the QEMU CPU that checks the
instruction set, and the Debian packages.

``m0plus``           Cortex-M0+ with the single-cycle multiplier (SAMD21G18: 256 KB flash, 32 KB SRAM;
                     also RP2040, STM32G0/C0)
``m0plus-smallmul``  the same core with the 32-cycle iterative multiplier option (gcc
                     ``-mcpu=cortex-m0plus.small-multiply``, which avoids MULS for constants)
``rv32ec``           RV32EC, no multiply instruction (WCH CH32V003's QingKe V2A: libgcc's
                     ``__mulsi3``), on the same 256 KB / 32 KB map (the CH32V003 itself has 16 KB
                     / 2 KB: :data:`CH32V003`, checked by the shrink preset)
``rv32imc``          RV32IMC (ESP32-C3 class), 4 MB flash / 400 KB SRAM map

Arm cycles are the Cortex-M0+ TRM timing (ARM DDI 0484C, Table 3.1, zero wait states:
:mod:`unitprune.mcu.targets.cortexm_timing`); RISC-V figures are exact instruction counts, and
their "cycles" are a documented MODEL (:mod:`unitprune.mcu.targets.riscv_timing`): no
per-instruction timing is published for the QingKe V2A or the ESP32-C3.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .tools import ARM_PACKAGES, RISCV_PACKAGES

HERE = Path(__file__).resolve().parent

UNICORN_HINT = "pip install unicorn (the `dev` extra of unitprune installs it)"


@dataclass(frozen=True)
class Memory:
    """One memory region of a target's map (origin and length in bytes)."""

    name: str
    origin: int
    length: int


@dataclass(frozen=True)
class CoreTarget:
    """Everything unitprune knows of one Cortex-M0+ or RV32 target."""

    name: str
    arch: str  # "arm" or "riscv"
    chip: str  # what the memory map and the energy figure stand for
    compiler: str
    cpu_flags: tuple[str, ...]
    flash: Memory
    sram: Memory
    stack_reserve: int  # SRAM bytes the linker keeps free for the stack (the exporter's STACK_RESERVE)
    packages: str
    qemu_command: tuple[str, ...]  # the strict CPU of the instruction-set check (before -kernel ELF)
    mul_cycles: int | None = None  # Arm: MULS cycles (1 or 32, the TRM's two implementation options)
    cycle_source: str = ""

    @property
    def support_dir(self) -> Path:
        """crt0.S and link.ld of the architecture (the io stubs: include/unit_mcu_io.c, shared)."""
        return HERE / ("cortexm" if self.arch == "arm" else "riscv")

    def memory_ld(self) -> str:
        """The memory.ld that link.ld includes."""
        return (f"/* memory.ld -- written by unitprune.mcu.targets for target {self.name} ({self.chip}) */\n"
                "MEMORY\n{\n"
                f"    FLASH (rx) : ORIGIN = {self.flash.origin:#010x}, LENGTH = {self.flash.length:#x}\n"
                f"    SRAM (rwx) : ORIGIN = {self.sram.origin:#010x}, LENGTH = {self.sram.length:#x}\n"
                "}\n"
                f"__stack_reserve = {self.stack_reserve};\n")


_ARM_FLASH = Memory("FLASH", 0x0000_0000, 256 * 1024)
_ARM_SRAM = Memory("SRAM", 0x2000_0000, 32 * 1024)
# qemu-system-arm's micro:bit is a Cortex-M0 (ARMv6-M, the M0+'s instruction set) with 256 KB of
# flash at 0 and SRAM at 0x20000000; its nRF51 SoC's SRAM is set to the 32 KB of the map.
_ARM_QEMU = ("qemu-system-arm", "-M", "microbit", "-global", "nrf51-soc.sram-size=32768", "-nographic",
             "-monitor", "none", "-serial", "none")
_TRM = ("Cortex-M0+ TRM (ARM DDI 0484C) Table 3.1, zero wait states; MULS {mul} cycle{s}")
# qemu-system-riscv32's virt machine: its 32 MB pflash at 0x20000000 holds the flash image, RAM at
# 0x80000000 the SRAM; the CPU is the generic rv32 with exactly the target's extensions.
_RV_FLASH = Memory("FLASH", 0x2000_0000, 256 * 1024)
_RV_SRAM = Memory("SRAM", 0x8000_0000, 32 * 1024)
_RV_QEMU = ("qemu-system-riscv32", "-M", "virt", "-bios", "none", "-nographic", "-monitor", "none", "-serial",
            "none")
_RV_MODEL = ("MODEL, not a datasheet figure: 1 cycle per instruction, +1 per load, +1 per taken branch or jump "
             "(a two-stage in-order pipeline; unitprune.mcu.targets.riscv_timing); the instruction count is exact")

CORE_TARGETS: dict[str, CoreTarget] = {t.name: t for t in (
    CoreTarget("m0plus", "arm", "SAMD21G18 (Cortex-M0+, 256 KB flash, 32 KB SRAM)", "arm-none-eabi-gcc",
               ("-mcpu=cortex-m0plus", "-mthumb"), _ARM_FLASH, _ARM_SRAM, 256, ARM_PACKAGES,
               (*_ARM_QEMU, "-cpu", "cortex-m0"), mul_cycles=1, cycle_source=_TRM.format(mul=1, s="")),
    CoreTarget("m0plus-smallmul", "arm", "Cortex-M0+ with the small (32-cycle) multiplier, SAMD21-sized map",
               "arm-none-eabi-gcc", ("-mcpu=cortex-m0plus.small-multiply", "-mthumb"), _ARM_FLASH, _ARM_SRAM, 256,
               ARM_PACKAGES, (*_ARM_QEMU, "-cpu", "cortex-m0"), mul_cycles=32,
               cycle_source=_TRM.format(mul=32, s="s")),
    CoreTarget("rv32ec", "riscv", "RV32EC core (CH32V003's QingKe V2A ISA) on a 256 KB flash / 32 KB SRAM map",
               "riscv64-unknown-elf-gcc", ("-march=rv32ec", "-mabi=ilp32e"), _RV_FLASH, _RV_SRAM, 256,
               RISCV_PACKAGES, (*_RV_QEMU, "-cpu", "rv32,e=true,i=false,m=false,a=false,f=false,d=false,c=true,h=false"),
               cycle_source=_RV_MODEL),
    CoreTarget("rv32imc", "riscv", "RV32IMC core (ESP32-C3 class: 4 MB flash, 400 KB SRAM)",
               "riscv64-unknown-elf-gcc", ("-march=rv32imc", "-mabi=ilp32"), Memory("FLASH", 0x2000_0000, 4 << 20),
               Memory("SRAM", 0x8000_0000, 400 * 1024), 256, RISCV_PACKAGES,
               (*_RV_QEMU, "-cpu", "rv32,m=true,a=false,f=false,d=false,c=true,h=false"), cycle_source=_RV_MODEL),
)}

#: WCH CH32V003 (RV32EC, QingKe V2A): 16 KB flash, 2 KB SRAM (datasheet V1.x, section 1). The shrink
#: preset's budget; a firmware for it is an ``rv32ec`` build checked against these sizes.
CH32V003 = {"flash_bytes": 16 * 1024, "sram_bytes": 2 * 1024}
