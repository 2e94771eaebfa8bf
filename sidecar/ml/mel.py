"""MusiCNN's log-mel frontend, in numpy (no TensorFlow, no librosa at run time except for the filterbank).

Parameters are the seed's (AudioMuse-AI) and musicnn's: 16 kHz mono, ``n_fft=512, hop_length=256,
n_mels=96, window='hann', center=False, power=2.0, norm='slaney', htk=False``, then
``log10(1 + 10000 * mel)`` computed in float32 (musicnn's float16 cast overflows under numpy 2).

This equals ``librosa.feature.melspectrogram(...)`` with those parameters to float32 rounding; the mel
filterbank itself is computed once with ``librosa.filters.mel`` and cached.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from sidecar.ml.constants import SAMPLE_RATE

__all__ = [
    "HOP_LENGTH",
    "N_FFT",
    "N_MELS",
    "PATCH_FRAMES",
    "SAMPLE_RATE",
    "log_compress",
    "log_mel",
    "mel_filterbank",
    "mel_power",
    "n_frames",
    "patches",
]

N_FFT = 512
HOP_LENGTH = 256
N_MELS = 96
PATCH_FRAMES = 187  # frames per model input patch (about 3 s)

# Frames processed per chunk: bounds the temporary memory (chunk x 512 float32 + chunk x 257 complex64)
_CHUNK_FRAMES = 4096


@lru_cache(maxsize=1)
def mel_filterbank() -> np.ndarray:
    """The [96, 257] float32 slaney mel filterbank (fmin 0, fmax 8 kHz), computed once per process."""
    import librosa

    fb = librosa.filters.mel(
        sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, htk=False, norm="slaney", dtype=np.float32
    )
    fb = np.ascontiguousarray(fb, dtype=np.float32)
    fb.setflags(write=False)
    return fb


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    # periodic Hann, as scipy.signal.get_window("hann", 512, fftbins=True) which librosa uses
    n = np.arange(N_FFT, dtype=np.float64)
    w = (0.5 - 0.5 * np.cos(2.0 * np.pi * n / N_FFT)).astype(np.float32)
    w.setflags(write=False)
    return w


def n_frames(n_samples: int) -> int:
    """Number of STFT frames for ``n_samples`` samples with ``center=False``."""
    if n_samples < N_FFT:
        return 0
    return 1 + (n_samples - N_FFT) // HOP_LENGTH


def mel_power(audio: np.ndarray) -> np.ndarray:
    """Power mel spectrogram, float32 ``[frames, 96]`` (frames x bands, musicnn's orientation)."""
    y = _as_mono_float32(audio)
    total = n_frames(y.shape[0])
    out = np.empty((total, N_MELS), dtype=np.float32)
    if total == 0:
        return out
    frames = np.lib.stride_tricks.sliding_window_view(y, N_FFT)[::HOP_LENGTH]
    assert frames.shape[0] == total
    window = _window()
    fb_t = mel_filterbank().T  # [257, 96]
    for start in range(0, total, _CHUNK_FRAMES):
        stop = min(total, start + _CHUNK_FRAMES)
        spec = np.fft.rfft(frames[start:stop] * window, n=N_FFT, axis=-1)
        power = spec.real.astype(np.float32) ** 2 + spec.imag.astype(np.float32) ** 2
        np.matmul(power, fb_t, out=out[start:stop])
    return out


def log_compress(mel: np.ndarray) -> np.ndarray:
    """``log10(1 + 10000 * mel)`` in float32 (in place when ``mel`` is a float32 array)."""
    mel = np.asarray(mel, dtype=np.float32)
    np.multiply(mel, np.float32(10000.0), out=mel)
    np.add(mel, np.float32(1.0), out=mel)
    np.log10(mel, out=mel)
    return mel


def log_mel(audio: np.ndarray) -> np.ndarray:
    """Log-mel of 16 kHz mono audio: float32 ``[frames, 96]``; ``frames = 1 + (len - 512) // 256``.

    Audio shorter than one FFT window (512 samples, 32 ms) gives an empty ``[0, 96]`` array.
    """
    return log_compress(mel_power(audio))


def patches(logmel: np.ndarray, patch_frames: int = PATCH_FRAMES) -> np.ndarray:
    """Cut a ``[frames, 96]`` log-mel into model patches ``[N, 187, 96]`` (float32, contiguous).

    As musicnn's ``batch_data`` (hop = patch length, no overlap): patch ``i`` is frames
    ``[187 i, 187 (i + 1))`` and a partial tail (< 187 frames, under 3 s) is dropped.

    A log-mel shorter than one patch (audio under about 3 s) is repeat-padded to one patch (the
    frames are tiled, as musicnn's training pipeline did for short clips: ``pad_short: repeat-pad``
    in the checkpoints' config.json). An empty log-mel raises ``ValueError``.
    """
    logmel = np.asarray(logmel, dtype=np.float32)
    if logmel.ndim != 2 or logmel.shape[1] != N_MELS:
        raise ValueError(f"log-mel must be [frames, {N_MELS}], got {logmel.shape}")
    frames = logmel.shape[0]
    if frames == 0:
        raise ValueError("audio too short for analysis: no complete 512-sample STFT frame (32 ms)")
    if frames < patch_frames:
        reps = -(-patch_frames // frames)
        return np.ascontiguousarray(np.tile(logmel, (reps, 1))[:patch_frames][None])
    n = frames // patch_frames
    return np.ascontiguousarray(logmel[: n * patch_frames].reshape(n, patch_frames, N_MELS))


def _as_mono_float32(audio: np.ndarray) -> np.ndarray:
    y = np.asarray(audio)
    if y.ndim != 1:
        raise ValueError(f"expected mono audio as a 1-D array, got shape {y.shape}")
    if y.dtype != np.float32:
        y = y.astype(np.float32)
    return y
