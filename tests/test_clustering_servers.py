"""Automatic playlists on the media servers themselves: a clustering run (API, real workers) writes its
playlists to a real Subsonic server (supysonic) and to the Jellyfin fake (checked against Jellyfin's
OpenAPI contract); a second run replaces them.  Everything is checked through the server's own API:

* the server holds exactly the playlists the run reports, with the same songs in the same order;
* after the second run, the first run's playlists that were not written again are gone;
* a user's playlist whose name ends in ``_automatic`` is never touched;
* a playlist of ours that the user removed meanwhile counts as deleted (its record is dropped);
* a recorded playlist the server refuses to delete is reported in the task log and stays recorded,
  and the run still succeeds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from audio_factory import make_library, make_track
from clustering_data import insert_rows, synthetic_rows
from fakes.jellyfin import FakeJellyfin, FakeTrack
from servers.supysonic import SupysonicServer, running_supysonic
from workers import run_workers_until_idle

from sidecar.app import create_app
from sidecar.db import playlists as playlists_db
from sidecar.db import tasks
from sidecar.providers.subsonic import SubsonicProvider
from sidecar.services import Endpoints
from sidecar.web.keys import DB

N = 48  # 8 albums of 6 tracks
FIRST = {
    "clustering_runs": 6,
    "iterations_per_batch_job": 3,
    "num_clusters_min": 4,
    "num_clusters_max": 6,
    "top_n_playlists": 4,
    "min_playlist_size": 4,
}
SECOND = {**FIRST, "top_n_playlists": 1}  # fewer playlists: some of the first run's are not written again

#: the server's playlists as {name: [song id, ...]}
ServerLists = Callable[[], Awaitable[dict[str, list[str]]]]


async def _run(
    client: TestClient, settings: Any, endpoints: Endpoints, body: dict[str, Any]
) -> dict[str, Any]:
    resp = await client.post("/api/clustering/start", json=body)
    assert resp.status == 202, await resp.json()
    await run_workers_until_idle(settings, endpoints, timeout_s=300)
    task = await tasks.get(client.app[DB], (await resp.json())["task_id"])
    assert task is not None and task["status"] == "SUCCESS", task
    return task


async def cluster_twice(
    client: TestClient,
    settings: Any,
    endpoints: Endpoints,
    provider: str,
    server_lists: ServerLists,
    remove_on_server: Callable[[str], Awaitable[None]],
    refused_id: str,
) -> None:
    """The scenario shared by both servers (see the module docstring)."""
    db: asyncpg.Pool = client.app[DB]
    user_lists = await server_lists()
    assert "Mine_automatic" in user_lists  # the user's own, made on the server before any run

    first = await _run(client, settings, endpoints, FIRST)
    lists = await (await client.get("/api/playlists")).json()
    assert 1 <= len(lists) <= 4 and all(n.endswith("_automatic") for n in lists)
    on_server = await server_lists()
    assert {n: on_server[n] for n in lists} == {
        n: [s["item_id"] for s in songs] for n, songs in lists.items()
    }
    assert set(on_server) == set(lists) | set(user_lists)
    written = {p["name"]: p["playlist_id"] for p in first["details"]["playlists"]}
    assert set(written) == set(lists)

    # the user removes one of ours on the server; a record the server will refuse to delete
    gone = sorted(written)[0]
    await remove_on_server(written[gone])
    await playlists_db.record(db, provider, "automatic", "Refused_automatic", [], refused_id)

    second = await _run(client, settings, endpoints, SECOND)
    lists2 = await (await client.get("/api/playlists")).json()
    assert len(lists2) == 1 < len(lists)
    stale = set(lists) - set(lists2)
    # a name written again is the same playlist, replaced in place (unless the user removed it)
    written2 = {p["name"]: p["playlist_id"] for p in second["details"]["playlists"]}
    for name in set(lists) & set(lists2):
        assert (written2[name] == written[name]) == (name != gone), name
    on_server = await server_lists()
    assert set(on_server) == set(lists2) | set(user_lists)  # the first run's playlists are deleted
    assert {n: on_server[n] for n in lists2} == {
        n: [s["item_id"] for s in songs] for n, songs in lists2.items()
    }
    assert on_server["Mine_automatic"] == user_lists["Mine_automatic"]
    log = "\n".join(second["log"])
    assert f"{len(stale)} automatic playlists of earlier runs deleted, 1 left on the media server" in log
    assert "'Refused_automatic' of an earlier run not deleted" in log
    recorded = {r["name"] for r in await db.fetch("SELECT name FROM playlists WHERE kind = 'automatic'")}
    assert recorded == set(lists2) | {"Refused_automatic"}  # the refused one is tried again next run


# --------------------------------------------------------------------------- Subsonic (supysonic)


@pytest.fixture(scope="module")
def subsonic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SupysonicServer]:
    root = tmp_path_factory.mktemp("clustering-subsonic")
    spec = [
        {"artist": f"Band {a}", "album": f"Album {a}", "genre": "Rock", "fmt": "flac", "tracks": 6}
        for a in range(N // 6)
    ]
    make_library(root / "music", spec, seconds=0.3)
    with running_supysonic(root / "music", root / "work", extra_users={"bob": "bob-pass-7"}) as srv:
        yield srv


async def test_clustering_on_a_real_subsonic_server(
    subsonic: SupysonicServer, make_settings: Any, endpoints: Endpoints
) -> None:
    alice = SubsonicProvider(subsonic.base_url, subsonic.user, subsonic.password, backoff_s=0.01)
    bob = SubsonicProvider(subsonic.base_url, "bob", "bob-pass-7", backoff_s=0.01)
    client = None
    try:
        ids = [t.item_id for a in await alice.list_albums() for t in await alice.album_tracks(a.id)]
        assert len(ids) == N
        await alice.create_playlist("Mine_automatic", ids[:3])  # the user's own playlist
        refused = await bob.create_playlist("Bob's", ids[3:5])  # alice may not delete it (error 50)

        async def server_lists() -> dict[str, list[str]]:
            out = {}
            for pl in (await alice.call("getPlaylists")).get("playlists", {}).get("playlist") or []:
                if pl.get("owner", subsonic.user) != subsonic.user:
                    continue
                entries = (await alice.call("getPlaylist", {"id": pl["id"]}))["playlist"].get("entry") or []
                out[pl["name"]] = [str(e["id"]) for e in entries]
            return out

        async def remove(pid: str) -> None:
            await alice.call("deletePlaylist", {"id": pid})

        env = {
            "MEDIASERVER_TYPE": "navidrome",
            "NAVIDROME_URL": subsonic.base_url,
            "NAVIDROME_USER": subsonic.user,
            "NAVIDROME_PASSWORD": subsonic.password,
        }
        client, settings = await _client(make_settings, endpoints, env, "ai_user_clsub", ids, "navidrome")
        await cluster_twice(client, settings, endpoints, "navidrome", server_lists, remove, refused)
        # bob's playlist is still there
        bobs = (await bob.call("getPlaylist", {"id": refused}))["playlist"]
        assert [str(e["id"]) for e in bobs["entry"]] == ids[3:5]
    finally:
        if client is not None:
            await client.close()
        await alice.close()
        await bob.close()


# --------------------------------------------------------------------------- Jellyfin (contract fake)


@pytest_asyncio.fixture
async def jellyfin(tmp_path: Path) -> AsyncIterator[FakeJellyfin]:
    tracks = []
    for i in range(N):
        album = f"Album {i // 6}"
        path = make_track(tmp_path / "media" / f"{i:03d}.flac", seconds=0.2, title=f"Song {i}", artist="A")
        tracks.append(FakeTrack.build(f"Song {i}", f"Band {i // 6}", album, path, index_number=i % 6 + 1))
    fake = FakeJellyfin(tracks)
    await fake.start()
    yield fake
    await fake.stop()
    fake.assert_no_violations()


async def test_clustering_on_the_jellyfin_fake(
    jellyfin: FakeJellyfin, make_settings: Any, endpoints: Endpoints
) -> None:
    headers = {"Authorization": f'MediaBrowser Token="{jellyfin.token}"'}
    base = jellyfin.base_url
    ids = [t.id for t in jellyfin.tracks]
    async with aiohttp.ClientSession(headers=headers) as http:

        async def server_lists() -> dict[str, list[str]]:
            params = {"userId": jellyfin.user_id, "includeItemTypes": "Playlist", "recursive": "true"}
            async with http.get(f"{base}/Items", params=params) as r:
                assert r.status == 200, await r.text()
                found = (await r.json())["Items"]
            out = {}
            for pl in found:
                async with http.get(
                    f"{base}/Playlists/{pl['Id']}/Items", params={"userId": jellyfin.user_id}
                ) as r:
                    assert r.status == 200, await r.text()
                    out[pl["Name"]] = [i["Id"] for i in (await r.json())["Items"]]
            return out

        async def remove(pid: str) -> None:
            async with http.delete(f"{base}/Items/{pid}") as r:
                assert r.status == 204

        body = {"Name": "Mine_automatic", "Ids": ids[:3], "UserId": jellyfin.user_id, "MediaType": "Audio"}
        async with http.post(f"{base}/Playlists", json=body) as r:
            assert r.status == 200, await r.text()
        env = {
            "MEDIASERVER_TYPE": "jellyfin",
            "JELLYFIN_URL": base,
            "JELLYFIN_USER_ID": jellyfin.user_id,
            "JELLYFIN_TOKEN": jellyfin.token,
        }
        client, settings = await _client(make_settings, endpoints, env, "ai_user_cljf", ids, "jellyfin")
        try:
            # the fake's user may not delete library items: a record pointing at a track is refused
            await cluster_twice(client, settings, endpoints, "jellyfin", server_lists, remove, ids[5])
        finally:
            await client.close()
    assert len(jellyfin.tracks) == N  # nothing but playlists was deleted


async def _client(
    make_settings: Any, endpoints: Endpoints, env: dict[str, str], role: str, ids: list[str], provider: str
) -> tuple[TestClient, Any]:
    settings = make_settings(env, ai_chat_db_user_name=role)
    rows = synthetic_rows(N, styles=6, seed=11)
    for row, item in zip(rows, sorted(ids), strict=True):
        row["item_id"] = item
    client = TestClient(TestServer(create_app(settings, endpoints)))
    await client.start_server()
    await insert_rows(client.app[DB], rows, provider=provider)
    return client, settings
