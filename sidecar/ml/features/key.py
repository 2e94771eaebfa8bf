"""Key and scale (:func:`estimate_key`) of the 16 kHz mono signal.

Chroma from a ``n_fft=4096`` (3.9 Hz bins), ``hop=2048`` power spectrum through librosa's chroma
filterbank (A440 tuning, no tuning estimation), each frame normalised to its maximum (as
``librosa.feature.chroma_stft``), frames more than 60 dB below the loudest ignored, averaged over
the track, and correlated (Pearson) with the 24 rotations of the Krumhansl-Kessler major and minor
profiles (the Krumhansl-Schmuckler algorithm). Confidence is the best correlation, clipped to
[0, 1].
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from functools import lru_cache
from typing import Final

import numpy as np
import scipy.fft

from sidecar.ml.constants import SAMPLE_RATE

__all__ = ["KEYS", "KeyEstimate", "chroma_profile", "estimate_key", "key_from_chroma"]

KEYS: Final = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")

# Krumhansl & Kessler (1982) probe-tone profiles, tonic first.
_KK_MAJOR: Final = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_KK_MINOR: Final = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
_CHROMA_N_FFT = 4096
_CHROMA_HOP = 2048
_CHROMA_CHUNK = 1024


@dataclasses.dataclass(frozen=True)
class KeyEstimate:
    key: str  # "C" .. "B" with sharps
    scale: str  # "major" or "minor"
    confidence: float  # Pearson correlation with the winning profile, clipped to [0, 1]


@lru_cache(maxsize=4)
def _chroma_filters(sr: int, n_fft: int) -> np.ndarray:
    import librosa

    fb = librosa.filters.chroma(sr=sr, n_fft=n_fft, tuning=0.0, n_chroma=12, base_c=True).astype(np.float32)
    fb = np.ascontiguousarray(fb.T)  # [bins, 12]
    fb.setflags(write=False)
    return fb


@lru_cache(maxsize=1)
def _profiles() -> np.ndarray:
    """[24, 12] z-scored profiles: rows 0..11 major on C..B, 12..23 minor on C..B."""
    rows = [np.roll(_KK_MAJOR, k) for k in range(12)] + [np.roll(_KK_MINOR, k) for k in range(12)]
    p = np.array(rows, dtype=np.float64)
    p = (p - p.mean(axis=1, keepdims=True)) / p.std(axis=1, keepdims=True)
    p.setflags(write=False)
    return np.asarray(p)


def chroma_profile(y: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Mean chroma vector (12 values, C first) of ``y``; zeros when the signal is silent."""
    y = np.asarray(y, dtype=np.float32).reshape(-1)
    n_fft, hop = _CHROMA_N_FFT, _CHROMA_HOP
    if y.shape[0] < n_fft:
        y = np.pad(y, (0, n_fft - y.shape[0]))
    frames = np.lib.stride_tricks.sliding_window_view(y, n_fft)[::hop]
    window = np.hanning(n_fft + 1)[:-1].astype(np.float32)
    fb = _chroma_filters(sr, n_fft)
    chroma = np.empty((frames.shape[0], 12), dtype=np.float32)
    power_sum = np.empty(frames.shape[0], dtype=np.float64)
    for a in range(0, frames.shape[0], _CHROMA_CHUNK):
        b = min(frames.shape[0], a + _CHROMA_CHUNK)
        spec = scipy.fft.rfft(frames[a:b] * window, axis=-1)
        power = spec.real**2 + spec.imag**2
        np.matmul(power, fb, out=chroma[a:b])
        power_sum[a:b] = power.sum(axis=1)
    loudest = float(power_sum.max()) if power_sum.size else 0.0
    if loudest <= 0:
        return np.zeros(12)
    keep = power_sum >= loudest * 1e-6  # within 60 dB of the loudest frame
    c = chroma[keep].astype(np.float64)
    peak = c.max(axis=1, keepdims=True)
    c = c / np.where(peak > 0, peak, 1.0)
    return np.asarray(c.mean(axis=0))


def key_from_chroma(chroma: Sequence[float] | np.ndarray) -> KeyEstimate:
    """Krumhansl-Schmuckler: the best of the 24 major/minor profile rotations for a chroma vector."""
    c = np.asarray(chroma, dtype=np.float64).reshape(12)
    sd = c.std()
    if not np.isfinite(sd) or sd <= 1e-12:
        return KeyEstimate("C", "major", 0.0)
    z = (c - c.mean()) / sd
    corr = _profiles() @ z / 12.0
    best = int(np.argmax(corr))
    return KeyEstimate(
        key=KEYS[best % 12],
        scale="major" if best < 12 else "minor",
        confidence=float(min(1.0, max(0.0, corr[best]))),
    )


def estimate_key(y: np.ndarray, sr: int = SAMPLE_RATE) -> KeyEstimate:
    """Key and scale of ``y`` (see the module docstring)."""
    return key_from_chroma(chroma_profile(y, sr))
