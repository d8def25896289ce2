"""Domain-shift study: macro F1 against scikit-learn, and the protocol on a tiny two-context task."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
from sklearn.metrics import f1_score

from unitprune.data import load_dataset
from unitprune.data.synth_speech import SpeechContext, context_splits
from unitprune.experiments.domain_shift import DOMAIN_METHODS, DomainShiftConfig, macro_f1, run_domain_shift

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("seed", range(6))
def test_macro_f1_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(5, 200)), int(rng.integers(2, 13))
    y_true = rng.integers(0, k, n)
    y_pred = np.where(rng.random(n) < 0.6, y_true, rng.integers(0, k + 2, n))  # some never-true classes
    assert macro_f1(y_true, y_pred) == pytest.approx(f1_score(y_true, y_pred, average="macro"), abs=1e-12)


def test_macro_f1_edge_cases():
    assert macro_f1([1, 1, 2], [1, 1, 2]) == 1.0
    assert macro_f1([0, 0], [1, 1]) == pytest.approx(f1_score([0, 0], [1, 1], average="macro", zero_division=0))
    with pytest.raises(ValueError):
        macro_f1([], [])


@dataclass(frozen=True)
class DigitsTask:
    """Two contexts from sklearn's digits: A as is, B with the images mirrored and noisier (a 'new room')."""

    name: str = "digits"
    model: str = "digits"

    def contexts(self):
        splits = load_dataset("digits", seed=0)
        out = {}
        for name in ("A", "B"):
            rng = np.random.default_rng(ord(name))
            features, labels, speakers = {}, {}, {}
            for split in ("train", "val", "test"):
                x, y = (t.numpy() for t in getattr(splits, split).tensors)
                if name == "B":
                    x = x[..., ::-1] + rng.normal(0, 0.3, x.shape).astype(np.float32)
                features[split], labels[split] = np.ascontiguousarray(x), y
                speakers[split] = np.full(len(y), ord(name))
            out[name] = SpeechContext(name, {"name": name}, {s: [ord(name)] for s in features}, features, labels,
                                      speakers)
        return out

    def splits(self, train, test=None):
        return context_splits(train, test, name="digits", class_names=tuple(str(i) for i in range(10)))

    def describe(self, contexts):
        return {name: "digits" + (" mirrored + noise" if name == "B" else "") for name in contexts}


def test_domain_shift_protocol(tmp_path):
    config = DomainShiftConfig(run_dir=str(tmp_path / "run"), unit_percentiles=(30, 90), fatrelu_percentiles=(50,),
                               ttp_sparsities=(0.5, 0.8), ttp_finetune_epochs=1, epochs=4, lr=5e-3, patience=None,
                               progress=False, budget=1.0, autotune_budgets=(0.5, 3.0), confidence=0.0)
    document = run_domain_shift(DigitsTask(), config)
    rows = document["rows"]
    assert len(rows) == 2 * 2 * len(DOMAIN_METHODS)
    keys = {"train_context", "test_context", "method", "knob", "f1", "accuracy", "macs_skipped_fraction"}
    assert all(keys <= set(r) for r in rows)
    on_disk = json.loads((tmp_path / "run" / "domain_shift.json").read_text())
    assert on_disk["rows"] == rows
    assert (tmp_path / "run" / "report.md").read_text().count("->") >= 8
    assert (tmp_path / "run" / "domain_shift.png").stat().st_size > 1000
    for train in ("A", "B"):
        points = [p for p in document["points"] if p["train_context"] == train]
        reference = next(p["val_f1"] for p in points if p["method"] == "unpruned")
        for method in ("unit", "ttp", "fatrelu", "unit-autotuned"):
            candidates = sorted((p for p in points if p["method"] == method), key=lambda p: p["knob"])
            within = [p["knob"] for p in candidates if 100 * (reference - p["val_f1"]) <= 1.0 + 1e-9]
            expected = within[-1] if within else candidates[0]["knob"]
            chosen = {r["knob"] for r in rows if r["train_context"] == train and r["method"] == method}
            assert chosen == {expected}, (train, method)  # chosen on the training context's validation data
            selection = next(r["selection"] for r in rows if r["train_context"] == train and r["method"] == method)
            assert selection["confidence"] == 0.0 and selection["fallback"] == (not within)
        sizes = {r["test_context"]: r["num_test_samples"] for r in rows if r["train_context"] == train}
        assert set(sizes) == {"A", "B"}
        # the diagnosis measured every knob on both test splits; at the chosen knob it is the table's row
        for row in (r for r in rows if r["train_context"] == train):
            point = next(p for p in points if p["method"] == row["method"] and p["knob"] == row["knob"])
            assert point["test"][row["test_context"]]["f1"] == pytest.approx(row["f1"], abs=1e-12), row
        tuned = [p for p in points if p["method"] == "unit-autotuned"]
        assert [p["knob"] for p in tuned] == [0.5, 3.0]
        unpruned_val_accuracy = next(p["val_accuracy"] for p in points if p["method"] == "unpruned")
        for p in tuned:  # the per-layer search keeps validation accuracy within its budget
            assert 100 * (unpruned_val_accuracy - p["val_accuracy"]) <= p["knob"] + 1e-9
            assert set(p["percentiles"]) == {"conv1", "fc"}
    unpruned = {(r["train_context"], r["test_context"]): r for r in rows if r["method"] == "unpruned"}
    assert unpruned[("A", "A")]["f1"] > unpruned[("A", "B")]["f1"]  # the shift hurts the dense model
    assert "## Diagnosis" in (tmp_path / "run" / "report.md").read_text()


def test_kws_task_rejects_bad_split_fractions():
    from unitprune.experiments.domain_tasks import KWSDomainTask

    with pytest.raises(ValueError, match="val_fraction"):
        KWSDomainTask(val_fraction=0.0)
    with pytest.raises(ValueError, match="test_fraction"):
        KWSDomainTask(test_fraction=1.0)


def test_cli_kws_defaults_are_the_study_settings():
    """`domain-shift --task kws` defaults: the 384-speaker set of DOMAIN_VARIANTS, every one installed."""
    import shutil

    from unitprune.cli import build_parser
    from unitprune.cli.data_commands import synth_config_from_args
    from unitprune.data.synth_speech import installed_variants
    from unitprune.experiments.domain_tasks import DOMAIN_VARIANTS, KWSDomainTask, domain_synth_config

    args = build_parser().parse_args(["domain-shift", "--task", "kws"])
    assert synth_config_from_args(args) == domain_synth_config(seed=0) == KWSDomainTask().synth
    assert len(domain_synth_config().speakers) == 16 * 24 and len(set(DOMAIN_VARIANTS)) == 24
    assert args.val_fraction == KWSDomainTask().val_fraction and not args.no_augment
    executable = shutil.which("espeak-ng")
    if executable is None:
        pytest.skip("espeak-ng not installed (apt-get install espeak-ng): variant check skipped")
    assert set(DOMAIN_VARIANTS) <= installed_variants(executable)  # espeak-ng ignores unknown variants silently


def test_cli_kws_tiny_set(tmp_path, capsys):
    """The command on a tiny synthesized set: the KWS augmentation trains each context's model, the
    validation share of speakers is the one asked for, and every table row is written."""
    import shutil
    from dataclasses import asdict

    from unitprune.cli import main
    from unitprune.experiments.kws import KWS_AUGMENT

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed (apt-get install espeak-ng)")
    run_dir = tmp_path / "run"
    synth = ["--voices", "en-us", "en-gb", "de", "fr", "--variants", "m1", "f2", "m3", "--words", "yes", "no",
             "--repeats", "1", "--unknown-per-speaker", "1"]
    args = ["domain-shift", "--task", "kws", "--data-root", str(tmp_path / "data"), "--run-dir", str(run_dir),
            "--epochs", "1", "--unit-percentiles", "30", "--fatrelu-percentiles", "30", "--ttp-sparsities", "0.5",
            "--ttp-epochs", "1", "--autotune-budgets", "5", "--autotune-grid", "0", "50",
            "--val-fraction", "0.4", "--workers", "1",
            "--no-progress", *synth]
    assert main(args) == 0
    document = json.loads((run_dir / "domain_shift.json").read_text())
    assert len(document["rows"]) == 2 * 2 * len(DOMAIN_METHODS)
    for name in ("A", "B"):
        metadata = json.loads((run_dir / f"train-{name}" / "train" / "metadata.json").read_text())
        assert metadata["config"]["augment"] == asdict(KWS_AUGMENT)
        # 12 speakers -> 6 per context: 1 test (15%), then round(0.4 * 5) = 2 validation speakers
        assert "speakers train/val/test 3/2/1" in document["contexts"][name]
    assert "| A -> B |" in (run_dir / "report.md").read_text()
    assert f"report: {run_dir / 'report.md'}" in capsys.readouterr().out


def test_choice_needs_the_f1_budget_and_the_paired_accuracy_bound():
    """confidence > 0: a knob needs its validation F1 within the budget and its paired accuracy drop
    admitted by unitprune.accuracy_budget; the scan stops at the first knob failing either."""
    from unitprune.experiments.domain_shift import _choose, _Measured

    n = 400
    reference_correct = np.ones(n, dtype=bool)

    def point(knob, losses, f1):
        correct = reference_correct.copy()
        correct[:losses] = False
        return _Measured("unit", knob, f1, float(correct.mean()), None, {}, correct)

    reference = _Measured("unpruned", None, 0.95, 1.0, None, {}, reference_correct)
    config = DomainShiftConfig(budget=1.0, confidence=0.9)
    # 30: fine; 40: F1 fine but 3 losses of 400 (bound 1.6 points) fail; 50: fine again, not reached
    points = [point(30, 0, 0.95), point(40, 3, 0.95), point(50, 0, 0.95)]
    chosen = _choose(points, reference, config)
    assert chosen.knob == 30 and chosen.details["selection"]["val_accuracy_drop_bound"] <= 1.0
    # accuracy fine but F1 2 points down: not admitted, nothing milder: the mildest, flagged
    chosen = _choose([point(30, 0, 0.93), point(40, 0, 0.95)], reference, config)
    assert chosen.knob == 30 and chosen.details["selection"]["fallback"]
    # the legacy rule (confidence 0) takes 50 after the failure at 40 (F1 only)
    legacy = DomainShiftConfig(budget=1.0, confidence=0.0)
    assert _choose([point(30, 0, 0.95), point(40, 3, 0.93), point(50, 3, 0.95)], reference, legacy).knob == 50
