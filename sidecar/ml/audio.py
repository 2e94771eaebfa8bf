"""Decode any audio file to 16 kHz mono float32, streaming, with bounded memory and typed errors.

Decoding uses the PyAV wheel (FFmpeg bundled, no system package). Each decoded frame is converted to
float32 and down-mixed to mono by averaging its channels (as ``librosa.to_mono`` does), and the mono
stream is resampled to 16 kHz with soxr's streaming resampler at ``HQ`` quality (the resampler and
quality of ``librosa.load(sr=16000)``, which is what the seed, AudioMuse-AI, analyses; soxr is
installed with librosa). The output goes straight into one preallocated float32 buffer sized from the
container's duration: no per-frame lists, no float64, no second full-length copy.

Memory and the excerpt design
-----------------------------
16 kHz mono float32 is 64 000 bytes per second: 3.84 MB per minute, 57.6 MB for 15 minutes, 460 MB for
a 2-hour file. So:

* :func:`decode` decodes the whole file, or at most ``max_seconds`` (and optionally from ``start``);
  the buffer never exceeds ``max_seconds`` of output, whatever the file claims.
* :func:`decode_excerpts` decodes ``count`` windows of ``seconds`` each, evenly spaced over the file
  (window ``i`` is centred in the ``i``-th of ``count`` equal slices, so intros and fade-outs are not
  over-represented), using container seeks: only the windows are decoded, not the whole file.
* :func:`load_for_analysis` is the analysis policy: a file whose duration is at most ``full_seconds``
  (default :data:`FULL_SECONDS` = 15 minutes) is decoded entirely (capped at ``full_seconds`` in case
  the container under-states its length), so normal tracks are analysed faithfully, sample for sample
  as the seed would. A longer file (DJ mixes, audiobooks, 2-hour concerts) is analysed from
  ``full_seconds // excerpt_seconds`` evenly spaced excerpts of ``excerpt_seconds`` (default 30 s):
  the same 15 minutes of audio in total. The track-level MusiCNN vectors are means over 3-second
  patches, so evenly spaced excerpts estimate them without bias; tempo, key and energy are
  whole-track statistics that evenly spaced samples estimate as well. Peak memory of the decoded
  signal is therefore ``full_seconds * 64 kB`` (57.6 MB by default) for any file length, and the
  decode time of a 2-hour file is that of a 15-minute one plus ``count`` seeks (measured on the
  2-core target: 900 s out of a 2-hour 44.1 kHz stereo FLAC in 0.5 s, peak RSS +60 MB, against
  5.8 s and +445 MB to decode it whole; a whole 4-minute 44.1 kHz stereo MP3/FLAC/AAC/Vorbis file
  takes 0.22-0.38 s, Opus 0.5 s). A file whose duration
  is unknown is decoded from the start up to ``full_seconds``. If seeking fails, the policy falls back
  to the first ``full_seconds``.

The excerpts are returned concatenated, with their boundaries in :attr:`DecodedAudio.segments` so
that a consumer that must not straddle a boundary (e.g. cutting 3-second model patches) can process
:meth:`DecodedAudio.pieces` one by one. Excerpts are sample-accurate: frames before the target time
are trimmed using their timestamps (counted from the stream's start time, so an MP3's encoder delay
does not shift them), and when a demuxer lands after the target (Ogg may) the seek is retried from
further back.

Errors
------
Everything that prevents a usable signal raises :class:`AudioDecodeError` with a stable ``reason``
code (for storage and tests) and a human-readable ``detail``:

===================  ==========================================================================
reason               when
===================  ==========================================================================
``unreadable``       the path does not exist, is not a regular file, or cannot be read
``empty``            zero-byte file
``unsupported``      a recognised format the bundled FFmpeg cannot decode: tracker modules
                     (.mod, .xm, .s3m, .it, ...; no libopenmpt in the PyAV wheel), MIDI, or an
                     audio stream whose codec has no decoder
``not_audio``        unrecognised data: FFmpeg finds no known container and the file does not
                     start like any audio format
``no_audio_stream``  a readable container without an audio stream (an image, a video-only file)
``corrupt``          the file starts like audio but cannot be opened, or decoding hits errors
                     (or a clean end far before the length the header states) and what decoded is
                     less than ``min_seconds`` or less than ``min_fraction`` (default half) of
                     what the file claims
``too_short``        decodes cleanly but yields less than ``min_seconds`` (default 3 s, one
                     MusiCNN patch) of audio
``silent``           not raised here: a silent file decodes normally (it is valid audio); the
                     analysis checks :func:`sidecar.ml.features.is_silent` and fails the track
                     with this reason
===================  ==========================================================================

Corrupt streams: a packet the decoder rejects is skipped and counted (as the ``ffmpeg`` command
does), and a demuxer error ends the stream. If the result is still long enough (at least
``min_seconds`` and at least ``min_fraction`` of the header's duration) it is kept, flagged with
:attr:`DecodedAudio.damaged` and :attr:`DecodedAudio.decode_errors`; otherwise ``corrupt``. A short
decode is only compared with the header's duration when that duration is exact (FLAC, WAV by its
``data`` chunk size, MP4, MP3 with a Xing/Info/VBRI header, ...), never with a bitrate estimate (MP3
without such a header, raw ADTS AAC), which can be far off for VBR files. An Ogg file states no total
length (FFmpeg reads the last page's position), so a truncated Ogg file is indistinguishable from a
shorter one.

No soundfile fallback: every format libsndfile reads (WAV, FLAC, Ogg, MP3, AIFF, AU, CAF, W64, ...)
is also read by the bundled FFmpeg, so a fallback would only repeat the same failure.

Layout: this module is the public API and the analysis policy (what to decode, what counts as
damaged); :mod:`sidecar.ml.container` opens a file (typed errors, stream choice, exact or estimated
duration) with the help of :mod:`sidecar.ml.sniff` (format sniffing from the first bytes), and
:mod:`sidecar.ml.decoder` is the streaming decode core (down-mix, resampling, bounded buffer,
sample-accurate seeks).
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Final

import numpy as np

from sidecar.ml.constants import SAMPLE_RATE
from sidecar.ml.container import REASONS, AudioDecodeError, AudioInfo, Source, ffmpeg_message
from sidecar.ml.decoder import Buffer, decode_span

__all__ = [
    "BYTES_PER_SECOND",
    "EXCERPT_SECONDS",
    "FULL_SECONDS",
    "MIN_FRACTION",
    "MIN_SECONDS",
    "REASONS",
    "SAMPLE_RATE",
    "AudioDecodeError",
    "AudioInfo",
    "DecodedAudio",
    "decode",
    "decode_excerpts",
    "excerpt_starts",
    "load_for_analysis",
    "probe",
]

BYTES_PER_SECOND: Final = SAMPLE_RATE * 4  # float32 mono
MIN_SECONDS: Final = 3.0  # one MusiCNN patch (187 frames x 256 hop = 2.99 s)
MIN_FRACTION: Final = 0.5  # a damaged file is kept when at least this share of it decoded
FULL_SECONDS: Final = 900.0  # files up to 15 minutes are analysed entirely
EXCERPT_SECONDS: Final = 30.0


@dataclasses.dataclass(frozen=True, eq=False)
class DecodedAudio:
    """16 kHz mono float32 samples and how they were obtained."""

    samples: np.ndarray  # float32, 1-D
    info: AudioInfo
    # (source start in seconds, start index, stop index) of each contiguous decoded span
    segments: tuple[tuple[float, int, int], ...]
    complete: bool  # decoded from the start to the end (no cap reached, no excerpts)
    decode_errors: int = 0  # packets the decoder rejected (skipped)
    damaged: bool = False  # decode errors, a demuxer error, or a clean end well before the header's length
    sample_rate: int = SAMPLE_RATE

    @property
    def seconds(self) -> float:
        return float(self.samples.shape[0] / self.sample_rate)

    def pieces(self) -> list[np.ndarray]:
        """The contiguous spans (views of :attr:`samples`), one per segment."""
        return [self.samples[a:b] for _, a, b in self.segments]


def _initial_capacity(seconds: float | None) -> int:
    if seconds is None:
        seconds = 60.0
    return int(math.ceil(seconds * 1.01 * SAMPLE_RATE)) + SAMPLE_RATE


def _judge(
    src: Source,
    decoded: int,
    errors: int,
    fatal: str | None,
    expected: float | None,
    *,
    min_seconds: float,
    min_fraction: float,
) -> bool:
    """Raise for unusable results; return whether the result is damaged (but kept)."""
    name = src.path.name
    got = decoded / SAMPLE_RATE
    shortfall = expected is not None and src.info.duration_exact and expected > 0 and got < 0.9 * expected
    damaged = bool(errors or fatal or shortfall)
    problems = []
    if errors:
        problems.append(f"{errors} undecodable packet{'s' if errors != 1 else ''}")
    if fatal:
        problems.append(f"stream error: {fatal}")
    what = "; ".join(problems)
    if decoded == 0:
        if damaged or (expected or 0) > 0:
            raise AudioDecodeError(
                "corrupt", f"{name}: no audio could be decoded" + (f" ({what})" if what else "")
            )
        raise AudioDecodeError("too_short", f"{name}: the audio stream contains no samples")
    if damaged:
        claimed = f" of the {expected:.1f} s the file states" if expected and src.info.duration_exact else ""
        too_little = got < min_seconds or (
            expected is not None and src.info.duration_exact and got < min_fraction * expected
        )
        if too_little:
            raise AudioDecodeError(
                "corrupt",
                f"{name}: corrupt or truncated audio: decoded {got:.2f} s{claimed}"
                + (f" ({what})" if what else ""),
            )
        return True
    if got < min_seconds:
        raise AudioDecodeError(
            "too_short", f"{name}: {got:.2f} s of audio, less than the {min_seconds:g} s minimum"
        )
    return False


# --------------------------------------------------------------------------- public API


def probe(path: str | os.PathLike[str]) -> AudioInfo:
    """Open ``path`` and describe its audio stream (no decoding). Raises :class:`AudioDecodeError`."""
    with Source(path) as src:
        return src.info


def decode(
    path: str | os.PathLike[str],
    *,
    max_seconds: float | None = None,
    start: float = 0.0,
    min_seconds: float = MIN_SECONDS,
    min_fraction: float = MIN_FRACTION,
) -> DecodedAudio:
    """Decode ``path`` to 16 kHz mono float32.

    ``start`` seconds are skipped (by seeking); at most ``max_seconds`` are decoded (``None``: to the
    end; the output buffer never exceeds ``max_seconds * 64 kB``). Raises :class:`AudioDecodeError`.
    """
    if max_seconds is not None and max_seconds <= 0:
        raise ValueError("max_seconds must be positive")
    with Source(path) as src:
        return _decode_from(src, max_seconds, start, min_seconds, min_fraction)


def _decode_from(
    src: Source, max_seconds: float | None, start: float, min_seconds: float, min_fraction: float
) -> DecodedAudio:
    import av

    info = src.info
    remaining = None if info.duration is None else max(0.0, info.duration - start)
    if max_seconds is None:
        expected = remaining
    else:
        expected = max_seconds if remaining is None else min(remaining, max_seconds)
    cap = None if max_seconds is None else int(round(max_seconds * SAMPLE_RATE))
    buf = Buffer(_initial_capacity(expected), cap)
    try:
        span = decode_span(src, buf, start=start, limit=None)
    except av.FFmpegError as exc:  # the seek itself failed
        raise AudioDecodeError(
            "corrupt", f"{src.path.name}: cannot seek to {start:g} s: {ffmpeg_message(exc)}"
        ) from None
    damaged = _judge(
        src,
        span.written,
        span.errors,
        span.fatal,
        expected,
        min_seconds=min_seconds,
        min_fraction=min_fraction,
    )
    samples = buf.result()
    capped = cap is not None and span.written >= cap
    return DecodedAudio(
        samples=samples,
        info=info,
        segments=((float(start), 0, samples.shape[0]),),
        complete=start <= 0 and not capped,
        decode_errors=span.errors,
        damaged=damaged,
    )


def excerpt_starts(duration: float, count: int, seconds: float) -> list[float]:
    """Start times of ``count`` windows of ``seconds``, each centred in one of ``count`` equal slices."""
    if count <= 0:
        return []
    slice_len = duration / count
    return [max(0.0, min(duration - seconds, (i + 0.5) * slice_len - seconds / 2)) for i in range(count)]


def decode_excerpts(
    path: str | os.PathLike[str],
    *,
    count: int,
    seconds: float,
    min_seconds: float = MIN_SECONDS,
    min_fraction: float = MIN_FRACTION,
) -> DecodedAudio:
    """Decode ``count`` evenly spaced windows of ``seconds`` each, seeking between them.

    Memory: at most ``count * seconds * 64 kB``. Needs the container's duration; when it is unknown
    or not longer than the windows together, the first ``count * seconds`` seconds are decoded
    instead. If a seek fails, likewise. Raises :class:`AudioDecodeError`.
    """
    if count <= 0 or seconds <= 0:
        raise ValueError("count and seconds must be positive")
    with Source(path) as src:
        result = _excerpts_from(src, count, seconds, min_seconds, min_fraction)
        if result is not None:
            return result
    return decode(path, max_seconds=count * seconds, min_seconds=min_seconds, min_fraction=min_fraction)


def _excerpts_from(
    src: Source, count: int, seconds: float, min_seconds: float, min_fraction: float
) -> DecodedAudio | None:
    """The excerpts, or None when the caller should decode the beginning instead."""
    import av

    duration = src.info.duration
    if duration is None or duration <= count * seconds:
        return _decode_from(src, count * seconds, 0.0, min_seconds, min_fraction)
    per = int(round(seconds * SAMPLE_RATE))
    buf = Buffer(per * count, per * count)
    segments: list[tuple[float, int, int]] = []
    errors = 0
    fatal: str | None = None
    try:
        for t in excerpt_starts(duration, count, seconds):
            before = buf.n
            span = decode_span(src, buf, start=t, limit=per)
            errors += span.errors
            fatal = fatal or span.fatal
            if buf.n > before:
                segments.append((t, before, buf.n))
    except av.FFmpegError:
        return None  # not seekable after all: the caller re-opens and decodes the beginning
    damaged = _judge(
        src,
        buf.n,
        errors,
        fatal,
        float(per * count) / SAMPLE_RATE,
        min_seconds=min_seconds,
        min_fraction=min_fraction,
    )
    return DecodedAudio(
        samples=buf.result(),
        info=src.info,
        segments=tuple(segments),
        complete=False,
        decode_errors=errors,
        damaged=damaged,
    )


def load_for_analysis(
    path: str | os.PathLike[str],
    *,
    full_seconds: float = FULL_SECONDS,
    excerpt_seconds: float = EXCERPT_SECONDS,
    min_seconds: float = MIN_SECONDS,
    min_fraction: float = MIN_FRACTION,
) -> DecodedAudio:
    """The analysis policy: the whole file up to ``full_seconds``, evenly spaced excerpts beyond.

    Files lasting at most ``full_seconds`` (by the container's duration, or of unknown duration) are
    decoded from the start, capped at ``full_seconds``; longer ones as
    ``full_seconds // excerpt_seconds`` excerpts of ``excerpt_seconds`` each. Either way at most
    ``full_seconds * 64 kB`` of samples are held (57.6 MB with the defaults).
    """
    if full_seconds <= 0 or excerpt_seconds <= 0:
        raise ValueError("full_seconds and excerpt_seconds must be positive")
    count = max(1, int(full_seconds // excerpt_seconds))
    seconds = min(excerpt_seconds, full_seconds)
    with Source(path) as src:
        duration = src.info.duration
        if duration is None or duration <= full_seconds:
            return _decode_from(src, full_seconds, 0.0, min_seconds, min_fraction)
        result = _excerpts_from(src, count, seconds, min_seconds, min_fraction)
        if result is not None:
            return result
    return decode(path, max_seconds=full_seconds, min_seconds=min_seconds, min_fraction=min_fraction)
