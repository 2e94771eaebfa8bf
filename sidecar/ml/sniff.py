"""Format sniffing: what a file's first bytes say, before (and besides) FFmpeg.

Used by :mod:`sidecar.ml.container` when opening a file for decoding:

* :func:`sniff_unsupported`: formats the bundled FFmpeg has no demuxer for (MIDI, tracker modules:
  the PyAV wheel has no libopenmpt), reported as ``unsupported`` instead of ``not_audio``;
* :func:`sniff_audio`: the audio format the bytes announce, to tell a ``corrupt`` audio file from
  data that is ``not_audio`` when FFmpeg cannot open it;
* :func:`mp3_has_length_header` and :func:`wav_declared_seconds`: whether the duration the
  container states is exact (an MP3's Xing/Info/VBRI frame count, a WAV's ``data`` chunk size),
  so that a truncated file is recognised as such.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = [
    "MIDI_EXTS",
    "TRACKER_EXTS",
    "mp3_has_length_header",
    "sniff_audio",
    "sniff_unsupported",
    "wav_declared_seconds",
]

TRACKER_EXTS = frozenset(
    {
        ".mod",
        ".xm",
        ".s3m",
        ".it",
        ".mptm",
        ".mtm",
        ".669",
        ".umx",
        ".med",
        ".okt",
        ".stm",
        ".far",
        ".ult",
        ".mo3",
    }
)
MIDI_EXTS = frozenset({".mid", ".midi", ".kar", ".rmi"})
_MOD_TAG = re.compile(
    rb"^(M\.K\.|M!K!|M&K!|FLT[48]|EXO[48]|OKTA|CD81|CD61|TDZ[1-9]|[1-9]CHN|[1-9][0-9]CH|[1-9][0-9]CN)$"
)


def sniff_unsupported(head: bytes) -> str | None:
    """A description when the bytes are a format the bundled FFmpeg has no demuxer for."""
    if head.startswith(b"MThd"):
        return "MIDI file (note data, not audio; needs a synthesizer)"
    if head.startswith(b"RIFF") and head[8:12] == b"RMID":
        return "RIFF MIDI file (note data, not audio; needs a synthesizer)"
    tracker = None
    if head.startswith(b"Extended Module: "):
        tracker = "FastTracker 2 module (.xm)"
    elif head[44:48] == b"SCRM":
        tracker = "Scream Tracker 3 module (.s3m)"
    elif head.startswith(b"IMPM"):
        tracker = "Impulse Tracker module (.it)"
    elif head.startswith(b"MTM"):
        tracker = "MultiTracker module (.mtm)"
    elif head.startswith(b"OKTASONG"):
        tracker = "Oktalyzer module (.okt)"
    elif head[:4] in (b"MMD0", b"MMD1", b"MMD2", b"MMD3"):
        tracker = "OctaMED module (.med)"
    elif len(head) >= 1084 and _MOD_TAG.match(head[1080:1084]):
        tracker = "ProTracker-style module (.mod)"
    if tracker is None:
        return None
    if "libopenmpt" in _formats_available():  # pragma: no cover - not in the PyAV wheels
        return None
    return f"{tracker}: tracker modules are not decodable by the bundled FFmpeg (no libopenmpt)"


def sniff_audio(head: bytes) -> str | None:
    """The audio format the first bytes announce, if any (used to tell 'corrupt' from 'not audio')."""
    if head.startswith(b"ID3"):
        return "MP3 (ID3 tag)"
    if head.startswith(b"fLaC"):
        return "FLAC"
    if head.startswith(b"OggS"):
        return "Ogg"
    if head.startswith((b"RIFF", b"RIFX", b"RF64")) and head[8:12] == b"WAVE":
        return "WAV"
    if head.startswith(b"FORM") and head[8:12] in (b"AIFF", b"AIFC"):
        return "AIFF"
    if head[4:8] == b"ftyp":
        return "MP4/M4A"
    if head.startswith(b"MAC "):
        return "Monkey's Audio"
    if head.startswith(b"wvpk"):
        return "WavPack"
    if head.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"):
        return "ASF/WMA"
    if head.startswith(b"caff"):
        return "CAF"
    if head.startswith(b".snd"):
        return "AU"
    if head.startswith(b"#!AMR"):
        return "AMR"
    if head.startswith(b"\x1aE\xdf\xa3"):
        return "Matroska/WebM"
    if len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0:
        return "MPEG audio (MP3/AAC frame)"
    return None


def mp3_has_length_header(path: Path, head: bytes) -> bool:
    """Whether the first MPEG frame carries a Xing/Info/VBRI header (an exact frame count).

    Looks past an ID3v2 tag, reading from the file when the tag (e.g. cover art) is larger than
    ``head``.
    """
    start = 0
    if head.startswith(b"ID3") and len(head) >= 10:
        size = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
        start = 10 + size + (10 if head[5] & 0x10 else 0)  # footer flag
    if start + 4096 <= len(head):
        window = head[start : start + 4096]
    else:
        try:
            with path.open("rb") as fh:
                fh.seek(start)
                window = fh.read(4096)
        except OSError:
            return False
    return any(tag in window for tag in (b"Xing", b"Info", b"VBRI"))


def wav_declared_seconds(head: bytes) -> float | None:
    """Duration the RIFF/WAVE header declares (``data`` size / byte rate), or None.

    FFmpeg derives a WAV's duration from the file size, so a truncated WAV would look complete.
    """
    if not (head.startswith(b"RIFF") and head[8:12] == b"WAVE"):
        return None
    pos, byte_rate = 12, 0
    while pos + 8 <= len(head):
        cid, size = head[pos : pos + 4], int.from_bytes(head[pos + 4 : pos + 8], "little")
        if cid == b"fmt " and pos + 16 <= len(head):
            byte_rate = int.from_bytes(head[pos + 16 : pos + 20], "little")
        elif cid == b"data":
            if byte_rate <= 0 or size in (0, 0xFFFFFFFF):  # streamed WAVs leave the size unset
                return None
            return size / byte_rate
        pos += 8 + size + (size & 1)
    return None


_FORMATS_CACHE: set[str] | None = None


def _formats_available() -> set[str]:
    global _FORMATS_CACHE
    if _FORMATS_CACHE is None:
        import av

        _FORMATS_CACHE = set(av.formats_available)
    return _FORMATS_CACHE
