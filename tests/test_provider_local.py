"""Local-folder provider on a folder of real, tagged audio files."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import socket
import threading
import time
from pathlib import Path

import pytest
from audio_factory import DEFAULT_LIBRARY, make_library, make_non_audio_file, make_track

from sidecar.providers import MediaProvider, ProviderError, ProviderNotFound, local
from sidecar.providers.base import ProviderRefused
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
    assert (t.artist, t.album, t.album_artist, t.year, t.genres, t.track_number) == (
        "Alpha Band",
        "First Light",
        "Alpha Band",
        2001,
        ("Rock",),
        1,
    )
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
    assert text[:3] == ["#EXTM3U", "#AUDIOMUSE-SIDECAR", "#PLAYLIST:Night / Drive: mix"]
    entries = [line for line in text if not line.startswith("#")]
    assert [(path.parent / e).resolve() for e in entries] == [
        Path(t.file_path or "").resolve() for t in tracks[:3]
    ]
    assert "/" not in pid and ":" not in pid
    same = await p.create_playlist("Night / Drive: mix", [tracks[4].item_id], replace_id=pid)
    assert same == pid
    assert [line for line in path.read_text().splitlines() if not line.startswith("#")] == [
        os.path.relpath(tracks[4].file_path or "", path.parent)
    ]
    with pytest.raises(ProviderNotFound):
        await p.create_playlist("bad", ["nope"])
    # the playlist folder inside the music folder is not scanned as music
    assert len([t for a in await p.list_albums() for t in await p.album_tracks(a.id)]) == 9


async def test_delete_removes_only_our_own_playlist_files(library: tuple[Path, list]) -> None:
    root, _ = library
    p = provider_for(root)
    tracks = [t for a in await p.list_albums() for t in await p.album_tracks(a.id)]
    folder = root / "playlists"
    pid = await p.create_playlist("Night drive_automatic", [tracks[0].item_id])
    await p.delete_playlist(pid, "Night drive_automatic")
    assert not (folder / f"{pid}.m3u8").exists()
    await p.delete_playlist(pid, "Night drive_automatic")  # already gone: deleted, no error
    # a hand-made file under that name, and one of ours now holding another playlist, stay
    hand = folder / "Mine_automatic.m3u8"
    hand.write_text("#EXTM3U\nsomewhere/else.mp3\n")
    other = await p.create_playlist("Other_automatic", [tracks[1].item_id])
    before = (folder / f"{other}.m3u8").read_bytes()
    for stem, name, why in [
        ("Mine_automatic", "Mine_automatic", "was not written by this service"),
        (other, "Renamed_automatic", "now holds the playlist 'Other_automatic'"),
    ]:
        with pytest.raises(ProviderRefused) as err:
            await p.delete_playlist(stem, name)
        assert err.value.status == 409 and why in str(err.value)
    assert hand.read_text() == "#EXTM3U\nsomewhere/else.mp3\n"
    assert (folder / f"{other}.m3u8").read_bytes() == before
    for bad in ("../music", ".hidden", ""):
        with pytest.raises(ProviderRefused):
            await p.delete_playlist(bad, "x")
    # a symlink carrying our name is not followed nor removed
    (folder / "Link_automatic.m3u8").symlink_to(folder / f"{other}.m3u8")
    with pytest.raises(ProviderRefused):
        await p.delete_playlist("Link_automatic", "Other_automatic")
    assert (folder / "Link_automatic.m3u8").is_symlink()


async def test_ping(tmp_path: Path) -> None:
    assert "local folder" in await provider_for(tmp_path).ping()
    with pytest.raises(ProviderError, match="is not a folder"):
        await provider_for(tmp_path / "nope").ping()


# --------------------------------------------------------------------------- issue #10: odd files


@pytest.mark.timeout(30)
async def test_fifos_sockets_and_symlinks_named_like_audio(
    library: tuple[Path, list], tmp_path: Path
) -> None:
    root, made = library
    os.mkfifo(root / "song.flac")  # opening it for reading would wait for a writer forever
    os.mkfifo(tmp_path / "elsewhere.flac")
    (root / "fifo-link.flac").symlink_to(tmp_path / "elsewhere.flac")
    (root / "dangling.flac").symlink_to(tmp_path / "missing.flac")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "s.mp3"))
    (root / "link.flac").symlink_to(made[0].path)  # a symlink to a regular file is a track
    p = provider_for(root)
    try:
        tracks = [t for a in await p.list_albums() for t in await p.album_tracks(a.id)]
        names = sorted(Path(t.file_path or "").name for t in tracks)
        assert len(tracks) == 10 and "link.flac" in names
        assert not {"song.flac", "fifo-link.flac", "dangling.flac", "s.mp3"} & set(names)
        pid = await p.create_playlist("With a fifo around", [t.item_id for t in tracks[:2]])  # rescans too
        assert (root / "playlists" / f"{pid}.m3u8").is_file()
    finally:
        sock.close()


@pytest.mark.timeout(30)
async def test_symlink_loops_list_each_file_once(tmp_path: Path) -> None:
    root = tmp_path / "music"
    make_track(root / "a" / "one.flac", seconds=0.3, title="One", album="A", artist="X")
    make_track(root / "b" / "two.flac", seconds=0.3, title="Two", album="B", artist="X")
    (root / "a" / "loop").symlink_to("..")  # a/loop/a/loop/... is the same folder again
    (root / "b" / "again").symlink_to(root / "a")  # a second way to a folder already walked
    (root / "outside").symlink_to(tmp_path / "extra")  # a folder outside the music folder is walked once
    make_track(tmp_path / "extra" / "three.flac", seconds=0.3, title="Three", album="C", artist="X")
    p = provider_for(root)
    titles = sorted([t.title for a in await p.list_albums() for t in await p.album_tracks(a.id)])
    assert titles == ["One", "Three", "Two"]


async def test_a_scan_that_hangs_fails_naming_the_folder(
    library: tuple[Path, list], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = library
    release = threading.Event()
    real_read = local.read_track

    def stuck(root_: Path, path: str):  # like a stat or read on a dead network mount
        release.wait(20)
        return real_read(root_, path)

    monkeypatch.setattr(local, "read_track", stuck)
    p = LocalProvider(root, root / "playlists", scan_timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(ProviderError, match=f"{root}: the scan did not finish within 0.5 s"):
        await p.list_albums()
    assert time.monotonic() - started < 3
    with pytest.raises(ProviderError, match="did not finish"):  # joins the stuck scan, starts no other
        await p.rescan()
    release.set()
    monkeypatch.setattr(local, "read_track", real_read)
    for _ in range(50):  # the stuck thread ends; the next scan is a fresh one
        await asyncio.sleep(0.05)
        try:
            assert len(await p.list_albums()) == 4
            break
        except ProviderError:
            continue
    else:
        pytest.fail("the provider did not recover after the file system answered again")


async def test_a_slow_scan_stops_at_its_deadline(
    library: tuple[Path, list], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = library
    real_read = local.read_track

    def slow(root_: Path, path: str):
        time.sleep(0.2)
        return real_read(root_, path)

    monkeypatch.setattr(local, "read_track", slow)
    p = LocalProvider(root, root / "playlists", scan_timeout_s=0.5)
    with pytest.raises(ProviderError, match="scan music folder: .*did not finish within 0.5 s"):
        await p.rescan()
    for _ in range(100):  # the scan thread gives up by itself at its deadline, between two files
        if not any(t.name == "local-scan" for t in threading.enumerate()):
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the scan thread went on past its deadline")
    monkeypatch.setattr(local, "read_track", real_read)
    assert len(await p.list_albums()) == 4


@pytest.mark.timeout(30)
async def test_audio_file_refuses_what_is_no_longer_a_regular_file(
    library: tuple[Path, list], tmp_path: Path
) -> None:
    root, _ = library
    p = provider_for(root)
    album = (await p.list_albums())[0]
    track = (await p.album_tracks(album.id))[0]
    path = Path(track.file_path or "")
    path.unlink()
    os.mkfifo(path)
    with pytest.raises(ProviderNotFound, match="is not a regular file any more"):
        async with p.audio_file(track, tmp_path / "temp"):
            pass


async def test_audio_file_finds_the_file_by_id(library: tuple[Path, list], tmp_path: Path) -> None:
    root, _ = library
    track = (await provider_for(root).album_tracks((await provider_for(root).list_albums())[0].id))[0]
    fresh = provider_for(root)  # e.g. a worker given a Track built from the database
    lying = dataclasses.replace(track, file_path="/etc/passwd")
    async with fresh.audio_file(lying, tmp_path / "temp") as path:
        assert path == Path(track.file_path or "")
    with pytest.raises(ProviderNotFound, match="no such file in the music folder"):
        async with fresh.audio_file(dataclasses.replace(track, item_id="0" * 32), tmp_path / "temp"):
            pass


# --------------------------------------------------------------------------- issue #10: odd names and tags


def _is_db_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


async def test_non_utf8_file_names(tmp_path: Path) -> None:
    root = tmp_path / "music"
    made = make_track(root / "plain.flac", seconds=0.3)  # untagged: the title is the file name
    folder = os.path.join(os.fsencode(root), b"Caf\xe9")
    os.mkdir(folder)
    raw = os.path.join(folder, b"\xff\xfe.flac")
    os.rename(made, raw)
    p = provider_for(root)
    tracks = [t for a in await p.list_albums() for t in await p.album_tracks(a.id)]
    assert len(tracks) == 1
    t = tracks[0]
    assert t.item_id == hashlib.md5(b"Caf\xe9/\xff\xfe.flac").hexdigest()  # the id of earlier versions
    assert all(_is_db_text(s) for s in (t.file_path or "", t.title, t.album, t.album_artist, t.artist))
    assert t.title == "\ufffd\ufffd" and t.album == "Caf\ufffd"
    async with p.audio_file(t, tmp_path / "temp") as path:
        assert os.fsencode(path) == raw and path.is_file()
    pid = await p.create_playlist("odd names", [t.item_id])
    m3u = os.path.join(os.fsencode(root), b"playlists", f"{pid}.m3u8".encode())
    with open(m3u, "rb") as f:
        entry = f.read().splitlines()[-1]
    assert os.path.samefile(os.path.join(os.path.dirname(m3u), entry), raw)


async def test_nul_characters_in_tags_are_dropped(tmp_path: Path) -> None:
    root = tmp_path / "music"
    make_track(
        root / "x.flac",
        seconds=0.3,
        title="Ti\x00tle",
        artist="Ar\x00tist",
        album="Al\x00bum",
        album_artist="Album\x00 Artist",
        genre="Ro\x00ck",
        year="1999",
    )
    p = provider_for(root)
    (t,) = [t for a in await p.list_albums() for t in await p.album_tracks(a.id)]
    assert (t.title, t.artist, t.album, t.album_artist, t.genres) == (
        "Title",
        "Artist",
        "Album",
        "Album Artist",
        ("Rock",),
    )
    assert (await p.list_albums())[0].name == "Album"
