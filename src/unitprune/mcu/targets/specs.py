"""Facts about each target chip, its ABI and its toolchain: the one place they are written.

Everything that depends on which chip a model runs on reads it from here: the exporter
(:mod:`unitprune.mcu.export`: table reach, SRAM check, descriptor sizes, Makefile flags), the
build and run entry points (:mod:`unitprune.mcu.targets`), the resource model and the chip
budgets of :mod:`unitprune.shrink`.

* :data:`EXPORT_TARGETS`: what :func:`unitprune.export_c` can write a C project for.
* :data:`RUN_TARGETS`: what :func:`unitprune.mcu.targets.build` / ``run`` can build and measure
  (the MSP430 twice: software multiply and the 16-bit hardware multiplier).
* :data:`LAYOUTS`: pointer size and struct alignment of each ABI, which size the RAM descriptors
  (:func:`descriptor_bytes`, used by the exporter's memory plan and by the resource model alike).
* :data:`STACK_RESERVE`, :data:`COUNT_FIELDS`, :data:`CONV_PARAMS_FIELDS`: facts of the firmware
  ABI (``unit_types.h``) that Python must agree with.
* The compiler flags of the host build and of the MSP430 build, and the MSP430 memory map.
* :data:`CORE_TARGETS`: the Cortex-M0+ and RV32 targets, one :class:`CoreTarget` each (compiler
  and flags, memory map, stack reserve, multiplier, cycle source, strict QEMU CPU, packages):

  The facts of the Cortex-M0+ and RV32 targets, one record per target: compiler and flags,
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

from ...counts import COUNT_FIELDS as _COUNT_FIELDS

__all__ = ["ARM_PACKAGES", "CH32V003", "CORE_TARGETS", "COUNT_FIELDS", "CONV_PARAMS_FIELDS", "CoreTarget",
           "EXPORT_TARGETS", "Memory", "RISCV_PACKAGES", "UNICORN_HINT", "HOST_CFLAGS", "LAYOUTS", "Layout",
           "MSP430_COMPILE_FLAGS", "MSP430_C_FLAGS", "MSP430_FRAM_BYTES", "MSP430_REGIONS", "MSP430_RUNTIME_FLAGS",
           "RUN_TARGETS", "STACK_RESERVE", "FLASH_CODE_RESERVE", "FLASH_CODE_RESERVE_RV32EC", "TargetSpec", "check_export_target", "check_run_target",
           "descriptor_bytes", "struct_bytes"]

#: SRAM bytes an MCU export keeps free for the stack (the MSP430 linker script demands as much).
#: The assembly kernels save up to 18 registers per call: the deepest AVR firmware of the tests
#: measures 310 bytes of stack (tests/test_shrink.py checks every measured firmware against this).
STACK_RESERVE = 384

#: Flash bytes a chip preset of the shrink (``unitprune.shrink.PRESETS``) keeps for what the firmware
#: holds besides the model's constant tables (kernels, runner, runtime helpers, the .data image): the
#: resource model counts the tables only. Measured: the fused mnist-wide AVR firmware, 243,396 B of
#: flash with 229,042 B of tables (14,354 B besides; at the full 256 KB the shrunk model's firmware
#: did not link, 13,610 B over); the MSP430 export keeps 16 KB for its code (``code_reserve_bytes``).
FLASH_CODE_RESERVE = 16 * 1024
#: The same on the CH32V003 (rv32ec): its MNIST firmware, 10,180 B of flash with 1,676 B of tables
#: (docs/results/ch32v003).
FLASH_CODE_RESERVE_RV32EC = 9 * 1024

#: Fields of ``unit_counts`` (unit_types.h), in declaration order (:data:`unitprune.counts.COUNT_FIELDS`).
COUNT_FIELDS = _COUNT_FIELDS

#: int32 fields of ``unit_conv2d_params`` (unit_types.h).
CONV_PARAMS_FIELDS = 17

#: Flags of the host build of an export (the exported Makefile's ``model_host`` rule and the host
#: runner :func:`unitprune.run_exported`; they add include paths and defines). The ``host`` build
#: target of :mod:`unitprune.mcu.targets` uses the same with its own optimisation level.
HOST_CFLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra")

#: clang-14's MSP430 flags (small memory model, freestanding: no C library but the runtime's own
#: memory functions, whose ``<string.h>`` is on the ``-isystem`` path the caller adds).
MSP430_COMPILE_FLAGS = ("--target=msp430", "-ffreestanding", "-nostdlib", "-ffunction-sections", "-fdata-sections")
MSP430_C_FLAGS = ("-std=c99", "-Wall", "-Wextra")
#: The runtime helpers (software multiply, division, shifts) are built stricter.
MSP430_RUNTIME_FLAGS = ("-O2", "-Wconversion", "-Wsign-conversion", "-Werror")
#: The memory map of the MSP430 linker script (targets/msp430/link.ld), an MSP430FR5994-like map
#: inside the 64 KB that Debian's mspdebug simulates: name -> (bytes, what must fit in it).
MSP430_REGIONS = {"FRAM": (0xFF80 - 0x4000, "code, constant tables and the .data image (0x4000-0xFF7F)"),
                  "SRAM": (0x2000, ".data and .bss (0x1C00-0x3BFF)")}
MSP430_FRAM_BYTES = MSP430_REGIONS["FRAM"][0]

HERE = Path(__file__).resolve().parent

UNICORN_HINT = "pip install unicorn (the `dev` extra of unitprune installs it)"
#: Debian packages of the Cortex-M0+ and RV32 targets (the compilers, picolibc, the strict QEMU CPUs).
ARM_PACKAGES = "gcc-arm-none-eabi picolibc-arm-none-eabi qemu-system-arm"
RISCV_PACKAGES = "gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf qemu-system-misc"


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
               ("-mcpu=cortex-m0plus", "-mthumb"), _ARM_FLASH, _ARM_SRAM, STACK_RESERVE, ARM_PACKAGES,
               (*_ARM_QEMU, "-cpu", "cortex-m0"), mul_cycles=1, cycle_source=_TRM.format(mul=1, s="")),
    CoreTarget("m0plus-smallmul", "arm", "Cortex-M0+ with the small (32-cycle) multiplier, SAMD21-sized map",
               "arm-none-eabi-gcc", ("-mcpu=cortex-m0plus.small-multiply", "-mthumb"), _ARM_FLASH, _ARM_SRAM, STACK_RESERVE,
               ARM_PACKAGES, (*_ARM_QEMU, "-cpu", "cortex-m0"), mul_cycles=32,
               cycle_source=_TRM.format(mul=32, s="s")),
    CoreTarget("rv32ec", "riscv", "RV32EC core (CH32V003's QingKe V2A ISA) on a 256 KB flash / 32 KB SRAM map",
               "riscv64-unknown-elf-gcc", ("-march=rv32ec", "-mabi=ilp32e"), _RV_FLASH, _RV_SRAM, STACK_RESERVE,
               RISCV_PACKAGES, (*_RV_QEMU, "-cpu", "rv32,e=true,i=false,m=false,a=false,f=false,d=false,c=true,h=false"),
               cycle_source=_RV_MODEL),
    CoreTarget("rv32imc", "riscv", "RV32IMC core (ESP32-C3 class: 4 MB flash, 400 KB SRAM)",
               "riscv64-unknown-elf-gcc", ("-march=rv32imc", "-mabi=ilp32"), Memory("FLASH", 0x2000_0000, 4 << 20),
               Memory("SRAM", 0x8000_0000, 400 * 1024), STACK_RESERVE, RISCV_PACKAGES,
               (*_RV_QEMU, "-cpu", "rv32,m=true,a=false,f=false,d=false,c=true,h=false"), cycle_source=_RV_MODEL),
)}

#: WCH CH32V003 (RV32EC, QingKe V2A): 16 KB flash, 2 KB SRAM (datasheet V1.x, section 1). The shrink
#: preset's budget; a firmware for it is an ``rv32ec`` build checked against these sizes.
CH32V003 = {"flash_bytes": 16 * 1024, "sram_bytes": 2 * 1024}

#: What :func:`unitprune.mcu.targets.build` and ``run`` accept.
RUN_TARGETS = ("host", "avr", "msp430", "msp430-hwmult", *CORE_TARGETS)


@dataclass(frozen=True)
class Layout:
    """The C ABI facts that size a struct: pointer bytes and the largest alignment of a field, and
    whether the compiler places ``static const`` structs in flash (``const_in_flash``: the 32-bit
    gcc targets put them in ``.rodata``, which their linker scripts map to flash; avr-gcc copies
    them to RAM unless they are PROGMEM)."""

    pointer_bytes: int
    struct_align: int
    const_in_flash: bool = False
    #: ``unit_requant_s8`` has the ``thresholds`` pointer (MSP430 builds: unit_kernels_s8.h)
    requant_thresholds: bool = False


#: ABI layouts by name. ``avr-far``: an AVR export whose tables do not fit the first 64 KB of flash
#: (:func:`TargetSpec.needs_far_tables`): its table pointers are avr-gcc's 3-byte ``__memx``.
#: ``cortex-m``: the 32-bit Arm EABI (4-byte pointers, int32 aligned to 4) of parts such as the
#: SAMD21 (Cortex-M0+).
LAYOUTS = {"host": Layout(8, 8), "avr": Layout(2, 1), "avr-far": Layout(3, 1), "msp430": Layout(2, 2, requant_thresholds=True),
           "cortex-m": Layout(4, 4),
           # the Cortex-M0+ (AAPCS) and RV32 (ilp32e, ilp32) targets: 4-byte pointers, int32 aligned to 4;
           # the exported descriptors (static const) are in .rodata, in flash (seen in the ELFs' symbol
           # tables: conv1_params at 0x2000xxxx, flash, on rv32ec), so they take no SRAM
           **{name: Layout(4, 4, const_in_flash=True) for name in CORE_TARGETS}}


def struct_bytes(fields: list[int], align: int) -> int:
    """sizeof a C struct of fields of the given sizes, each aligned to min(size, align)."""
    offset, widest = 0, 1
    for size in fields:
        a = min(size, align)
        widest = max(widest, a)
        offset = (offset + a - 1) // a * a + size
    return (offset + widest - 1) // widest * widest


def descriptor_bytes(convs, linears, trees, layout: Layout, sparse=0, unit_sparse=0, step_params=0):
    """RAM bytes of the kernels' descriptors (unit_types.h): per conv a ``unit_conv2d_params`` and a
    ``unit_requant_s8``, per linear a ``unit_requant_s8``, per bintree linear a
    ``unit_quotient_tree_s8``, per static-sparse layer a ``unit_sparse_s8``, per UnIT sparse conv a
    ``unit_unit_sparse_s8`` (unit_kernels_s8.h), and ``step_params`` more ``unit_conv2d_params`` (the
    fused plan's shorter last steps).
    The counts may be tensors (the resource model's relaxed counts)."""
    p, align = layout.pointer_bytes, layout.struct_align
    if layout.const_in_flash:  # the exported descriptors are static const: in flash there (Layout)
        return 0 * (convs + linears + trees)
    conv = struct_bytes([4] * CONV_PARAMS_FIELDS, align)
    requant = struct_bytes([p, p, p, 4, 4, *([p] if layout.requant_thresholds else [])], align)
    tree = struct_bytes([4, p, p, p, p], align)
    return (convs * (conv + requant) + step_params * conv + linears * requant + trees * tree
            + sparse * struct_bytes([p, p, p], align)
            + unit_sparse * struct_bytes([p, p, p, 4], align))


@dataclass(frozen=True)
class TargetSpec:
    """What the exporter must know of a target.

    ``layout`` sizes the RAM descriptors; ``flash_read_limit`` is how many bytes of constant tables
    the kernels' flash reads can address (None: no limit); ``sram_bytes`` the RAM of the default
    chip (None: no check); ``max_object_bytes`` the largest single C array the target's compiler
    accepts (None: no limit): a larger table is written as assembler data
    (:func:`unitprune.mcu.codegen.flash_array`), which the kernels read alike.
    ``far_layout`` (None: no far tables): the ABI when the tables do not fit ``flash_read_limit``
    and the export uses far tables (unit_types.h, UNIT_FAR_TABLES), which then may fill
    ``far_flash_bytes`` with the embedded samples.
    """

    name: str
    layout: Layout
    flash_read_limit: int | None
    sram_bytes: int | None
    chip: str
    why_limit: str = ""
    max_object_bytes: int | None = None
    far_layout: Layout | None = None
    far_flash_bytes: int | None = None
    #: bytes of ``flash_read_limit`` kept for the firmware's code when the export sizes its tables
    #: (the static-sparse choice, kernel_choice.sparse_layers), where code shares that region
    code_reserve_bytes: int = 0
    #: more of it kept when a layer is planned on unit_conv2d_sparse_zeroact_s8 (its code and its
    #: scratch-size function; zeroact_plan)
    zeroact_code_bytes: int = 0
    #: more of it kept before the output stage's threshold tables take any (mcu/requant_table.py,
    #: room_bytes): the dense kernels' unrolled assembly makes the code larger than ``code_reserve_bytes``
    table_code_bytes: int = 0

    @property
    def pointer_bytes(self) -> int:
        return self.layout.pointer_bytes

    @property
    def far_pointer_bytes(self) -> int | None:
        return None if self.far_layout is None else self.far_layout.pointer_bytes

    def needs_far_tables(self, table_bytes) -> bool:
        """True when ``table_bytes`` of constant tables do not fit the near flash reads and the
        target has far ones (AVR: above 65,024 bytes). The tables alone decide (not the embedded
        samples), so a model's firmware layout does not depend on how many samples are embedded."""
        return (self.far_layout is not None and self.flash_read_limit is not None
                and table_bytes > self.flash_read_limit)


EXPORT_TARGETS = {
    "host": TargetSpec("host", LAYOUTS["host"], None, None, "host"),
    # avr-gcc places PROGMEM tables after the vector table (57 vectors x 4 bytes on the ATmega2560)
    # and reads them with 16-bit pointers (LPM): they must end below 64 KB. 512 bytes are kept
    # for the vectors and avr-libc's own progmem data.
    "avr": TargetSpec("avr", LAYOUTS["avr"], 65536 - 512, 8192, "atmega2560",
                      "AVR flash reads (pgm_read_*, 16-bit pointers) reach only the first 64 KB of flash; "
                      "larger models get far tables (__memx, 24-bit pointers)",
                      # avr-gcc's ptrdiff_t is 16 bits: it refuses any C object above PTRDIFF_MAX
                      # ("size of array is too large"); a larger table is emitted as assembler data.
                      max_object_bytes=32_767,
                      # beyond 64 KB: __memx pointers (3 bytes, ELPM) over the chip's 256 KB of flash
                      far_layout=LAYOUTS["avr-far"], far_flash_bytes=256 * 1024),
    # clang-14 --target=msp430 uses the small memory model: 16-bit pointers, code, constants and
    # RAM in one 64 KB address space; code, constants and the .data image in "FRAM", 8 KB SRAM.
    "msp430": TargetSpec("msp430", LAYOUTS["msp430"], MSP430_FRAM_BYTES, 8192, "msp430",
                         f"code, constants and the .data image share the {MSP430_FRAM_BYTES:,} bytes of FRAM "
                         "(0x4000-0xFF7F) of the simulated 64 KB address space (clang-14's small memory model)",
                         # the MNIST zero-skipping firmware: 12,392 B of .text plus ~1.6 KB of constants
                         # outside the model's tables (llvm-size-14 -A, llvm-nm-14 -S), with room to spare
                         code_reserve_bytes=16 * 1024,
                         # unit_conv2d_sparse_zeroact_s8.c and _scratch_size.c: 9,446 B of .text at -O2
                         # (llvm-size-14 -A; tests/test_mcu_sparse_zeroact_s8.py compiles and checks it)
                         zeroact_code_bytes=10 * 1024,
                         # the MNIST dense firmware: 24,814 B of flash with 3 samples, 17,064 B of it
                         # besides the weights, requantization constants and samples; with the
                         # tables 452 B more than the tables themselves (benchmarks/conv_block_rows.py)
                         table_code_bytes=4 * 1024),
    # Cortex-M0+ and RV32: 32-bit pointers, constants anywhere in the map's flash
    **{name: TargetSpec(name, LAYOUTS[name], core.flash.length, core.sram.length, core.chip,
                        f"code, constants and the .data image share the {core.flash.length // 1024} KB of flash of "
                        f"the {name} map ({core.chip})")
       for name, core in CORE_TARGETS.items()},
}


def check_export_target(name: str) -> TargetSpec:
    """The export target ``name``; ValueError naming the choices otherwise."""
    if name not in EXPORT_TARGETS:
        raise ValueError(f"unknown target {name!r} (one of {', '.join(EXPORT_TARGETS)})")
    return EXPORT_TARGETS[name]


def check_run_target(name: str) -> str:
    """``name`` if :func:`unitprune.mcu.targets.build` knows it; ValueError naming the choices otherwise."""
    if name not in RUN_TARGETS:
        raise ValueError(f"unknown MCU target {name!r}; choose one of {', '.join(RUN_TARGETS)}")
    return name
