"""The streaming decode core: frames to 16 kHz mono float32, appended to a bounded buffer.

:func:`decode_span` decodes one contiguous span of an opened :class:`~sidecar.ml.container.Source`
(from the start, or from a sample-accurate seek) into a :class:`Buffer`: each frame is down-mixed
to mono float32 by averaging its channels (as ``librosa.to_mono``) and resampled to
:data:`~sidecar.ml.constants.SAMPLE_RATE` by soxr's streaming resampler at ``HQ`` quality
(``librosa.load``'s). Undecodable packets are skipped and counted, a demuxer error ends the span.
The policy (what to decode, what counts as damaged) is in :mod:`sidecar.ml.audio`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from fractions import Fraction
from typing import Any, Final

import numpy as np

from sidecar.ml.constants import SAMPLE_RATE
from sidecar.ml.container import Source, ffmpeg_message

__all__ = ["Buffer", "Span", "decode_span"]

# Input samples gathered before one call to the resampler (soxr's per-call cost dominates for
# 1024-sample frames).
_RESAMPLE_BATCH = 16384


class Buffer:
    """A float32 buffer that grows (x1.5) up to a hard cap."""

    def __init__(self, initial: int, cap: int | None) -> None:
        self.cap = cap
        first = max(1, initial if cap is None else min(initial, cap))
        self.data = np.empty(first, dtype=np.float32)
        self.n = 0

    def room(self) -> int | None:
        return None if self.cap is None else self.cap - self.n

    def append(self, x: np.ndarray) -> None:
        need = self.n + x.shape[0]
        if need > self.data.shape[0]:
            grown = max(need, int(self.data.shape[0] * 1.5) + SAMPLE_RATE)
            if self.cap is not None:
                grown = min(grown, self.cap)
            new = np.empty(grown, dtype=np.float32)
            new[: self.n] = self.data[: self.n]
            self.data = new
        self.data[self.n : need] = x
        self.n = need

    def result(self) -> np.ndarray:
        if self.data.shape[0] - self.n > self.n // 8 + SAMPLE_RATE:
            return self.data[: self.n].copy()  # do not pin a much larger allocation
        return self.data[: self.n]


_SAMPLE_DTYPES: Final[dict[str, np.dtype[Any]]] = {
    "u8": np.dtype(np.uint8),
    "s16": np.dtype(np.int16),
    "s32": np.dtype(np.int32),
    "s64": np.dtype(np.int64),
    "flt": np.dtype(np.float32),
    "dbl": np.dtype(np.float64),
}


def _frame_to_mono(frame: Any) -> np.ndarray:
    """One decoded frame as float32 mono in [-1, 1] (channel mean, as librosa.to_mono).

    Reads the planes' buffers directly: ``AudioFrame.to_ndarray`` stacks planes and costs more than
    the decoding itself for 1024-sample frames.
    """
    name = frame.format.name
    planar = frame.format.is_planar
    dtype = _SAMPLE_DTYPES[name[:-1] if planar else name]
    n = frame.samples
    channels = len(frame.layout.channels) or 1
    planes = frame.planes
    if planar:
        first = np.frombuffer(planes[0], dtype=dtype, count=n)
        if channels == 1:
            mono = first.astype(np.float32)  # a copy: the plane buffer is reused by FFmpeg
        else:
            mono = first.astype(np.float32)
            for plane in planes[1:channels]:
                mono += np.frombuffer(plane, dtype=dtype, count=n)
            mono *= np.float32(1.0 / channels)
    else:
        inter = np.frombuffer(planes[0], dtype=dtype, count=n * channels).reshape(n, channels)
        mono = inter[:, 0].astype(np.float32)
        if channels > 1:
            for c in range(1, channels):
                mono += inter[:, c]
            mono *= np.float32(1.0 / channels)
    if dtype.kind == "u":  # u8: offset binary
        mono -= np.float32(128.0)
        mono *= np.float32(1.0 / 128.0)
    elif dtype.kind == "i":
        mono *= np.float32(1.0 / float(1 << (8 * dtype.itemsize - 1)))
    return mono


class _Resampler:
    """Streaming mono resampler to 16 kHz (soxr HQ, librosa's default), batching small frames."""

    def __init__(self) -> None:
        self.rate = 0
        self._stream: Any = None
        self._pending: list[np.ndarray] = []
        self._pending_n = 0

    def feed(self, mono: np.ndarray, rate: int) -> Iterator[np.ndarray]:
        if rate != self.rate:
            yield from self.flush()
            self.rate = rate
            if rate != SAMPLE_RATE:
                import soxr

                self._stream = soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
            else:
                self._stream = None
        self._pending.append(mono)
        self._pending_n += mono.shape[0]
        if self._pending_n >= _RESAMPLE_BATCH:
            yield from self._drain(last=False)

    def _drain(self, last: bool) -> Iterator[np.ndarray]:
        if self._pending_n:
            x = self._pending[0] if len(self._pending) == 1 else np.concatenate(self._pending)
        else:
            x = np.zeros(0, dtype=np.float32)
        self._pending, self._pending_n = [], 0
        if self._stream is None:
            if x.shape[0]:
                yield x
            return
        y = self._stream.resample_chunk(np.ascontiguousarray(x, dtype=np.float32), last=last)
        if y.shape[0]:
            yield y

    def flush(self) -> Iterator[np.ndarray]:
        if self.rate:
            yield from self._drain(last=True)
        self.rate = 0
        self._stream = None


@dataclasses.dataclass
class Span:
    written: int = 0
    errors: int = 0
    fatal: str | None = None  # demuxer error that ended the span


# After a seek, the first decoded frame must start at or before the target; some demuxers (Ogg)
# may land after it. Then seek again this many seconds earlier (None: from the beginning).
_SEEK_BACKOFF: Final = (0.0, 1.0, 5.0, 30.0, None)


def decode_span(src: Source, buf: Buffer, *, start: float, limit: int | None) -> Span:
    """Decode from ``start`` seconds (seeking when > 0) into ``buf``, at most ``limit`` samples."""
    span = Span()
    stream = src.stream
    room = buf.room()
    if room is not None:
        limit = room if limit is None else min(limit, room)
    if limit is not None and limit <= 0:
        return span
    if start <= 0:
        _decode_packets(src, buf, span, limit, target=None, may_restart=False)
        return span
    # Timestamps count from the stream's start time (e.g. an MP3's encoder delay, which the decoder
    # drops at the beginning): sample 0 of the decoded audio is at ``start_time``.
    tb = stream.time_base or Fraction(1, 1_000_000)
    origin = float(stream.start_time * tb) if stream.start_time is not None else 0.0
    target = start + origin
    for i, back in enumerate(_SEEK_BACKOFF):
        position = origin if back is None else max(origin, target - back)
        src.container.seek(int(position / tb), stream=stream)
        errors = span.errors
        last = i == len(_SEEK_BACKOFF) - 1
        if _decode_packets(src, buf, span, limit, target=target, may_restart=not last):
            return span
        span.errors = errors  # landed after the target: retry from earlier
    return span  # pragma: no cover - the last attempt never asks to restart


def _decode_packets(
    src: Source, buf: Buffer, span: Span, limit: int | None, *, target: float | None, may_restart: bool
) -> bool:
    """Demux, decode, trim to ``target`` (seconds), resample and append. False: restart earlier."""
    import av

    resampler = _Resampler()
    skip_until = target

    def put(chunk: np.ndarray) -> bool:
        """Append; True when the limit is reached."""
        if limit is not None and span.written + chunk.shape[0] >= limit:
            buf.append(chunk[: limit - span.written])
            span.written = limit
            return True
        buf.append(chunk)
        span.written += chunk.shape[0]
        return False

    packets = src.container.demux(src.stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            break
        except av.FFmpegError as exc:
            span.fatal = ffmpeg_message(exc)
            break
        try:
            frames = packet.decode()
        except av.FFmpegError:
            span.errors += 1
            continue
        for frame in frames:
            if not frame.samples:
                continue
            rate = int(frame.sample_rate)
            if skip_until is not None:
                t = frame.time
                if t is not None:
                    skip = int(round((skip_until - t) * rate))
                    if skip < -1 and may_restart:
                        return False
                    if skip >= frame.samples:
                        continue
                    mono = _frame_to_mono(frame)
                    if skip > 0:
                        mono = mono[skip:]
                else:
                    mono = _frame_to_mono(frame)
                skip_until = None
            else:
                mono = _frame_to_mono(frame)
            for chunk in resampler.feed(mono, rate):
                if put(chunk):
                    return True
    for chunk in resampler.flush():
        if put(chunk):
            break
    return True
