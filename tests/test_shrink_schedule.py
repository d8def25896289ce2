"""The differentiable method's training schedule: BatchNorm statistics re-estimated after the masks
change, the learning rate of the fine-tuning phase."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from unitprune.shrink import MCUBudget, ShrinkConfig, resources, shrink
from unitprune.shrink.bn_stats import recalibrate_batchnorm


def _bn_net() -> nn.Sequential:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 5, 3), nn.BatchNorm2d(5),
                        nn.ReLU(), nn.Flatten(), nn.Linear(5 * 4 * 4, 3))
    with torch.no_grad():
        for bn in (net[1], net[4]):
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
            bn.running_mean.fill_(7.0)  # stale statistics the re-estimation must replace
            bn.running_var.fill_(3.0)
    return net


def test_recalibrated_batchnorm_statistics_equal_the_hand_computed_batch_averages():
    net = _bn_net()
    x = torch.randn(10, 1, 8, 8) * 2 + 1
    data = torch.utils.data.TensorDataset(x, torch.zeros(10, dtype=torch.long))
    weights = copy.deepcopy(net.state_dict())
    assert recalibrate_batchnorm(net, data, examples=10, batch_size=4) == 2
    # oracle: batches of 4, 4, 2; each BatchNorm normalises with its batch's statistics (training
    # mode) and the running statistics are the plain average over the batches of the batch mean and
    # of the unbiased batch variance
    means = {1: [], 4: []}
    variances = {1: [], 4: []}
    for chunk in (x[:4], x[4:8], x[8:]):
        a = F.conv2d(chunk, weights["0.weight"], weights["0.bias"])
        means[1].append(a.mean(dim=(0, 2, 3)))
        variances[1].append(a.var(dim=(0, 2, 3), unbiased=True))
        mu, var = a.mean(dim=(0, 2, 3), keepdim=True), a.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
        h = (a - mu) / torch.sqrt(var + 1e-5) * weights["1.weight"].view(1, -1, 1, 1) + weights["1.bias"].view(1, -1, 1, 1)
        b = F.conv2d(F.relu(h), weights["3.weight"], weights["3.bias"])
        means[4].append(b.mean(dim=(0, 2, 3)))
        variances[4].append(b.var(dim=(0, 2, 3), unbiased=True))
    for i in (1, 4):
        torch.testing.assert_close(net[i].running_mean, torch.stack(means[i]).mean(0), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(net[i].running_var, torch.stack(variances[i]).mean(0), rtol=1e-5, atol=1e-5)
        assert net[i].momentum == 0.1  # restored
        torch.testing.assert_close(net[i].weight, weights[f"{i}.weight"])  # weights untouched
    assert net.training  # mode restored


def test_recalibration_keeps_eval_mode_and_rejects_empty_data():
    net = _bn_net().eval()
    x = torch.randn(6, 1, 8, 8)
    recalibrate_batchnorm(net, torch.utils.data.TensorDataset(x, torch.zeros(6)), examples=6)
    assert not net.training
    with pytest.raises(ValueError, match="no examples"):
        recalibrate_batchnorm(net, torch.utils.data.TensorDataset(x[:0], torch.zeros(0)))


def _digits_bn_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 12, 3), nn.BatchNorm2d(12), nn.ReLU(), nn.Conv2d(12, 16, 3),
                         nn.BatchNorm2d(16), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 4 * 4, 10))


def test_shrink_returns_batchnorm_statistics_of_the_pruned_model_when_pruning_ends():
    from unitprune.data import load_digits
    from unitprune.training import evaluate

    splits = load_digits(seed=0)
    model = _digits_bn_net()
    before = resources(model, (1, 8, 8))
    budget = MCUBudget(sram_bytes=before.sram_bytes // 2)
    result = shrink(model, splits.train, splits.val, budget,
                    ShrinkConfig(epochs=1, prune_epochs=1, remove_every=5, recalibrate_bn=True, bn_examples=200),
                    input_shape=(1, 8, 8))
    assert result.after.sram_bytes <= budget.sram_bytes
    pruned = [m for m in result.model if isinstance(m, nn.BatchNorm2d)]
    assert pruned[0].num_features < 12 or pruned[1].num_features < 16  # channels were removed
    # oracle: the statistics of the returned (pruned, folded) model re-estimated from the same examples
    again = copy.deepcopy(result.model)
    recalibrate_batchnorm(again, splits.train, examples=200, batch_size=64)
    for got, want in zip(pruned, [m for m in again if isinstance(m, nn.BatchNorm2d)]):
        torch.testing.assert_close(got.running_mean, want.running_mean, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(got.running_var, want.running_var, rtol=1e-5, atol=1e-6)
    assert result.history[-1]["val_accuracy"] == pytest.approx(evaluate(result.model, splits.val))


@pytest.mark.parametrize("schedule", ["cosine", "constant", "default"])
def test_finetuning_learning_rate_follows_the_hand_computed_cosine(monkeypatch, schedule):
    """``default``: ShrinkConfig's own lr and schedule, which must be Adam at 2e-3 and the cosine."""
    from unitprune.data import load_digits

    splits = load_digits(seed=0)
    seen = []
    step = torch.optim.Adam.step

    def recording_step(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", recording_step)
    model = _digits_bn_net()
    budget = MCUBudget(sram_bytes=resources(model, (1, 8, 8)).sram_bytes // 2)
    lr = 2e-3
    options = {} if schedule == "default" else {"lr": 1e-3, "finetune_lr": schedule}
    lr = options.get("lr", lr)
    shrink(model, splits.train, splits.val, budget,
           ShrinkConfig(epochs=3, prune_epochs=1, remove_every=5, **options), input_shape=(1, 8, 8))
    n = -(-len(splits.train) // 64)
    assert len(seen) == 3 * n
    assert seen[:n] == [lr] * n  # pruning: constant
    if schedule != "constant":  # fine-tuning: from lr down to near 0 over the 2n fine-tuning steps
        want = [0.5 * lr * (1 + math.cos(math.pi * t / (2 * n))) for t in range(2 * n)]
    else:
        want = [lr] * (2 * n)
    assert seen[n:] == pytest.approx(want, rel=1e-12, abs=1e-15)


def test_unknown_finetuning_schedule_is_refused():
    with pytest.raises(ValueError, match="finetune_lr"):
        ShrinkConfig(finetune_lr="linear")


@pytest.mark.parametrize("training", [True, False])
def test_channel_removal_keeps_the_models_train_or_eval_mode(training):
    from unitprune.models import ds_cnn_net
    from unitprune.shrink import trace_resources
    from unitprune.shrink.removal import remove_channels

    model = ds_cnn_net(num_classes=4, width=8, blocks=2, input_shape=(1, 16, 12)).train(training)
    graph = trace_resources(model, (1, 16, 12))
    remove_channels(model, graph, {g: [0] for g in graph.prunable_groups()}, torch.zeros(1, 1, 16, 12))
    assert model.conv1.out_channels == 7  # removed
    assert {m.training for m in model.modules()} == {training}  # Torch-Pruning's tracing puts modules in eval mode


def test_every_training_step_of_the_pruning_phase_runs_batchnorm_in_training_mode():
    """Channels are removed every step (``remove_every=1``); every forward pass with gradients and a
    training batch (Torch-Pruning's trace uses one example) must normalise with the batch statistics."""
    from unitprune.data import load_digits

    splits = load_digits(seed=0)
    model = _digits_bn_net()
    budget = MCUBudget(sram_bytes=resources(model, (1, 8, 8)).sram_bytes // 2)
    seen = []

    def record(module, inputs):
        if torch.is_grad_enabled() and inputs[0].shape[0] > 1:
            seen.append(module.training)

    model[4].register_forward_pre_hook(record)  # shrink works on a copy: the hook is copied with the module
    result = shrink(model, splits.train, splits.val, budget,
                    ShrinkConfig(epochs=2, prune_epochs=2, remove_every=1), input_shape=(1, 8, 8))
    n = -(-len(splits.train) // 64)
    assert len(seen) == 2 * n
    assert all(seen)
    assert result.model[1].num_features < 12 or result.model[4].num_features < 16


def test_remove_every_zero_keeps_every_channel_until_pruning_ends():
    from unitprune.data import load_digits
    from unitprune.shrink.method import remove_channels as method_remove

    splits = load_digits(seed=0)
    calls = []
    import unitprune.shrink.method as method

    def recording_remove(*args, **kwargs):
        calls.append(kwargs.get("optimizer") is not None)
        return method_remove(*args, **kwargs)

    model = _digits_bn_net()
    budget = MCUBudget(sram_bytes=resources(model, (1, 8, 8)).sram_bytes // 2)
    try:
        method.remove_channels = recording_remove
        result = shrink(model, splits.train, splits.val, budget,
                        ShrinkConfig(epochs=2, prune_epochs=2, remove_every=0), input_shape=(1, 8, 8))
    finally:
        method.remove_channels = method_remove
    assert calls == [False]  # once, when pruning ends (no optimizer to carry: fine-tuning starts a new one)
    assert result.after.sram_bytes <= budget.sram_bytes


@pytest.mark.parametrize("eps", [None, 0.0, 0.3])
def test_training_loss_is_the_hand_computed_label_smoothed_cross_entropy(eps):
    """``None``: ShrinkConfig's default, which must be label smoothing 0.1. The oracle: the mean over
    the examples of ``-(1 - eps) log p_y - eps / K sum_k log p_k``."""
    from unitprune.shrink.method import _loss

    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 4, generator=generator)
    y = torch.tensor([0, 3, 1, 1, 2, 0])
    config = ShrinkConfig() if eps is None else ShrinkConfig(label_smoothing=eps)
    e = 0.1 if eps is None else eps
    logp = logits.exp().div(logits.exp().sum(dim=1, keepdim=True)).log()
    want = sum(-(1 - e) * float(logp[n, y[n]]) - e / 4 * float(logp[n].sum()) for n in range(6)) / 6
    assert float(_loss(logits, y, config)) == pytest.approx(want, rel=1e-6)


def test_label_smoothing_outside_zero_to_one_is_refused():
    with pytest.raises(ValueError, match="label_smoothing"):
        ShrinkConfig(label_smoothing=1.0)
