"""Skip-or-fail for tests that need MCU toolchains or simulators.

A missing tool skips the test with a message naming the Debian packages, unless
UNITPRUNE_REQUIRE_MCU_TOOLS=1 (CI sets it after `make mcu-tools`), where it is a failure.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from unitprune.mcu import targets


def _missing(message: str) -> None:
    if os.environ.get("UNITPRUNE_REQUIRE_MCU_TOOLS") == "1":
        pytest.fail(f"{message} (UNITPRUNE_REQUIRE_MCU_TOOLS=1)")
    pytest.skip(message)


def require_program(name: str, packages: str) -> str:
    """The path of ``name``, or skip/fail naming the apt packages."""
    path = shutil.which(name)
    if path is None:
        _missing(f"{name} not installed (apt-get install {packages})")
    return path


def require_target(target: str) -> dict[str, str]:
    """The tools of an unitprune.mcu.targets target, or skip/fail with the ToolMissing message."""
    try:
        return targets.check_tools(target)
    except targets.ToolMissing as error:
        _missing(str(error))


def load_benchmark(name: str):
    """The script ``benchmarks/<name>.py`` as a module (registered under ``name``: dataclasses look
    their module up by name), so a test can run the benchmark's own builders."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def corrupt_one_conv_output(monkeypatch, reference) -> None:
    """Make ``reference._conv`` (a benchmark's integer reference) return one output with its low bit
    flipped, so a test can check that the benchmark's bit-exactness check catches it."""
    real = reference._conv

    def off_by_one(op, x, variant):
        y, counts = real(op, x, variant)
        y = y.copy()
        y.reshape(-1)[0] = y.reshape(-1)[0] ^ 1
        return y, counts

    monkeypatch.setattr(reference, "_conv", off_by_one)


def bench_document(run_dir: Path) -> dict:
    """An mcu-bench run's mcu.json without the wall times (what runs on other executors must match)."""
    document = json.loads((Path(run_dir) / "mcu.json").read_text())
    document.pop("seconds")
    for detail in document["details"]:
        detail.pop("seconds")
    return document


def small_bench_args(folder: Path) -> list[str]:
    """``mcu-bench`` on the (untrained, seeded) digits model on AVR: dense and UnIT at two knobs, 4
    samples in 2 batches (its weights saved in ``folder``); add the executor and ``--run-dir``."""
    import torch

    from unitprune.models import build_model

    require_target("avr")
    weights = Path(folder) / "weights.pt"
    torch.save(build_model("digits", seed=0).state_dict(), weights)
    return ["mcu-bench", "--model", "digits", "--weights", str(weights), "--data", "digits", "--targets", "avr",
            "--methods", "dense,unit-bitshift", "--unit-percentiles", "20,60", "--samples", "4",
            "--layer-samples", "1", "--batch-samples", "2", "--no-progress"]
