"""Subsonic provider against a real Subsonic server (supysonic 0.7.9 on loopback).

supysonic only knows password auth: it refuses the salted token (error 10, "p" missing), so
these tests also exercise the automatic fall-back to ``p=enc:``.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from servers.supysonic import SupysonicServer

from sidecar.providers import MediaProvider, ProviderAuthError, ProviderTooLarge, ProviderUnavailable
from sidecar.providers import subsonic as subsonic_module
from sidecar.providers.subsonic import SubsonicProvider


@pytest.fixture
def library_dir(subsonic_library: tuple[Path, list]) -> tuple[Path, list]:
    return subsonic_library


@pytest.fixture
def server(subsonic_server: SupysonicServer) -> SupysonicServer:
    return subsonic_server


def provider(server: SupysonicServer, password: str | None = None, **kw: object) -> SubsonicProvider:
    return SubsonicProvider(server.base_url, server.user, password or server.password, backoff_s=0.01, **kw)  # type: ignore[arg-type]


async def test_ping_falls_back_to_password_auth(server: SupysonicServer) -> None:
    p = provider(server)
    assert isinstance(p, MediaProvider)
    try:
        assert not p.use_password_auth
        text = await p.ping()
        assert p.use_password_auth, "supysonic refuses tokens: the provider must switch to p=enc:"
        assert "password auth" in text and server.user in text
    finally:
        await p.close()


async def test_wrong_password_is_a_credentials_error(server: SupysonicServer) -> None:
    p = provider(server, password="not-the-password")
    try:
        with pytest.raises(ProviderAuthError) as err:
            await p.list_albums()
        assert "getAlbumList2" in str(err.value) and "wrong user name or password" in str(err.value)
        assert "Subsonic error 40" in str(err.value)
    finally:
        await p.close()


async def test_albums_paged_newest_first(server: SupysonicServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subsonic_module, "PAGE_SIZE", 3)  # force several pages
    p = provider(server)
    try:
        albums = await p.list_albums()
        assert sorted(a.name for a in albums) == ["First Light", "Loops", "Quiet Rooms", "Second Wind"]
        assert len({a.id for a in albums}) == 4
        assert len(await p.list_albums(2)) == 2
        first_two = [a.id for a in albums[:2]]
        assert [a.id for a in await p.list_albums(2)] == first_two
    finally:
        await p.close()


async def test_album_tracks_and_lookup_by_id(server: SupysonicServer, library_dir: tuple[Path, list]) -> None:
    p = provider(server)
    try:
        album = next(a for a in await p.list_albums() if a.name == "First Light")
        tracks = await p.album_tracks(album.id)
        assert [t.title for t in tracks] == ["Dawn", "Morning Run", "High Noon"]
        t = tracks[0]
        assert (t.artist, t.album, t.year, t.genres, t.track_number, t.album_id) == (
            "Alpha Band",
            "First Light",
            2001,
            ("Rock",),
            1,
            album.id,
        )
        assert t.suffix == "flac" and t.duration_s == pytest.approx(1.0, abs=1.0)
        again = await p.get_tracks(
            [tracks[2].item_id, "00000000-0000-0000-0000-000000000000", tracks[0].item_id]
        )
        assert [x.item_id for x in again] == [tracks[2].item_id, tracks[0].item_id]
    finally:
        await p.close()


async def test_audio_download_is_bounded_and_cleaned(
    server: SupysonicServer, library_dir: tuple[Path, list], tmp_path: Path
) -> None:
    root, made = library_dir
    p = provider(server)
    try:
        album = next(a for a in await p.list_albums() if a.name == "Loops")
        track = (await p.album_tracks(album.id))[0]
        original = next(m.path for m in made if m.title == track.title)
        async with p.audio_file(track, tmp_path / "dl") as path:
            assert path.parent == tmp_path / "dl" and path.suffix == ".m4a"
            assert path.read_bytes() == original.read_bytes()
        assert not path.exists()
        small = provider(server, max_download_bytes=1000)
        try:
            with pytest.raises(ProviderTooLarge, match="MAX_DOWNLOAD_MB"):
                async with small.audio_file(track, tmp_path / "dl"):
                    pass
        finally:
            await small.close()
        assert list((tmp_path / "dl").iterdir()) == []
    finally:
        await p.close()


async def test_create_and_replace_playlist(server: SupysonicServer) -> None:
    p = provider(server)
    try:
        tracks = [t for a in await p.list_albums() for t in await p.album_tracks(a.id)]
        pid = await p.create_playlist("Sonic mix", [t.item_id for t in tracks[:3]])
        body = await p.call("getPlaylist", {"id": pid})
        assert [e["id"] for e in body["playlist"]["entry"]] == [t.item_id for t in tracks[:3]]
        assert await p.create_playlist("Sonic mix", [tracks[5].item_id], replace_id=pid) == pid
        body = await p.call("getPlaylist", {"id": pid})
        assert [e["id"] for e in body["playlist"]["entry"]] == [tracks[5].item_id]
    finally:
        await p.close()


async def test_delete_playlist_and_already_gone(server: SupysonicServer) -> None:
    p = provider(server)
    try:
        tracks = [t for a in await p.list_albums() for t in await p.album_tracks(a.id)]
        pid = await p.create_playlist("Gone soon_automatic", [t.item_id for t in tracks[:2]])
        await p.delete_playlist(pid, "Gone soon_automatic")
        names = [pl["name"] for pl in (await p.call("getPlaylists"))["playlists"].get("playlist") or []]
        assert "Gone soon_automatic" not in names
        await p.delete_playlist(pid, "Gone soon_automatic")  # error 70 (not found): counts as deleted
    finally:
        await p.close()


async def test_dead_server_is_reported_after_retries() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    p = SubsonicProvider(f"http://127.0.0.1:{port}", "u", "p", retries=2, backoff_s=0.01, timeout_s=2)
    try:
        with pytest.raises(ProviderUnavailable) as err:
            await p.ping()
        msg = str(err.value)
        assert msg.startswith("Subsonic: ping: cannot reach http://127.0.0.1:") and "after 3 attempts" in msg
    finally:
        await p.close()
