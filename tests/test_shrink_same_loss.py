"""Every method of the shrink study trains with the same loss (issue 23's fair baselines): the
differentiable method's label smoothing (``ShrinkConfig.label_smoothing``) reaches Torch-Pruning,
DPF and the uniform model, and ``TrainConfig.label_smoothing`` is the cross-entropy's."""

from __future__ import annotations

import types

import pytest
import torch
from torch import nn

from unitprune.experiments.shrink_study import shrink_experiment
from unitprune.experiments.shrink_study.shrink_experiment import ExperimentConfig, _run_method
from unitprune.shrink.budget import MCUBudget
from unitprune.shrink.method import ShrinkConfig
from unitprune.data.splits import DatasetSplits
from unitprune.training import TrainConfig, train


@pytest.mark.parametrize("method,function", [("tp-magnitude", "tp_prune_to_budget"), ("dpf", "dpf_to_budget"),
                                             ("uniform", "uniform_from_scratch"), ("differentiable", "shrink")])
@pytest.mark.parametrize("smoothing", [0.0, 0.25])
def test_every_method_gets_the_studys_label_smoothing(monkeypatch, method, function, smoothing):
    seen = {}

    class Stop(Exception):
        pass

    def spy(*args, **kwargs):
        config = next((a for a in args if isinstance(a, ShrinkConfig)), None)
        seen["label_smoothing"] = config.label_smoothing if config is not None else kwargs["label_smoothing"]
        raise Stop

    monkeypatch.setattr(shrink_experiment, function, spy)
    splits = types.SimpleNamespace(train=None, val=None)
    with pytest.raises(Stop):
        _run_method(method, ExperimentConfig(label_smoothing=smoothing), MCUBudget(sram_bytes=1, flash_bytes=1),
                    None, None, splits)
    assert seen["label_smoothing"] == smoothing


def test_the_study_defaults_to_the_differentiable_methods_loss():
    assert ExperimentConfig().label_smoothing == ShrinkConfig().label_smoothing > 0


def test_train_config_label_smoothing_is_the_cross_entropys():
    """unitprune.training.train's reported loss at lr 0 is the smoothed cross-entropy of the hand formula."""
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    x, y = torch.randn(8, 4), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    data = torch.utils.data.TensorDataset(x, y)
    splits = DatasetSplits(name="tiny", train=data, val=data, test=data, num_classes=3, input_shape=(4,),
                           class_names=["a", "b", "c"])
    with torch.no_grad():
        logp = torch.log_softmax(model(x), dim=1)  # (1 - e) * CE + e * mean over classes of -log p
        expected = {e: float(((1 - e) * -logp[torch.arange(8), y] + e * -logp.mean(dim=1)).mean()) for e in (0.0, 0.3)}
    for e in (0.0, 0.3):
        result = train(model, splits, TrainConfig(epochs=1, batch_size=8, lr=0.0, label_smoothing=e, progress=False,
                                                  num_threads=1))
        assert result.history[0]["train_loss"] == pytest.approx(expected[e], rel=1e-5)
    assert expected[0.3] != pytest.approx(expected[0.0], rel=1e-3)
    with pytest.raises(ValueError, match="label_smoothing"):
        TrainConfig(label_smoothing=1.0)
