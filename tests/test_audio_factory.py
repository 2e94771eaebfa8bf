"""The audio factory makes real, decodable, tagged files (and realistic bad ones)."""

from __future__ import annotations

import time

import av
import mutagen
import numpy as np
import pytest
from audio_factory import (
    DEFAULT_LIBRARY,
    FORMATS,
    decode_audio,
    decode_duration,
    make_corrupt_file,
    make_empty_file,
    make_library,
    make_non_audio_file,
    make_track,
    make_truncated_file,
    melody_from_seed,
)

# Lossy codecs add encoder delay/padding; PyAV trims most of it.
TOLERANCE = {"flac": 0.01, "wav": 0.01, "ogg": 0.05, "opus": 0.05, "mp3": 0.1, "m4a": 0.1}

TAGS = {
    "title": "Tïtle ünïcode",
    "artist": "The Artist",
    "album": "An Album",
    "album_artist": "Various",
    "year": 1999,
    "genre": "Jazz",
    "track_number": 3,
    "track_total": 12,
}


def easy_tags(path) -> dict[str, list[str]]:
    f = mutagen.File(path, easy=True)
    assert f is not None, f"mutagen cannot identify {path}"
    if f.tags is None:  # pragma: no cover
        return {}
    if hasattr(f.tags, "getall"):  # WAVE: raw ID3 frames
        m = {
            "TIT2": "title",
            "TPE1": "artist",
            "TALB": "album",
            "TPE2": "albumartist",
            "TDRC": "date",
            "TCON": "genre",
            "TRCK": "tracknumber",
        }
        return {m[k]: [str(x) for x in v.text] for k, v in f.tags.items() if k in m}
    return {k: list(v) for k, v in f.tags.items()}


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("fmt", FORMATS)
def test_make_track_decodes_with_right_duration_and_tags(tmp_path, fmt, channels):
    path = make_track(tmp_path / f"t.{fmt}", seconds=1.5, channels=channels, seed=5, **TAGS)
    assert path.exists() and path.stat().st_size > 500

    samples, rate = decode_audio(path)
    assert abs(len(samples) / rate - 1.5) <= TOLERANCE[fmt]
    assert rate == (48000 if fmt == "opus" else 22050)
    assert 0.05 < float(np.max(np.abs(samples))) <= 1.0  # real signal, not silence

    with av.open(str(path)) as c:
        expected_channels = 2 if fmt == "ogg" else channels  # native Vorbis encoder: stereo only
        assert c.streams.audio[0].codec_context.channels == expected_channels

    tags = easy_tags(path)
    assert tags["title"] == [TAGS["title"]]
    assert tags["artist"] == ["The Artist"]
    assert tags["album"] == ["An Album"]
    assert tags["albumartist"] == ["Various"]
    assert tags["date"] == ["1999"]
    assert tags["genre"] == ["Jazz"]
    assert tags["tracknumber"][0] in ("3", "3/12")

    info = mutagen.File(path).info
    assert abs(info.length - 1.5) <= 0.1


def test_format_inferred_from_extension_and_unknown_rejected(tmp_path):
    p = make_track(tmp_path / "x.mp3", seconds=0.5)
    assert type(mutagen.File(p)).__name__ == "MP3"
    p = make_track(tmp_path / "x.oga", seconds=0.5)
    assert type(mutagen.File(p)).__name__ == "OggVorbis"
    with pytest.raises(ValueError):
        make_track(tmp_path / "x.wma", seconds=0.5)
    with pytest.raises(ValueError):
        make_track(tmp_path / "x.bin", seconds=0.5, fmt="aiff")


def test_m4a_is_faststart(tmp_path):
    data = make_track(tmp_path / "x.m4a", seconds=0.5).read_bytes()
    assert 0 <= data.find(b"moov") < data.find(b"mdat")


def test_sine_frequency_and_chord(tmp_path):
    samples, rate = decode_audio(make_track(tmp_path / "a.wav", seconds=1.0, freq=440.0))
    spec = np.abs(np.fft.rfft(samples))
    peak_hz = np.argmax(spec) * rate / len(samples)
    assert abs(peak_hz - 440.0) < 2.0

    samples, rate = decode_audio(make_track(tmp_path / "c.wav", seconds=1.0, freq=[261.63, 329.63, 392.0]))
    spec = np.abs(np.fft.rfft(samples))
    freqs = np.fft.rfftfreq(len(samples), 1 / rate)
    top3 = sorted(freqs[np.argsort(spec)[-3:]])
    assert np.allclose(top3, [261.63, 329.63, 392.0], atol=2.0)


def test_seeded_melodies_are_deterministic_and_distinct(tmp_path):
    assert melody_from_seed(1) == melody_from_seed(1)
    assert melody_from_seed(1) != melody_from_seed(2)
    a, _ = decode_audio(make_track(tmp_path / "a.flac", seconds=1.0, seed=1))
    b, _ = decode_audio(make_track(tmp_path / "b.flac", seconds=1.0, seed=1))
    c, _ = decode_audio(make_track(tmp_path / "c.flac", seconds=1.0, seed=2))
    assert np.array_equal(a, b)
    assert not np.allclose(a, c, atol=1e-3)
    m, _ = decode_audio(make_track(tmp_path / "m.flac", seconds=1.0, melody=[220.0, 880.0]))
    assert len(m) == 22050


def test_make_library_default(tmp_path):
    t0 = time.monotonic()
    tracks = make_library(tmp_path / "music")
    elapsed = time.monotonic() - t0
    assert elapsed < 10, elapsed
    assert len(tracks) == sum(len(a["tracks"]) for a in DEFAULT_LIBRARY)
    assert {(t.artist, t.album) for t in tracks} == {(a["artist"], a["album"]) for a in DEFAULT_LIBRARY}
    first = tracks[0]
    assert first.relpath == "Alpha Band/First Light/01 Dawn.flac"
    assert first.path == tmp_path / "music" / "Alpha Band" / "First Light" / "01 Dawn.flac"
    for t in tracks:
        assert t.path.exists()
        assert t.path.suffix == "." + t.fmt
        tags = easy_tags(t.path)
        assert tags["title"] == [t.title]
        assert tags["album"] == [t.album]
        assert tags["artist"] == [t.artist]
        assert tags["tracknumber"][0].split("/")[0] == str(t.track_number)
        assert abs(decode_duration(t.path) - t.seconds) <= TOLERANCE[t.fmt]
    # every track sounds different
    heads = {decode_audio(t.path)[0][:2000].round(2).tobytes() for t in tracks if t.fmt == "flac"}
    assert len(heads) == 3


def test_make_library_nested_mapping_and_overrides(tmp_path):
    tracks = make_library(
        tmp_path,
        {
            "Solo": {
                "One": ["a", "b/c"],
                "Two": {"tracks": 2, "fmt": "wav", "year": 1990, "seconds": 0.5},
            },
        },
        seconds=0.5,
    )
    assert [t.relpath for t in tracks] == [
        "Solo/One/01 a.flac",
        "Solo/One/02 b_c.flac",
        "Solo/Two/01 Track 1.wav",
        "Solo/Two/02 Track 2.wav",
    ]
    assert tracks[1].title == "b/c" and easy_tags(tracks[1].path)["title"] == ["b/c"]
    assert tracks[2].year == 1990 and easy_tags(tracks[2].path)["date"] == ["1990"]


def test_make_library_album_artist_and_track_dicts(tmp_path):
    tracks = make_library(
        tmp_path,
        [
            {
                "artist": "X",
                "album": "Comp",
                "album_artist": "Various Artists",
                "fmt": "mp3",
                "seconds": 0.5,
                "tracks": [{"title": "Song", "artist": "Guest", "freq": 300.0}, "Other"],
            }
        ],
    )
    assert tracks[0].relpath == "Various Artists/Comp/01 Song.mp3"
    tags = easy_tags(tracks[0].path)
    assert tags["artist"] == ["Guest"] and tags["albumartist"] == ["Various Artists"]
    assert easy_tags(tracks[1].path)["artist"] == ["X"]


def test_empty_file(tmp_path):
    p = make_empty_file(tmp_path / "empty.flac")
    assert p.stat().st_size == 0
    with pytest.raises((mutagen.MutagenError, OSError)):
        mutagen.File(p)
    with pytest.raises((av.FFmpegError, ValueError)):
        decode_audio(p)


@pytest.mark.parametrize("fmt", ["flac", "mp3", "ogg", "m4a", "opus"])
def test_corrupt_file_has_readable_header_but_bad_audio(tmp_path, fmt):
    p = make_corrupt_file(tmp_path / f"bad.{fmt}", seconds=1.0)
    f = mutagen.File(p, easy=True)
    assert f is not None and f.tags["title"] == ["Corrupt"]  # header and tags intact
    try:
        decoded = decode_duration(p)
    except (av.FFmpegError, EOFError):
        return
    assert decoded < 0.5  # only a fragment decodes (FLAC resyncs past garbage)


def test_corrupt_wav_decodes_noise(tmp_path):
    # WAV has no framing: garbage after the header decodes as (noise) PCM; ID3 chunk is lost.
    p = make_corrupt_file(tmp_path / "bad.wav", seconds=1.0, garbage_bytes=4410)
    assert abs(decode_duration(p) - 0.1) < 0.02


@pytest.mark.parametrize("fmt", ["flac", "mp3", "ogg", "m4a"])
def test_truncated_file(tmp_path, fmt):
    p = make_truncated_file(tmp_path / f"cut.{fmt}", seconds=2.0, fraction=0.5)
    try:
        decoded = decode_duration(p)
    except (av.FFmpegError, EOFError):
        return
    assert decoded < 1.5


@pytest.mark.parametrize("kind,name", [("text", "song.mp3"), ("png", "cover.flac"), ("random", "noise.ogg")])
def test_non_audio_file(tmp_path, kind, name):
    p = make_non_audio_file(tmp_path / name, kind=kind)
    assert p.stat().st_size > 0
    try:
        assert mutagen.File(p) is None
    except mutagen.MutagenError:
        pass
    with pytest.raises((av.FFmpegError, ValueError)):
        decode_audio(p)
