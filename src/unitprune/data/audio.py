"""Audio helpers for keyword spotting: WAV reading and log-mel features, numpy/scipy only.

Feature recipe (fixed, so firmware can reproduce it):

* waveform: mono float in [-1, 1] at 16 kHz, padded with zeros at the end / cropped to exactly
  ``NUM_SAMPLES = 16000`` samples (1 s);
* frames: ``N_FFT = 256`` samples (16 ms), hop ``HOP = 128`` (8 ms), no centering / padding,
  periodic Hann window -> ``1 + (16000 - 256) // 128 = 124`` frames;
* power spectrum ``|rfft|^2``: 129 bins, ``16000 / 256 = 62.5 Hz`` apart;
* ``N_MELS = 80`` triangular mel filters (HTK mel scale ``2595 log10(1 + f / 700)``) with edges
  equally spaced in mel between ``F_MIN = 20`` Hz and ``F_MAX = 8000`` Hz. At ``n_fft = 256``
  the low filters are narrower than one FFT bin, so each filter's weight on a bin is the mean of
  the triangle over that bin's band ``[f_k - 31.25, f_k + 31.25]`` Hz (not its value at the bin
  centre, which would leave low filters empty); each filter row is then normalised to sum 1, so
  a mel band is a weighted average of power;
* ``log(mel_power + LOG_EPS)`` with ``LOG_EPS = 1e-6``.

Output per clip: ``(80, 124)`` = (mel bands, frames).

Smaller feature maps for small microcontrollers (:func:`pool_features`, the loaders'
``feature_pool=(bands, frames)`` option): the same log-mel features averaged over
non-overlapping blocks of ``bands`` adjacent mel bands x ``frames`` adjacent frames (the mean of
the log values, float32, computed in float64), e.g. ``(2, 2)``: ``(80, 124) -> (40, 62)``, 2,480
int8 input bytes instead of 9,920. Deterministic and cheap for firmware (a block mean of the
full features); the dataset's normalisation is computed on the pooled features.
"""

from __future__ import annotations

import logging
from math import gcd
from pathlib import Path

from functools import cache

import numpy as np

from .errors import DatasetFormatError

__all__ = [
    "SAMPLE_RATE", "NUM_SAMPLES", "N_FFT", "HOP", "N_MELS", "F_MIN", "F_MAX", "LOG_EPS",
    "hz_to_mel", "mel_to_hz", "mel_filterbank", "mel_center_frequencies", "log_mel_spectrogram",
    "read_wav", "fix_length", "pool_features",
]

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
NUM_SAMPLES = 16000
N_FFT = 256
HOP = 128
N_MELS = 80
F_MIN = 20.0
F_MAX = 8000.0
LOG_EPS = 1e-6
NUM_FRAMES = 1 + (NUM_SAMPLES - N_FFT) // HOP  # 124


def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    """Frequency in Hz -> HTK mel."""
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m: np.ndarray | float) -> np.ndarray:
    """HTK mel -> frequency in Hz."""
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def _mel_edges(n_mels: int, f_min: float, f_max: float) -> np.ndarray:
    """``n_mels + 2`` filter edge frequencies in Hz, equally spaced in mel."""
    return mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))


def mel_center_frequencies(n_mels: int = N_MELS, f_min: float = F_MIN, f_max: float = F_MAX) -> np.ndarray:
    """Peak frequency in Hz of each mel filter, shape ``(n_mels,)``."""
    return _mel_edges(n_mels, f_min, f_max)[1:-1]


def mel_filterbank(
    n_mels: int = N_MELS,
    n_fft: int = N_FFT,
    sample_rate: int = SAMPLE_RATE,
    f_min: float = F_MIN,
    f_max: float = F_MAX,
    oversample: int = 32,
) -> np.ndarray:
    """Mel filterbank matrix, shape ``(n_mels, n_fft // 2 + 1)``, float64, rows sum to 1.

    Weight ``[m, k]`` = mean of triangle ``m`` over FFT bin ``k``'s band, sampled at
    ``oversample`` points (see the module docstring for why).
    """
    edges = _mel_edges(n_mels, f_min, f_max)
    n_bins = n_fft // 2 + 1
    bin_width = sample_rate / n_fft
    # sub-sample points inside each bin's band, shape (n_bins, oversample)
    offsets = (np.arange(oversample) + 0.5) / oversample - 0.5
    freqs = (np.arange(n_bins)[:, None] + offsets[None, :]) * bin_width
    lower, center, upper = edges[:-2, None, None], edges[1:-1, None, None], edges[2:, None, None]
    rising = (freqs[None] - lower) / (center - lower)
    falling = (upper - freqs[None]) / (upper - center)
    tri = np.clip(np.minimum(rising, falling), 0.0, None)  # (n_mels, n_bins, oversample)
    fb = tri.mean(axis=2)
    sums = fb.sum(axis=1, keepdims=True)
    if np.any(sums <= 0):
        raise ValueError("empty mel filter: f_min/f_max outside the FFT range?")
    return fb / sums


_FILTERBANK = mel_filterbank().astype(np.float32)


@cache
def _window() -> np.ndarray:
    """The periodic Hann window of the frames (scipy.signal, imported on first use: importing this
    package, e.g. to unpickle a dataset, does not pay for it)."""
    import scipy.signal

    return scipy.signal.get_window("hann", N_FFT, fftbins=True).astype(np.float32)


def log_mel_spectrogram(waveforms: np.ndarray) -> np.ndarray:
    """Log-mel features of 1 s clips.

    Args:
        waveforms: float array ``(N, 16000)`` (or ``(16000,)``) in [-1, 1] at 16 kHz.

    Returns:
        float32 ``(N, 80, 124)`` (or ``(80, 124)``): log mel power, mel bands x frames.
    """
    x = np.asarray(waveforms, dtype=np.float32)
    single = x.ndim == 1
    if single:
        x = x[None]
    if x.shape[-1] != NUM_SAMPLES:
        raise ValueError(f"expected clips of {NUM_SAMPLES} samples, got {x.shape[-1]} (use fix_length)")
    frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT, axis=-1)[:, ::HOP]  # (N, 124, 256)
    import scipy.fft

    power = np.abs(scipy.fft.rfft(frames * _window(), axis=-1)) ** 2  # (N, 124, 129)
    mel = power @ _FILTERBANK.T  # (N, 124, 80)
    out = np.log(mel + LOG_EPS).transpose(0, 2, 1).astype(np.float32)
    return out[0] if single else out


def pool_features(features: np.ndarray, pool: tuple[int, int] | None) -> np.ndarray:
    """Average ``features`` ``(..., bands, frames)`` over non-overlapping ``pool = (b, f)`` blocks.

    ``None`` or ``(1, 1)`` returns the input unchanged. The block mean is taken in float64 and
    returned as float32, shape ``(..., bands // b, frames // f)``.

    Raises:
        ValueError: ``pool`` is not two positive integers, or does not divide the feature map.
    """
    if pool is None or tuple(pool) == (1, 1):
        return features
    if len(pool) != 2 or any(int(p) != p or p < 1 for p in pool):
        raise ValueError(f"feature_pool must be two positive integers (mel bands, frames), got {pool!r}")
    b, f = int(pool[0]), int(pool[1])
    bands, frames = features.shape[-2:]
    if bands % b or frames % f:
        raise ValueError(f"feature_pool {b}x{f} does not divide the {bands}x{frames} log-mel map "
                         f"(bands must be a multiple of {b}, frames of {f})")
    x = np.asarray(features, dtype=np.float64).reshape(*features.shape[:-2], bands // b, b, frames // f, f)
    return x.mean(axis=(-3, -1)).astype(np.float32)


def fix_length(x: np.ndarray, n: int = NUM_SAMPLES) -> np.ndarray:
    """Pad with zeros at the end or crop the end so ``len(x) == n``."""
    if len(x) >= n:
        return x[:n]
    return np.pad(x, (0, n - len(x)))


def read_wav(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read a WAV file as mono float32 in [-1, 1] at ``sample_rate``.

    16-bit PCM is the expected format; 32-bit int, 8-bit unsigned and float WAVs are also
    accepted. Multi-channel files are averaged to mono. Other sample rates are resampled with
    ``scipy.signal.resample_poly`` (logged at debug level). No length fixing here.

    Raises:
        DatasetFormatError: the file is not a readable WAV.
    """
    try:
        from scipy.io import wavfile

        rate, data = wavfile.read(path)
    except (ValueError, OSError, EOFError) as exc:
        raise DatasetFormatError(f"cannot read WAV file {path}: {exc}") from exc
    if data.dtype == np.int16:
        x = data.astype(np.float32) / 32768.0
    elif data.dtype == np.int32:
        x = data.astype(np.float32) / 2147483648.0
    elif data.dtype == np.uint8:
        x = (data.astype(np.float32) - 128.0) / 128.0
    elif data.dtype.kind == "f":
        x = data.astype(np.float32)
    else:
        raise DatasetFormatError(f"WAV file {path}: unsupported sample type {data.dtype}")
    if x.ndim == 2:
        x = x.mean(axis=1)
    if rate != sample_rate:
        logger.debug("resampling %s from %d Hz to %d Hz", path, rate, sample_rate)
        g = gcd(int(rate), sample_rate)
        import scipy.signal

        x = scipy.signal.resample_poly(x, sample_rate // g, int(rate) // g).astype(np.float32)
    return x
