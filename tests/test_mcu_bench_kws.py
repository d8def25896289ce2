"""``mcu-bench`` on a small KWS-shaped model (conv-pool-conv-pool-linear on a 1x40x48 "spectrogram",
too big for the ATmega2560's 8 KB layer by layer, so fused): the operating points equal those of an
independent slow oracle (every knob quantized, the NumPy integer reference on validation, the budget
rule over all of them), and every row runs bit-exactly on AVR."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn as nn

from tests.mcu_tools import require_target
from unitprune import UnITConfig, calibrate, convert
from unitprune.accuracy_budget import paired_outcome, select_operating_point
from unitprune.baselines import calibrate_fatrelu, with_fatrelu
from unitprune.data.splits import DatasetSplits, make_tensor_dataset
from unitprune.experiments.mcu_bench.bench import DEFAULT_SWEEP, BenchConfig, run_bench, select_operating_points
from unitprune.mcu.quantize import quantize
from unitprune.mcu.reference import quantize_input, run_reference

SHAPE = (1, 40, 48)
PERCENTILES = (10.0, 40.0, 70.0, 90.0)
METHODS = ("dense", "unit-bitshift", "fatrelu")


def _data(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Three classes: a bright band of 8 mel rows at rows 4, 16 or 28 (at a random time), in noise."""
    y = rng.integers(0, 3, n)
    x = rng.normal(0.0, 0.6, (n, *SHAPE))
    for i, label in enumerate(y):
        start = int(rng.integers(0, 24))
        x[i, 0, 4 + 12 * label:12 + 12 * label, start:start + 24] += 1.0
    return x, y


@pytest.fixture(scope="module")
def kws_case():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    parts = {name: make_tensor_dataset(*_data(rng, n)) for name, n in (("train", 240), ("val", 60), ("test", 2))}
    splits = DatasetSplits(name="kws-shaped", **parts, num_classes=3, input_shape=SHAPE, class_names=("a", "b", "c"))
    model = nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(1, 4, 5)), ("relu1", nn.ReLU()), ("pool1", nn.MaxPool2d(2)),  # 4x36x44: 6,336 B
        ("conv2", nn.Conv2d(4, 8, 3)), ("relu2", nn.ReLU()), ("pool2", nn.MaxPool2d(2)),
        ("flatten", nn.Flatten()), ("fc", nn.Linear(8 * 8 * 10, 3))]))
    x, y = splits.train.tensors
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for step in range(40):
        batch = slice(16 * (step % 15), 16 * (step % 15) + 16)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
        optimizer.step()
    return model.eval(), splits


def _correct(qmodel, x, y) -> np.ndarray:
    outputs, _ = run_reference(qmodel, quantize_input(qmodel, x))
    return outputs.reshape(len(x), -1).argmax(axis=1) == y.numpy()


def _oracle(model, splits, method: str, budget: float, confidence: float) -> tuple[float, float]:
    """The slow path written out: every knob's int8 model on validation (run_reference), the rule over all."""
    x_val, y_val = splits.val.tensors
    reference = _correct(quantize(model, x_val, variant="dense"), x_val, y_val)
    outcomes, accuracies = [], []
    for percentile in PERCENTILES:
        if method == "unit-bitshift":
            float_model = convert(model, UnITConfig(approx="bitshift"))
            calibrate(float_model, x_val, percentile=percentile)
            qmodel = quantize(float_model, x_val, variant="unit", linear_quotient="bitshift")
        else:
            float_model = with_fatrelu(model)
            calibrate_fatrelu(float_model, x_val, percentile)
            qmodel = quantize(float_model.eval(), x_val, variant="zeroskip")
        correct = _correct(qmodel, x_val, y_val)
        outcomes.append(paired_outcome(reference, correct))
        accuracies.append(float(correct.mean()))
    index = select_operating_point(outcomes, budget, confidence).index
    return PERCENTILES[index], accuracies[index]


def _config(budget: float, confidence: float, **changes) -> BenchConfig:
    sweep = replace(DEFAULT_SWEEP, unit_percentiles=PERCENTILES, fatrelu_percentiles=PERCENTILES,
                    methods=("unit-bitshift", "fatrelu"))
    return BenchConfig(methods=METHODS, budget=budget, confidence=confidence, sweep=sweep, progress=False, **changes)


@pytest.mark.parametrize("budget,confidence", [(2.0, 0.9), (3.0, 0.0)])
def test_operating_points_equal_the_slow_oracle(kws_case, budget, confidence):
    model, splits = kws_case
    points = select_operating_points(model, splits, _config(budget, confidence))
    for method in ("unit-bitshift", "fatrelu"):
        knob, val_accuracy = _oracle(model, splits, method, budget, confidence)
        point = points[method]
        assert (point.knob, point.quantized_val_accuracy) == (knob, val_accuracy), method
        assert [entry["knob"] for entry in point.details["tried"]] == list(PERCENTILES)


def test_kws_shaped_bench_runs_fused_and_bit_exact_on_avr(kws_case, tmp_path):
    require_target("avr")
    model, splits = kws_case
    document = run_bench(model, splits, _config(1.0, 0.9, targets=("avr",), samples=2, layer_samples=1),
                         run_dir=tmp_path / "run", model_name="kws-shaped")
    assert [row["method"] for row in document["rows"]] == list(METHODS)
    assert document["not_fitted"] == []
    for row, detail in zip(document["rows"], document["details"]):
        assert row["bit_exact"] is True and row["samples_checked"] == 2, row["method"]
        if "unit_conv2d_dense_pool_s8" in detail["checks"]["kernels"].values():
            # conv1 max-pooled on its accumulators (unitprune.mcu.export.pooled_conv): a quarter of its
            # 6,336-byte output plane, so layer by layer fits
            assert row["method"] == "dense" and detail["checks"]["execution"] == "layers"
        else:
            assert detail["checks"]["execution"] == "fused", row["method"]  # 6,336 B of conv1 output alone
        assert row["sram_bytes"] < 8192
