"""The kernel sources compile for 16-bit MCUs (AVR and MSP430, 16-bit `int`) without a single warning.

The same C files are built into the host library and into firmware, so every implicit narrowing
or sign conversion that is harmless on x86-64 is an error here. Every source (float32 and int8)
is compiled for AVR with avr-gcc and for MSP430 with clang-14 (freestanding: clang's own
<stdint.h>, no libc needed), each in the host and MCU variants and with and without the int8
counters. A test is skipped when its compiler is missing, unless UNITPRUNE_REQUIRE_MCU_TOOLS=1
(set by .ci/run after it installed the tools), where a missing compiler is a failure.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import unitprune

from tests.mcu_tools import require_program

CSRC = Path(unitprune.__file__).parent / "csrc"
AVR_FLAGS = ["-mmcu=atmega2560", "-std=c99", "-Os", "-Wall", "-Wextra", "-Wconversion", "-Wsign-conversion",
             "-Werror", "-c"]
MSP430_FLAGS = ["--target=msp430", "-std=c99", "-O2", "-Wall", "-Wextra", "-Wconversion", "-Wsign-conversion",
                "-Werror", "-ffreestanding", "-c"]
VARIANTS = {
    "host-variant": [],
    "mcu-variant": ["-DUNIT_SKIP_BRANCH=1"],
    "s8-counts": ["-DUNIT_S8_COUNTS=1"],
}




def avr_gcc() -> str:
    return require_program("avr-gcc", "gcc-avr avr-libc binutils-avr")


def compile_every_source(tmp_path: Path, command: list[str], target: str) -> None:
    sources = sorted(CSRC.glob("*.c"))
    assert sources, f"no C sources found in {CSRC}"
    assert any(source.stem.endswith("_s8") for source in sources), "the int8 kernels are missing"
    if "-DUNIT_S8_COUNTS=1" in command:  # the option only changes the int8 sources
        sources = [source for source in sources if "_s8" in source.stem]
    for source in sources:
        result = subprocess.run([*command, str(source), "-o", str(tmp_path / (source.stem + ".o"))],
                                capture_output=True, text=True)
        assert result.returncode == 0, f"{source.name} for {target}:\n{result.stderr}"


@pytest.mark.parametrize("defines", list(VARIANTS.values()), ids=list(VARIANTS))
def test_every_kernel_source_compiles_warning_free_for_avr(tmp_path, defines):
    compile_every_source(tmp_path, [avr_gcc(), *AVR_FLAGS, *defines], "AVR")


@pytest.mark.parametrize("defines", list(VARIANTS.values()), ids=list(VARIANTS))
def test_every_kernel_source_compiles_warning_free_for_avr_with_far_tables(tmp_path, defines):
    """Far tables (unit_types.h: __memx table pointers, GNU C): no table pointer is converted to a
    16-bit one anywhere (-Waddr-space-convert), which would read the wrong memory silently."""
    far = ["-std=gnu99", "-DUNIT_FAR_TABLES=1", "-Waddr-space-convert"]  # -std=gnu99 overrides AVR_FLAGS' c99
    compile_every_source(tmp_path, [avr_gcc(), *AVR_FLAGS, *far, *defines], "AVR (far tables)")


@pytest.mark.parametrize("defines", list(VARIANTS.values()), ids=list(VARIANTS))
def test_every_kernel_source_compiles_warning_free_for_msp430(tmp_path, defines):
    compiler = require_program("clang-14", "clang-14 lld-14")
    compile_every_source(tmp_path, [compiler, *MSP430_FLAGS, *defines], "MSP430")
