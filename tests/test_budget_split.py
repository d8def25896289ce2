"""--val-fraction: a cached demo checkpoint trained on another train/validation split is refused."""

from __future__ import annotations

import json
import types

import pytest
import torch

from unitprune.experiments.demo import DemoConfig, run_demo, train_or_load
from unitprune.models import build_model


def _cached(tmp_path, split: dict | None):
    train = tmp_path / "train"
    train.mkdir()
    torch.save(build_model("mnist", seed=0, num_classes=10).state_dict(), train / "model.pt")
    if split is not None:
        (train / "split.json").write_text(json.dumps(split))
    return types.SimpleNamespace(num_classes=10)


def test_checkpoint_of_another_validation_split_is_refused(tmp_path):
    splits = _cached(tmp_path, {"dataset": "mnist", "seed": 0, "val_fraction": 0.3})
    with pytest.raises(ValueError, match="another split.*val_fraction"):
        train_or_load(DemoConfig(run_dir=str(tmp_path)), splits)
    model, info = train_or_load(DemoConfig(run_dir=str(tmp_path), val_fraction=0.3), splits)
    assert info["cached"]


def test_checkpoint_without_split_record_is_the_default_split(tmp_path):
    splits = _cached(tmp_path, None)
    assert train_or_load(DemoConfig(run_dir=str(tmp_path)), splits)[1]["cached"]
    with pytest.raises(ValueError, match="another split"):
        train_or_load(DemoConfig(run_dir=str(tmp_path), val_fraction=0.25), splits)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_val_fraction_out_of_range(tmp_path, fraction):
    with pytest.raises(ValueError, match="val_fraction must be in"):
        run_demo(DemoConfig(run_dir=str(tmp_path), val_fraction=fraction))
