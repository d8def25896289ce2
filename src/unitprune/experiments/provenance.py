"""What produced a result: package versions, threads, CPU, the settings that change float rounding.

:func:`environment_record` is stored as ``results.json["environment"]`` and shown in the report.
Results are bit-for-bit repeatable on one machine with one software stack (a test runs a sweep
twice and compares). Across machines, training differs because torch picks CPU-specific kernels:
its own vectorised kernels follow the CPU capability (``ATEN_CPU_CAPABILITY``: default, AVX2,
AVX512) and oneDNN's convolutions the instruction set (``ONEDNN_MAX_CPU_ISA``); each sums floats
in a different order (docs/experiments.md gives the measurements). The record therefore includes
the CPU model, torch's CPU capability and those environment variables.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path

import torch

__all__ = ["environment_record", "cpu_model", "NUMERIC_ENV_VARS"]

#: Environment variables that change which kernels (and so which float rounding) torch uses.
NUMERIC_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA",
                    "DNNL_MAX_CPU_ISA", "MKL_CBWR")
_PACKAGES = ("unitprune", "torch", "numpy", "mlxtend", "scikit-learn", "matplotlib")


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else :func:`platform.processor`)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment_record() -> dict:
    """Versions, thread count (``torch.get_num_threads()`` where this is called), CPU and kernels."""
    from .. import backends
    from .._version import __version__

    versions = {package: _version(package) for package in _PACKAGES}
    versions["unitprune"] = __version__
    versions["torch"] = torch.__version__
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "packages": versions,
        "unitprune_c_kernels": backends.available(),
        "env": {name: os.environ[name] for name in NUMERIC_ENV_VARS if name in os.environ},
    }
