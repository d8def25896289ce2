"""Google Speech Commands (keyword spotting, "KWS") from the official folder layout.

Input to the Table-1 KWS model: log-mel features ``(N, 1, 80, 124)`` (see :mod:`.audio`:
1 s at 16 kHz, n_fft 256, hop 128, no centering -> 124 frames; 80 mel bands). The Table-1
linear layer has 7616 inputs because of exactly this shape::

    1 x 80 x 124 -conv 5x5-> 6 x 76 x 120 -pool 2-> 6 x 38 x 60
                 -conv 5x5-> 16 x 34 x 56 -pool 2-> 16 x 17 x 28 = 7616 features -> 12 classes

Folder layout (what ``speech_commands_v0.02.tar.gz`` or v0.01 extracts to)::

    root/<word>/<speaker>_nohash_<n>.wav     16-bit PCM mono, 16 kHz, <= 1 s
    root/validation_list.txt                 relative paths ("yes/0a7c2a8d_nohash_0.wav")
    root/testing_list.txt
    root/_background_noise_/*.wav            long noise recordings (only used for _silence_)

Classes (the standard 12-class setup, in this index order)::

    0 _silence_, 1 _unknown_, 2 yes, 3 no, 4 up, 5 down, 6 left, 7 right, 8 on, 9 off, 10 stop, 11 go

* every other word folder is ``_unknown_``; per split, a seeded random subset of
  ``ceil(unknown_fraction * n_known)`` unknown clips is kept (default 10 %, as in the
  TensorFlow reference recipe; ``unknown_fraction=None`` keeps them all);
* ``_silence_``: per split, ``ceil(silence_fraction * n_known)`` clips, each a random 1 s crop of
  a random ``_background_noise_`` file scaled by a volume drawn uniformly from [0, 0.1]
  (all-zero clips when there is no noise folder). Everything is seeded.

Splits: when both ``validation_list.txt`` and ``testing_list.txt`` exist they define the
validation and test sets and every other clip is training (the official ~80/10/10 split, which
keeps speakers disjoint). When neither exists, a seeded split by speaker (the file-name part
before ``_nohash_``) holds out ``test_fraction`` of the speakers as test and ``val_fraction`` of
the rest as validation. Exactly one list present is an error (ambiguous).

Clips are padded with zeros at the end / cropped to 1 s; other sample rates are resampled to
16 kHz with ``scipy.signal.resample_poly``. Features are standardised with the scalar mean / std
of the training split (stored in ``DatasetSplits.normalization``).

Memory: one clip is 80 x 124 float32 = 39.7 kB, so the full v0.02 set with the default 10 %
unknown / silence (~46k clips) needs ~1.8 GB; ``max_per_class`` caps it for quick runs.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .audio import N_MELS, NUM_FRAMES, NUM_SAMPLES, fix_length, log_mel_spectrogram, pool_features, read_wav
from .errors import DatasetNotFoundError
from .splits import DatasetSplits, make_tensor_dataset

__all__ = ["KNOWN_WORDS", "CLASS_NAMES", "load_speech_commands"]

logger = logging.getLogger(__name__)

KNOWN_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SILENCE = "_silence_"
UNKNOWN = "_unknown_"
CLASS_NAMES = (SILENCE, UNKNOWN, *KNOWN_WORDS)
BACKGROUND_DIR = "_background_noise_"
VALIDATION_LIST = "validation_list.txt"
TESTING_LIST = "testing_list.txt"
SILENCE_MAX_VOLUME = 0.1
_SPLITS = ("train", "val", "test")
_DOWNLOAD_HINT = (
    "Download http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz (or v0.01), "
    "extract it into a folder (it has no top-level directory: mkdir sc && tar xzf ... -C sc) and "
    "pass that folder as root. unitprune never downloads data."
)


@dataclass(frozen=True)
class _Clip:
    """One example: a relative wav path (``None`` for generated silence) and its class index."""

    path: str | None
    label: int


def _speaker(rel_path: str) -> str:
    stem = Path(rel_path).stem
    return stem.split("_nohash_")[0]


def _scan(root: Path) -> list[str]:
    """Relative posix paths ``word/file.wav`` of all clips, sorted (background noise excluded)."""
    paths = []
    for word_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        if word_dir.name.startswith(("_", ".")):
            continue
        paths += [f"{word_dir.name}/{f.name}" for f in sorted(word_dir.glob("*.wav"))]
    return paths


def _read_list(path: Path) -> set[str]:
    lines = path.read_text().splitlines()
    return {line.strip().replace("\\", "/") for line in lines if line.strip()}


def _assign_splits(
    root: Path, paths: list[str], seed: int, val_fraction: float, test_fraction: float
) -> tuple[dict[str, list[str]], str]:
    """Map each clip to train / val / test. Returns the assignment and a description of the rule."""
    val_path, test_path = root / VALIDATION_LIST, root / TESTING_LIST
    if val_path.is_file() and test_path.is_file():
        val_set, test_set = _read_list(val_path), _read_list(test_path)
        on_disk = set(paths)
        missing = sorted((val_set | test_set) - on_disk)
        if missing:
            logger.warning(
                "%d clips named in the list files are not on disk (first: %s); ignoring them",
                len(missing), missing[0],
            )
        out = {"train": [], "val": [], "test": []}
        for p in paths:
            out["test" if p in test_set else "val" if p in val_set else "train"].append(p)
        return out, f"official lists {VALIDATION_LIST} / {TESTING_LIST}"
    if val_path.is_file() or test_path.is_file():
        absent = test_path if val_path.is_file() else val_path
        raise DatasetNotFoundError(
            f"Speech Commands list file not found: {absent}. Both {VALIDATION_LIST} and "
            f"{TESTING_LIST} ship with the dataset; restore the missing one, or remove both to "
            f"use a seeded split by speaker. {_DOWNLOAD_HINT}"
        )

    speakers = sorted({_speaker(p) for p in paths})
    if len(speakers) < 3:
        raise ValueError(
            f"a seeded split by speaker needs at least 3 speakers, found {len(speakers)} in {root}"
        )
    order = np.random.default_rng(seed).permutation(len(speakers))
    n_test = max(1, round(test_fraction * len(speakers)))
    n_val = max(1, round(val_fraction * (len(speakers) - n_test)))
    role = {}
    for rank, i in enumerate(order):
        role[speakers[i]] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    out = {"train": [], "val": [], "test": []}
    for p in paths:
        out[role[_speaker(p)]].append(p)
    return out, f"seeded split by speaker (seed {seed}, test {test_fraction}, val {val_fraction})"


def _select(
    paths: list[str],
    rng: np.random.Generator,
    unknown_fraction: float | None,
    silence_fraction: float,
    max_per_class: int | None,
) -> list[_Clip]:
    """Label the clips of one split, subsample unknowns, cap classes, add silence entries."""
    by_class: dict[int, list[str]] = {}
    for p in paths:
        word = p.split("/")[0]
        label = CLASS_NAMES.index(word) if word in KNOWN_WORDS else CLASS_NAMES.index(UNKNOWN)
        by_class.setdefault(label, []).append(p)
    if max_per_class is not None:
        for label, items in by_class.items():
            if len(items) > max_per_class:
                keep = rng.choice(len(items), size=max_per_class, replace=False)
                by_class[label] = [items[i] for i in sorted(keep)]
    unknown = CLASS_NAMES.index(UNKNOWN)
    n_known = sum(len(v) for k, v in by_class.items() if k != unknown)
    if unknown_fraction is not None and unknown in by_class:
        n_unknown = min(len(by_class[unknown]), math.ceil(unknown_fraction * n_known))
        keep = rng.choice(len(by_class[unknown]), size=n_unknown, replace=False)
        by_class[unknown] = [by_class[unknown][i] for i in sorted(keep)]
    clips = [_Clip(p, label) for label in sorted(by_class) for p in by_class[label]]
    n_silence = math.ceil(silence_fraction * n_known)
    clips += [_Clip(None, CLASS_NAMES.index(SILENCE))] * n_silence
    return clips


def _silence_clip(noises: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    if not noises:
        return np.zeros(NUM_SAMPLES, dtype=np.float32)
    noise = noises[rng.integers(len(noises))]
    start = rng.integers(0, max(1, len(noise) - NUM_SAMPLES + 1))
    volume = rng.uniform(0.0, SILENCE_MAX_VOLUME)
    return (fix_length(noise[start : start + NUM_SAMPLES]) * volume).astype(np.float32)


def _features(
    root: Path,
    clips: list[_Clip],
    noises: list[np.ndarray],
    rng: np.random.Generator,
    chunk_size: int,
    desc: str,
    progress: bool,
) -> np.ndarray:
    """Log-mel features of ``clips``, float32 ``(N, 1, 80, 124)``."""
    out = np.empty((len(clips), 1, N_MELS, NUM_FRAMES), dtype=np.float32)
    starts = range(0, len(clips), chunk_size)
    for start in tqdm(starts, desc=desc, disable=not progress, leave=False):
        chunk = clips[start : start + chunk_size]
        waves = np.stack([
            _silence_clip(noises, rng) if c.path is None else fix_length(read_wav(root / c.path))
            for c in chunk
        ])
        out[start : start + len(chunk), 0] = log_mel_spectrogram(waves)
    return out


def load_speech_commands(
    root: str | Path,
    *,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    unknown_fraction: float | None = 0.1,
    silence_fraction: float = 0.1,
    max_per_class: int | None = None,
    chunk_size: int = 256,
    feature_pool: tuple[int, int] | None = None,
    progress: bool = False,
) -> DatasetSplits:
    """Load Google Speech Commands as 12-class log-mel :class:`DatasetSplits` ``(N, 1, 80, 124)``.

    Args:
        root: the extracted dataset folder (contains ``yes/``, ``no/``, ... and the list files).
        seed: seed of unknown/silence sampling, class capping and (without lists) the split.
        val_fraction, test_fraction: speaker fractions, used only when the list files are absent.
        unknown_fraction: unknown clips kept per split, relative to the number of known-word
            clips in that split; ``None`` keeps all.
        silence_fraction: silence clips added per split, relative to the known-word clips.
        max_per_class: keep at most this many clips per word class per split (seeded), or all.
        chunk_size: clips per feature-extraction batch (memory vs speed).
        feature_pool: ``(bands, frames)``: average the log-mel map over blocks of that size
            (:func:`unitprune.data.audio.pool_features`), e.g. ``(2, 2)`` for ``(1, 40, 62)``.
        progress: show a tqdm bar while reading files.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetNotFoundError(f"Speech Commands folder not found: {root}. {_DOWNLOAD_HINT}")
    paths = _scan(root)
    present_words = {p.split("/")[0] for p in paths}
    if not present_words & set(KNOWN_WORDS):
        raise DatasetNotFoundError(
            f"no keyword clips found: expected WAV files such as {root / 'yes' / '<speaker>_nohash_0.wav'} "
            f"in word folders {', '.join(KNOWN_WORDS)}. {_DOWNLOAD_HINT}"
        )
    assignment, rule = _assign_splits(root, paths, seed, val_fraction, test_fraction)

    noise_dir = root / BACKGROUND_DIR
    noises = [read_wav(p) for p in sorted(noise_dir.glob("*.wav"))] if noise_dir.is_dir() else []
    if not noises and silence_fraction > 0:
        logger.info("no %s folder: _silence_ clips are all zeros", BACKGROUND_DIR)

    features, labels, counts = {}, {}, {}
    for split_id, split in enumerate(_SPLITS):
        rng = np.random.default_rng([seed, split_id])
        clips = _select(assignment[split], rng, unknown_fraction, silence_fraction, max_per_class)
        features[split] = pool_features(
            _features(root, clips, noises, rng, chunk_size, f"speech_commands {split}", progress), feature_pool)
        labels[split] = np.array([c.label for c in clips], dtype=np.int64)
        counts[split] = np.bincount(labels[split], minlength=len(CLASS_NAMES)).tolist()

    if len(features["train"]) == 0:
        raise ValueError(f"the training split of {root} is empty")
    mean = float(features["train"].mean(dtype=np.float64))
    std = float(features["train"].std(dtype=np.float64)) or 1.0
    datasets = {s: make_tensor_dataset((features[s] - mean) / std, labels[s]) for s in _SPLITS}
    splits = DatasetSplits(
        name="speech_commands",
        train=datasets["train"],
        val=datasets["val"],
        test=datasets["test"],
        num_classes=len(CLASS_NAMES),
        input_shape=tuple(features["train"].shape[1:]),
        class_names=CLASS_NAMES,
        normalization={"features": "log-mel, see unitprune.data.audio" + (
            f"; averaged over {feature_pool[0]}x{feature_pool[1]} blocks (bands x frames)" if feature_pool else ""),
            "mean": mean, "std": std},
        info={"source": str(root), "split_rule": rule, "class_counts": counts, "seed": seed,
              "background_noise_files": len(noises)},
    )
    logger.info("loaded %s (%s)", splits.describe(), rule)
    return splits
