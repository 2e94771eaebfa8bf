"""Local-folder provider on a folder of real, tagged audio files."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from audio_factory import DEFAULT_LIBRARY, make_library, make_non_audio_file, make_track

from sidecar.providers import MediaProvider, ProviderNotFound
from sidecar.providers.local import LocalProvider


@pytest.fixture
def library(tmp_path: Path) -> tuple[Path, list]:
    root = tmp_path / "music"
    tracks = make_library(root, DEFAULT_LIBRARY, seconds=1.0)
    # give albums distinct "date added" (mtime): Gamma newest, First Light oldest
    base = time.time() - 10_000
    order = {"First Light": 0, "Second Wind": 1, "Quiet Rooms": 2, "Loops": 3}
    for t in tracks:
        stamp = base + 1000 * order[t.album] + (t.track_number or 0)
        os.utime(t.path, (stamp, stamp))
    return root, tracks


def provider_for(root: Path) -> LocalProvider:
    return LocalProvider(root, root / "playlists")


def test_conforms_to_the_interface(tmp_path: Path) -> None:
    assert isinstance(provider_for(tmp_path), MediaProvider)


async def test_albums_newest_first_with_limit(library: tuple[Path, list]) -> None:
    root, _ = library
    p = provider_for(root)
    albums = await p.list_albums()
    assert [a.name for a in albums] == ["Loops", "Quiet Rooms", "Second Wind", "First Light"]
    assert [a.track_count for a in albums] == [2, 2, 2, 3]
    assert albums[0].artist == "Gamma" and albums[0].year == 2020
    assert [a.name for a in await p.list_albums(2)] == ["Loops", "Quiet Rooms"]


async def test_album_tracks_carry_tags(library: tuple[Path, list]) -> None:
    root, made = library
    p = provider_for(root)
    first_light = next(a for a in await p.list_albums() if a.name == "First Light")
    tracks = await p.album_tracks(first_light.id)
    assert [t.title for t in tracks] == ["Dawn", "Morning Run", "High Noon"]
    t = tracks[0]
    assert (t.artist, t.album, t.album_artist, t.year, t.genres, t.track_number) == \
        ("Alpha Band", "First Light", "Alpha Band", 2001, ("Rock",), 1)
    assert t.duration_s == pytest.approx(1.0, abs=0.1)
    assert len(t.item_id) == 32 and int(t.item_id, 16) >= 0
    assert t.suffix == "flac" and Path(t.file_path or "").is_file()
    with pytest.raises(ProviderNotFound):
        await p.album_tracks("0" * 32)


async def test_ids_are_stable_across_instances_and_rescans(library: tuple[Path, list]) -> None:
    root, _ = library
    a, b = provider_for(root), provider_for(root)
    ids_a = {(al.id, t.item_id) for al in await a.list_albums() for t in await a.album_tracks(al.id)}
    ids_b = {(al.id, t.item_id) for al in await b.list_albums() for t in await b.album_tracks(al.id)}
    assert ids_a == ids_b and len(ids_a) == 9
    got = await b.get_tracks([i for _, i in sorted(ids_a)][:3] + ["missing"])
    assert [t.item_id for t in got] == [i for _, i in sorted(ids_a)][:3]


async def test_untagged_extensionless_and_non_audio_files(tmp_path: Path) -> None:
    root = tmp_path / "music"
    make_track(root / "loose" / "untitled.flac", seconds=0.5)  # no tags at all
    noext = make_track(root / "game" / "track01.ogg", seconds=0.5, title="Level 1", artist="Composer")
    noext.rename(root / "game" / "track01")  # Debian game packages ship files like this
    make_non_audio_file(root / "loose" / "notes.mp3", kind="text")  # known extension, not audio
    make_non_audio_file(root / "loose" / "README", kind="text")
    (root / "loose" / "cover.jpg").write_bytes(b"\xff\xd8\xff")
    p = provider_for(root)
    albums = await p.list_albums()
    tracks = {t.title: t for a in albums for t in await p.album_tracks(a.id)}
    assert set(tracks) == {"untitled", "Level 1", "notes"}
    assert tracks["untitled"].album == "loose"  # folder name stands in for the album
    assert tracks["Level 1"].artist == "Composer" and tracks["Level 1"].suffix is None
    # a file with an audio extension that is not audio is listed, so analysis can record why it failed
    assert tracks["notes"].duration_s is None


async def test_audio_file_is_the_original_and_is_kept(library: tuple[Path, list], tmp_path: Path) -> None:
    root, _ = library
    p = provider_for(root)
    album = (await p.list_albums())[0]
    track = (await p.album_tracks(album.id))[0]
    async with p.audio_file(track, tmp_path / "temp") as path:
        assert path == Path(track.file_path or "")
    assert path.is_file()  # never deletes the user's music
    os.remove(path)
    with pytest.raises(ProviderNotFound):
        async with p.audio_file(track, tmp_path / "temp"):
            pass


async def test_playlists_are_m3u8_and_replaceable(library: tuple[Path, list]) -> None:
    root, _ = library
    p = provider_for(root)
    tracks = [t for a in await p.list_albums() for t in await p.album_tracks(a.id)]
    pid = await p.create_playlist("Night / Drive: mix", [t.item_id for t in tracks[:3]])
    path = root / "playlists" / f"{pid}.m3u8"
    text = path.read_text(encoding="utf-8").splitlines()
    assert text[0] == "#EXTM3U" and text[1] == "#PLAYLIST:Night / Drive: mix"
    entries = [line for line in text if not line.startswith("#")]
    assert [(path.parent / e).resolve() for e in entries] == [Path(t.file_path or "").resolve() for t in tracks[:3]]
    assert "/" not in pid and ":" not in pid
    same = await p.create_playlist("Night / Drive: mix", [tracks[4].item_id], replace_id=pid)
    assert same == pid
    assert [line for line in path.read_text().splitlines() if not line.startswith("#")] == \
        [os.path.relpath(tracks[4].file_path or "", path.parent)]
    with pytest.raises(ProviderNotFound):
        await p.create_playlist("bad", ["nope"])
    # the playlist folder inside the music folder is not scanned as music
    assert len([t for a in await p.list_albums() for t in await p.album_tracks(a.id)]) == 9


async def test_ping(tmp_path: Path) -> None:
    assert "local folder" in await provider_for(tmp_path).ping()
    from sidecar.providers import ProviderError

    with pytest.raises(ProviderError, match="is not a folder"):
        await provider_for(tmp_path / "nope").ping()
