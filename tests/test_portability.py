"""The kernel sources compile for a 16-bit MCU (AVR, 16-bit `int`) without a single warning.

The same C files are built into the host library and, in later stages, into firmware, so every
implicit narrowing or sign conversion that is harmless on x86-64 is an error here. The test is
skipped when avr-gcc is missing, unless UNITPRUNE_REQUIRE_MCU_TOOLS=1 (set by .ci/run after it
installed the tools), where a missing compiler is a failure.
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


def avr_gcc() -> str:
    return require_program("avr-gcc", "gcc-avr avr-libc binutils-avr")


@pytest.mark.parametrize("defines", [[], ["-DUNIT_SKIP_BRANCH=1"]], ids=["host-variant", "mcu-variant"])
def test_every_kernel_source_compiles_warning_free_for_avr(tmp_path, defines):
    compiler = avr_gcc()
    sources = sorted(CSRC.glob("*.c"))
    assert sources, f"no C sources found in {CSRC}"
    for source in sources:
        result = subprocess.run([compiler, *AVR_FLAGS, *defines, str(source), "-o", str(tmp_path / (source.stem + ".o"))],
                                capture_output=True, text=True)
        assert result.returncode == 0, f"{source.name} for AVR:\n{result.stderr}"
