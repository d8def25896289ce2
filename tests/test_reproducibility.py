"""Issue 10, item 7: the same sweep twice gives identical results, and results say what produced them."""

from __future__ import annotations

import pytest
import torch

from unitprune.data import load_dataset
from unitprune.experiments import SweepConfig, render_markdown, run_sweep
from unitprune.experiments.provenance import cpu_model
from unitprune.models import build_model
from unitprune.training import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def train_and_sweep() -> dict:
    splits = load_dataset("digits", seed=0)
    model = build_model("digits", seed=0)
    train(model, splits, TrainConfig(epochs=3, lr=5e-3, patience=None, progress=False, num_threads=1))
    config = SweepConfig(methods=("unpruned", "fatrelu", "unit-exact", "unit-bitshift"), unit_percentiles=(20, 70),
                         fatrelu_percentiles=(50,), progress=False)
    return run_sweep(model, splits, config, dataset="digits", model_name="digits")


def test_training_and_sweep_twice_give_identical_results():
    first, second = train_and_sweep(), train_and_sweep()
    assert first.pop("timing_s").keys() == second.pop("timing_s").keys()  # wall times differ, nothing else
    assert first == second


def test_results_record_what_produced_them():
    results = train_and_sweep()
    environment = results["environment"]
    assert environment["torch_threads"] == 1  # the sweep's thread count, not the caller's
    assert environment["packages"]["torch"] == torch.__version__
    assert environment["cpu_model"] == cpu_model() and environment["cpu_model"]
    assert environment["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    report = render_markdown(results)
    assert "## What produced these numbers" in report and environment["cpu_model"] in report
    assert f"torch {torch.__version__}" in report
