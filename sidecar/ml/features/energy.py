"""Silence and energy of the 16 kHz mono signal.

Silence (:func:`is_silent`)
    A signal whose peak is below ``SILENCE_DBFS`` (-60 dBFS, i.e. ``|y| < 0.001``) is silent; the
    analysis fails such a track with the reason ``"silent"``.

Energy (:func:`energy`)
    AudioMuse-AI computes ``np.mean(librosa.feature.rms(y=audio))`` (its ``average_energy``), i.e. the
    mean frame RMS with librosa's defaults ``frame_length=2048, hop_length=512, center=True`` (zero
    padding): that is the definition used here (the brief's "average energy per sample",
    ``mean(y**2)``, is *not* what the seed stores, and ``ENERGY_MIN/MAX = 0.01/0.15`` are RMS-scale
    values). Computed from hop-block sums of squares, without librosa's framed copy.
    :func:`normalize_energy` maps it linearly from ``[ENERGY_MIN, ENERGY_MAX]`` to ``[0, 1]``, clipped.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np

from sidecar.ml.constants import ENERGY_MAX, ENERGY_MIN

__all__ = ["ENERGY_MAX", "ENERGY_MIN", "SILENCE_DBFS", "energy", "is_silent", "normalize_energy", "peak_dbfs"]

SILENCE_DBFS: Final = -60.0


def peak_dbfs(y: np.ndarray) -> float:
    """Peak level in dBFS (``-inf`` for an empty or all-zero signal)."""
    y = np.asarray(y)
    if y.size == 0:
        return -math.inf
    peak = float(np.max(np.abs(y)))
    if not math.isfinite(peak):
        return math.inf
    return 20.0 * math.log10(peak) if peak > 0 else -math.inf


def is_silent(y: np.ndarray, threshold_dbfs: float = SILENCE_DBFS) -> bool:
    """True when the signal's peak is below ``threshold_dbfs`` (default -60 dBFS, i.e. |y| < 0.001).

    An empty signal is silent. The analysis fails such a track with the reason ``"silent"``.
    """
    return peak_dbfs(y) < threshold_dbfs


# =========================================================================== energy


def energy(y: np.ndarray, frame_length: int = 2048, hop_length: int = 512) -> float:
    """Mean frame RMS, equal to ``np.mean(librosa.feature.rms(y=y))`` (AudioMuse-AI's definition).

    ``center=True`` with zero padding of ``frame_length // 2`` at both ends. ``frame_length`` must be
    a multiple of ``hop_length``. Memory: one float64 value per hop.
    """
    y = np.asarray(y, dtype=np.float32).reshape(-1)
    if frame_length % hop_length:
        raise ValueError("frame_length must be a multiple of hop_length")
    n = y.shape[0]
    k = frame_length // hop_length
    pad = frame_length // 2
    if pad % hop_length:
        raise ValueError("frame_length // 2 must be a multiple of hop_length")
    frames = 1 + n // hop_length  # librosa's frame count for center=True
    # Sums of squares per hop-sized block of the padded signal [pad zeros | y | pad zeros].
    full = n // hop_length
    blocks = np.zeros(pad // hop_length + full + 1 + pad // hop_length + k, dtype=np.float64)
    lead = pad // hop_length
    if full:
        body = y[: full * hop_length].reshape(full, hop_length)
        blocks[lead : lead + full] = np.einsum("ij,ij->i", body, body, dtype=np.float64)
    tail = y[full * hop_length :]
    if tail.size:
        blocks[lead + full] = float(np.dot(tail.astype(np.float64), tail.astype(np.float64)))
    csum = np.concatenate(([0.0], np.cumsum(blocks)))
    sums = csum[k : k + frames] - csum[:frames]
    np.maximum(sums, 0.0, out=sums)  # cumulative-sum rounding
    rms = np.sqrt(sums / frame_length)
    return float(rms.mean()) if frames else 0.0


def normalize_energy(value: float, energy_min: float = ENERGY_MIN, energy_max: float = ENERGY_MAX) -> float:
    """``(value - energy_min) / (energy_max - energy_min)`` clipped to [0, 1]."""
    if energy_max <= energy_min:
        raise ValueError("energy_max must be greater than energy_min")
    return float(min(1.0, max(0.0, (value - energy_min) / (energy_max - energy_min))))
