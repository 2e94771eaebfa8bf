"""DELETE /api/playlists/{id}: a playlist this service made goes from the media server (here the
local provider's .m3u8 file) and from the playlists table; a refusal of the server keeps both."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from audio_factory import make_library

from sidecar.app import create_app
from sidecar.services import Endpoints
from sidecar.web.keys import PROVIDER


@pytest_asyncio.fixture
async def client(make_settings: Any, endpoints: Endpoints, tmp_path: Path) -> AsyncIterator[TestClient]:
    music = tmp_path / "music"
    make_library(music, [{"artist": "A", "album": "B", "tracks": ["x", "y", "z"]}], seconds=0.3)
    c = TestClient(TestServer(create_app(make_settings({"LOCAL_MUSIC_DIR": str(music)}), endpoints)))
    await c.start_server()
    yield c
    await c.close()


async def _made(client: TestClient, name: str) -> tuple[dict[str, Any], Path]:
    """Write the playlist NAME through the API; its list entry and its file."""
    provider = client.app[PROVIDER]
    ids = [t.item_id for a in await provider.list_albums() for t in await provider.album_tracks(a.id)]
    resp = await client.post("/api/create_playlist", json={"playlist_name": name, "track_ids": ids[:2]})
    assert resp.status == 201, await resp.text()
    made = {p["name"]: p for p in await (await client.get("/api/playlists/list")).json()}[name]
    path = provider.playlist_dir / f"{made['provider_playlist_id']}.m3u8"  # type: ignore[attr-defined]
    assert path.is_file()
    return made, path


async def _names(client: TestClient) -> list[str]:
    return [p["name"] for p in await (await client.get("/api/playlists/list")).json()]


async def test_delete_by_our_id_removes_the_file_and_the_row(client: TestClient) -> None:
    made, path = await _made(client, "Morning")
    await _made(client, "Evening")
    resp = await client.delete(f"/api/playlists/{made['playlist_id']}")
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["deleted"] is True and body["name"] == "Morning"
    assert not path.exists()
    assert await _names(client) == ["Evening"]
    resp = await client.delete(f"/api/playlists/{made['playlist_id']}")  # a second time: gone
    assert resp.status == 404
    assert (await resp.json())["error"] == "no playlist made by this service has this id"


async def test_delete_by_the_media_servers_id(client: TestClient) -> None:
    made, path = await _made(client, "Road trip")
    resp = await client.delete(f"/api/playlists/{made['provider_playlist_id']}")
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["playlist_id"] == made["playlist_id"]
    assert not path.exists() and await _names(client) == []


async def test_a_playlist_already_gone_on_the_server_counts_as_deleted(client: TestClient) -> None:
    made, path = await _made(client, "Gone")
    path.unlink()
    resp = await client.delete(f"/api/playlists/{made['playlist_id']}")
    assert resp.status == 200, await resp.text()
    assert await _names(client) == []


async def test_unknown_id_is_404(client: TestClient) -> None:
    await _made(client, "Kept")
    for raw in ("999999", "no-such-playlist", "99999999999999999999999"):
        resp = await client.delete(f"/api/playlists/{raw}")
        assert resp.status == 404, raw
    assert await _names(client) == ["Kept"]


async def test_a_refusal_of_the_server_keeps_the_row_and_the_file(client: TestClient) -> None:
    made, path = await _made(client, "Mine")
    path.write_text("#EXTM3U\n#PLAYLIST:Someone else's\nA/B/01 x.flac\n", encoding="utf-8")  # not ours now
    before = path.read_bytes()
    resp = await client.delete(f"/api/playlists/{made['playlist_id']}")
    assert resp.status == 409
    err = await resp.json()
    assert set(err) == {"error", "detail"} and "was not written by this service" in err["detail"]
    assert path.read_bytes() == before
    assert await _names(client) == ["Mine"]
