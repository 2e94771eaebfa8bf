"""Playlists this service made, and mixes, as .m3u8 files: real database, the web app, file
paths for the local provider and stream URLs without credentials for the media servers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from library_factory import insert_library, make_embeddings, make_tracks

from sidecar.app import create_app
from sidecar.db import playlists
from sidecar.db.tracks import upsert_tracks
from sidecar.playlist_export import Entry, render
from sidecar.providers.base import Track
from sidecar.services import Endpoints
from sidecar.web.keys import DB


@pytest_asyncio.fixture
async def client(make_settings: Any, endpoints: Endpoints, tmp_path: Path) -> AsyncIterator[TestClient]:
    music = tmp_path / "music"
    music.mkdir()
    c = TestClient(TestServer(create_app(make_settings({"LOCAL_MUSIC_DIR": str(music)}), endpoints)))
    await c.start_server()
    yield c
    await c.close()


TRACKS = [
    Track(
        item_id="a1",
        title="Blue\nMorning",
        artist="Ann",
        album="X",
        duration_s=181.6,
        file_path="/m/Ann/X/01.flac",
    ),
    Track(
        item_id="b2",
        title="Ünïcode Song",
        artist="Bö",
        album="Y",
        duration_s=None,
        file_path="/m/Bö/Y/02 ü.mp3",
    ),
    Track(item_id="c3", title="Nameless", artist="", album="Z", duration_s=60.0, file_path=None),
]


async def test_list_and_m3u8_of_the_playlists_this_service_made(client: TestClient) -> None:
    db: asyncpg.Pool = client.app[DB]
    await upsert_tracks(db, "local", TRACKS)
    await playlists.record(db, "local", "automatic", "Calm_automatic", ["b2", "a1", "gone", "c3"], "Calm")
    await playlists.record(db, "local", "instant", "run_instant", ["a1"], "run_instant")

    resp = await client.get("/api/playlists/list")
    assert resp.status == 200
    listed = {p["name"]: p for p in await resp.json()}
    calm = listed["Calm_automatic"]
    assert calm["kind"] == "automatic" and calm["track_count"] == 4 and calm["missing_tracks"] == 1
    assert [s["item_id"] for s in calm["songs"]] == ["b2", "a1", "c3"]
    assert calm["songs"][1] == {"item_id": "a1", "title": "Blue\nMorning", "author": "Ann"}
    assert listed["run_instant"]["kind"] == "instant"

    resp = await client.get(calm["m3u8"])
    assert resp.status == 200 and resp.content_type == "audio/x-mpegurl" and resp.charset == "utf-8"
    assert "filename*=UTF-8''Calm_automatic.m3u8" in resp.headers["Content-Disposition"]
    text = await resp.text()
    assert text.splitlines() == [
        "#EXTM3U",
        "#PLAYLIST:Calm_automatic",
        "#EXTINF:-1,Bö - Ünïcode Song",
        "/m/Bö/Y/02 ü.mp3",
        "#EXTINF:182,Ann - Blue Morning",  # one line, whatever the tags hold
        "/m/Ann/X/01.flac",
        "# not playable from here (no path or stream URL known): c3 Nameless",
    ]
    for path in (
        "/api/playlists/999999.m3u8",
        "/api/playlists/99999999999999999999999.m3u8",
        "/api/playlists/x.m3u8",
        "/api/playlists/%C2%B2.m3u8",  # a digit, but not an ASCII one
    ):
        resp = await client.get(path)
        assert resp.status == 404 and (await resp.json())["error"]


async def test_a_mix_as_m3u8(client: TestClient) -> None:
    db: asyncpg.Pool = client.app[DB]
    vectors, styles = make_embeddings(60, seed=4)
    tracks = make_tracks(60, styles)
    await insert_library(db, tracks, vectors)
    await db.execute("UPDATE tracks SET file_path = '/music/' || item_id || '.flac'")
    seed = tracks[0].item_id
    as_json = await (await client.get(f"/api/mix?seed={seed}&n=8")).json()
    resp = await client.get(f"/api/mix?seed={seed}&n=8&format=m3u8")
    assert resp.status == 200 and resp.content_type == "audio/x-mpegurl"
    lines = (await resp.text()).splitlines()
    assert lines[:2] == ["#EXTM3U", f"#PLAYLIST:song mix {seed}"]
    paths = [x for x in lines if not x.startswith("#")]
    assert paths == [f"/music/{i['item_id']}.flac" for i in as_json["items"]]  # the same mix, in order
    assert paths[0] == f"/music/{seed}.flac" and len(paths) == 8
    resp = await client.get(f"/api/mix?seed={seed}&format=xspf")
    assert resp.status == 400 and "format" in (await resp.json())["error"]


def test_media_server_entries_are_stream_urls_without_credentials(make_settings: Any) -> None:
    entries = [
        Entry("id/1", "T", "A", 200.0, "/srv/a.flac", "jellyfin"),
        Entry("s-2", "U", "B", 3.0, None, "navidrome"),
    ]
    settings = make_settings(
        {
            "JELLYFIN_URL": "https://jf-user:jf-secret@jf.example:8920/jellyfin/",
            "JELLYFIN_USER_ID": "0123456789abcdef0123456789abcdef",
            "JELLYFIN_TOKEN": "tok-secret",
            "NAVIDROME_URL": "http://nd.example:4533/?u=admin&p=nd-secret",
            "NAVIDROME_USER": "admin",
            "NAVIDROME_PASSWORD": "nd-secret",
        }
    )
    text = render(settings, "Mix", entries)
    urls = [x for x in text.splitlines() if not x.startswith("#")]
    assert urls == [
        "https://jf.example:8920/jellyfin/Audio/id%2F1/universal?UserId=0123456789abcdef0123456789abcdef"
        "&Container=mp3,flac,ogg,oga,opus,m4a,aac,wav,webm&TranscodingContainer=mp3&AudioCodec=mp3",
        "http://nd.example:4533/rest/stream.view?id=s-2&v=1.16.1&c=audiomuse",
    ]
    for secret in ("jf-secret", "jf-user", "tok-secret", "nd-secret", "admin"):
        assert secret not in text
    # what the player must add is said in the file
    assert "&api_key=<your token>" in text and "&u=<user>&t=<md5(password+salt)>&s=<salt>" in text
