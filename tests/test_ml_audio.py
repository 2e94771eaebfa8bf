"""Decoding to 16 kHz mono float32: every format, odd inputs, precise failures, bounded memory."""

from __future__ import annotations

import struct
import tracemalloc
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
from audio_factory import (
    FORMATS,
    make_corrupt_file,
    make_empty_file,
    make_non_audio_file,
    make_track,
    make_truncated_file,
)

from sidecar.ml import features
from sidecar.ml.audio import (
    SAMPLE_RATE,
    AudioDecodeError,
    decode,
    decode_excerpts,
    excerpt_starts,
    load_for_analysis,
    probe,
)


def dominant_hz(y: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    spec = np.abs(np.fft.rfft(y * np.hanning(y.shape[0])))
    return float(np.argmax(spec) * sr / y.shape[0])


def reason_of(path: Path, **kwargs: object) -> str:
    with pytest.raises(AudioDecodeError) as info:
        decode(path, **kwargs)  # type: ignore[arg-type]
    assert str(info.value).startswith(info.value.reason)
    return info.value.reason


# --------------------------------------------------------------------------- formats


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_decodes_to_16k_mono(tmp_path: Path, fmt: str) -> None:
    path = make_track(tmp_path / f"a.{fmt}", seconds=4.0, sample_rate=44100, channels=2, freq=440.0)
    out = decode(path)
    assert out.sample_rate == SAMPLE_RATE
    assert out.samples.dtype == np.float32 and out.samples.ndim == 1
    assert out.seconds == pytest.approx(4.0, abs=0.05)
    assert out.complete and not out.damaged and out.decode_errors == 0
    assert out.segments == ((0.0, 0, out.samples.shape[0]),)
    assert out.info.sample_rate == (48000 if fmt == "opus" else 44100)
    assert out.info.channels == 2
    assert out.info.duration == pytest.approx(4.0, abs=0.05)
    assert dominant_hz(out.samples) == pytest.approx(440.0, abs=1.0)
    assert 0.2 < float(np.sqrt(np.mean(out.samples**2))) < 0.5


@pytest.mark.parametrize("fmt", ["flac", "wav"])
def test_lossless_decode_equals_librosa_load(tmp_path: Path, fmt: str) -> None:
    """Same down-mix (channel mean) and resampler (soxr HQ) as the seed's librosa.load(sr=16000)."""
    import librosa

    path = make_track(tmp_path / f"m.{fmt}", seconds=3.5, sample_rate=44100, channels=2, seed=7)
    ref, _ = librosa.load(str(path), sr=SAMPLE_RATE, mono=True)
    out = decode(path).samples
    assert out.shape == ref.shape
    assert float(np.max(np.abs(out - ref))) < 1e-5


@pytest.mark.parametrize("fmt", ["flac", "wav"])
def test_multichannel_8k(tmp_path: Path, fmt: str) -> None:
    sr, seconds = 8000, 4.0
    t = np.arange(int(sr * seconds)) / sr
    tone = 0.4 * np.sin(2 * np.pi * 300.0 * t)
    data = np.stack([tone * (1.0 - 0.1 * c) for c in range(6)], axis=1).astype(np.float32)
    path = tmp_path / f"six.{fmt}"
    sf.write(path, data, sr, subtype="PCM_16")
    out = decode(path)
    assert out.info.channels == 6 and out.info.sample_rate == 8000
    assert out.seconds == pytest.approx(seconds, abs=0.01)
    assert dominant_hz(out.samples) == pytest.approx(300.0, abs=1.0)
    # the channel mean, upsampled: amplitude 0.4 * mean(1.0 .. 0.5) = 0.3
    assert float(np.max(np.abs(out.samples[4000:-4000]))) == pytest.approx(0.3, abs=0.01)


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
def test_sample_formats_are_scaled_to_unit_range(tmp_path: Path, subtype: str) -> None:
    sr = 11025  # an odd rate
    t = np.arange(sr * 3) / sr
    tone = (0.5 * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32)
    path = tmp_path / f"{subtype}.wav"
    sf.write(path, np.stack([tone, tone], axis=1), sr, subtype=subtype)
    out = decode(path)
    assert out.seconds == pytest.approx(3.0, abs=0.01)
    assert float(np.max(np.abs(out.samples[2000:-2000]))) == pytest.approx(0.5, abs=0.02)
    assert dominant_hz(out.samples) == pytest.approx(220.0, abs=1.0)


def test_probe_reads_the_header_only(tmp_path: Path) -> None:
    path = make_track(tmp_path / "p.mp3", seconds=3.0, sample_rate=22050)
    info = probe(path)
    assert info.container == "mp3" and info.codec.startswith("mp3")
    assert info.sample_rate == 22050 and info.channels == 1
    assert info.duration == pytest.approx(3.0, abs=0.05) and info.duration_exact  # LAME's Info header


def test_mp3_length_is_exact_only_with_a_xing_header(tmp_path: Path) -> None:
    """Without Xing/Info/VBRI FFmpeg estimates the length from the bitrate: never judged by it."""
    plain = tmp_path / "noxing.mp3"
    _encode(plain, _click_track(6, 22050), 22050, container_options={"write_xing": "0"})
    assert not probe(plain).duration_exact
    # a large ID3 tag (cover art) in front of the Info header
    from mutagen import id3
    from mutagen.mp3 import MP3

    tagged = make_track(tmp_path / "art.mp3", seconds=3.0, title="With cover")
    audio = MP3(tagged)
    assert audio.tags is not None
    audio.tags.add(id3.APIC(encoding=3, mime="image/png", type=3, desc="cover", data=bytes(200_000)))
    audio.save()
    assert probe(tagged).duration_exact


# --------------------------------------------------------------------------- failures


def test_zero_byte_file(tmp_path: Path) -> None:
    assert reason_of(make_empty_file(tmp_path / "empty.flac")) == "empty"


def test_missing_and_directory_are_unreadable(tmp_path: Path) -> None:
    assert reason_of(tmp_path / "missing.mp3") == "unreadable"
    assert reason_of(tmp_path) == "unreadable"


@pytest.mark.parametrize("kind", ["text", "random"])
def test_not_audio(tmp_path: Path, kind: str) -> None:
    assert reason_of(make_non_audio_file(tmp_path / "x.mp3", kind=kind)) == "not_audio"


def test_image_has_no_audio_stream(tmp_path: Path) -> None:
    with pytest.raises(AudioDecodeError) as info:
        decode(make_non_audio_file(tmp_path / "cover.flac", kind="png"))
    assert info.value.reason == "no_audio_stream"
    assert "video" in info.value.detail


@pytest.mark.parametrize("fmt", FORMATS)
def test_corrupt_file(tmp_path: Path, fmt: str) -> None:
    path = make_corrupt_file(tmp_path / f"c.{fmt}", seconds=4.0)
    assert reason_of(path) == "corrupt"


@pytest.mark.parametrize("fmt", ["flac", "mp3", "m4a", "wav"])
def test_badly_truncated_file_is_corrupt(tmp_path: Path, fmt: str) -> None:
    """A header stating 10 s with 3 s left: less than half decoded (Ogg has no length header)."""
    path = make_truncated_file(tmp_path / f"t.{fmt}", seconds=10.0, fraction=0.3)
    with pytest.raises(AudioDecodeError) as info:
        decode(path)
    assert info.value.reason == "corrupt"
    assert "of the 10.0 s the file states" in info.value.detail


def test_slightly_truncated_file_is_kept_and_flagged(tmp_path: Path) -> None:
    path = make_truncated_file(tmp_path / "t.flac", seconds=10.0, fraction=0.8)
    out = decode(path)
    assert out.damaged
    assert 7.0 < out.seconds < 8.5


def test_too_short_and_the_minimum_is_a_parameter(tmp_path: Path) -> None:
    path = make_track(tmp_path / "short.flac", seconds=1.5)
    with pytest.raises(AudioDecodeError) as info:
        decode(path)
    assert info.value.reason == "too_short"
    assert "1.50 s" in info.value.detail
    assert decode(path, min_seconds=1.0).seconds == pytest.approx(1.5, abs=0.01)


@pytest.mark.parametrize("fmt", ["flac", "mp3"])
def test_silent_file_decodes_and_is_detected_as_silent(tmp_path: Path, fmt: str) -> None:
    out = decode(make_track(tmp_path / f"s.{fmt}", seconds=4.0, amplitude=0.0))
    assert out.seconds == pytest.approx(4.0, abs=0.05)
    assert features.is_silent(out.samples)


def _protracker_module() -> bytes:
    title = b"test song".ljust(20, b"\0")
    samples = b"".join(
        f"sample{i}".encode().ljust(22, b"\0") + struct.pack(">HBBHH", 512 if i == 0 else 0, 0, 64, 0, 1)
        for i in range(31)
    )
    header = title + samples + bytes([1, 127]) + bytes(128) + b"M.K."
    pattern = bytearray(64 * 4 * 4)
    for row in range(0, 64, 4):
        pattern[row * 16 : row * 16 + 4] = bytes([0x10, 0xD6, 0x10, 0x00])
    sample = (np.sin(np.arange(1024) * 2 * np.pi / 32) * 100).astype(np.int8).tobytes()
    return header + bytes(pattern) + sample


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("song.mod", _protracker_module()),
        ("renamed.bin", _protracker_module()),  # recognised by content
        ("song.xm", b"Extended Module: test" + bytes(400)),
        ("song.it", b"IMPM" + bytes(400)),
        (
            "song.mid",
            b"MThd" + struct.pack(">IHHH", 6, 0, 1, 96) + b"MTrk" + struct.pack(">I", 4) + b"\0\xff/\0",
        ),
        ("garbage.mod", b"not a module at all, but named like one\n" * 10),  # recognised by name
    ],
)
def test_tracker_modules_and_midi_are_unsupported(tmp_path: Path, name: str, data: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(AudioDecodeError) as info:
        decode(path)
    assert info.value.reason == "unsupported"
    assert "module" in info.value.detail or "MIDI" in info.value.detail


def test_the_pyav_wheel_really_cannot_decode_modules(tmp_path: Path) -> None:
    """The premise of the 'unsupported' reason: FFmpeg in the wheel has no tracker demuxer."""
    path = tmp_path / "song.mod"
    path.write_bytes(_protracker_module())
    assert "libopenmpt" not in av.formats_available
    with pytest.raises(av.FFmpegError):
        av.open(str(path)).close()


# --------------------------------------------------------------------------- partial decoding


@pytest.fixture(scope="module")
def ten_seconds_16k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_track(tmp_path_factory.mktemp("ten") / "ten.flac", seconds=10.0, sample_rate=16000, seed=3)


def test_max_seconds_caps_the_output(ten_seconds_16k: Path) -> None:
    out = decode(ten_seconds_16k, max_seconds=4.0)
    assert out.samples.shape == (4 * SAMPLE_RATE,)
    assert not out.complete
    assert out.segments == ((0.0, 0, 4 * SAMPLE_RATE),)


def test_start_seeks_sample_accurately(ten_seconds_16k: Path) -> None:
    full = decode(ten_seconds_16k).samples
    part = decode(ten_seconds_16k, start=3.0, max_seconds=4.0)
    assert part.segments == ((3.0, 0, 4 * SAMPLE_RATE),)
    np.testing.assert_array_equal(part.samples, full[3 * SAMPLE_RATE : 7 * SAMPLE_RATE])


def test_short_file_is_decoded_whole_by_the_excerpt_functions(ten_seconds_16k: Path) -> None:
    out = decode_excerpts(ten_seconds_16k, count=4, seconds=3.0)  # 12 s of windows > 10 s of file
    assert out.seconds == pytest.approx(10.0) and len(out.segments) == 1
    out = load_for_analysis(ten_seconds_16k)
    assert out.complete and out.seconds == pytest.approx(10.0)


def test_excerpt_starts_are_centred_in_equal_slices() -> None:
    assert excerpt_starts(100.0, 4, 10.0) == [7.5, 32.5, 57.5, 82.5]
    assert excerpt_starts(10.0, 1, 10.0) == [0.0]
    assert excerpt_starts(5.0, 0, 1.0) == []


def _encode(
    path: Path, samples: np.ndarray, rate: int, container_options: dict[str, str] | None = None
) -> None:
    """Mono float32 samples to ``path`` with the codec its extension implies (PyAV)."""
    fmt = path.suffix.lstrip(".")
    container, codec, sample_fmt = {
        "flac": ("flac", "flac", "s16"),
        "wav": ("wav", "pcm_s16le", "s16"),
        "mp3": ("mp3", "libmp3lame", "fltp"),
        "ogg": ("ogg", "vorbis", "fltp"),
        "opus": ("ogg", "libopus", "flt"),
        "m4a": ("ipod", "aac", "fltp"),
    }[fmt]
    channels = 2 if fmt == "ogg" else 1  # FFmpeg's Vorbis encoder wants stereo
    data = np.repeat(samples[None, :], channels, axis=0)
    if sample_fmt == "s16":
        data = np.round(data * 32767).astype(np.int16)
    if not sample_fmt.endswith("p"):
        data = data.T.reshape(1, -1)
    layout = "stereo" if channels == 2 else "mono"
    with av.open(str(path), "w", format=container, container_options=container_options or {}) as out:
        stream = out.add_stream(codec, rate=rate, options={"strict": "experimental"} if fmt == "ogg" else {})
        stream.layout = layout
        stream.format = sample_fmt
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=sample_fmt, layout=layout)
        frame.sample_rate = rate
        frame.pts = 0
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def _click_track(seconds: int, rate: int) -> np.ndarray:
    """A quiet 300 Hz bed with a 2 ms 3 kHz click at every k + 0.25 s."""
    n = seconds * rate
    y = 0.05 * np.sin(2 * np.pi * 300.0 * np.arange(n) / rate)
    length = int(0.002 * rate)
    burst = 0.8 * np.sin(2 * np.pi * 3000.0 * np.arange(length) / rate)
    for k in range(seconds):
        i = int((k + 0.25) * rate)
        y[i : i + length] += burst
    return y.astype(np.float32)


@pytest.mark.parametrize("fmt", FORMATS)
def test_excerpts_are_sample_accurate_in_every_format(tmp_path: Path, fmt: str) -> None:
    rate = 48000 if fmt == "opus" else 22050
    path = tmp_path / f"clicks.{fmt}"
    _encode(path, _click_track(24, rate), rate)
    full = decode(path).samples
    out = decode_excerpts(path, count=4, seconds=2.0)
    assert [s[0] for s in out.segments] == pytest.approx(excerpt_starts(probe(path).duration or 0, 4, 2.0))
    assert out.samples.shape == (4 * 2 * SAMPLE_RATE,) and not out.complete
    for (start, _, _), piece in zip(out.segments, out.pieces(), strict=True):
        # the excerpt lines up with the same stretch of a full decode, to the sample
        at = int(round(start * SAMPLE_RATE))
        assert _best_lag(piece, full, at, 800) == 0, (fmt, start)
        # and with the clicks that were written (codec pre-echo aside: within 10 ms)
        expected = np.ceil(start - 0.25) + 0.25 - start
        found = int(np.argmax(np.abs(piece) > 0.3)) / SAMPLE_RATE
        assert found == pytest.approx(expected, abs=0.01), (fmt, start)


def _best_lag(piece: np.ndarray, full: np.ndarray, at: int, max_lag: int) -> int:
    """The shift of ``piece`` against ``full[at:]`` (within +-max_lag) that matches best."""
    inner = piece[max_lag:-max_lag]
    scores = [
        float(np.dot(inner, full[at + max_lag + lag : at + max_lag + lag + inner.shape[0]]))
        for lag in range(-max_lag, max_lag + 1)
    ]
    return int(np.argmax(scores)) - max_lag


# --------------------------------------------------------------------------- long files, memory


@pytest.fixture(scope="module")
def thirty_minutes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 minutes of 8 kHz mono FLAC; minute m is a sine at 200 + 20 m Hz."""
    sr = 8000
    path = tmp_path_factory.mktemp("long") / "thirty.flac"
    t = np.arange(60 * sr) / sr
    with sf.SoundFile(path, "w", samplerate=sr, channels=1, subtype="PCM_16") as fh:
        for minute in range(30):
            fh.write((0.5 * np.sin(2 * np.pi * (200 + 20 * minute) * t)).astype(np.float32))
    return path


def test_long_file_is_analysed_from_evenly_spaced_excerpts(thirty_minutes: Path) -> None:
    tracemalloc.start()
    try:
        out = load_for_analysis(thirty_minutes, full_seconds=60.0, excerpt_seconds=10.0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    budget = 60 * SAMPLE_RATE * 4  # 3.84 MB; the whole file would be 115 MB
    assert out.samples.nbytes == budget and not out.complete
    assert peak < 2 * budget + 4_000_000
    assert [s[0] for s in out.segments] == pytest.approx(excerpt_starts(1800.0, 6, 10.0))
    for (start, _, _), piece in zip(out.segments, out.pieces(), strict=True):
        minute = int((start + 5.0) // 60)
        assert dominant_hz(piece) == pytest.approx(200 + 20 * minute, abs=0.5)


def test_capped_decode_of_a_long_file_has_bounded_memory(thirty_minutes: Path) -> None:
    tracemalloc.start()
    try:
        out = decode(thirty_minutes, max_seconds=120.0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert out.samples.nbytes == 120 * SAMPLE_RATE * 4 and not out.complete
    assert peak < 2 * out.samples.nbytes + 4_000_000
    assert dominant_hz(out.samples[-SAMPLE_RATE * 30 :]) == pytest.approx(220.0, abs=0.5)


def test_default_policy_excerpts_beyond_fifteen_minutes(thirty_minutes: Path) -> None:
    info = probe(thirty_minutes)
    assert info.duration == pytest.approx(1800.0)
    out = load_for_analysis(thirty_minutes)
    assert len(out.segments) == 30  # 900 s // 30 s
    assert out.seconds == pytest.approx(900.0)
    assert [s[0] for s in out.segments] == pytest.approx(excerpt_starts(1800.0, 30, 30.0))
