"""Build and run firmware on (simulated) microcontrollers, cycle-exactly: the MCU target layer.

What it holds:
    api        ``build(target, sources, ...) -> Firmware`` and ``run(firmware) -> RunResult``
    avr        ATmega2560: avr-gcc, run in libsimavr by the harness avr/simavr_cycles.c (built
               on demand, cached)
    msp430     ``msp430`` / ``msp430-hwmult``: clang-14 + ld.lld-14 with the project's own crt0,
               linker script (msp430/link.ld: an MSP430FR5994-like map) and runtime helpers
               (msp430/runtime/: __mspabi_* multiply, shift, division), run in ``mspdebug sim``
    emulated   the Cortex-M0+ and RV32 targets (specs.CORE_TARGETS: ``m0plus``,
               ``m0plus-smallmul``, ``rv32ec``, ``rv32imc``): gcc + picolibc with the project's
               crt0/link.ld (cortexm/, riscv/), run in unicorn, unicorn, instructions counted per basic block; cycles from the
               Cortex-M0+ TRM table (cortexm_timing) or, for RV32, a labelled model (riscv_timing)
    strict     the instruction-set check: the same ELF under QEMU's strict Cortex-M0 / RV32 CPU
               (same outputs and instruction counts, or an error)
    host       the same sources with the host ``cc`` (bit-exact reference, no cycles)
    records    Firmware, Region, RunResult
    energy     energy per cycle of each target: datasheet ESTIMATES, with their citations
    elf        section sizes and symbols from ELF headers
    tools      tool discovery (errors name the Debian packages), subprocess timeouts, build and
               cache directories

Firmware marks what it measures with include/unit_mcu.h (same source for every target):
``unit_mcu_label``, ``UNIT_MCU_START``/``UNIT_MCU_STOP``, ``unit_mcu_emit`` (result bytes for
bit-exact checks), ``unit_mcu_done``. The route and the measured marker overhead: docs/mcu.md.

Example::

    from unitprune.mcu import targets
    firmware = targets.build("msp430", ["main.c", "model.c"], include_dirs=["."])
    result = targets.run(firmware)
    result.region("inference").cycles, firmware.flash_bytes, result.stack_bytes
"""

from .api import DEFAULT_MAX_CYCLES, TARGETS, build, check_tools, run
from .common import INCLUDE_DIR
from .specs import CORE_TARGETS
from .strict import check as check_isa
from .energy import ENERGY_MODELS, EnergyModel, energy_uj_estimate
from .records import Firmware, Region, RunResult
from .tools import FirmwareError, FirmwareTooLarge, ToolMissing

__all__ = ["CORE_TARGETS", "check_isa", "DEFAULT_MAX_CYCLES", "ENERGY_MODELS", "INCLUDE_DIR", "TARGETS", "EnergyModel", "Firmware",
           "FirmwareError", "FirmwareTooLarge", "Region", "RunResult", "ToolMissing", "build", "check_tools",
           "energy_uj_estimate", "run"]
