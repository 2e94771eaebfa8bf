"""Real music for bench/analysis.py: freely licensed game soundtracks from Debian packages, fetched
with ``apt-get download`` + ``dpkg -x`` into a cache folder outside the repository (nothing is
committed), plus the files the benchmark makes from them (a 60-minute file, a warm-up clip).

Layout of the cache (default ``~/.cache/audiomuse-bench``)::

    music/debs/<package>_<version>_all.deb
    music/<package>/...            the package's files (extracted once; ``.complete`` marks it)
    long/<minutes>min.flac         corpus tracks concatenated (44.1 kHz stereo, 16-bit FLAC)
    warmup.wav                     a 10-second synthetic clip, analysed once per process
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sidecar.ml import audio as sidecar_audio  # noqa: E402

#: Debian packages with real tracks (see ../shared/README.md): the small set, and what "large" adds
CORPORA: dict[str, tuple[str, ...]] = {
    "small": ("zaz-data", "neverball-common", "funnyboat"),
    "large": ("zaz-data", "neverball-common", "funnyboat", "blobwars-data", "singularity-music"),
}
MIN_TRACK_SECONDS = 60.0

# First bytes of the audio files these packages hold (some have no extension, e.g. blobwars-data)
_AUDIO_MAGIC = (b"OggS", b"fLaC", b"ID3", b"RIFF", b"\xff\xfb", b"\xff\xf3", b"\xff\xf2")


@dataclass(frozen=True)
class Track:
    path: Path
    package: str
    seconds: float

    @property
    def name(self) -> str:
        return f"{self.package}/{self.path.name}"

    @property
    def minutes(self) -> float:
        return self.seconds / 60.0


def fetch_package(package: str, music_dir: Path) -> Path:
    """The package's files, extracted under ``music_dir/<package>`` (downloaded the first time)."""
    dest = music_dir / package
    if (dest / ".complete").exists():
        return dest
    debs = music_dir / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    deb = _download(package, debs)
    shutil.rmtree(dest, ignore_errors=True)
    subprocess.run(["dpkg", "-x", str(deb), str(dest)], check=True)
    (dest / ".complete").touch()
    return dest


def _download(package: str, debs: Path) -> Path:
    """The package's .deb in ``debs``; downloaded when missing (after ``apt-get update`` if needed)."""
    cached = sorted(debs.glob(f"{package}_*.deb"))
    if cached:
        return cached[-1]
    print(f"  fetching {package} (apt-get download)", file=sys.stderr)
    failed = _apt_get_download(package, debs)
    if failed:  # no or stale package lists
        print(f"  apt-get download failed ({failed}): running apt-get update", file=sys.stderr)
        subprocess.run(["apt-get", "update"], check=True, stdout=subprocess.DEVNULL)
        failed = _apt_get_download(package, debs)
    cached = sorted(debs.glob(f"{package}_*.deb"))
    if failed or not cached:
        raise RuntimeError(f"apt-get download {package} failed: {failed or 'no .deb written'}")
    return cached[-1]


def _apt_get_download(package: str, debs: Path) -> str:
    """Run ``apt-get download``; its error message, or "" when it worked."""
    res = subprocess.run(["apt-get", "download", package], cwd=debs, capture_output=True, text=True)
    if res.returncode == 0:
        return ""
    return (res.stderr.strip().splitlines() or [f"exit status {res.returncode}"])[-1]


def _looks_like_audio(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(4)
    except OSError:
        return False
    return head.startswith(_AUDIO_MAGIC)


def package_tracks(package: str, root: Path, min_seconds: float = MIN_TRACK_SECONDS) -> list[Track]:
    """The package's audio files lasting at least ``min_seconds`` (by the container's duration)."""
    tracks = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        if not _looks_like_audio(path):
            continue
        try:
            seconds = sidecar_audio.probe(path).duration
        except sidecar_audio.AudioDecodeError:
            continue
        if seconds is not None and seconds >= min_seconds:
            tracks.append(Track(path, package, seconds))
    return tracks


def load_corpus(name: str, music_dir: Path) -> list[Track]:
    """Every track of at least a minute in the corpus ``name`` (see :data:`CORPORA`)."""
    tracks: list[Track] = []
    for package in CORPORA[name]:
        tracks += package_tracks(package, fetch_package(package, music_dir))
    if not tracks:
        raise RuntimeError(f"no track of {MIN_TRACK_SECONDS:.0f} s or more in {CORPORA[name]}")
    return tracks


def make_long_file(tracks: list[Track], dest_dir: Path, minutes: int = 60) -> Path:
    """``minutes`` of the corpus' 44.1 kHz stereo tracks played one after the other (looping over
    them), as a 16-bit FLAC file; made once, streamed in one-second blocks."""
    path = dest_dir / f"{minutes}min.flac"
    if path.exists():
        return path
    rate, channels = 44100, 2
    sources = [t for t in tracks if sf.info(str(t.path)).samplerate == rate]
    if not sources:
        raise RuntimeError("no 44.1 kHz track in the corpus to build the long file from")
    dest_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    remaining = minutes * 60 * rate
    with sf.SoundFile(
        str(tmp), "w", samplerate=rate, channels=channels, format="FLAC", subtype="PCM_16"
    ) as out:
        for block in _looping_blocks(sources, rate):
            block = block[:remaining]
            if block.shape[1] != channels:  # mono source: the same signal on both sides
                block = np.repeat(block[:, :1], channels, axis=1)
            out.write(block)
            remaining -= block.shape[0]
            if remaining <= 0:
                break
    tmp.rename(path)
    return path


def _looping_blocks(tracks: list[Track], blocksize: int) -> Iterator[np.ndarray]:
    """The tracks' samples (float32, [frames, channels]) in blocks, one track after the other, forever."""
    while True:
        for track in tracks:
            yield from sf.blocks(str(track.path), blocksize=blocksize, dtype="float32", always_2d=True)


def make_warmup_clip(path: Path, seconds: float = 10.0) -> Path:
    """A deterministic 10-second 44.1 kHz stereo clip (chord, bass and clicks at 120 BPM)."""
    if path.exists():
        return path
    rate = 44100
    t = np.arange(int(seconds * rate)) / rate
    chord = sum(np.sin(2 * np.pi * f * t) for f in (261.63, 329.63, 392.0)) / 3
    bass = np.sin(2 * np.pi * 65.41 * t)
    clicks = np.where((t % 0.5) < 0.01, np.random.default_rng(0).standard_normal(t.shape[0]), 0.0)
    mono = 0.3 * chord + 0.3 * bass + 0.3 * clicks
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.stack([mono, mono], axis=1).astype(np.float32), rate, subtype="PCM_16")
    return path
