"""The synthesized speech set: determinism, the cache manifest, speaker / room disjoint splits.

Generating needs espeak-ng: the tests skip with the package name when it is missing, unless
UNITPRUNE_REQUIRE_MCU_TOOLS=1 (CI), where they fail (same pattern as tests/test_portability.py).
"""

from __future__ import annotations

import hashlib
import os
import shutil

import numpy as np
import pytest

from unitprune.data import DatasetFormatError, DatasetNotFoundError, load_dataset
from unitprune.data import synth_speech as ss
from unitprune.data.audio import log_mel_spectrogram
from unitprune.data.speech_commands import CLASS_NAMES

TINY = dict(voices=("en-us", "en-gb", "de"), variants=("m1", "f2", "m3"), words=("yes", "no", "up"), repeats=1,
            unknown_per_speaker=1, workers=2)


def require_espeak() -> None:
    if shutil.which("espeak-ng") is None:
        if os.environ.get("UNITPRUNE_REQUIRE_MCU_TOOLS") == "1":
            pytest.fail("espeak-ng not found but UNITPRUNE_REQUIRE_MCU_TOOLS=1 (apt-get install espeak-ng)")
        pytest.skip("espeak-ng not installed (apt-get install espeak-ng)")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    require_espeak()
    root = tmp_path_factory.mktemp("synth") / "cache"
    return ss.generate_synth_speech(root, ss.SynthSpeechConfig(seed=3, **TINY), progress=False)


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_tiny_set_layout(tiny):
    n_speakers = 9
    assert tiny.waves.shape == (n_speakers * 4, 16000) and tiny.waves.dtype == np.int16
    counts = tiny.manifest["counts"]
    assert counts["speakers"] == n_speakers
    assert counts["per_class"] == {"_unknown_": 9, "yes": 9, "no": 9, "up": 9}
    assert tiny.manifest["espeak_ng_version"].startswith("eSpeak NG")
    # every clip has speech in it (not silent), peak at its drawn gain
    peaks = np.abs(tiny.waves.astype(np.float64)).max(axis=1) / 32767
    gains = np.array([c["gain"] for c in tiny.clips])
    assert np.allclose(peaks, gains, atol=2e-4)


def test_same_seed_same_bytes_independent_of_workers(tiny, tmp_path):
    again = ss.generate_synth_speech(tmp_path / "again", ss.SynthSpeechConfig(seed=3, **dict(TINY, workers=1)),
                                     progress=False)
    assert sha(again.root / ss.WAVES) == sha(tiny.root / ss.WAVES)
    assert (again.root / ss.CLIPS).read_bytes() == (tiny.root / ss.CLIPS).read_bytes()


def test_different_seed_different_clips(tiny, tmp_path):
    other = ss.generate_synth_speech(tmp_path / "other", ss.SynthSpeechConfig(seed=4, **TINY), progress=False)
    assert other.waves.shape == tiny.waves.shape
    differing = [not np.array_equal(a, b) for a, b in zip(other.waves, tiny.waves)]
    assert all(differing)  # every clip changed: other pitch, speed, gain or onset
    assert [c["word"] for c in other.clips if c["label"] != 1] == [c["word"] for c in tiny.clips if c["label"] != 1]


def test_manifest_refuses_cache_from_other_settings(tiny, tmp_path):
    before = sha(tiny.root / ss.WAVES)
    with pytest.raises(DatasetFormatError, match="other settings.*words"):
        ss.generate_synth_speech(tiny.root, ss.SynthSpeechConfig(seed=3, **dict(TINY, words=("yes", "no"))))
    with pytest.raises(DatasetFormatError, match="seed"):
        ss.load_synth_speech(tiny.root, seed=5, config=ss.SynthSpeechConfig(seed=5, **TINY))
    assert sha(tiny.root / ss.WAVES) == before
    # the same settings are reused (no espeak-ng call needed), whatever the worker count
    reused = ss.generate_synth_speech(tiny.root, ss.SynthSpeechConfig(seed=3, **dict(TINY, workers=1)))
    assert np.array_equal(reused.waves, tiny.waves)
    # a folder the user made is never written into
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(DatasetFormatError, match="not empty"):
        ss.generate_synth_speech(tmp_path / "mine", ss.SynthSpeechConfig(**TINY))
    # a tampered cache is detected
    tampered = tmp_path / "tampered"
    shutil.copytree(tiny.root, tampered)
    waves = np.load(tampered / ss.WAVES)
    waves[0, 100] += 1
    np.save(tampered / ss.WAVES, waves)
    with pytest.raises(DatasetFormatError, match="checksum"):
        ss.generate_synth_speech(tampered, ss.SynthSpeechConfig(seed=3, **TINY))


def test_missing_espeak_names_the_package(monkeypatch, tmp_path):
    monkeypatch.setattr(ss.shutil, "which", lambda name: None)
    with pytest.raises(DatasetNotFoundError, match="apt-get install espeak-ng"):
        ss.generate_synth_speech(tmp_path / "x", ss.SynthSpeechConfig(**TINY))


def test_unknown_variant_is_an_error(tmp_path):
    require_espeak()
    with pytest.raises(ValueError, match="variant.*nosuchvariant"):
        ss.generate_synth_speech(tmp_path / "x", ss.SynthSpeechConfig(**dict(TINY, variants=("nosuchvariant",))))


def test_splits_are_speaker_disjoint_and_features_are_the_log_mel_recipe(tiny):
    config = ss.SynthSpeechConfig(seed=3, **TINY)
    splits = load_dataset("synth_speech", tiny.root, seed=3, config=config)
    speakers = splits.info["speakers"]
    assert set(speakers["train"]).isdisjoint(speakers["val"]) and set(speakers["train"]).isdisjoint(speakers["test"])
    assert set(speakers["val"]).isdisjoint(speakers["test"])
    assert sorted(speakers["train"] + speakers["val"] + speakers["test"]) == list(range(9))
    assert splits.input_shape == (1, 80, 124) and splits.num_classes == len(CLASS_NAMES)
    # features: the log-mel of the room-mixed waveform, standardised with the train statistics
    context = ss._build_context(tiny, "A", ss.ROOMS["A"], list(range(9)), 3, 0.1, 0.15, 1 / 3, False)
    rows = np.flatnonzero(np.isin(tiny.speakers, speakers["test"]))
    labels = context.labels["test"]
    waves = np.concatenate([tiny.waves[rows], np.zeros((int((labels == 0).sum()), 16000), np.int16)])
    room_seed = int(np.random.default_rng([3, 5, ord("A"), 2]).integers(2 ** 31))
    expected = log_mel_spectrogram(ss.apply_room(waves, labels, ss.ROOMS["A"], room_seed, tiny.waves[rows]))
    assert np.array_equal(context.features["test"][:, 0], expected)
    norm = splits.normalization
    assert np.allclose(splits.test.tensors[0].numpy()[:, 0], (expected - norm["mean"]) / norm["std"], atol=1e-5)
    # _silence_ clips are present, one keyword's share
    assert int((labels == 0).sum()) == int(np.ceil((labels >= 2).sum() / 3))


def test_domain_contexts_disjoint_speakers_and_rooms(tiny):
    contexts = ss.load_synth_speech_contexts(tiny.root, seed=3, config=ss.SynthSpeechConfig(seed=3, **TINY))
    a, b = contexts["A"], contexts["B"]
    a_speakers = {s for ids in a.speaker_ids.values() for s in ids}
    b_speakers = {s for ids in b.speaker_ids.values() for s in ids}
    assert a_speakers.isdisjoint(b_speakers) and a_speakers | b_speakers == set(range(9))
    for context in (a, b):
        for split, ids in context.speaker_ids.items():
            present = set(context.speakers[split].tolist()) - {-1}
            assert present == set(ids)
    assert a.room.rt60 == 0 and b.room.rt60 > 0 and set(a.room.noises).isdisjoint(b.room.noises)
    cross = ss.context_splits(a, b)
    assert cross.info["train_context"] == "A" and cross.info["test_context"] == "B"
    assert cross.normalization["mean"] == ss.context_splits(a).normalization["mean"]  # train context statistics
    assert len(cross.test) == len(b.labels["test"])


def test_room_b_reverberates():
    rir = ss.room_impulse_responses(ss.ROOMS["B"], seed=0)
    assert len(rir) == ss.ROOMS["B"].num_rirs and all(abs(np.sum(r ** 2) - 1) < 1e-5 for r in rir)
    impulse = np.zeros((1, 16000), np.int16)
    impulse[0, 1000] = 30000
    room = ss.Room("R", rt60=0.5, noises=("white",), snr_db=(200.0, 200.0))  # practically no noise
    out = ss.apply_room(impulse, np.array([2]), room, 0, impulse)[0]
    energy_after = np.sum(out[1000 + 800:] ** 2)  # > 50 ms after the direct path
    assert energy_after > 0.05 * np.sum(out ** 2)
    dry = ss.apply_room(impulse, np.array([2]), ss.Room("D", 0.0, ("white",), (200.0, 200.0)), 0, impulse)[0]
    assert np.sum(dry[1000 + 800:] ** 2) < 1e-6 * np.sum(dry ** 2)


def test_cli_data_synth_speech(tmp_path, capsys):
    require_espeak()
    from unitprune.cli import main

    args = ["data", "synth-speech", "--data-root", str(tmp_path / "c"), "--voices", "en-us", "de", "--variants", "m1",
            "f2", "--words", "yes", "--repeats", "1", "--unknown-per-speaker", "1", "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "generated 8 clips of 4 speakers" in out and "generation time" in out
    assert main(args) == 0 and "reused 8 clips" in capsys.readouterr().out
    assert main(args[:-1] + ["--seed", "1", "--no-progress"]) == 2
    assert "other settings" in capsys.readouterr().err


def test_cli_kws_demo_uses_the_kws_defaults(tiny, tmp_path):
    """`unitprune demo --task kws` on the tiny set: KWS sweep defaults for unset options, the given
    ones override them, the KWS augmentation is recorded with the checkpoint, every phase is timed."""
    import json
    from dataclasses import asdict

    from unitprune.cli import main
    from unitprune.experiments.kws import KWS_AUGMENT, KWS_SWEEP

    data_root = tmp_path / "data"
    shutil.copytree(tiny.root, data_root)
    run_dir = tmp_path / "run"
    args = ["demo", "--task", "kws", "--data-root", str(data_root), "--run-dir", str(run_dir), "--seed", "3",
            "--epochs", "1", "--methods", "unpruned", "unit-exact", "--unit-percentiles", "30", "--workers", "1",
            "--voices", *TINY["voices"], "--variants", *TINY["variants"], "--words", *TINY["words"],
            "--repeats", "1", "--unknown-per-speaker", "1", "--no-progress"]
    assert main(args) == 0
    results = json.loads((run_dir / "results.json").read_text())
    assert results["config"]["unit_percentiles"] == [30.0]  # given
    assert results["config"]["fatrelu_percentiles"] == list(KWS_SWEEP.fatrelu_percentiles)  # KWS default
    assert results["config"]["autotune_grid"] == list(KWS_SWEEP.autotune_grid)
    assert results["config"]["ttp_finetune_epochs"] == KWS_SWEEP.ttp_finetune_epochs
    assert [p["knob"] for p in results["methods"]["unit-exact"]] == [30.0]
    timing = results["timing_s"]
    assert {"data_generation_or_check", "features", "training", "unpruned", "unit-exact", "demo_total"} <= set(timing)
    metadata = json.loads((run_dir / "train" / "metadata.json").read_text())
    assert metadata["config"]["augment"] == asdict(KWS_AUGMENT) and metadata["config"]["epochs"] == 1
