"""Tests of unitprune.training: determinism, early stopping, evaluation, run files."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from torch.utils.data import DataLoader, Subset, TensorDataset

from unitprune.data import load_dataset
from unitprune.models import build_model
from unitprune.training import TrainConfig, evaluate, predict, train

FAST = dict(batch_size=64, lr=1e-2, progress=False, num_threads=1)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


@pytest.fixture(scope="module")
def noisy_val_digits(digits):
    """Digits with 70 % of the validation labels replaced by random ones.

    Validation accuracy then plateaus and wobbles early, so patience runs out after a few
    epochs and the best epoch is not the last one.
    """
    g = torch.Generator().manual_seed(2)
    x, y = digits.val.tensors
    y = y.clone()
    idx = torch.randperm(len(y), generator=g)[: int(0.7 * len(y))]
    y[idx] = torch.randint(0, 10, (len(idx),), generator=g)
    return replace(digits, val=TensorDataset(x, y))


def states_equal(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_same_seed_same_weights(digits):
    cfg = TrainConfig(epochs=3, patience=None, seed=5, **FAST)
    a, b = build_model("digits", seed=0), build_model("digits", seed=0)
    ra, rb = train(a, digits, cfg), train(b, digits, cfg)
    assert states_equal(a, b)
    assert ra.history[-1]["train_loss"] == rb.history[-1]["train_loss"]
    c = build_model("digits", seed=0)
    train(c, digits, replace(cfg, seed=6))  # only the data order differs
    assert not states_equal(a, c)


def test_threads_restored_and_global_rng_untouched(digits):
    before_threads, before_rng = torch.get_num_threads(), torch.get_rng_state()
    train(build_model("digits", seed=0), digits, TrainConfig(epochs=1, **FAST))
    assert torch.get_num_threads() == before_threads
    assert torch.equal(torch.get_rng_state(), before_rng)


def test_early_stopping_restores_best_weights(noisy_val_digits, tmp_path):
    splits = noisy_val_digits
    cfg = TrainConfig(epochs=30, patience=3, seed=0, **FAST)
    model = build_model("digits", seed=0)
    result = train(model, splits, cfg, run_dir=tmp_path / "run")

    assert result.stopped_early
    assert 1 < result.best_epoch == result.epochs_run - cfg.patience
    val_accs = [h["val_accuracy"] for h in result.history]
    assert result.best_val_accuracy == max(val_accs) == val_accs[result.best_epoch - 1]
    assert evaluate(model, splits.val) == result.best_val_accuracy
    assert not model.training

    # Oracle: replay the same deterministic run without restoring.
    at_best = build_model("digits", seed=0)
    train(at_best, splits, replace(cfg, epochs=result.best_epoch, patience=None, restore_best=False))
    at_last = build_model("digits", seed=0)
    train(at_last, splits, replace(cfg, epochs=result.epochs_run, patience=None, restore_best=False))
    assert states_equal(model, at_best)
    assert not states_equal(model, at_last)  # the copy was real, not an alias of the live weights

    # Run files: model.pt and checkpoint_best.pt hold the best weights, metadata describes the run.
    run = tmp_path / "run"
    saved = torch.load(run / "model.pt")
    ckpt = torch.load(run / "checkpoint_best.pt")
    for k, v in model.state_dict().items():
        assert torch.equal(saved[k], v) and torch.equal(ckpt["state_dict"][k], v)
    assert ckpt["epoch"] == result.best_epoch and ckpt["val_accuracy"] == result.best_val_accuracy
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["model"] == "digits" and meta["dataset"] == "digits"
    assert meta["config"]["patience"] == 3 and meta["config"]["lr"] == cfg.lr
    assert meta["result"]["best_val_accuracy"] == result.best_val_accuracy
    assert meta["result"]["test_accuracy"] == result.test_accuracy
    assert meta["torch_version"] == torch.__version__
    assert meta["started_at"] <= meta["finished_at"]
    assert meta["dataset_sizes"] == splits.sizes()


def test_without_restore_keeps_last_weights(noisy_val_digits):
    cfg = TrainConfig(epochs=30, patience=3, seed=0, restore_best=False, **FAST)
    model = build_model("digits", seed=0)
    result = train(model, noisy_val_digits, cfg)
    assert evaluate(model, noisy_val_digits.val) == result.history[-1]["val_accuracy"]


def test_digits_model_learns(digits):
    model = build_model("digits", seed=0)
    result = train(model, digits, TrainConfig(epochs=15, patience=5, seed=0, **FAST))
    assert result.test_accuracy == evaluate(model, digits.test)
    assert result.test_accuracy > 0.85
    assert result.best_val_accuracy > 0.85


def test_evaluate_and_predict_against_manual_argmax(digits):
    model = build_model("digits", seed=3)
    x, y = digits.test.tensors
    with torch.no_grad():
        model.eval()
        expected_pred = model(x).argmax(dim=1)
    expected_acc = int((expected_pred == y).sum()) / len(y)

    model.train()
    assert evaluate(model, digits.test, batch_size=7) == pytest.approx(expected_acc, abs=1e-12)
    assert model.training  # previous mode restored
    assert evaluate(model, DataLoader(digits.test, batch_size=50)) == pytest.approx(expected_acc, abs=1e-12)
    subset = Subset(digits.test, list(range(100)))
    assert evaluate(model, subset) == int((expected_pred[:100] == y[:100]).sum()) / 100
    assert torch.equal(predict(model, digits.test, batch_size=33), expected_pred)
    assert model.training  # predict ran in eval mode (dropout-free model: same result) and restored
    model.eval()
    assert torch.equal(predict(model, DataLoader(digits.test, batch_size=33)), expected_pred)
    assert not model.training
    with pytest.raises(ValueError, match="empty"):
        evaluate(model, TensorDataset(x[:0], y[:0]))


def test_train_config_validation():
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="patience"):
        TrainConfig(patience=0)
