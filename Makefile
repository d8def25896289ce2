# One-command entry points. Each target sets up its own virtual environment on first use.
# torch is installed first and pinned to the local CPU wheel (never a CUDA build from the index).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo demo-kws test install bench bench-mcu mcu-tools clean

$(STAMP): pyproject.toml setup.py $(wildcard src/unitprune/csrc/*.c src/unitprune/csrc/*.h)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# Two pytest-xdist workers (the dev extra), each test file whole in one of them (tests/conftest.py);
# TEST_WORKERS=0 runs the suite in this one process.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

demo: $(STAMP)
	$(VENV)/bin/unitprune demo --overwrite

# Keyword spotting on synthesized speech (needs espeak-ng: `make mcu-tools`); ~7 min on 2 quiet cores.
demo-kws: $(STAMP)
	$(VENV)/bin/unitprune demo --task kws --overwrite

# Kernel and division benchmarks: JSON + Markdown tables in benchmarks/results/.
bench: $(STAMP)
	$(PY) benchmarks/kernels.py
	$(PY) benchmarks/division.py

# Cycle-exact benchmarks on simulated AVR and MSP430 (needs `make mcu-tools`).
bench-mcu: $(STAMP)
	$(PY) benchmarks/division_mcu.py
	$(PY) benchmarks/mcu_runtime.py
	$(PY) benchmarks/kernels_s8_mcu.py

# The MCU toolchains and cycle-exact simulators (AVR: avr-gcc + simavr; MSP430: clang-14 + lld-14 +
# mspdebug; Cortex-M0+: arm-none-eabi-gcc + picolibc, RV32: riscv64-unknown-elf-gcc + picolibc, both run
# in unicorn (PyPI, the dev extra) and checked on QEMU's strict CPUs: qemu-system-arm, qemu-system-misc) and the speech synthesizer for the offline keyword-spotting data (espeak-ng, sox).
# Debian packages; needs root or sudo. Without them those tests are skipped with a message naming
# the packages (CI sets UNITPRUNE_REQUIRE_MCU_TOOLS=1 and they fail instead).
MCU_PACKAGES := gcc-avr avr-libc binutils-avr simavr libsimavr-dev libelf-dev pkg-config \
                clang-14 lld-14 mspdebug espeak-ng sox \
                gcc-arm-none-eabi picolibc-arm-none-eabi gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf \
                qemu-system-arm qemu-system-misc
mcu-tools:
	@if command -v avr-gcc >/dev/null && pkg-config --exists simavr 2>/dev/null && \
	    command -v clang-14 >/dev/null && command -v ld.lld-14 >/dev/null && command -v mspdebug >/dev/null && \
	    command -v espeak-ng >/dev/null && command -v sox >/dev/null && \
	    command -v arm-none-eabi-gcc >/dev/null && [ -f /usr/lib/picolibc/arm-none-eabi/picolibc.specs ] && \
	    command -v riscv64-unknown-elf-gcc >/dev/null && [ -f /usr/lib/picolibc/riscv64-unknown-elf/picolibc.specs ] && \
	    command -v qemu-system-arm >/dev/null && command -v qemu-system-riscv32 >/dev/null; then \
		echo "MCU tools already installed"; \
	else \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(MCU_PACKAGES); \
	fi

clean:
	rm -rf $(VENV) build src/*.egg-info
