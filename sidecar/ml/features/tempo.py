"""Tempo (:func:`estimate_tempo`) of the 16 kHz mono signal.

Onset strength: spectral flux of a short-time spectrum with ``n_fft=256, hop=128`` at 16 kHz
(125 frames per second), its power grouped into 24 log-spaced bands, compressed as
``log(1 + power / (1e-5 * loudest))`` (level-independent, soft floor 50 dB below the peak), the
half-wave rectified frame-to-frame increase summed over bands. The envelope is smoothed
(Gaussian, sigma 12 ms) and high-passed (minus a 3-second Hann moving average), and its global
autocorrelation (one FFT; normalised, unbiased) is searched for local maxima between 30 and 300
BPM, weighted by librosa's default prior (log-normal around 120 BPM, one octave deviation).
Octave check: while the autocorrelation peak at half the chosen lag is at least 0.9 times as high,
the faster tempo wins (a plain pulse train is as periodic at twice its period; a beat with weaker
or different-sounding off-beats is not). The period is then refined to sub-frame precision from
the peak and its first multiples (parabolic interpolation, least squares through the origin), and
the tempo folded by octaves into ``[tempo_min, tempo_max]`` (then clipped). On click tracks and
synthetic drum patterns from 60 to 195 BPM the error is below 0.1%. Cost: about 0.1 s for a
4-minute track (librosa's ``beat_track`` takes about 0.5 s and quantises to its 32 ms hop).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import scipy.fft

from sidecar.ml.constants import SAMPLE_RATE, TEMPO_MAX, TEMPO_MIN

__all__ = [
    "TEMPO_MAX",
    "TEMPO_MIN",
    "estimate_tempo",
    "fold_tempo",
    "onset_envelope",
    "tempo_from_onset_envelope",
]

_ONSET_N_FFT = 256
_ONSET_HOP = 128
_ONSET_BANDS = 24
_ONSET_CHUNK = 8192  # frames per FFT batch (bounds temporary memory to a few MB)


@lru_cache(maxsize=4)
def _band_matrix(n_bins: int, sr: int, n_fft: int, n_bands: int) -> np.ndarray:
    """[n_bins, n_bands] 0/1 matrix grouping FFT bins (30 Hz .. Nyquist) into log-spaced bands."""
    freqs = np.arange(n_bins) * sr / n_fft
    edges = np.geomspace(30.0, sr / 2, n_bands + 1)
    band = np.searchsorted(edges, freqs, side="right") - 1
    m = np.zeros((n_bins, n_bands), dtype=np.float32)
    ok = (band >= 0) & (band < n_bands)
    m[np.nonzero(ok)[0], band[ok]] = 1.0
    # a band narrower than one bin gets the nearest bin
    for b in range(n_bands):
        if not m[:, b].any():
            centre = math.sqrt(edges[b] * edges[b + 1])
            m[int(np.argmin(np.abs(freqs - centre))), b] = 1.0
    m.setflags(write=False)
    return m


def onset_envelope(y: np.ndarray, sr: int = SAMPLE_RATE) -> tuple[np.ndarray, float]:
    """Spectral-flux onset strength of ``y``: (float32 envelope, frames per second).

    ``n_fft=256, hop=128`` (125 fps at 16 kHz), Hann window, power summed into 24 log-spaced bands,
    ``log(1 + band power / (1e-5 * loudest))``, half-wave rectified first difference summed over
    bands. Temporary memory is bounded (8192 frames per FFT batch).
    """
    y = np.asarray(y, dtype=np.float32).reshape(-1)
    n_fft, hop = _ONSET_N_FFT, _ONSET_HOP
    if y.shape[0] < n_fft:
        return np.zeros(0, dtype=np.float32), sr / hop
    frames = np.lib.stride_tricks.sliding_window_view(y, n_fft)[::hop]
    window = np.hanning(n_fft + 1)[:-1].astype(np.float32)
    bands = _band_matrix(n_fft // 2 + 1, sr, n_fft, _ONSET_BANDS)
    total = frames.shape[0]
    logp = np.empty((total, _ONSET_BANDS), dtype=np.float32)
    for a in range(0, total, _ONSET_CHUNK):
        b = min(total, a + _ONSET_CHUNK)
        spec = scipy.fft.rfft(frames[a:b] * window, axis=-1)  # complex64, 3x faster than numpy's
        power = spec.real**2 + spec.imag**2
        np.matmul(power, bands, out=logp[a:b])
    return _flux(logp), sr / hop


def _flux(power: np.ndarray) -> np.ndarray:
    """Half-wave rectified first difference of ``log(1 + power / (1e-5 * max))``, summed over bands.

    Relative to the loudest band value, so the same music at any level gives the same envelope
    (a soft floor 50 dB below the peak, like librosa's dB scale with ``top_db``). Overwrites
    ``power``.
    """
    peak = float(power.max()) if power.size else 0.0
    if not peak > 0:
        return np.zeros(power.shape[0], dtype=np.float32)
    logp = np.multiply(power, np.float32(1e5 / peak), out=power)
    np.log1p(logp, out=logp)
    flux = np.diff(logp, axis=0)
    np.maximum(flux, 0.0, out=flux)
    return np.concatenate(([0.0], flux.sum(axis=1))).astype(np.float32)


def _parabolic(r: np.ndarray, i: int) -> float:
    """Sub-sample position of the peak of ``r`` near index ``i``."""
    if i <= 0 or i >= r.shape[0] - 1:
        return float(i)
    a, b, c = float(r[i - 1]), float(r[i]), float(r[i + 1])
    den = a - 2.0 * b + c
    if den >= 0:
        return float(i)
    return i + 0.5 * (a - c) / den


def _peak_height(r: np.ndarray, i: int) -> float:
    """Height of the parabola through ``r[i-1], r[i], r[i+1]`` at its vertex."""
    if i <= 0 or i >= r.shape[0] - 1:
        return float(r[i])
    a, b, c = float(r[i - 1]), float(r[i]), float(r[i + 1])
    den = a - 2.0 * b + c
    if den >= 0:
        return b
    return b - (a - c) ** 2 / (8.0 * den)


def _local_peak(r: np.ndarray, centre: float, radius: int) -> int:
    lo = max(1, int(math.floor(centre - radius)))
    hi = min(r.shape[0] - 2, int(math.ceil(centre + radius)))
    if hi < lo:
        return -1
    return lo + int(np.argmax(r[lo : hi + 1]))


# Internal search range of the pulse period, before folding into [tempo_min, tempo_max].
_SEARCH_MIN_BPM = 30.0
_SEARCH_MAX_BPM = 300.0
_OCTAVE_RATIO = 0.9
_DETREND_SECONDS = 3.0


def fold_tempo(tempo: float, tempo_min: float = TEMPO_MIN, tempo_max: float = TEMPO_MAX) -> float:
    """Fold ``tempo`` by octaves (x2, /2) into ``[tempo_min, tempo_max]``, then clip."""
    if not (0 < tempo_min < tempo_max):
        raise ValueError("need 0 < tempo_min < tempo_max")
    if tempo <= 0 or not math.isfinite(tempo):
        return 0.0
    while tempo > tempo_max and tempo / 2 >= tempo_min:
        tempo /= 2
    while tempo < tempo_min and tempo * 2 <= tempo_max:
        tempo *= 2
    return float(min(tempo_max, max(tempo_min, tempo)))


def tempo_from_onset_envelope(
    env: np.ndarray,
    frames_per_second: float,
    *,
    tempo_min: float = TEMPO_MIN,
    tempo_max: float = TEMPO_MAX,
) -> float:
    """Tempo (BPM) from an onset envelope; see the module docstring. 0.0 when there is no pulse."""
    if not (0 < tempo_min < tempo_max):
        raise ValueError("need 0 < tempo_min < tempo_max")
    env = np.asarray(env, dtype=np.float64).reshape(-1)
    fps = float(frames_per_second)
    n = env.shape[0]
    min_lag = fps * 60.0 / _SEARCH_MAX_BPM
    max_lag = fps * 60.0 / _SEARCH_MIN_BPM
    if n < 8 or not np.any(env > 0):
        return 0.0
    # Smooth (Gaussian, sigma = max(1.5 frames, 12 ms)) so that onsets of a period falling between
    # frames still line up in the autocorrelation, and remove the slowly varying level (3 s Hann
    # moving average: a box average would leave ripple at the beat period) so that loudness changes
    # do not dominate.
    sigma = max(1.5, 0.012 * fps)
    half = int(math.ceil(3 * sigma))
    x = np.arange(-half, half + 1, dtype=np.float64)
    env = np.convolve(env, np.exp(-0.5 * (x / sigma) ** 2), mode="same")
    w = max(3, int(round(_DETREND_SECONDS * fps)))
    hann = np.hanning(w + 2)[1:-1]
    env = env - np.convolve(env, hann / hann.sum(), mode="same")
    size = scipy.fft.next_fast_len(2 * n, real=True)
    spec = scipy.fft.rfft(env, size)
    keep = min(n - 1, int(4 * max_lag) + 8)
    r = scipy.fft.irfft(spec.real**2 + spec.imag**2, size)[: keep + 1]
    if r.shape[0] < 4 or r[0] <= 0:
        return 0.0
    # normalised and unbiased (fewer overlapping frames at larger lags)
    lags = np.arange(r.shape[0], dtype=np.float64)
    r = (r / r[0]) * (n / np.maximum(n - lags, 1.0))
    lo = max(1, int(math.floor(min_lag)))
    hi = min(r.shape[0] - 2, int(math.ceil(max_lag)))
    if hi <= lo:
        return 0.0
    cand = np.arange(lo, hi + 1)
    prior = np.exp(-0.5 * np.log2(60.0 * fps / cand / 120.0) ** 2)  # librosa's default prior
    is_peak = (r[cand] > r[cand - 1]) & (r[cand] >= r[cand + 1]) & (r[cand] > 0)
    score = np.where(is_peak, r[cand] * prior, 0.0)
    if not np.any(score > 0):
        return 0.0
    best = int(cand[int(np.argmax(score))])
    # Octave check: an even pulse is as periodic at half the lag; prefer the faster tempo then.
    while best / 2.0 >= lo:
        j = _local_peak(r, best / 2.0, 2)
        if j < 1 or _peak_height(r, j) < _OCTAVE_RATIO * _peak_height(r, best):
            break
        best = j
    period = _parabolic(r, best)
    # Refine with the multiples of the period (least squares through the origin).
    num, den = period, 1.0
    for k in range(2, 5):
        j = _local_peak(r, k * period, 2)
        if j < 1 or r[j] < 0.5 * r[best]:
            break
        num += k * _parabolic(r, j)
        den += k * k
    return fold_tempo(60.0 * fps * den / num, tempo_min, tempo_max)


def estimate_tempo(
    y: np.ndarray,
    sr: int = SAMPLE_RATE,
    *,
    tempo_min: float = TEMPO_MIN,
    tempo_max: float = TEMPO_MAX,
) -> float:
    """Tempo in BPM of the signal ``y`` (see the module docstring), within ``[tempo_min, tempo_max]``.

    Returns 0.0 when the signal has no pulse at all (silence, a steady tone).
    """
    env, fps = onset_envelope(y, sr)
    return tempo_from_onset_envelope(env, fps, tempo_min=tempo_min, tempo_max=tempo_max)
