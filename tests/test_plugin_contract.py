"""The calls the released AudioMuse-AI plugins make (Jellyfin plugin 0.2, Navidrome plugin),
replayed exactly: same paths, parameters, bodies and Bearer token; shapes checked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from audio_factory import make_library
from library_factory import insert_library, make_embeddings, make_tracks

from sidecar.app import create_app
from sidecar.services import Endpoints
from sidecar.web.keys import DB, PROVIDER

TOKEN = "plugin-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest_asyncio.fixture
async def client(
    make_settings: Any, endpoints: Endpoints, tmp_path: Path, db: asyncpg.Pool
) -> AsyncIterator[TestClient]:
    music = tmp_path / "music"
    make_library(music, [{"artist": "P", "album": "Q", "tracks": ["a", "b"]}], seconds=0.3)
    settings = make_settings(
        {"LOCAL_MUSIC_DIR": str(music), "API_TOKEN": TOKEN}, ai_chat_db_user_name="ai_user_pl"
    )
    vectors, styles = make_embeddings(300, seed=11)
    await insert_library(db, make_tracks(300, styles), vectors)
    c = TestClient(TestServer(create_app(settings, endpoints)))
    await c.start_server()
    yield c
    await c.close()


async def _ids(c: TestClient, n: int = 2) -> list[str]:
    return [
        r["item_id"]
        for r in await c.app[DB].fetch("SELECT item_id FROM embeddings ORDER BY item_id LIMIT $1", n)
    ]


async def test_health_and_config(client: TestClient) -> None:
    assert (await client.get("/api/health")).status == 200  # probes: no token needed
    resp = await client.get("/api/config", headers=AUTH)
    assert resp.status == 200 and (await resp.json())["API_TOKEN"] == "***"
    assert (await client.get("/api/config")).status == 401


async def test_similar_tracks_as_the_plugins_call_it(client: TestClient) -> None:
    seed = (await _ids(client))[0]
    assert len(seed) == 32
    resp = await client.get(
        f"/api/similar_tracks?item_id={seed}&n=20&eliminate_duplicates=true&radius_similarity=true",
        headers=AUTH,
    )
    assert resp.status == 200
    body = await resp.json()
    assert len(body) == 20 and {"item_id", "title", "author", "album", "distance"} <= set(body[0])
    resp = await client.get(
        f"/api/similar_tracks?item_id={seed}&n=5&eliminate_duplicates=false&radius_similarity=false",
        headers=AUTH,
    )
    assert resp.status == 200 and len(await resp.json()) == 5


async def test_similar_artists(client: TestClient) -> None:
    resp = await client.get(
        "/api/similar_artists?artist=Artist 0-2&n=5&include_component_matches=false", headers=AUTH
    )
    assert resp.status == 200
    body = await resp.json()
    assert len(body) == 5 and all(set(x) == {"artist", "artist_id", "divergence"} for x in body)
    assert [x["divergence"] for x in body] == sorted(x["divergence"] for x in body)
    assert "Artist 0-2" not in [x["artist"] for x in body]
    assert sum(x["artist"].startswith("Artist 0-") for x in body) >= 3  # same style first
    resp = await client.get(
        "/api/similar_artists?artist=Artist 0-2&n=2&include_component_matches=true", headers=AUTH
    )
    detail = await resp.json()
    assert detail[0]["component_matches"] and "query_track" in detail[0]["component_matches"][0]
    assert (await client.get("/api/similar_artists?artist=Nobody&n=5", headers=AUTH)).status == 404


async def test_find_path_and_search(client: TestClient) -> None:
    a, b = await _ids(client)
    resp = await client.get(f"/api/find_path?start_song_id={a}&end_song_id={b}&max_steps=10", headers=AUTH)
    body = await resp.json()
    assert resp.status == 200 and body["path"][0]["item_id"] == a and body["path"][-1]["item_id"] == b
    assert isinstance(body["total_distance"], float)
    resp = await client.get("/api/search_tracks?search_query=song 12&start=0&end=5", headers=AUTH)
    assert resp.status == 200 and 0 < len(await resp.json()) <= 5


async def test_create_playlist(client: TestClient) -> None:
    provider = client.app[PROVIDER]
    ids = [t.item_id for a in await provider.list_albums() for t in await provider.album_tracks(a.id)]
    resp = await client.post(
        "/api/create_playlist", json={"playlist_name": "From plugin", "track_ids": ids}, headers=AUTH
    )
    assert resp.status == 201 and (await resp.json())["playlist_id"]


async def test_tasks_and_clustering_start(client: TestClient) -> None:
    resp = await client.post("/api/analysis/start", json={}, headers=AUTH)
    assert resp.status == 202
    task_id = (await resp.json())["task_id"]
    status = await (await client.get(f"/api/status/{task_id}", headers=AUTH)).json()
    assert status["task_id"] == task_id and status["state"] == "PENDING"
    active = await (await client.get("/api/active_tasks", headers=AUTH)).json()
    assert [t["task_id"] for t in active] == [task_id]
    assert (await (await client.get("/api/last_task", headers=AUTH)).json())["task_id"] == task_id
    resp = await client.post(f"/api/cancel/{task_id}", headers=AUTH)
    assert resp.status == 200 and (await resp.json())["status"] == "REVOKED"
    # the plugins' "run clustering" button: AudioMuse-AI's start shape, then its task in /api/status
    resp = await client.post("/api/clustering/start", json={"clustering_method": "kmeans"}, headers=AUTH)
    assert resp.status == 202, await resp.json()
    started = await resp.json()
    assert started["task_type"] == "main_clustering" and started["status"] == "PENDING"
    status = await (await client.get(f"/api/status/{started['task_id']}", headers=AUTH)).json()
    assert status["task_id"] == started["task_id"] and status["state"] == "PENDING"
    assert (await client.post("/api/clustering/start", json={}, headers=AUTH)).status == 409
