"""Baselines: FATReLU zeroes exactly what it should, TTP reaches its sparsity with real copies."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.utils.data import TensorDataset

from unitprune.baselines import (FATReLU, TTPConfig, calibrate_fatrelu, fatrelu_layers, global_magnitude_prune,
                                 iterative_magnitude_pruning, permanent_copy, positive_percentile, weight_sparsity,
                                 with_fatrelu)
from unitprune.data import DatasetSplits


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))


def tiny_splits(seed: int = 0, n_train: int = 240) -> DatasetSplits:
    """Three Gaussian blobs in 12-D: learnable in a few epochs."""
    generator = torch.Generator().manual_seed(seed)
    centers = torch.randn(3, 12, generator=generator) * 2

    def make(n: int) -> TensorDataset:
        y = torch.arange(n) % 3
        return TensorDataset(centers[y] + torch.randn(n, 12, generator=generator), y)

    return DatasetSplits(name="blobs", train=make(n_train), val=make(60), test=make(90), num_classes=3,
                         input_shape=(12,), class_names=("a", "b", "c"))


# ---------------------------------------------------------------------------------------------
# FATReLU
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("threshold", [0.0, 0.3, 1.7])
def test_fatrelu_matches_explicit_mask(threshold):
    x = torch.randn(64, 33)
    x[0, :5] = threshold  # values equal to the threshold are zeroed (strict x > t keeps)
    expected = x * (x > threshold).float()
    assert torch.equal(FATReLU(threshold)(x), expected)


def test_fatrelu_zero_threshold_is_relu():
    x = torch.randn(5, 7, 3)
    assert torch.equal(FATReLU()(x), torch.relu(x))


def test_with_fatrelu_copies_and_replaces_every_relu():
    model = mlp()
    fat = with_fatrelu(model)
    assert [type(m) for m in model if isinstance(m, (nn.ReLU, FATReLU))] == [nn.ReLU, nn.ReLU]
    assert [name for name, _ in fatrelu_layers(fat)] == ["1", "3"]
    x = torch.randn(20, 12)
    assert torch.equal(fat(x), model(x))  # thresholds start at 0
    with torch.no_grad():
        fat[0].weight.add_(1.0)
    assert not torch.equal(fat[0].weight, model[0].weight)  # a real copy


def test_with_fatrelu_needs_relu_modules():
    with pytest.raises(ValueError, match="no nn.ReLU"):
        with_fatrelu(nn.Sequential(nn.Linear(3, 2), nn.Tanh()))


def test_positive_percentile_is_inverted_cdf():
    values = torch.tensor([0.0, -1.0, 0.5, 0.25, 2.0, 1.0, 0.0])
    positive = np.array([0.5, 0.25, 2.0, 1.0])
    for p in (10, 25, 50, 60, 75, 100):
        assert positive_percentile(values, p) == pytest.approx(np.percentile(positive, p, method="inverted_cdf"))
    assert positive_percentile(values, 0) == 0.0
    assert positive_percentile(torch.zeros(4), 50) == 0.0


def test_calibrate_fatrelu_zeroes_the_percentile_and_matches_explicit_computation():
    model = mlp()
    fat = with_fatrelu(model)
    x = torch.randn(200, 12)
    thresholds = calibrate_fatrelu(fat, x, percentile=60)
    assert list(thresholds) == ["1", "3"]

    # Layer 1: threshold from the first ReLU's positive outputs.
    h1 = model[0](x).detach()
    t1 = thresholds["1"]
    assert t1 == pytest.approx(float(np.percentile(h1[h1 > 0].numpy(), 60, method="inverted_cdf")))
    zeroed = ((h1 > 0) & (h1 <= t1)).sum() / (h1 > 0).sum()
    assert float(zeroed) >= 0.6
    # Layer 2 is calibrated on the outputs of the already thresholded layer 1 (sequential).
    a1 = torch.where(h1 > t1, h1, torch.zeros(()))
    h2 = model[2](a1).detach()
    t2 = thresholds["3"]
    assert t2 == pytest.approx(float(np.percentile(h2[h2 > 0].numpy(), 60, method="inverted_cdf")))
    a2 = torch.where(h2 > t2, h2, torch.zeros(()))
    assert torch.allclose(fat(x), model[4](a2), atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Train-time pruning
# ---------------------------------------------------------------------------------------------

def zero_count(model: nn.Module) -> tuple[int, int]:
    weights = [m.weight for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]
    return sum(int((w == 0).sum()) for w in weights), sum(w.numel() for w in weights)


@pytest.mark.parametrize("sparsity", [0.3, 0.5, 0.77])
def test_global_magnitude_prune_reaches_sparsity_exactly_on_smallest_weights(sparsity):
    model = mlp()
    original = torch.cat([m.weight.detach().abs().flatten() for m in model if isinstance(m, nn.Linear)])
    global_magnitude_prune(model, sparsity)
    zeros, total = zero_count(model)
    assert zeros == round(sparsity * total)
    kept = torch.cat([m.weight.detach().flatten() for m in model if isinstance(m, nn.Linear)]) != 0
    assert original[~kept].max() <= original[kept].min()  # global: smallest |w| across all layers


def test_global_magnitude_prune_is_incremental():
    model = mlp()
    global_magnitude_prune(model, 0.5)
    first_mask = [m.weight_mask.clone() for m in model if isinstance(m, nn.Linear)]
    global_magnitude_prune(model, 0.8)
    zeros, total = zero_count(model)
    assert zeros == round(0.8 * total)
    for mask, layer in zip(first_mask, [m for m in model if isinstance(m, nn.Linear)]):
        assert bool((layer.weight_mask[mask == 0] == 0).all())  # once pruned, stays pruned
    with pytest.raises(ValueError, match="cannot lower"):
        global_magnitude_prune(model, 0.5)


def test_permanent_copy_is_a_real_copy():
    model = mlp()
    global_magnitude_prune(model, 0.6)
    copy_ = permanent_copy(model)
    assert not any(name.endswith("_orig") for name, _ in copy_.named_parameters())
    assert not hasattr(copy_[0], "weight_mask")
    with torch.no_grad():
        copy_[0].weight.fill_(3.0)
    assert weight_sparsity(model) == pytest.approx(round(0.6 * zero_count(model)[1]) / zero_count(model)[1])
    assert not bool((model[0].weight == 3.0).any())


def test_iterative_pruning_exact_sparsity_fine_tuning_and_independent_copies():
    model = mlp()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    splits = tiny_splits()
    schedule = (0.5, 0.7, 0.9)
    steps = iterative_magnitude_pruning(model, splits, TTPConfig(schedule=schedule, finetune_epochs=2, lr=1e-2))
    total = zero_count(model)[1]
    assert [s.target_sparsity for s in steps] == list(schedule)
    for step, target in zip(steps, schedule):
        zeros, _ = zero_count(step.model)
        assert zeros == round(target * total)  # pruned weights stayed zero through fine-tuning
        assert step.sparsity == pytest.approx(zeros / total)
        assert step.val_accuracy is not None and 0 <= step.val_accuracy <= 1
        assert not any(name.endswith("_orig") for name, _ in step.model.named_parameters())
    # each step's model is its own object with its own tensors
    assert len({id(s.model) for s in steps}) == 3
    w1 = steps[1].model[0].weight.detach().clone()
    with torch.no_grad():
        steps[0].model[0].weight.fill_(5.0)
    assert torch.equal(steps[1].model[0].weight, w1)
    # the input model is untouched
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # fine-tuning changed the surviving weights (it really trained)
    unpruned_step = permanent_copy(global_magnitude_prune(mlp(), 0.5))
    assert not torch.equal(steps[0].model[0].weight, unpruned_step[0].weight)


def test_ttp_config_validation():
    with pytest.raises(ValueError, match="increasing"):
        TTPConfig(schedule=(0.5, 0.4))
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        TTPConfig(schedule=(0.5, 1.0))
    assert math.isclose(TTPConfig(schedule=[0.5]).schedule[0], 0.5)
