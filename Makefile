# One-command entry points. Each target sets up its own virtual environment on first use.
# torch is installed first and pinned to the local CPU wheel (never a CUDA build from the index).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test install bench clean

$(STAMP): pyproject.toml setup.py $(wildcard src/unitprune/csrc/*.c src/unitprune/csrc/*.h)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(VENV)/bin/unitprune demo

# Kernel and division benchmarks: JSON + Markdown tables in benchmarks/results/.
bench: $(STAMP)
	$(PY) benchmarks/kernels.py
	$(PY) benchmarks/division.py

clean:
	rm -rf $(VENV) build src/*.egg-info
