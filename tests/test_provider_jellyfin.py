"""Jellyfin provider against the fake Jellyfin, whose every request and response is checked
against Jellyfin 12.0's published OpenAPI document (tests/contracts/jellyfin/)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from audio_factory import make_track
from fakes.jellyfin import FakeJellyfin, FakeTrack

from sidecar.providers import (
    MediaProvider,
    ProviderAuthError,
    ProviderError,
    ProviderTooLarge,
    ProviderUnavailable,
)
from sidecar.providers import jellyfin as jellyfin_module
from sidecar.providers.base import ProviderRefused
from sidecar.providers.jellyfin import JellyfinProvider

ALBUMS = [
    ("Alpha", "First Light", ["Dawn", "Morning Run", "High Noon"], "Rock", 2001),
    ("Beta", "Quiet Rooms", ["Adagio", "Largo"], "Classical", 2010),
    ("Gamma", "Loops", ["Loop One", "Loop Two"], "Electronic", 2020),
    ("Delta", "Last", ["Only"], "Jazz", 2022),
]


@pytest_asyncio.fixture
async def fake(tmp_path: Path) -> AsyncIterator[FakeJellyfin]:
    tracks = []
    base = datetime(2024, 1, 1, tzinfo=UTC)
    for a, (artist, album, titles, genre, year) in enumerate(ALBUMS):
        for i, title in enumerate(titles, 1):
            path = make_track(
                tmp_path / "media" / f"{album}-{i}.flac", seconds=0.5, title=title, artist=artist
            )
            tracks.append(
                FakeTrack.build(
                    title,
                    artist,
                    album,
                    path,
                    year=year,
                    genres=[genre],
                    index_number=i,
                    duration_s=0.5,
                    date_created=base + timedelta(days=a),
                )
            )
    server = FakeJellyfin(tracks)
    await server.start()
    yield server
    await server.stop()
    server.assert_no_violations()


def provider(fake: FakeJellyfin, **kw: object) -> JellyfinProvider:
    return JellyfinProvider(fake.base_url, fake.user_id, fake.token, backoff_s=0.01, **kw)  # type: ignore[arg-type]


async def test_conformance_and_ping(fake: FakeJellyfin) -> None:
    p = provider(fake)
    try:
        assert isinstance(p, MediaProvider)
        text = await p.ping()
        assert "Jellyfin 12" in text
        # the modern header, never the legacy X-Emby-Token that 12.0 turns off by default
        for r in fake.requests:
            assert r.auth == "Authorization", (r.path, r.auth)
            assert "X-Emby-Token" not in r.headers
    finally:
        await p.close()


async def test_albums_newest_first_paged(fake: FakeJellyfin, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jellyfin_module, "PAGE_SIZE", 3)
    p = provider(fake)
    try:
        albums = await p.list_albums()
        assert [a.name for a in albums] == ["Last", "Loops", "Quiet Rooms", "First Light"]
        assert albums[0].artist == "Delta" and albums[0].year == 2022 and albums[0].date_added is not None
        assert len(fake.requests_to("/Items")) == 2  # 3 + 1 with StartIndex paging
        assert [a.name for a in await p.list_albums(2)] == ["Last", "Loops"]
        sent = fake.requests_to("/Items")[-1]
        assert sent.param("SortBy").startswith("DateCreated") and sent.param("SortOrder") == "Descending"
        assert sent.param("IncludeItemTypes") == "MusicAlbum" and sent.param("Limit") == "2"
    finally:
        await p.close()


async def test_album_tracks_and_ids(fake: FakeJellyfin) -> None:
    p = provider(fake)
    try:
        album = next(a for a in await p.list_albums() if a.name == "First Light")
        tracks = await p.album_tracks(album.id)
        assert [t.title for t in tracks] == ["Dawn", "Morning Run", "High Noon"]
        t = tracks[0]
        assert (t.artist, t.album, t.album_id, t.year, t.genres, t.track_number) == (
            "Alpha",
            "First Light",
            album.id,
            2001,
            ("Rock",),
            1,
        )
        assert t.duration_s == pytest.approx(0.5) and t.suffix == "flac" and t.file_path
        assert len(t.item_id) == 32
        got = await p.get_tracks([tracks[2].item_id, "0" * 32, tracks[0].item_id])
        assert [x.item_id for x in got] == [tracks[2].item_id, tracks[0].item_id]
    finally:
        await p.close()


async def test_download_streams_to_a_temp_file(fake: FakeJellyfin, tmp_path: Path) -> None:
    p = provider(fake)
    try:
        album = (await p.list_albums())[0]
        track = (await p.album_tracks(album.id))[0]
        original = Path(track.file_path or "").read_bytes()
        async with p.audio_file(track, tmp_path / "dl") as path:
            assert path.read_bytes() == original and path.suffix == ".flac"
        assert not path.exists()
        # a user without the download permission: Jellyfin answers 403, the stream route works
        fake.fail_next(1, 403, path="/Download")
        async with p.audio_file(track, tmp_path / "dl") as path:
            assert path.read_bytes() == original
        assert fake.requests_to(r"/Audio/.*/stream")[-1].param("static") == "true"
        small = provider(fake, max_download_bytes=100)
        try:
            with pytest.raises(ProviderTooLarge):
                async with small.audio_file(track, tmp_path / "dl"):
                    pass
        finally:
            await small.close()
        assert list((tmp_path / "dl").iterdir()) == []
    finally:
        await p.close()


async def test_playlists_created_and_replaced(fake: FakeJellyfin) -> None:
    p = provider(fake)
    try:
        tracks = [t for a in await p.list_albums() for t in await p.album_tracks(a.id)]
        pid = await p.create_playlist("Sonic", [t.item_id for t in tracks[:3]])
        body = fake.requests_to("/Playlists", "POST")[-1].json
        assert body["Name"] == "Sonic" and body["MediaType"] == "Audio" and body["UserId"] == fake.user_id
        assert fake.playlists[pid].item_ids == [t.item_id for t in tracks[:3]]
        assert await p.create_playlist("Sonic", [tracks[4].item_id], replace_id=pid) == pid
        assert fake.playlists[pid].item_ids == [tracks[4].item_id]
        # the playlist was deleted on the server meanwhile: a new one is made
        new = await p.create_playlist("Sonic", [tracks[0].item_id], replace_id="f" * 32)
        assert new != pid and fake.playlists[new].item_ids == [tracks[0].item_id]
    finally:
        await p.close()


async def test_playlist_deleted_and_already_gone(fake: FakeJellyfin) -> None:
    p = provider(fake)
    try:
        tracks = [t for a in await p.list_albums() for t in await p.album_tracks(a.id)]
        pid = await p.create_playlist("Sonic_automatic", [t.item_id for t in tracks[:2]])
        await p.delete_playlist(pid, "Sonic_automatic")
        assert pid not in fake.playlists
        assert [r.method for r in fake.requests_to(f"/Items/{pid}")] == ["DELETE"]
        await p.delete_playlist(pid, "Sonic_automatic")  # already gone (404): counts as deleted
        # the server refuses (the fake's user may not delete a library item): ProviderRefused
        with pytest.raises(ProviderRefused) as err:
            await p.delete_playlist(tracks[0].item_id, "Not a playlist")
        assert err.value.status == 409 and "Not a playlist" in str(err.value)
        assert len(fake.tracks) == len(tracks)
        # a server failure is an error, not a deletion
        other = await p.create_playlist("Other", [tracks[0].item_id])
        fake.fail_next(None, 500, path="^/Items/", method="DELETE")
        with pytest.raises(ProviderError) as failed:
            await p.delete_playlist(other, "Other")
        assert not isinstance(failed.value, ProviderRefused) and other in fake.playlists
        fake.clear_failures()
    finally:
        await p.close()


async def test_retries_then_reports(fake: FakeJellyfin) -> None:
    p = provider(fake, retries=3)
    try:
        fake.fail_next(2, 503, path="/Items")
        assert len(await p.list_albums()) == 4  # two 503s absorbed by retries
        fake.fail_next(None, 502, path="/Items")
        with pytest.raises(ProviderUnavailable) as err:
            await p.list_albums()
        assert str(err.value).startswith(
            "Jellyfin: GET /Items (albums): HTTP 502"
        ) and "after 4 attempts" in str(err.value)
        fake.clear_failures()
    finally:
        await p.close()


async def test_bad_token_is_not_retried(fake: FakeJellyfin) -> None:
    p = JellyfinProvider(fake.base_url, fake.user_id, "wrong-token", backoff_s=0.01, retries=3)
    try:
        before = len(fake.requests)
        with pytest.raises(ProviderAuthError, match="credentials rejected"):
            await p.list_albums()
        assert len(fake.requests) - before == 1
    finally:
        await p.close()
