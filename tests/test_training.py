"""Tests of unitprune.training: determinism, early stopping, evaluation, run files."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from torch.utils.data import DataLoader, Subset, TensorDataset

from unitprune.data import load_dataset
from unitprune.models import build_model
from unitprune.training import (Augment, AugmentDraw, TrainConfig, apply_augment, augment_batch, draw_augment,
                                evaluate, predict, train)

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


# ---------------------------------------------------------------------------------------------
# Augmentation (TrainConfig.augment)
# ---------------------------------------------------------------------------------------------

def _explicit_augment(x, draw, fill):
    """Oracle: shift and mask one cell at a time with Python loops."""
    out = torch.full_like(x, fill)
    frames, bands = x.shape[-1], x.shape[-2]
    for b in range(x.shape[0]):
        s = int(draw.shift[b])
        for t in range(frames):
            if 0 <= t - s < frames:
                out[b, ..., t] = x[b, ..., t - s]
        for start, width in zip(draw.time_start[b].tolist(), draw.time_width[b].tolist()):
            out[b, ..., start:start + width] = fill
        for start, width in zip(draw.freq_start[b].tolist(), draw.freq_width[b].tolist()):
            out[b, ..., start:start + width, :] = fill
    return out


def test_apply_augment_matches_explicit_shift_and_masks():
    x = torch.arange(3 * 2 * 5 * 7, dtype=torch.float32).reshape(3, 2, 5, 7) + 1.0
    draw = AugmentDraw(shift=torch.tensor([2, -3, 0]),
                       time_start=torch.tensor([[0], [4], [6]]), time_width=torch.tensor([[1], [2], [0]]),
                       freq_start=torch.tensor([[1, 4], [0, 0], [2, 2]]),
                       freq_width=torch.tensor([[2, 1], [0, 0], [3, 1]]))
    out = apply_augment(x, draw, fill=-9.0)
    assert torch.equal(out, _explicit_augment(x, draw, -9.0))
    # hand-checked cells: example 0 shifted 2 frames later, frame 0 masked, bands 1-2 and 4 masked
    assert out[0, 0, 0].tolist() == [-9.0, -9.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert (out[0, :, 1:3] == -9.0).all() and (out[0, :, 4] == -9.0).all()
    # example 1 shifted 3 frames earlier: the last 3 frames vacated, frames 4-5 masked anyway
    assert torch.equal(out[1, :, :, :4], x[1, :, :, 3:7]) and (out[1, :, :, 4:] == -9.0).all()
    assert torch.equal(out[2, :, :2], x[2, :, :2])  # no shift, zero-width time mask, bands 2-4 masked
    assert (out[2, :, 2:] == -9.0).all()
    assert torch.equal(x, torch.arange(210, dtype=torch.float32).reshape(3, 2, 5, 7) + 1.0)  # input untouched


def test_augment_batch_is_seeded_and_within_its_ranges():
    aug = Augment(time_shift=4, time_masks=2, time_mask_width=5, freq_masks=1, freq_mask_width=3)
    x = torch.randn(64, 1, 12, 20, generator=torch.Generator().manual_seed(0))
    a = augment_batch(x, aug, torch.Generator().manual_seed(1))
    b = augment_batch(x, aug, torch.Generator().manual_seed(1))
    c = augment_batch(x, aug, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    draw = draw_augment(tuple(x.shape), aug, torch.Generator().manual_seed(1))
    assert torch.equal(a, _explicit_augment(x, draw, 0.0))  # augment_batch = these draws applied
    assert draw.shift.abs().max() <= 4 and len(set(draw.shift.tolist())) > 4
    assert draw.time_width.max() <= 5 and (draw.time_start + draw.time_width <= 20).all()
    assert draw.freq_width.max() <= 3 and (draw.freq_start + draw.freq_width <= 12).all()
    assert torch.equal(augment_batch(x, Augment(), torch.Generator().manual_seed(1)), x)  # all off: identity
    with pytest.raises(ValueError, match="time_shift"):
        Augment(time_shift=-1)


def test_training_with_augment_is_deterministic_and_differs_from_plain(digits):
    aug = Augment(time_shift=1, time_masks=1, time_mask_width=2)
    cfg = TrainConfig(epochs=2, patience=None, seed=3, augment=aug, **FAST)
    models = [build_model("digits", seed=0) for _ in range(3)]
    train(models[0], digits, cfg)
    train(models[1], digits, cfg)
    train(models[2], digits, replace(cfg, augment=None))
    assert states_equal(models[0], models[1])
    assert not states_equal(models[0], models[2])
