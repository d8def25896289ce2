"""``pip install unitprune`` without extras, in a fresh virtual environment (issue 18, finding 1).

The venv gets ``torch==2.13.0`` first (the pinned CPU wheel, as the Makefile does, so pip never
resolves another torch), then this repository (a copy of its sources, so the build leaves nothing
in the checkout) without extras. Then: ``import unitprune``, ``unitprune --help``, convert /
calibrate / mac_report on a small model, ``unitprune calibrate`` end to end, and ``unitprune
shrink`` saying which extra it needs. Runs in ``make test`` (marker ``install``; deselect with
``-m "not install"``). Slow: 6-11 minutes measured on the shared, busy 2-core machine (pip: torch
68 s, unitprune and its dependencies 161 s; the rest is the four Python processes starting).
"""

from __future__ import annotations

import shutil
import subprocess
import time
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["pyproject.toml", "setup.py", "README.md", "LICENSE", "src"]

pytestmark = pytest.mark.install

SMOKE = """
import sys
import torch, torch.nn as nn
import unitprune
heavy = [m for m in ("torch_pruning", "sklearn", "unitprune.training") if m in sys.modules]
assert not heavy, heavy
torch.manual_seed(0)
model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(108, 4)).eval()
x = torch.rand(8, 1, 8, 8)
unit_model = unitprune.convert(model, unitprune.UnITConfig(approx="bitshift"))
unitprune.calibrate(unit_model, x, percentile=20)
report = unitprune.mac_report(unit_model, x)
assert report.total.dense == 8 * (3 * 9 * 36 + 108 * 4), report.total.dense  # a hand count
print("skipped", round(report.skipped_fraction, 3))
torch.save(model, "model.pt")
y = torch.randint(0, 4, (8,))
torch.save({"x_val": x, "y_val": y, "x_test": x, "y_test": y}, "data.pt")
"""


def _run(args, cwd, timeout=900):
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_pip_install_without_extras_imports_and_runs(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.egg-info"))
        else:
            shutil.copy2(path, source / name)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)  # a fresh environment: no system site-packages
    python = env_dir / "bin" / "python"
    pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile"]  # no .pyc: faster
    t0 = time.perf_counter()
    step = _run(pip + ["torch==2.13.0"], tmp_path)
    assert step.returncode == 0, step.stderr[-2000:]
    t1 = time.perf_counter()
    step = _run(pip + [source], tmp_path)
    assert step.returncode == 0, step.stderr[-2000:]
    t2 = time.perf_counter()
    print(f"\npip install torch: {t1 - t0:.0f} s, unitprune and its dependencies: {t2 - t1:.0f} s")
    listed = _run([python, "-m", "pip", "list", "--format=freeze"], tmp_path).stdout.lower()
    assert "torch-pruning" not in listed and "torch==2.13.0" in listed

    work = tmp_path / "work"
    work.mkdir()
    step = _run([python, "-c", SMOKE], work)
    assert step.returncode == 0, step.stderr[-2000:]
    assert "skipped" in step.stdout
    cli = env_dir / "bin" / "unitprune"
    step = _run([cli, "--help"], work)
    assert step.returncode == 0 and "shrink" in step.stdout, step.stderr
    step = _run([cli, "calibrate", "--model-file", "model.pt", "--trust-model-file", "--data", "data.pt",
                 "--approx", "bitshift", "--output", "thresholds.json"], work)
    assert step.returncode == 0, step.stderr[-2000:]
    assert (work / "thresholds.json").is_file()
    step = _run([cli, "shrink", "--model", "digits", "--data", "digits", "--preset", "atmega2560",
                 "--run-dir", "shrink-run"], work)
    assert step.returncode == 2 and "Traceback" not in step.stderr
    assert step.stderr.strip() == ("unitprune: error: unitprune shrink needs the Python package 'torch_pruning', "
                                   "which is not installed: pip install 'unitprune[shrink]'")
    assert not (work / "shrink-run").exists()
    print(f"import, API smoke test and three CLI runs: {time.perf_counter() - t2:.0f} s")
