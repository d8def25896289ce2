"""An offline speech-commands set synthesized with espeak-ng, deterministic from a seed.

Why: the Google Speech Commands recordings are not in any package, so a fresh machine has no
keyword-spotting data. This module makes a stand-in with the same 12-class layout
(:data:`unitprune.data.speech_commands.CLASS_NAMES`), the same 1 s / 16 kHz clips and the same
log-mel features (:mod:`unitprune.data.audio`), so a model trained on it also runs on the real set.

Two stages:

1. **Dry speech** (:func:`generate_synth_speech`, CLI ``unitprune data synth-speech``): every
   *speaker* is an espeak-ng voice with a variant (``en-gb-scotland+f3``), with its own base pitch
   and speed drawn from the seed. Each speaker says every keyword ``repeats`` times and
   ``unknown_per_speaker`` random words of the other Speech Commands vocabulary, each clip with its
   own random speed, pitch, amplitude and onset. espeak-ng writes 22,050 Hz WAVs; they are resampled
   to 16 kHz (``scipy.signal.resample_poly``), placed in a 1 s clip and stored as int16.
   Generation runs in worker processes (``workers``) with a progress bar; the result does not
   depend on the number of workers (each clip's parameters are drawn in the main process).
2. **Rooms** (:func:`load_synth_speech`, :func:`load_synth_speech_contexts`): at load time every clip
   is put in an acoustic room (:data:`ROOMS`): convolved with one of the room's synthetic impulse
   responses (exponentially decaying noise, ``rt60`` seconds; none for a dry room) and mixed with
   background noise of the room's colours (white / pink / brown noise, or babble made of other
   clips of the same split) at a random SNR. ``_silence_`` clips are room noise only. All seeded.

Cache folder (``root``, the user's choice; ``--data-root`` on the CLI)::

    root/manifest.json   settings (seed, voices, variants, words, counts), espeak-ng version,
                         generation time; a cache made with other settings is refused, never reused
    root/clips.json      one record per clip: speaker, voice, variant, word, label, pitch, speed...
    root/dry.npy         int16 (N, 16000) dry waveforms (np.save: same settings, same bytes)

Splits are by speaker (a speaker is in exactly one of train / val / test), as in Speech Commands.
For the domain-shift study the speakers are first split into disjoint *contexts* (``A``, ``B``),
each in its own room, and then by speaker within each context.

Needs the Debian package ``espeak-ng`` (``make mcu-tools`` installs it) only to generate; loading
an existing cache does not.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

import multiprocessing

import numpy as np
from tqdm.auto import tqdm

from .audio import N_MELS, NUM_FRAMES, NUM_SAMPLES, SAMPLE_RATE, log_mel_spectrogram, pool_features, read_wav
from ..settings_manifest import check_manifest
from .errors import DatasetFormatError, DatasetNotFoundError
from .speech_commands import CLASS_NAMES, KNOWN_WORDS, SILENCE, UNKNOWN
from .splits import DatasetSplits, make_tensor_dataset

__all__ = [
    "SynthSpeechConfig", "Room", "ROOMS", "DEFAULT_VOICES", "DEFAULT_VARIANTS", "UNKNOWN_WORDS",
    "ESPEAK_PACKAGE", "espeak_ng", "generate_synth_speech", "load_synth_speech", "load_synth_speech_contexts",
    "SpeechContext", "context_splits", "SynthSpeechCache",
]

logger = logging.getLogger(__name__)

#: Debian package to install when espeak-ng is missing.
ESPEAK_PACKAGE = "espeak-ng"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CLIPS = "clips.json"
WAVES = "dry.npy"

#: English accents first, then other languages' voices speaking the English words.
DEFAULT_VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan",
                  "en-gb-x-gbcwmd", "en-us-nyc", "de", "fr", "es", "it", "nl", "pl", "sv", "pt")
#: espeak-ng voice variants (male 1-7, female 1-5).
DEFAULT_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
#: The other words of the Speech Commands vocabulary (class ``_unknown_``).
UNKNOWN_WORDS = ("bed", "bird", "cat", "dog", "eight", "five", "four", "happy", "house", "marvin", "nine",
                 "one", "seven", "sheila", "six", "three", "tree", "two", "wow", "zero", "backward", "follow",
                 "forward", "learn", "visual")
_ESPEAK_RATE = 22050


@dataclass(frozen=True)
class SynthSpeechConfig:
    """What :func:`generate_synth_speech` synthesizes (everything but ``workers`` is in the manifest).

    Attributes:
        seed: seed of every random choice (speaker pitch / speed, per-clip variation).
        voices: espeak-ng voice names; with ``variants`` they make ``len(voices) * len(variants)`` speakers.
        variants: espeak-ng variants (``+m1`` ... ``+f5``).
        words: keywords to synthesize (a subset of the 10 Speech Commands keywords, in class order).
        unknown_words: vocabulary of the ``_unknown_`` class.
        repeats: clips per speaker and keyword.
        unknown_per_speaker: ``_unknown_`` clips per speaker (random words of ``unknown_words``).
        pitch_range / speed_range: range of a speaker's base espeak-ng pitch (0-99) and speed (words
            per minute); each clip varies them by ``+-clip_pitch_jitter`` and a factor in
            ``1 +- clip_speed_jitter``.
        gain_range: peak amplitude of a clip's speech.
        workers: generation processes (not part of the result).
    """

    seed: int = 0
    voices: tuple[str, ...] = DEFAULT_VOICES
    variants: tuple[str, ...] = DEFAULT_VARIANTS
    words: tuple[str, ...] = KNOWN_WORDS
    unknown_words: tuple[str, ...] = UNKNOWN_WORDS
    repeats: int = 2
    unknown_per_speaker: int = 2
    pitch_range: tuple[float, float] = (25.0, 75.0)
    speed_range: tuple[float, float] = (130.0, 190.0)
    clip_pitch_jitter: float = 8.0
    clip_speed_jitter: float = 0.12
    gain_range: tuple[float, float] = (0.3, 0.9)
    workers: int = 2

    def __post_init__(self) -> None:
        for name in ("voices", "variants", "words", "unknown_words", "pitch_range", "speed_range", "gain_range"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        bad = [w for w in self.words if w not in KNOWN_WORDS]
        if bad or not self.words:
            raise ValueError(f"words must be a non-empty subset of {KNOWN_WORDS}, got {list(self.words)}")
        if not self.voices or not self.variants:
            raise ValueError("voices and variants must not be empty")
        if self.repeats < 1 or self.unknown_per_speaker < 0 or self.workers < 1:
            raise ValueError("repeats and workers must be >= 1, unknown_per_speaker >= 0")
        if self.unknown_per_speaker and not self.unknown_words:
            raise ValueError("unknown_per_speaker > 0 needs unknown_words")

    def manifest_settings(self) -> dict[str, Any]:
        """The settings that determine the clips (``workers`` does not)."""
        settings = asdict(self)
        settings.pop("workers")
        return {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()}

    @property
    def speakers(self) -> list[tuple[str, str]]:
        return [(voice, variant) for voice in self.voices for variant in self.variants]


@dataclass(frozen=True)
class Room:
    """An acoustic context applied at load time.

    Attributes:
        name: short name (``A``, ``B``).
        rt60: reverberation time in seconds of the synthetic impulse responses (0: dry, no reverb).
        noises: background noise types drawn per clip: ``white``, ``pink``, ``brown``, ``babble``.
        snr_db: range of the speech-to-noise ratio in dB.
        silence_level: range of the RMS level of ``_silence_`` clips (noise only).
        num_rirs: impulse responses per room (positions); each clip uses one.
    """

    name: str
    rt60: float
    noises: tuple[str, ...]
    snr_db: tuple[float, float]
    silence_level: tuple[float, float] = (0.002, 0.05)
    num_rirs: int = 4


#: Room A: dry, white / pink noise, high SNR. Room B: reverberant (RT60 0.6 s), brown noise and
#: babble, lower SNR.
ROOMS = {
    "A": Room("A", rt60=0.0, noises=("white", "pink"), snr_db=(10.0, 30.0)),
    "B": Room("B", rt60=0.6, noises=("brown", "babble"), snr_db=(5.0, 25.0)),
}


# ----------------------------------------------------------------------------------------------
# espeak-ng
# ----------------------------------------------------------------------------------------------

def espeak_ng() -> str:
    """Path of the espeak-ng executable, or a :class:`DatasetNotFoundError` naming the package."""
    path = shutil.which("espeak-ng")
    if path is None:
        raise DatasetNotFoundError(
            f"espeak-ng not found: the synthesized speech set needs it to generate clips "
            f"(apt-get install {ESPEAK_PACKAGE}, or `make mcu-tools`). An existing cache loads without it.")
    return path


def espeak_version(executable: str) -> str:
    out = subprocess.run([executable, "--version"], capture_output=True, text=True, check=True).stdout
    return out.split("Data at")[0].strip()


def installed_variants(executable: str) -> set[str]:
    """Variant names espeak-ng knows (it silently ignores unknown ones, so they are checked here)."""
    out = subprocess.run([executable, "--voices=variant"], capture_output=True, text=True, check=True).stdout
    names = set()
    for line in out.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 5:
            names.add(parts[4].split("/")[-1])
    return names


def installed_voices(executable: str) -> set[str]:
    out = subprocess.run([executable, "--voices"], capture_output=True, text=True, check=True).stdout
    names = set()
    for line in out.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 5:
            names.add(parts[1])
            names.add(parts[4].split("/")[-1].lower())
    return names


@dataclass(frozen=True)
class _ClipSpec:
    """One dry clip to synthesize: who says what, how."""

    speaker: int
    voice: str
    variant: str
    word: str
    label: int
    pitch: int
    speed: int
    gain: float
    onset: float  # fraction of the free space before the word


def _synthesize(executable: str, spec: _ClipSpec) -> np.ndarray:
    """Run espeak-ng for one clip; return int16 ``(16000,)``."""
    with tempfile.TemporaryDirectory(prefix="unitprune-espeak-") as tmp:
        wav = Path(tmp) / "clip.wav"
        result = subprocess.run(
            [executable, "-v", f"{spec.voice}+{spec.variant}", "-p", str(spec.pitch), "-s", str(spec.speed),
             "-w", str(wav), spec.word], capture_output=True, text=True)
        if result.returncode != 0 or not wav.is_file():
            raise RuntimeError(f"espeak-ng failed for voice {spec.voice}+{spec.variant}, word {spec.word!r}: "
                               f"{result.stderr.strip()}")
        x = read_wav(wav)  # resampled 22050 -> 16000 with resample_poly, deterministic
    x = _trim(x)
    if len(x) > NUM_SAMPLES:
        x = x[:NUM_SAMPLES]
    peak = float(np.abs(x).max()) or 1.0
    x = x * (spec.gain / peak)
    start = int(round(spec.onset * (NUM_SAMPLES - len(x))))
    clip = np.zeros(NUM_SAMPLES, dtype=np.float32)
    clip[start:start + len(x)] = x
    return np.round(clip * 32767.0).astype(np.int16)


def _trim(x: np.ndarray, level: float = 1e-3) -> np.ndarray:
    """Drop leading / trailing near-silence (espeak-ng pads words with silence)."""
    loud = np.flatnonzero(np.abs(x) > level * (np.abs(x).max() or 1.0))
    return x[loud[0]:loud[-1] + 1] if loud.size else x


def _synthesize_batch(executable: str, specs: list[_ClipSpec]) -> np.ndarray:
    return np.stack([_synthesize(executable, s) for s in specs]) if specs else np.zeros((0, NUM_SAMPLES), np.int16)


def _clip_specs(config: SynthSpeechConfig) -> list[_ClipSpec]:
    """Every clip's parameters, drawn in a fixed order from the seed."""
    specs = []
    unknown = CLASS_NAMES.index(UNKNOWN)
    for index, (voice, variant) in enumerate(config.speakers):
        rng = np.random.default_rng([config.seed, 0, index])
        base_pitch = rng.uniform(*config.pitch_range)
        base_speed = rng.uniform(*config.speed_range)
        words = [(w, CLASS_NAMES.index(w)) for w in config.words for _ in range(config.repeats)]
        words += [(str(config.unknown_words[i]), unknown)
                  for i in rng.integers(len(config.unknown_words), size=config.unknown_per_speaker)]
        for word, label in words:
            pitch = int(np.clip(round(base_pitch + rng.uniform(-1, 1) * config.clip_pitch_jitter), 0, 99))
            speed = int(round(base_speed * (1 + rng.uniform(-1, 1) * config.clip_speed_jitter)))
            specs.append(_ClipSpec(index, voice, variant, word, label, pitch, speed,
                                   round(float(rng.uniform(*config.gain_range)), 4), round(float(rng.uniform()), 4)))
    return specs


# ----------------------------------------------------------------------------------------------
# Generation and the cache
# ----------------------------------------------------------------------------------------------

@dataclass
class SynthSpeechCache:
    """A generated cache in memory: manifest, per-clip records and int16 dry waveforms."""

    root: Path
    manifest: dict[str, Any]
    clips: list[dict[str, Any]]
    waves: np.ndarray = field(repr=False)

    @property
    def labels(self) -> np.ndarray:
        return np.array([c["label"] for c in self.clips], dtype=np.int64)

    @property
    def speakers(self) -> np.ndarray:
        return np.array([c["speaker"] for c in self.clips], dtype=np.int64)


def _check_manifest(root: Path, wanted: dict[str, Any]) -> dict[str, Any]:
    return check_manifest(root / MANIFEST, wanted, FORMAT_VERSION, DatasetFormatError,
                          f"the synthesized speech cache {root}",
                          f"Use another --data-root (or delete {root} yourself to regenerate).")


def generate_synth_speech(root: str | Path, config: SynthSpeechConfig | None = None, *,
                          progress: bool = True) -> SynthSpeechCache:
    """Synthesize the dry clips into ``root`` (or reuse a cache made with the same settings).

    Raises:
        DatasetNotFoundError: espeak-ng is not installed (names the Debian package).
        DatasetFormatError: ``root`` holds a cache made with other settings, or files that are not
            a cache (nothing there is overwritten).
        ValueError: a voice or variant espeak-ng does not know.
    """
    config = config or SynthSpeechConfig()
    root = Path(root)
    settings = config.manifest_settings()
    if (root / MANIFEST).is_file():
        manifest = _check_manifest(root, settings)
        return _read_cache(root, manifest)
    if root.exists() and any(root.iterdir()):
        raise DatasetFormatError(f"{root} is not empty and holds no {MANIFEST}: choose an empty or new --data-root "
                                 "(unitprune does not write into a folder it did not make)")
    executable = espeak_ng()
    unknown_voices = [v for v in config.voices if v.lower() not in installed_voices(executable)]
    unknown_variants = [v for v in config.variants if v not in installed_variants(executable)]
    if unknown_voices or unknown_variants:
        raise ValueError(f"espeak-ng does not know voice(s) {unknown_voices} / variant(s) {unknown_variants} "
                         "(see `espeak-ng --voices` and `espeak-ng --voices=variant`)")
    specs = _clip_specs(config)
    started = time.perf_counter()
    waves = _run_generation(executable, specs, config.workers, progress)
    seconds = time.perf_counter() - started
    labels = np.array([s.label for s in specs])
    manifest = {
        "format": FORMAT_VERSION,
        "settings": settings,
        "espeak_ng_version": espeak_version(executable),
        "counts": {"speakers": len(config.speakers), "clips": len(specs),
                   "per_class": {CLASS_NAMES[i]: int((labels == i).sum()) for i in sorted(set(labels.tolist()))}},
        "generation_seconds": round(seconds, 2),
        "workers": config.workers,
        "sha256_dry": hashlib.sha256(waves.tobytes()).hexdigest(),
    }
    clips = [asdict(s) for s in specs]
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / WAVES, waves)
    (root / CLIPS).write_text(json.dumps(clips) + "\n")
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")  # last: its presence marks a whole cache
    logger.info("synthesized %d clips of %d speakers in %.1f s into %s", len(specs), len(config.speakers), seconds, root)
    return SynthSpeechCache(root, manifest, clips, waves)


def _run_generation(executable: str, specs: list[_ClipSpec], workers: int, progress: bool) -> np.ndarray:
    chunk = 32
    batches = [specs[i:i + chunk] for i in range(0, len(specs), chunk)]
    bar = tqdm(total=len(specs), desc="synthesizing speech", unit="clip", disable=not progress)
    try:
        if workers == 1:
            parts = []
            for batch in batches:
                parts.append(_synthesize_batch(executable, batch))
                bar.update(len(batch))
        else:
            # fork where available: the workers only run numpy and espeak-ng (no torch), and scripts then
            # need no ``if __name__ == "__main__"`` guard
            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
            with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method)) as pool:
                futures = [pool.submit(_synthesize_batch, executable, batch) for batch in batches]
                parts = []
                for future, batch in zip(futures, batches):  # in submission order: independent of scheduling
                    parts.append(future.result())
                    bar.update(len(batch))
    finally:
        bar.close()
    return np.concatenate(parts) if parts else np.zeros((0, NUM_SAMPLES), np.int16)


def _read_cache(root: Path, manifest: dict[str, Any]) -> SynthSpeechCache:
    try:
        clips = json.loads((root / CLIPS).read_text())
        waves = np.load(root / WAVES, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DatasetFormatError(f"the synthesized speech cache {root} is incomplete or corrupt ({exc}); "
                                 "delete it to regenerate") from exc
    if waves.dtype != np.int16 or waves.ndim != 2 or waves.shape != (len(clips), NUM_SAMPLES):
        raise DatasetFormatError(f"{root / WAVES} holds {waves.dtype} {waves.shape}, expected int16 "
                                 f"({len(clips)}, {NUM_SAMPLES})")
    if hashlib.sha256(waves.tobytes()).hexdigest() != manifest.get("sha256_dry"):
        raise DatasetFormatError(f"{root / WAVES} does not match the checksum in {root / MANIFEST}; delete the "
                                 "folder to regenerate")
    return SynthSpeechCache(root, manifest, clips, waves)


# ----------------------------------------------------------------------------------------------
# Rooms: reverb and noise, applied at load time
# ----------------------------------------------------------------------------------------------

def room_impulse_responses(room: Room, seed: int) -> list[np.ndarray]:
    """``room.num_rirs`` synthetic impulse responses (direct path + exponentially decaying noise)."""
    if room.rt60 <= 0:
        return []
    rng = np.random.default_rng([seed, 2, ord(room.name[0])])
    length = int(room.rt60 * SAMPLE_RATE)
    t = np.arange(length) / SAMPLE_RATE
    decay = np.exp(-6.9078 * t / room.rt60)  # -60 dB at rt60
    rirs = []
    for _ in range(room.num_rirs):
        delay = int(rng.integers(40, 400))  # 2.5-25 ms before the first reflections
        tail = rng.standard_normal(length) * decay
        tail[:delay] = 0.0
        rir = np.concatenate([[1.0], 0.5 * tail / np.sqrt(np.sum(tail ** 2))])
        rirs.append((rir / np.sqrt(np.sum(rir ** 2))).astype(np.float32))
    return rirs


def colored_noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS white, pink (1/f) or brown (1/f^2) noise of ``n`` samples."""
    white = rng.standard_normal(n)
    if kind == "white":
        x = white
    else:
        spectrum = np.fft.rfft(white)
        f = np.arange(len(spectrum), dtype=np.float64)
        f[0] = 1.0
        spectrum /= np.sqrt(f) if kind == "pink" else f
        if kind not in ("pink", "brown"):
            raise ValueError(f"unknown noise type {kind!r} (white, pink, brown, babble)")
        x = np.fft.irfft(spectrum, n)
    x = x - x.mean()
    return (x / (np.sqrt(np.mean(x ** 2)) or 1.0)).astype(np.float32)


def _babble(pool: np.ndarray, rng: np.random.Generator, talkers: int = 5) -> np.ndarray:
    """Unit-RMS sum of ``talkers`` random clips of ``pool`` (int16 dry speech), circularly shifted."""
    x = np.zeros(NUM_SAMPLES, dtype=np.float64)
    for i in rng.integers(len(pool), size=talkers):
        x += np.roll(pool[i].astype(np.float64), int(rng.integers(NUM_SAMPLES)))
    rms = np.sqrt(np.mean(x ** 2))
    return (x / rms).astype(np.float32) if rms > 0 else colored_noise("white", NUM_SAMPLES, rng)


def _room_noise(room: Room, pool: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    kind = room.noises[int(rng.integers(len(room.noises)))]
    return _babble(pool, rng) if kind == "babble" else colored_noise(kind, NUM_SAMPLES, rng)


def apply_room(waves: np.ndarray, labels: np.ndarray, room: Room, seed: int, babble_pool: np.ndarray
               ) -> np.ndarray:
    """Float32 ``(N, 16000)``: each int16 dry clip reverberated and mixed with room noise.

    ``_silence_`` rows (label 0) become noise only at a level drawn from ``room.silence_level``.
    Clip ``i`` uses ``default_rng([seed, 3, i])``, so the result does not depend on batching.
    """
    rirs = room_impulse_responses(room, seed)
    silence = CLASS_NAMES.index(SILENCE)
    out = np.empty((len(waves), NUM_SAMPLES), dtype=np.float32)
    for i, (dry, label) in enumerate(zip(waves, labels)):
        rng = np.random.default_rng([seed, 3, i])
        noise = _room_noise(room, babble_pool, rng)
        if label == silence:
            out[i] = noise * rng.uniform(*room.silence_level)
            continue
        x = dry.astype(np.float32) / 32768.0
        if rirs:
            import scipy.signal  # here: importing the data package does not pay for it

            x = scipy.signal.fftconvolve(x, rirs[int(rng.integers(len(rirs)))])[:NUM_SAMPLES].astype(np.float32)
        rms = float(np.sqrt(np.mean(x ** 2))) or 1e-6
        snr = rng.uniform(*room.snr_db)
        mixed = x + noise * (rms / 10 ** (snr / 20))
        out[i] = np.clip(mixed, -1.0, 1.0)
    return out


# ----------------------------------------------------------------------------------------------
# Splits and features
# ----------------------------------------------------------------------------------------------

@dataclass
class SpeechContext:
    """One context of the domain-shift study: its room, its speakers, un-normalised features per split.

    ``features[split]`` is float32 ``(N, 1, 80, 124)`` log-mel, ``labels[split]`` int64,
    ``speakers[split]`` the speaker index of each clip (``-1`` for ``_silence_``). The WiDaR loader
    fills the same fields (``room``: a dataclass describing the room; speakers: users).
    """

    name: str
    room: Any
    speaker_ids: dict[str, list[int]]
    features: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    speakers: dict[str, np.ndarray]


_SPLITS = ("train", "val", "test")


def _split_speakers(speaker_ids: list[int], rng: np.random.Generator, val_fraction: float,
                    test_fraction: float) -> dict[str, list[int]]:
    if len(speaker_ids) < 3:
        raise ValueError(f"a split by speaker needs at least 3 speakers per context, got {len(speaker_ids)}")
    order = [speaker_ids[i] for i in rng.permutation(len(speaker_ids))]
    n_test = max(1, round(test_fraction * len(order)))
    n_val = max(1, round(val_fraction * (len(order) - n_test)))
    return {"test": sorted(order[:n_test]), "val": sorted(order[n_test:n_test + n_val]),
            "train": sorted(order[n_test + n_val:])}


def _build_context(cache: SynthSpeechCache, name: str, room: Room, speaker_ids: list[int], seed: int,
                   val_fraction: float, test_fraction: float, silence_fraction: float,
                   progress: bool) -> SpeechContext:
    rng = np.random.default_rng([seed, 4, ord(name[0])])
    roles = _split_speakers(speaker_ids, rng, val_fraction, test_fraction)
    all_speakers, all_labels = cache.speakers, cache.labels
    silence = CLASS_NAMES.index(SILENCE)
    features, labels, speakers = {}, {}, {}
    for split_id, split in enumerate(_SPLITS):
        rows = np.flatnonzero(np.isin(all_speakers, roles[split]))
        n_known = int(np.sum(all_labels[rows] >= CLASS_NAMES.index(KNOWN_WORDS[0])))
        n_silence = int(np.ceil(silence_fraction * n_known))
        waves = np.concatenate([cache.waves[rows], np.zeros((n_silence, NUM_SAMPLES), np.int16)])
        split_labels = np.concatenate([all_labels[rows], np.full(n_silence, silence, np.int64)])
        split_speakers = np.concatenate([all_speakers[rows], np.full(n_silence, -1, np.int64)])
        room_seed = int(np.random.default_rng([seed, 5, ord(name[0]), split_id]).integers(2 ** 31))
        mixed = apply_room(waves, split_labels, room, room_seed, babble_pool=cache.waves[rows])
        feats = np.empty((len(mixed), 1, N_MELS, NUM_FRAMES), dtype=np.float32)
        for start in tqdm(range(0, len(mixed), 256), desc=f"features {name}/{split}", disable=not progress,
                          leave=False):
            feats[start:start + 256, 0] = log_mel_spectrogram(mixed[start:start + 256])
        features[split], labels[split], speakers[split] = feats, split_labels, split_speakers
    return SpeechContext(name, room, roles, features, labels, speakers)


def context_splits(train: SpeechContext, test: SpeechContext | None = None, *, name: str = "synth_speech",
                   class_names: tuple[str, ...] = CLASS_NAMES, features: str = "log-mel, see unitprune.data.audio"
                   ) -> DatasetSplits:
    """:class:`DatasetSplits` with train / val of ``train`` and the test split of ``test`` (default:
    ``train``), all standardised with the scalar mean / std of ``train``'s training features."""
    test = test or train
    mean = float(train.features["train"].mean(dtype=np.float64))
    std = float(train.features["train"].std(dtype=np.float64)) or 1.0
    data = {"train": train.features["train"], "val": train.features["val"], "test": test.features["test"]}
    labels = {"train": train.labels["train"], "val": train.labels["val"], "test": test.labels["test"]}
    sets = {s: make_tensor_dataset((data[s] - mean) / std, labels[s]) for s in _SPLITS}
    return DatasetSplits(
        name=name, train=sets["train"], val=sets["val"], test=sets["test"], num_classes=len(class_names),
        input_shape=tuple(train.features["train"].shape[1:]), class_names=tuple(class_names),
        normalization={"features": features, "mean": mean, "std": std},
        info={"train_context": train.name, "test_context": test.name, "train_room": _describe_room(train.room),
              "test_room": _describe_room(test.room), "speakers": {"train": train.speaker_ids["train"],
                                                           "val": train.speaker_ids["val"],
                                                           "test": test.speaker_ids["test"]},
              "class_counts": {s: np.bincount(labels[s], minlength=len(class_names)).tolist() for s in _SPLITS}})


def _describe_room(room: Any) -> Any:
    return asdict(room) if is_dataclass(room) else room


def _cache_for(root: str | Path | None, config: SynthSpeechConfig | None, seed: int, progress: bool
               ) -> SynthSpeechCache:
    config = config or SynthSpeechConfig(seed=seed)
    root = Path(root) if root is not None else Path("data") / "synth_speech"
    return generate_synth_speech(root, config, progress=progress)


def load_synth_speech_contexts(root: str | Path | None = None, *, seed: int = 0,
                               config: SynthSpeechConfig | None = None, rooms: tuple[str, ...] = ("A", "B"),
                               val_fraction: float = 0.1, test_fraction: float = 0.15,
                               silence_fraction: float | None = None, progress: bool = False
                               ) -> dict[str, SpeechContext]:
    """The domain-shift contexts: speakers split into ``len(rooms)`` disjoint sets, one room each.

    Speakers are dealt to the contexts after a seeded shuffle, so every context gets a mix of
    voices and variants; within a context the split is by speaker as well.
    """
    cache = _cache_for(root, config, seed, progress)
    n_speakers = cache.manifest["counts"]["speakers"]
    order = np.random.default_rng([seed, 6]).permutation(n_speakers)
    silence_fraction = _default_silence(cache) if silence_fraction is None else silence_fraction
    contexts = {}
    for k, room_name in enumerate(rooms):
        if room_name not in ROOMS:
            raise ValueError(f"unknown room {room_name!r}; rooms: {', '.join(ROOMS)}")
        ids = sorted(int(s) for s in order[k::len(rooms)])
        contexts[room_name] = _build_context(cache, room_name, ROOMS[room_name], ids, seed, val_fraction,
                                             test_fraction, silence_fraction, progress)
    return contexts


def _default_silence(cache: SynthSpeechCache) -> float:
    """As many ``_silence_`` clips as clips of one keyword."""
    return 1.0 / len(cache.manifest["settings"]["words"])


def load_synth_speech(root: str | Path | None = None, *, seed: int = 0, config: SynthSpeechConfig | None = None,
                      room: str = "A", val_fraction: float = 0.1, test_fraction: float = 0.15,
                      silence_fraction: float | None = None, feature_pool: tuple[int, int] | None = None,
                      progress: bool = False) -> DatasetSplits:
    """The synthesized speech set in one room as 12-class log-mel :class:`DatasetSplits`.

    Args:
        root: cache folder (default ``data/synth_speech``); generated there when absent.
        seed: seed of generation (when ``config`` is None) and of splits and room noise.
        config: generation settings (default: :class:`SynthSpeechConfig` with ``seed``).
        room: one of :data:`ROOMS`.
        val_fraction / test_fraction: speaker fractions held out.
        silence_fraction: ``_silence_`` clips per known-word clip (default: one keyword's share).
        feature_pool: ``(bands, frames)``: average the log-mel map over blocks of that size
            (:func:`unitprune.data.audio.pool_features`), e.g. ``(2, 2)`` for ``(1, 40, 62)``
            inputs; ``None``: the full ``(1, 80, 124)``.
    """
    if room not in ROOMS:
        raise ValueError(f"unknown room {room!r}; rooms: {', '.join(ROOMS)}")
    cache = _cache_for(root, config, seed, progress)
    silence_fraction = _default_silence(cache) if silence_fraction is None else silence_fraction
    ids = list(range(cache.manifest["counts"]["speakers"]))
    context = _build_context(cache, room, ROOMS[room], ids, seed, val_fraction, test_fraction, silence_fraction,
                             progress)
    features = "log-mel, see unitprune.data.audio"
    if feature_pool is not None and tuple(feature_pool) != (1, 1):
        context.features = {s: pool_features(f, feature_pool) for s, f in context.features.items()}
        features += f"; averaged over {feature_pool[0]}x{feature_pool[1]} blocks (bands x frames)"
    splits = context_splits(context, features=features)
    splits.info.update(source=str(cache.root), espeak_ng_version=cache.manifest["espeak_ng_version"], seed=seed,
                       feature_pool=list(feature_pool) if feature_pool is not None else None)
    return splits

