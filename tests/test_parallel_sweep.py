"""Sweep methods in worker processes give exactly the serial sweep's measurements."""

from __future__ import annotations

import pytest

from unitprune.data import load_dataset
from unitprune.experiments import SweepConfig, run_sweep
from unitprune.models import build_model
from unitprune.training import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = dict(unit_percentiles=(20, 60), fatrelu_percentiles=(50,), ttp_sparsities=(0.5, 0.8), ttp_finetune_epochs=1,
             autotune_budgets=(1.0,), autotune_grid=(0, 40, 80), progress=False,
             methods=("unpruned", "ttp", "fatrelu", "unit-exact", "ttp+unit", "unit-autotuned"))


def measurements(results: dict) -> dict:
    """Everything measured (timings and the worker count left out)."""
    return {key: value for key, value in results.items() if key not in ("timing_s", "workers", "executor")}


def test_parallel_sweep_equals_serial():
    splits = load_dataset("digits", seed=0)
    model = build_model("digits", seed=0)
    train(model, splits, TrainConfig(epochs=4, lr=5e-3, patience=None, progress=False, num_threads=1))
    config = SweepConfig(**SMALL)
    serial = run_sweep(model, splits, config, dataset="digits", model_name="digits")
    parallel = run_sweep(model, splits, config, dataset="digits", model_name="digits", workers=2)
    assert parallel["workers"] == 2 and serial["workers"] == 1
    assert set(parallel["methods"]) == set(SMALL["methods"])
    assert measurements(parallel) == measurements(serial)
    # the dependent methods really built on the others' measurements
    assert parallel["methods"]["ttp+unit"][0]["details"]["ttp_sparsity"] in SMALL["ttp_sparsities"]


def test_workers_must_be_positive():
    splits = load_dataset("digits", seed=0)
    with pytest.raises(ValueError, match="workers"):
        run_sweep(build_model("digits", seed=0), splits, SweepConfig(**SMALL), workers=0)
