"""The analysis backup file, format version 1: gzip-compressed JSON lines.

* line 1, the header: ``{"format": "audiomuse-analysis", "version": 1, "created_at", "provider",
  "model_version", "embedding": {"dim": 200, "encoding": "float32-le-base64"}}``;
* one line per analysed track: ``{"item_id", "provider", "fingerprint", "path", "title", "artist",
  "album", "album_artist", "track_number", "duration_s", "year", "model_version", "analyzed_at",
  "analysis": {"tempo", "key", "scale", "energy", "energy_normalized", "tags", "mtt_tags",
  "moods", "danceable", "aggressive", "happy", "party", "relaxed", "sad", "features"},
  "embedding", "mtt_embedding"}`` where ``embedding`` (MSD model) and ``mtt_embedding``
  (MagnaTagATune model; null for tracks analysed before it was stored) are 200 float32 values,
  little-endian, base64 (exact, and a third of the size of decimal text);
* the last line: ``{"end": true, "records": N}``: a file cut at a line boundary is refused.

Readers accept the same lines uncompressed.  A reader refuses a newer ``version`` than it knows.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

FORMAT = "audiomuse-analysis"
VERSION = 1
DIM = 200
ENCODING = "float32-le-base64"
#: the longest line a reader accepts (a record is about 4 KB)
MAX_LINE = 1 << 20
OTHER_FEATURES = ("danceable", "aggressive", "happy", "party", "relaxed", "sad")
_GZIP_MAGIC = b"\x1f\x8b"


class FormatError(ValueError):
    """The file is not a backup this version can read; ``str()`` says where and why."""

    def __init__(self, line: int | None, problem: str) -> None:
        super().__init__(f"line {line}: {problem}" if line else problem)
        self.line = line
        self.problem = problem


def header(provider: str, model_version: str | None, created_at: str) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "created_at": created_at,
        "provider": provider,
        "model_version": model_version,
        "embedding": {"dim": DIM, "encoding": ENCODING},
    }


def trailer(records: int) -> dict[str, Any]:
    return {"end": True, "records": records}


def encode_embedding(vector: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def decode_embedding(text: object, line: int) -> np.ndarray:
    if not isinstance(text, str):
        raise FormatError(line, "embedding must be a base64 string")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise FormatError(line, "embedding is not valid base64") from None
    if len(raw) != DIM * 4:
        raise FormatError(line, f"embedding has {len(raw) // 4} values, expected {DIM}")
    vector = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    if not np.all(np.isfinite(vector)):
        raise FormatError(line, "embedding holds non-finite values")
    return vector


def check_header(obj: object) -> dict[str, Any]:
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise FormatError(1, f"not an AudioMuse analysis backup (the first line must be a {FORMAT!r} header)")
    version = obj.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise FormatError(1, "the header has no format version")
    if version > VERSION:
        raise FormatError(
            1, f"format version {version} is newer than this program reads ({VERSION}): upgrade"
        )
    emb = obj.get("embedding") or {}
    if not isinstance(emb, dict) or emb.get("dim") != DIM or emb.get("encoding") != ENCODING:
        raise FormatError(1, f"embeddings must be {DIM} values in {ENCODING}, the file says {emb!r}")
    return obj


@dataclass(frozen=True)
class Record:
    """One track of the file, checked."""

    line: int
    item_id: str
    fingerprint: str | None
    path: str | None
    title: str
    artist: str
    album: str
    duration_s: float | None
    model_version: str
    analyzed_at: datetime | None
    analysis: dict[str, Any]
    embedding: np.ndarray
    mtt_embedding: np.ndarray | None

    def describe(self) -> dict[str, Any]:
        """How a report names it."""
        return {"item_id": self.item_id, "title": self.title, "artist": self.artist, "album": self.album}


def _text(obj: dict[str, Any], key: str, line: int, *, required: bool = False) -> str | None:
    value = obj.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value) or "\x00" in value:
        raise FormatError(line, f"{key} must be {'a non-empty' if required else 'a'} string without NUL")
    return value


def _number(
    obj: dict[str, Any], key: str, line: int, lo: float = -math.inf, hi: float = math.inf
) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not lo <= value <= hi
    ):
        raise FormatError(line, f"{key} must be a number between {lo} and {hi}, got {value!r}")
    return float(value)


def _time(obj: dict[str, Any], key: str, line: int) -> datetime | None:
    value = _text(obj, key, line)
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise FormatError(line, f"{key} must be an ISO 8601 time, got {value!r}") from None
    if when.tzinfo is None:
        raise FormatError(line, f"{key} must carry its time zone, got {value!r}")
    return when


def _scores(obj: dict[str, Any], key: str, line: int) -> dict[str, float]:
    value = obj.get(key, {})
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        for k, v in value.items()
    ):
        raise FormatError(line, f"analysis.{key} must map labels to numbers")
    return value


def check_record(obj: object, line: int) -> Record:
    if not isinstance(obj, dict):
        raise FormatError(line, "a record must be a JSON object")
    a = obj.get("analysis")
    if not isinstance(a, dict):
        raise FormatError(line, "analysis must be an object")
    analysis: dict[str, Any] = {
        "tempo": _number(a, "tempo", line, 0, 1000),
        "key": _text(a, "key", line),
        "scale": _text(a, "scale", line),
        "energy": _number(a, "energy", line),
        "energy_normalized": _number(a, "energy_normalized", line, 0, 1),
        "tags": _scores(a, "tags", line),
        "mtt_tags": _scores(a, "mtt_tags", line),
        **{name: _number(a, name, line, 0, 1) for name in OTHER_FEATURES},
    }
    if analysis["scale"] not in (None, "major", "minor"):
        raise FormatError(line, f"analysis.scale must be major or minor, got {analysis['scale']!r}")
    moods = a.get("moods", [])
    if not isinstance(moods, list) or not all(isinstance(m, str) for m in moods):
        raise FormatError(line, "analysis.moods must be a list of strings")
    features = a.get("features", {})
    if not isinstance(features, dict):
        raise FormatError(line, "analysis.features must be an object")
    analysis["moods"] = moods
    analysis["features"] = features
    return Record(
        line=line,
        item_id=_text(obj, "item_id", line, required=True) or "",
        fingerprint=_text(obj, "fingerprint", line),
        path=_text(obj, "path", line),
        title=_text(obj, "title", line) or "",
        artist=_text(obj, "artist", line) or "",
        album=_text(obj, "album", line) or "",
        duration_s=_number(obj, "duration_s", line, 0),
        model_version=_text(obj, "model_version", line, required=True) or "",
        analyzed_at=_time(obj, "analyzed_at", line),
        analysis=analysis,
        embedding=decode_embedding(obj.get("embedding"), line),
        mtt_embedding=None
        if obj.get("mtt_embedding") is None
        else decode_embedding(obj["mtt_embedding"], line),
    )


def parse_line(raw: bytes, line: int) -> object:
    if b"\\u0000" in raw:
        raise FormatError(line, "a NUL character (\\u0000): PostgreSQL cannot store it")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(line, f"not JSON ({exc})") from None
    except RecursionError:
        raise FormatError(line, "JSON nested too deeply") from None


async def read_lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[tuple[int, bytes]]:
    """(line number, line) of a backup file given as chunks of bytes, gzip or plain; a gzip
    stream that is corrupt or cut short raises :class:`FormatError`.  Memory stays bounded by
    the chunk size and :data:`MAX_LINE`, whatever the size of the file."""
    inflate: Any = None
    started = False
    pending = b""
    number = 0
    async for chunk in chunks:
        if not chunk:
            continue
        if not started:
            started = True
            if chunk[:1] == _GZIP_MAGIC[:1]:
                inflate = zlib.decompressobj(wbits=31)
        for data in _inflated(inflate, chunk):
            pending += data
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                number += 1
                yield number, raw
            if len(pending) > MAX_LINE:
                raise FormatError(number + 1, f"line longer than {MAX_LINE} bytes")
    if inflate is not None and not inflate.eof:
        raise FormatError(None, "the gzip data stops before its end: the file is truncated")
    if pending.strip():
        number += 1
        yield number, pending


def _inflated(inflate: Any, chunk: bytes) -> Iterator[bytes]:
    """``chunk`` decompressed, in pieces of at most MAX_LINE bytes (as given when not gzip)."""
    if inflate is None:
        yield chunk
        return
    if inflate.eof:
        raise FormatError(None, "data after the end of the gzip stream")
    data = chunk
    while data:
        try:
            piece = inflate.decompress(data, MAX_LINE)
        except zlib.error as exc:
            raise FormatError(None, f"the gzip data is corrupt ({exc})") from None
        yield piece
        data = inflate.unconsumed_tail
