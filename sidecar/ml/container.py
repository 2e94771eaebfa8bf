"""Opening an audio file: its first audio stream, what the container says about it, typed errors.

:class:`Source` reads the file's first bytes (:mod:`sidecar.ml.sniff`), opens it with PyAV
(FFmpeg bundled), picks the first decodable audio stream and describes it (:class:`AudioInfo`,
with whether its duration is exact). Everything that prevents this raises
:class:`AudioDecodeError` with a stable ``reason`` (the table is in :mod:`sidecar.ml.audio`).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Final

from sidecar.ml.sniff import (
    MIDI_EXTS,
    TRACKER_EXTS,
    mp3_has_length_header,
    sniff_audio,
    sniff_unsupported,
    wav_declared_seconds,
)

__all__ = ["REASONS", "AudioDecodeError", "AudioInfo", "Source", "ffmpeg_message", "read_head"]

REASONS: Final = (
    "unreadable",
    "empty",
    "unsupported",
    "not_audio",
    "no_audio_stream",
    "corrupt",
    "too_short",
    "silent",
)

# Formats whose duration FFmpeg estimates from the bitrate instead of reading it from a header.
_ESTIMATED_DURATION_FORMATS = frozenset({"mp3", "aac", "ac3", "eac3", "dts", "mpegts", "mpeg", "loas", "mp2"})


class AudioDecodeError(Exception):
    """The file cannot give a usable 16 kHz signal. ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, detail: str = "") -> None:
        if reason not in REASONS:  # pragma: no cover - programming error
            raise ValueError(f"unknown reason {reason!r}")
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


@dataclasses.dataclass(frozen=True)
class AudioInfo:
    """What the container says about its first audio stream."""

    container: str  # FFmpeg demuxer name, e.g. "flac", "mov,mp4,m4a,3gp,3g2,mj2"
    codec: str  # decoder name, e.g. "mp3float"
    sample_rate: int  # source rate (Hz), 0 when unknown
    channels: int
    duration: float | None  # seconds, as the container states it; None when unknown
    duration_exact: bool  # False when FFmpeg estimated it from the bitrate


def read_head(path: Path, size: int = 1 << 16) -> bytes:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise AudioDecodeError("unreadable", f"{path}: no such file") from None
    except OSError as exc:
        raise AudioDecodeError("unreadable", f"{path}: {exc.strerror or exc}") from None
    if not path.is_file():
        raise AudioDecodeError("unreadable", f"{path}: not a regular file")
    if st.st_size == 0:
        raise AudioDecodeError("empty", f"{path.name}: zero-byte file")
    try:
        with path.open("rb") as fh:
            return fh.read(size)
    except OSError as exc:
        raise AudioDecodeError("unreadable", f"{path}: {exc.strerror or exc}") from None


class Source:
    """An opened container and its first decodable audio stream."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        import av

        self.path = Path(path)
        head = read_head(self.path)
        unsupported = sniff_unsupported(head)
        if unsupported is not None:
            raise AudioDecodeError("unsupported", f"{self.path.name}: {unsupported}")
        try:
            self.container: Any = av.open(str(self.path), metadata_errors="ignore")
        except av.FFmpegError as exc:
            raise self._open_error(head, exc) from None
        except OSError as exc:  # pragma: no cover - raced with the stat above
            raise AudioDecodeError("unreadable", f"{self.path}: {exc}") from None
        try:
            self.stream = self._pick_stream()
            self.info = self._info(head)
        except BaseException:
            self.container.close()
            raise

    def _open_error(self, head: bytes, exc: Exception) -> AudioDecodeError:
        msg = ffmpeg_message(exc)
        ext = self.path.suffix.lower()
        if ext in TRACKER_EXTS:
            return AudioDecodeError(
                "unsupported",
                f"{self.path.name}: tracker module ({ext}): not decodable by the bundled FFmpeg ({msg})",
            )
        if ext in MIDI_EXTS:
            return AudioDecodeError("unsupported", f"{self.path.name}: MIDI file ({ext}): not audio ({msg})")
        looks = sniff_audio(head)
        if looks is not None:
            return AudioDecodeError(
                "corrupt", f"{self.path.name}: starts like {looks} but cannot be opened: {msg}"
            )
        return AudioDecodeError(
            "not_audio", f"{self.path.name}: unrecognised data, not an audio file ({msg})"
        )

    def _pick_stream(self) -> Any:
        audio = list(self.container.streams.audio)
        if not audio:
            kinds = ", ".join(
                f"{s.type} ({s.codec_context.name if s.codec_context else '?'})"
                for s in self.container.streams
            )
            raise AudioDecodeError(
                "no_audio_stream",
                f"{self.path.name}: {self.container.format.name} container without an audio stream"
                + (f"; streams: {kinds}" if kinds else ""),
            )
        for s in audio:
            if s.codec_context is not None:
                return s
        raise AudioDecodeError(
            "unsupported", f"{self.path.name}: no decoder in the bundled FFmpeg for its audio codec"
        )

    def _info(self, head: bytes) -> AudioInfo:
        c, s = self.container, self.stream
        duration: float | None = None
        if s.duration is not None and s.time_base is not None and s.duration > 0:
            duration = float(s.duration * s.time_base)
        elif c.duration is not None and c.duration > 0:
            duration = c.duration / 1_000_000
        fmt_names = set(c.format.name.split(","))
        if "wav" in fmt_names:
            declared = wav_declared_seconds(head)
            if declared is not None and (duration is None or declared > duration * 1.01):
                duration = declared
        exact = duration is not None and not (fmt_names & _ESTIMATED_DURATION_FORMATS)
        if duration is not None and "mp3" in fmt_names and mp3_has_length_header(self.path, head):
            exact = True
        cc = s.codec_context
        channels = 0
        try:
            channels = len(cc.layout.channels) if cc.layout is not None else 0
        except Exception:  # pragma: no cover - exotic layouts
            channels = int(getattr(cc, "channels", 0) or 0)
        return AudioInfo(
            container=c.format.name,
            codec=cc.name,
            sample_rate=int(cc.sample_rate or 0),
            channels=channels,
            duration=duration,
            duration_exact=exact,
        )

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def ffmpeg_message(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).rstrip(".")
