"""Untagged tracks (issue #10): an empty artist locally, "[unknown]" through Subsonic.  An
unknown artist is not an artist: the mix caps and spacing rules leave such tracks alone, and
similar_artists never names one -- over HTTP, on a real PostgreSQL + pgvector."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from library_factory import FakeTrack, insert_library, make_embeddings, make_tracks

from sidecar.app import create_app
from sidecar.services import Endpoints


@pytest_asyncio.fixture
async def lib(db: asyncpg.Pool) -> list[FakeTrack]:
    """300 tracks in 12 styles; in style 0 only "Artist 0-0" is tagged, the others are untagged."""
    vectors, styles = make_embeddings(300, seed=21)
    tracks = make_tracks(300, styles)
    await insert_library(db, tracks, vectors)
    untagged = [t.item_id for t in tracks if t.style == 0 and t.artist != "Artist 0-0"]
    assert len(untagged) >= 12
    await db.execute(
        "UPDATE tracks SET artist = CASE WHEN track_number % 2 = 0 THEN '' ELSE '[unknown]' END,"
        " album_artist = '' WHERE item_id = ANY($1)",
        untagged,
    )
    return tracks


@pytest_asyncio.fixture
async def client(make_settings: Any, endpoints: Endpoints, tmp_path: Path) -> AsyncIterator[TestClient]:
    music = tmp_path / "music"
    music.mkdir()
    settings = make_settings({"LOCAL_MUSIC_DIR": str(music)}, ai_chat_db_user_name="ai_user_unknown")
    c = TestClient(TestServer(create_app(settings, endpoints)))
    await c.start_server()
    yield c
    await c.close()


async def test_untagged_tracks_are_not_capped_as_one_artist(
    client: TestClient, db: asyncpg.Pool, lib: list[FakeTrack]
) -> None:
    seed = await db.fetchval("SELECT item_id FROM tracks WHERE artist = '[unknown]' ORDER BY item_id LIMIT 1")
    body = await (await client.get("/api/mix", params={"seed": seed, "n": "10"})).json()
    untagged = [i for i in body["items"] if i["author"] in ("", "[unknown]")]
    assert len(untagged) > 3, body  # MAX_SONGS_PER_ARTIST is 3: they are not one artist
    assert "max_songs_per_artist" not in body["relaxed"] and "artist_in_a_row" not in body["relaxed"]
    similar = await (await client.get("/api/similar_tracks", params={"item_id": seed, "n": "10"})).json()
    assert sum(i["author"] == "[unknown]" for i in similar) > 3


async def test_similar_artists_names_no_placeholder(client: TestClient, lib: list[FakeTrack]) -> None:
    body = await (await client.get("/api/similar_artists", params={"artist": "Artist 0-0", "n": "50"})).json()
    assert body and not {"", "[unknown]"} & {b["artist"] for b in body}
