"""Real, tagged audio files for tests, made with PyAV (encode) and mutagen (tags).

No system packages are needed: PyAV wheels bundle FFmpeg with the encoders used here.

Formats (``fmt``), all verified to encode with the bundled FFmpeg:

========  ==========================  ================  =====================
fmt       codec / container           tags written      notes
========  ==========================  ================  =====================
``flac``  FLAC / native               Vorbis comments
``ogg``   Vorbis / Ogg                Vorbis comments   native encoder: always stereo (mono dup'd)
``opus``  Opus / Ogg                  Vorbis comments   always 48 kHz (Opus constraint)
``mp3``   MP3 (LAME) / raw            ID3v2.4
``wav``   PCM s16le / RIFF            ID3v2 ``id3 `` chunk
``m4a``   AAC / MP4 (ipod)            MP4 atoms
========  ==========================  ================  =====================

Public API:

* :func:`make_track` -- one tagged file.
* :func:`make_library` -- an ``Artist/Album/NN Title.ext`` tree, returns :class:`LibraryTrack` records.
* :data:`DEFAULT_LIBRARY` -- a small ready-made spec for :func:`make_library`.
* :func:`make_empty_file`, :func:`make_corrupt_file`, :func:`make_non_audio_file`,
  :func:`make_truncated_file` -- bad inputs.
* :func:`decode_duration` / :func:`decode_audio` -- decode a file with PyAV (for assertions).
* :data:`FORMATS` -- the supported ``fmt`` values.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_LIBRARY",
    "FORMATS",
    "LibraryTrack",
    "decode_audio",
    "decode_duration",
    "make_corrupt_file",
    "make_empty_file",
    "make_library",
    "make_non_audio_file",
    "make_track",
    "make_truncated_file",
    "melody_from_seed",
]

# fmt -> (PyAV container format, codec name, sample format fed to the encoder, encoder options)
# m4a is written with "faststart" (moov atom before mdat), like most real-world files.
_CONTAINER_OPTIONS: dict[str, dict[str, str]] = {"m4a": {"movflags": "+faststart"}}
_ENCODERS: dict[str, tuple[str, str, str, dict[str, str]]] = {
    "flac": ("flac", "flac", "s16", {}),
    "ogg": ("ogg", "vorbis", "fltp", {"strict": "experimental"}),
    "opus": ("ogg", "libopus", "flt", {}),
    "mp3": ("mp3", "libmp3lame", "fltp", {}),
    "wav": ("wav", "pcm_s16le", "s16", {}),
    "m4a": ("ipod", "aac", "fltp", {}),
}
FORMATS: tuple[str, ...] = tuple(_ENCODERS)

_EXT_ALIASES = {"oga": "ogg", "mp4": "m4a", "aac": "m4a", "wave": "wav"}

# Equal-tempered notes of A minor pentatonic around A3..A5 for seeded melodies.
_SCALE = [220.0 * 2 ** (s / 12) for s in (0, 3, 5, 7, 10, 12, 15, 17, 19, 22, 24)]


# --------------------------------------------------------------------------- signal


def melody_from_seed(seed: int, notes: int = 6) -> list[float]:
    """A deterministic list of note frequencies (Hz) derived from ``seed``."""
    rng = np.random.default_rng(seed)
    return [float(_SCALE[i]) for i in rng.integers(0, len(_SCALE), size=notes)]


def _synthesize(
    seconds: float,
    sample_rate: int,
    channels: int,
    freq: float | Sequence[float],
    melody: Sequence[float] | None,
    seed: int | None,
    amplitude: float,
) -> np.ndarray:
    """Float32 array of shape (channels, n) in [-1, 1]."""
    n = max(1, round(seconds * sample_rate))
    t = np.arange(n, dtype=np.float64) / sample_rate
    if melody is None and seed is not None:
        melody = melody_from_seed(seed)
    if melody:
        # Sequential notes, each with a short linear fade to avoid clicks.
        sig = np.zeros(n, dtype=np.float64)
        bounds = np.linspace(0, n, len(melody) + 1).astype(int)
        for f, a, b in zip(melody, bounds[:-1], bounds[1:], strict=True):
            seg = np.sin(2 * np.pi * f * t[a:b]) + 0.3 * np.sin(2 * np.pi * 2 * f * t[a:b])
            fade = min(256, (b - a) // 4)
            if fade:
                env = np.ones(b - a)
                env[:fade] = np.linspace(0, 1, fade)
                env[-fade:] = np.linspace(1, 0, fade)
                seg *= env
            sig[a:b] = seg
    else:
        freqs = [float(freq)] if isinstance(freq, (int, float)) else [float(f) for f in freq]
        sig = np.zeros(n, dtype=np.float64)
        for f in freqs:  # a chord when several frequencies are given
            sig += np.sin(2 * np.pi * f * t)
    peak = float(np.max(np.abs(sig))) or 1.0
    sig = sig / peak * amplitude
    out = np.empty((channels, n), dtype=np.float32)
    for c in range(channels):
        # Slight per-channel phase/level difference so stereo is really stereo.
        out[c] = sig if c == 0 else np.roll(sig, 7 * c) * (1.0 - 0.1 * c)
    return out


def _to_frame(samples: np.ndarray, fmt: str, sample_rate: int):
    import av

    channels = samples.shape[0]
    layout = "mono" if channels == 1 else "stereo" if channels == 2 else f"{channels}c"
    planar = fmt.endswith("p")
    if fmt.startswith("s16"):
        data = np.clip(np.round(samples * 32767.0), -32768, 32767).astype(np.int16)
    elif fmt.startswith("s32"):
        data = np.clip(np.round(samples * 2147483647.0), -2147483648, 2147483647).astype(np.int32)
    else:
        data = samples.astype(np.float32)
    if not planar:
        data = data.T.reshape(1, -1)  # interleaved
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=fmt, layout=layout)
    frame.sample_rate = sample_rate
    frame.pts = 0
    return frame


def _encode(path: Path, fmt: str, samples: np.ndarray, sample_rate: int) -> None:
    import av

    container_fmt, codec, sample_fmt, options = _ENCODERS[fmt]
    if fmt == "ogg" and samples.shape[0] == 1:
        # FFmpeg's native Vorbis encoder only supports exactly 2 channels.
        samples = np.vstack([samples, samples])
    channels = samples.shape[0]
    layout = "mono" if channels == 1 else "stereo" if channels == 2 else f"{channels}c"
    with av.open(
        str(path), mode="w", format=container_fmt, options=dict(_CONTAINER_OPTIONS.get(fmt, {}))
    ) as out:
        stream = out.add_stream(codec, rate=sample_rate, options=dict(options))
        stream.layout = layout
        stream.format = sample_fmt
        if fmt in ("mp3", "m4a", "ogg"):
            stream.bit_rate = 64000 if channels == 1 else 96000
        frame = _to_frame(samples, sample_fmt, sample_rate)
        # PyAV re-chunks a big frame into encoder-sized frames by itself.
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


# --------------------------------------------------------------------------- tags


def _tag_values(
    title, artist, album, album_artist, year, genre, track_number, track_total, disc_number
) -> dict[str, str]:
    vals: dict[str, str] = {}
    if title is not None:
        vals["title"] = str(title)
    if artist is not None:
        vals["artist"] = str(artist)
    if album is not None:
        vals["album"] = str(album)
    if album_artist is not None:
        vals["albumartist"] = str(album_artist)
    if year is not None:
        vals["date"] = str(year)
    if genre is not None:
        vals["genre"] = str(genre)
    if track_number is not None:
        vals["tracknumber"] = str(track_number)
    if track_total is not None:
        vals["tracktotal"] = str(track_total)
    if disc_number is not None:
        vals["discnumber"] = str(disc_number)
    return vals


def _write_tags(path: Path, fmt: str, vals: dict[str, str]) -> None:
    if not vals:
        return
    if fmt in ("flac", "ogg", "opus"):
        import mutagen.flac
        import mutagen.oggopus
        import mutagen.oggvorbis

        cls = {
            "flac": mutagen.flac.FLAC,
            "ogg": mutagen.oggvorbis.OggVorbis,
            "opus": mutagen.oggopus.OggOpus,
        }[fmt]
        f = cls(str(path))
        if f.tags is None:
            f.add_tags()
        for k, v in vals.items():
            f.tags[k] = [v]
        f.save()
    elif fmt in ("mp3", "wav"):
        from mutagen import id3

        if fmt == "mp3":
            from mutagen.mp3 import MP3 as _Cls
        else:
            from mutagen.wave import WAVE as _Cls
        f = _Cls(str(path))
        if f.tags is None:
            f.add_tags()
        tags = f.tags
        if "title" in vals:
            tags.add(id3.TIT2(encoding=3, text=vals["title"]))
        if "artist" in vals:
            tags.add(id3.TPE1(encoding=3, text=vals["artist"]))
        if "album" in vals:
            tags.add(id3.TALB(encoding=3, text=vals["album"]))
        if "albumartist" in vals:
            tags.add(id3.TPE2(encoding=3, text=vals["albumartist"]))
        if "date" in vals:
            tags.add(id3.TDRC(encoding=3, text=vals["date"]))
        if "genre" in vals:
            tags.add(id3.TCON(encoding=3, text=vals["genre"]))
        if "tracknumber" in vals:
            trck = vals["tracknumber"]
            if "tracktotal" in vals:
                trck += "/" + vals["tracktotal"]
            tags.add(id3.TRCK(encoding=3, text=trck))
        if "discnumber" in vals:
            tags.add(id3.TPOS(encoding=3, text=vals["discnumber"]))
        if fmt == "mp3":
            f.save(v2_version=4)
        else:
            f.save()
    elif fmt == "m4a":
        from mutagen.mp4 import MP4

        f = MP4(str(path))
        if f.tags is None:
            f.add_tags()
        m = {
            "title": "\xa9nam",
            "artist": "\xa9ART",
            "album": "\xa9alb",
            "albumartist": "aART",
            "date": "\xa9day",
            "genre": "\xa9gen",
        }
        for k, atom in m.items():
            if k in vals:
                f.tags[atom] = [vals[k]]
        if "tracknumber" in vals:
            f.tags["trkn"] = [(int(vals["tracknumber"]), int(vals.get("tracktotal", 0)))]
        if "discnumber" in vals:
            f.tags["disk"] = [(int(vals["discnumber"]), 0)]
        f.save()
    else:  # pragma: no cover
        raise ValueError(f"no tag writer for {fmt!r}")


# --------------------------------------------------------------------------- public


def _fmt_for(path: Path, fmt: str | None) -> str:
    if fmt is None:
        ext = path.suffix.lower().lstrip(".")
        fmt = _EXT_ALIASES.get(ext, ext)
    fmt = fmt.lower()
    fmt = _EXT_ALIASES.get(fmt, fmt)
    if fmt not in _ENCODERS:
        raise ValueError(f"unsupported audio format {fmt!r}; choose one of {FORMATS}")
    return fmt


def make_track(
    path: str | os.PathLike[str],
    *,
    seconds: float = 3.0,
    sample_rate: int = 22050,
    channels: int = 1,
    freq: float | Sequence[float] = 440.0,
    melody: Sequence[float] | None = None,
    seed: int | None = None,
    amplitude: float = 0.5,
    fmt: str | None = None,
    title: str | None = None,
    artist: str | None = None,
    album: str | None = None,
    album_artist: str | None = None,
    year: int | str | None = None,
    genre: str | None = None,
    track_number: int | None = None,
    track_total: int | None = None,
    disc_number: int | None = None,
) -> Path:
    """Encode a short synthetic clip to ``path`` and tag it; returns the ``Path``.

    The signal is, in order of precedence: ``melody`` (list of Hz played one after
    another), a melody derived from ``seed``, or ``freq`` (one Hz value = sine, a
    sequence = chord). ``fmt`` defaults to the file extension. Parent directories are
    created. ``opus`` is always encoded at 48 kHz regardless of ``sample_rate``;
    ``ogg`` (Vorbis) is always stereo (FFmpeg's native encoder supports only 2 channels).
    """
    p = Path(path)
    fmt = _fmt_for(p, fmt)
    if fmt == "opus":
        sample_rate = 48000
    if channels not in (1, 2):
        raise ValueError("channels must be 1 or 2")
    p.parent.mkdir(parents=True, exist_ok=True)
    samples = _synthesize(seconds, sample_rate, channels, freq, melody, seed, amplitude)
    _encode(p, fmt, samples, sample_rate)
    _write_tags(
        p,
        fmt,
        _tag_values(title, artist, album, album_artist, year, genre, track_number, track_total, disc_number),
    )
    return p


@dataclasses.dataclass(frozen=True)
class LibraryTrack:
    """What :func:`make_library` wrote (the tags are exactly these values)."""

    path: Path
    title: str
    artist: str
    album: str
    album_artist: str
    year: int | None
    genre: str | None
    track_number: int
    track_total: int
    fmt: str
    seconds: float

    @property
    def relpath(self) -> str:
        """Path relative to the artist folder's parent (``Artist/Album/NN Title.ext``)."""
        return "/".join(self.path.parts[-3:])


# A small, varied default library: 3 artists, 4 albums, 9 tracks, mixed formats.
DEFAULT_LIBRARY: list[dict[str, Any]] = [
    {
        "artist": "Alpha Band",
        "album": "First Light",
        "year": 2001,
        "genre": "Rock",
        "fmt": "flac",
        "tracks": ["Dawn", "Morning Run", "High Noon"],
    },
    {
        "artist": "Alpha Band",
        "album": "Second Wind",
        "year": 2004,
        "genre": "Rock",
        "fmt": "mp3",
        "tracks": ["Gust", "Breeze"],
    },
    {
        "artist": "Beta Ensemble",
        "album": "Quiet Rooms",
        "year": 2010,
        "genre": "Classical",
        "fmt": "ogg",
        "tracks": ["Adagio", "Largo"],
    },
    {
        "artist": "Gamma",
        "album": "Loops",
        "year": 2020,
        "genre": "Electronic",
        "fmt": "m4a",
        "tracks": ["Loop One", "Loop Two"],
    },
]

_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f]')


def _safe(name: str) -> str:
    return _UNSAFE.sub("_", name).strip() or "_"


def make_library(
    root: str | os.PathLike[str],
    spec: Iterable[Mapping[str, Any]] | Mapping[str, Mapping[str, Any]] | None = None,
    *,
    seconds: float = 2.0,
    fmt: str = "flac",
    sample_rate: int = 22050,
    channels: int = 1,
) -> list[LibraryTrack]:
    """Build ``root/Artist/Album/NN Title.ext`` for every album in ``spec``.

    ``spec`` is a list of album dicts (default :data:`DEFAULT_LIBRARY`)::

        {"artist": "A", "album": "X", "year": 2001, "genre": "Rock", "fmt": "flac",
         "album_artist": "A",            # optional, defaults to artist
         "seconds": 2.0,                 # optional per album
         "tracks": ["One", "Two"]        # or an int N (-> "Track 1".. "Track N"),
                                         # or dicts {"title", "artist", "seconds", "seed", "freq"}
        }

    or a nested mapping ``{artist: {album: [titles] | album-dict}}``. Every track gets a
    distinct deterministic melody. Returns the tracks in creation order.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    albums = _normalize_spec(DEFAULT_LIBRARY if spec is None else spec)
    out: list[LibraryTrack] = []
    counter = 0
    for alb in albums:
        artist = str(alb["artist"])
        album = str(alb["album"])
        album_artist = str(alb.get("album_artist") or artist)
        afmt = _fmt_for(Path("x"), alb.get("fmt", fmt))
        ext = afmt
        tracks = alb.get("tracks", 3)
        if isinstance(tracks, int):
            tracks = [f"Track {i}" for i in range(1, tracks + 1)]
        tracks = [t if isinstance(t, Mapping) else {"title": str(t)} for t in tracks]
        total = len(tracks)
        folder = root / _safe(album_artist) / _safe(album)
        for i, t in enumerate(tracks, start=1):
            counter += 1
            title = str(t["title"])
            secs = float(t.get("seconds", alb.get("seconds", seconds)))
            num = int(t.get("track_number", i))
            path = folder / f"{num:02d} {_safe(title)}.{ext}"
            kwargs: dict[str, Any] = {}
            if "freq" in t:
                kwargs["freq"] = t["freq"]
            else:
                kwargs["seed"] = int(t.get("seed", counter * 7919 + hash_str(album)))
            make_track(
                path,
                seconds=secs,
                sample_rate=int(alb.get("sample_rate", sample_rate)),
                channels=int(alb.get("channels", channels)),
                fmt=afmt,
                title=title,
                artist=str(t.get("artist", artist)),
                album=album,
                album_artist=album_artist,
                year=alb.get("year"),
                genre=alb.get("genre"),
                track_number=num,
                track_total=total,
                **kwargs,
            )
            out.append(
                LibraryTrack(
                    path=path,
                    title=title,
                    artist=str(t.get("artist", artist)),
                    album=album,
                    album_artist=album_artist,
                    year=int(alb["year"]) if alb.get("year") else None,
                    genre=alb.get("genre"),
                    track_number=num,
                    track_total=total,
                    fmt=afmt,
                    seconds=secs,
                )
            )
    return out


def hash_str(s: str) -> int:
    """A small stable (non-randomized) hash, for deterministic seeds."""
    h = 0
    for ch in s.encode():
        h = (h * 131 + ch) % 1_000_003
    return h


def _normalize_spec(spec) -> list[Mapping[str, Any]]:
    if isinstance(spec, Mapping):
        albums: list[Mapping[str, Any]] = []
        for artist, by_album in spec.items():
            for album, val in by_album.items():
                if isinstance(val, Mapping):
                    albums.append({"artist": artist, "album": album, **val})
                else:
                    albums.append({"artist": artist, "album": album, "tracks": val})
        return albums
    return list(spec)


# --------------------------------------------------------------------------- bad inputs


def make_empty_file(path: str | os.PathLike[str]) -> Path:
    """A zero-byte file (e.g. ``empty.flac``)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"")
    return p


def make_corrupt_file(
    path: str | os.PathLike[str],
    *,
    fmt: str | None = None,
    keep_bytes: int | None = None,
    garbage_bytes: int = 16384,
    seed: int = 1234,
    **track_kwargs: Any,
) -> Path:
    """A file with a valid audio header followed by random garbage.

    A real tagged track is made first, then everything after ``keep_bytes`` (default:
    the header/metadata plus ~64 bytes of audio data) is replaced by ``garbage_bytes``
    of random bytes. Tag readers usually still parse it; decoders fail or produce
    only noise/short output.
    """
    p = Path(path)
    fmt = _fmt_for(p, fmt)
    track_kwargs.setdefault("seconds", 1.0)
    track_kwargs.setdefault("title", "Corrupt")
    make_track(p, fmt=fmt, **track_kwargs)
    data = p.read_bytes()
    if keep_bytes is None:
        keep_bytes = _header_length(p, fmt, data) + 64
    keep_bytes = min(keep_bytes, len(data))
    garbage = np.random.default_rng(seed).integers(0, 256, size=garbage_bytes, dtype=np.uint8).tobytes()
    p.write_bytes(data[:keep_bytes] + garbage)
    return p


def make_truncated_file(
    path: str | os.PathLike[str], *, fraction: float = 0.5, fmt: str | None = None, **track_kwargs: Any
) -> Path:
    """A real track cut after ``fraction`` of its bytes (no garbage)."""
    p = Path(path)
    track_kwargs.setdefault("seconds", 2.0)
    make_track(p, fmt=fmt, **track_kwargs)
    data = p.read_bytes()
    p.write_bytes(data[: max(1, int(len(data) * fraction))])
    return p


def make_non_audio_file(path: str | os.PathLike[str], *, kind: str = "text") -> Path:
    """A file that is not audio at all, whatever its extension says.

    ``kind``: ``"text"`` (plain text), ``"png"`` (a tiny valid PNG image) or ``"random"``.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if kind == "text":
        data = b"This is not audio.\nJust some text pretending to be a song.\n" * 20
    elif kind == "png":
        import struct
        import zlib

        def chunk(tag: bytes, body: bytes) -> bytes:
            return (
                struct.pack(">I", len(body))
                + tag
                + body
                + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)
            )

        raw = b"".join(b"\x00" + b"\xff\x00\x00" * 4 for _ in range(4))
        data = (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b"")
        )
    elif kind == "random":
        data = np.random.default_rng(99).integers(0, 256, size=4096, dtype=np.uint8).tobytes()
    else:
        raise ValueError(f"unknown kind {kind!r}")
    p.write_bytes(data)
    return p


def _header_length(path: Path, fmt: str, data: bytes) -> int:
    """Best-effort byte offset where the audio data starts."""
    try:
        if fmt == "flac":
            # fLaC + metadata blocks; the last block has the high bit set in its header.
            pos = 4
            while pos + 4 <= len(data):
                hdr = data[pos]
                size = int.from_bytes(data[pos + 1 : pos + 4], "big")
                pos += 4 + size
                if hdr & 0x80:
                    return pos
            return 4
        if fmt == "mp3":
            if data[:3] == b"ID3":
                sz = data[6:10]
                return 10 + ((sz[0] << 21) | (sz[1] << 14) | (sz[2] << 7) | sz[3]) + 512
            return 512
        if fmt == "wav":
            idx = data.find(b"data")
            return idx + 8 if idx >= 0 else 44
        if fmt == "m4a":
            # moov is written first (faststart), so everything after mdat's header is audio.
            idx = data.find(b"mdat")
            return idx + 4 if idx >= 0 else 512
        if fmt in ("ogg", "opus"):
            # Header pages (identification, comments, setup) have granule position 0;
            # the audio starts at the first page with a non-zero granule position.
            pos = 0
            while pos + 27 <= len(data) and data[pos : pos + 4] == b"OggS":
                granule = int.from_bytes(data[pos + 6 : pos + 14], "little", signed=True)
                nseg = data[pos + 26]
                body = sum(data[pos + 27 : pos + 27 + nseg])
                if granule not in (0, -1):
                    return pos
                pos += 27 + nseg + body
            return min(len(data), 512)
    except (IndexError, ValueError):  # pragma: no cover - best effort only
        return min(len(data), 512)
    return min(len(data), 512)


# --------------------------------------------------------------------------- decoding


def decode_audio(path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
    """Decode all audio with PyAV: returns (float32 mono samples, sample_rate).

    Raises ``av.FFmpegError`` subclasses (e.g. ``av.InvalidDataError``) or ``ValueError``
    (no audio stream / unknown rate) for files that are not decodable audio.
    """
    import av

    chunks: list[np.ndarray] = []
    with av.open(str(path)) as c:
        if not c.streams.audio:
            raise ValueError(f"{path}: no audio stream")
        stream = c.streams.audio[0]
        rate = stream.codec_context.sample_rate or stream.rate
        if not rate:
            raise ValueError(f"{path}: unknown sample rate")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        for frame in c.decode(stream):
            for rf in resampler.resample(frame):
                chunks.append(rf.to_ndarray().reshape(-1))
        for rf in resampler.resample(None):
            chunks.append(rf.to_ndarray().reshape(-1))
    samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    return samples.astype(np.float32, copy=False), int(rate)


def decode_duration(path: str | os.PathLike[str]) -> float:
    """Seconds of audio actually decoded by PyAV (not the container's claim)."""
    samples, rate = decode_audio(path)
    return len(samples) / rate
