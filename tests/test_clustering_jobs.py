"""Automatic playlists end to end: the API starts a clustering, the real workers run the parent and
its batches, the local provider writes the playlists; 409 while one runs, 400 naming bad keys,
cancel, and a second run replacing the first one's playlists."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from clustering_data import insert_rows, make_files, synthetic_rows
from workers import run_workers_until_idle

from sidecar.app import create_app
from sidecar.db import tasks
from sidecar.jobs.worker import WorkerGroup
from sidecar.providers import make_provider
from sidecar.services import Endpoints
from sidecar.web.keys import DB

N = 240


@pytest_asyncio.fixture
async def setup(
    make_settings: Any, endpoints: Endpoints, tmp_path: Path
) -> AsyncIterator[tuple[TestClient, Any]]:
    music = tmp_path / "music"
    make_files(music, N)
    settings = make_settings({"LOCAL_MUSIC_DIR": str(music)}, ai_chat_db_user_name="ai_user_clu")
    provider = make_provider(settings)
    ids = [t.item_id for a in await provider.list_albums() for t in await provider.album_tracks(a.id)]
    await provider.close()
    rows = synthetic_rows(N, styles=6, seed=5)
    for row, item in zip(rows, sorted(ids), strict=True):
        row["item_id"] = item
    c = TestClient(TestServer(create_app(settings, endpoints)))
    await c.start_server()
    await insert_rows(c.app[DB], rows)
    yield c, settings
    await c.close()


BODY = {
    "clustering_runs": 7,
    "iterations_per_batch_job": 3,
    "num_clusters_min": 5,
    "num_clusters_max": 8,
    "top_n_playlists": 4,
    "min_playlist_size": 5,
}


async def test_clustering_end_to_end(setup: tuple[TestClient, Any], endpoints: Endpoints) -> None:
    client, settings = setup
    db: asyncpg.Pool = client.app[DB]
    assert (await client.get("/api/clustering/result")).status == 404
    assert await (await client.get("/api/playlists")).json() == {}
    resp = await client.post("/api/clustering/start", json=BODY)
    assert resp.status == 202, await resp.json()
    started = await resp.json()
    assert started["task_type"] == "main_clustering"
    again = await client.post("/api/clustering/start", json={})
    assert again.status == 409 and (await again.json())["detail"]["task_id"] == started["task_id"]

    await run_workers_until_idle(settings, endpoints, timeout_s=240)
    task = await tasks.get(db, started["task_id"])
    assert task is not None and task["status"] == "SUCCESS", task
    assert "Progress: 7/7 runs, best score" in "\n".join(task["log"])
    assert "240 analysed tracks: kmeans, 5-8 clusters, playlists of at least 5 songs" in "\n".join(
        task["log"]
    )
    children = await tasks.children(db, task["task_id"], 10)
    assert children["by_status"] == {"SUCCESS": 3}
    # only the best batch keeps its playlists (the status of a clustering stays small)
    assert sum("playlists" in (c["details"].get("best") or {}) for c in children["items"]) == 1
    assert all(c["details"]["best"]["params"] for c in children["items"])

    lists = await (await client.get("/api/playlists")).json()
    assert 1 <= len(lists) <= 4 and all(name.endswith("_automatic") for name in lists)
    songs = [s["item_id"] for items in lists.values() for s in items]
    assert len(songs) == len(set(songs))  # no song in two playlists
    first = next(iter(lists.values()))[0]
    assert first["title"].startswith("Song ") and first["author"].startswith("Artist ")
    for name, items in lists.items():
        file = settings.playlist_dir / f"{name}.m3u8"
        assert file.read_text().count(".mp3") == len(items), name
        assert max(sum(1 for s in items if s["author"] == a) for a in {s["author"] for s in items}) <= 3

    result = await (await client.get("/api/clustering/result")).json()
    assert result["best_params"]["method"] == "kmeans" and 5 <= result["best_params"]["n_clusters"] <= 8
    assert set(result["score_components"]) >= {"mood_diversity", "mood_purity", "silhouette"}
    pl = result["playlists"][0]
    assert pl["profile"]["moods"] and "tempo_normalized" in pl["profile"] and pl["songs"]
    recorded = await db.fetch("SELECT name FROM playlists WHERE kind = 'automatic'")
    assert {r["name"] for r in recorded} == set(lists)

    # a second run replaces the playlists of the same name (no second file, no second record)
    # (parts of at most 5 songs: whatever the second search finds, a playlist over 5 is split into
    # numbered parts, so names of the first run go unwritten)
    resp = await client.post("/api/clustering/start", json={**BODY, "max_songs_per_cluster": 5})
    assert resp.status == 202
    await run_workers_until_idle(settings, endpoints, timeout_s=240)
    second = await tasks.get(db, (await resp.json())["task_id"])
    assert second is not None and second["status"] == "SUCCESS", second
    lists2 = await (await client.get("/api/playlists")).json()
    assert all(len(items) <= 5 for items in lists2.values())
    assert all(name.endswith("_automatic") for name in lists2)
    rows = await db.fetch("SELECT name, count(*) AS n FROM playlists WHERE kind = 'automatic' GROUP BY name")
    assert all(r["n"] == 1 for r in rows) and {r["name"] for r in rows} == set(lists2)
    # the first run's playlists that the second did not write again are deleted: the folder holds
    # exactly the second run's playlists
    assert set(lists) - set(lists2), "the second run should have written other names (numbered parts)"
    files = {
        p.read_text().splitlines()[2].removeprefix("#PLAYLIST:") for p in settings.playlist_dir.glob("*.m3u8")
    }
    assert files == set(lists2)
    assert any("automatic playlists of earlier runs deleted" in line for line in second["log"]), second["log"]


async def test_bad_parameters_get_400_naming_the_key(setup: tuple[TestClient, Any]) -> None:
    client, _ = setup
    for body, field in [
        ({"clustering_method": "hdbscan"}, "clustering_method"),
        ({"num_clusters_min": 50, "num_clusters_max": 10}, "num_clusters_min"),
        ({"clustering_runs": 0}, "clustering_runs"),
        ({"score_weight_purity": "a"}, "score_weight_purity"),
        ({"unknown_key": 1}, "unknown_key"),
        ({"ai_model_provider": "SKYNET"}, "ai_model_provider"),
        ({"ai_model_provider": "OLLAMA", "ollama_server_url": "ftp://x"}, "ollama_server_url"),
    ]:
        resp = await client.post("/api/clustering/start", json=body)
        assert resp.status == 400, (body, await resp.json())
        answer = await resp.json()
        assert answer["error"].startswith(field + ":") and answer["detail"] == {"field": field}, answer
    assert await tasks.active(client.app[DB]) == []


async def test_cancel_stops_parent_and_batches(setup: tuple[TestClient, Any], endpoints: Endpoints) -> None:
    client, settings = setup
    db = client.app[DB]
    resp = await client.post(
        "/api/clustering/start", json={**BODY, "clustering_runs": 2000, "iterations_per_batch_job": 5}
    )
    task_id = (await resp.json())["task_id"]
    group = WorkerGroup(settings, endpoints, poll_delay=0.05)
    await group.open()
    runner = asyncio.ensure_future(group.run())
    try:
        for _ in range(600):
            kids = await tasks.children(db, task_id, 50)
            if kids["by_status"].get("SUCCESS"):
                break
            await asyncio.sleep(0.1)
        assert (await client.post(f"/api/cancel/{task_id}")).status == 200
        for _ in range(600):
            if not await tasks.active(db, top_level_only=False) and group.running_jobs() == 0:
                break
            await asyncio.sleep(0.1)
    finally:
        group.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        await group.close()
    task = await tasks.get(db, task_id)
    assert task is not None and task["status"] == "REVOKED"
    kids = await tasks.children(db, task_id, 1000)
    assert kids["total"] < 400 and set(kids["by_status"]) <= {"SUCCESS", "REVOKED"}
    assert await tasks.active(db, top_level_only=False) == []
    assert (await client.get("/api/clustering/result")).status == 404


@pytest.mark.slow
async def test_sigkill_mid_clustering_then_restart(
    setup: tuple[TestClient, Any], endpoints: Endpoints, tmp_path: Path
) -> None:
    """A worker killed mid-run: its batches are run again, the finished ones are kept."""
    client, settings = setup
    db: asyncpg.Pool = client.app[DB]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "MEDIASERVER_"))}
    env.update(
        {
            "DATABASE_URL": endpoints.postgres_dsn,
            "REDIS_URL": endpoints.redis_url,
            "LOCAL_MUSIC_DIR": str(settings.music_dir),
            "AUDIOMUSE_DATA_DIR": str(tmp_path / "data"),
            "TASK_ORPHAN_SECONDS": "2",
            "LOG_LEVEL": "WARNING",
        }
    )
    body = {**BODY, "clustering_runs": 160, "iterations_per_batch_job": 8, "max_concurrent_batch_jobs": 2}
    task_id = (await (await client.post("/api/clustering/start", json=body)).json())["task_id"]

    def start_worker() -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "sidecar", "worker"],
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    first = start_worker()
    deadline = time.monotonic() + 120
    while (await tasks.children(db, task_id, 0))["by_status"].get("SUCCESS", 0) < 2:
        assert time.monotonic() < deadline and first.poll() is None, (
            first.stderr.read() if first.stderr else ""
        )
        await asyncio.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    done_before = {
        r["task_id"]: r["finished_at"]
        for r in await db.fetch(
            "SELECT task_id, finished_at FROM tasks WHERE parent_task_id = $1 AND status = 'SUCCESS'", task_id
        )
    }
    assert len(done_before) < 20, "the clustering finished before the kill: make it longer"
    second = start_worker()
    try:
        while (await tasks.get(db, task_id) or {}).get("status") not in tasks.FINAL:
            assert time.monotonic() < deadline + 180 and second.poll() is None
            await asyncio.sleep(0.2)
    finally:
        os.killpg(second.pid, signal.SIGTERM)
        second.wait(timeout=60)
    task = await tasks.get(db, task_id)
    assert task is not None and task["status"] == "SUCCESS", task
    assert task["details"]["runs_done"] == 160
    assert any("queued again" in line for line in task["log"]), task["log"]
    kids = await db.fetch("SELECT task_id, status, finished_at FROM tasks WHERE parent_task_id = $1", task_id)
    assert len(kids) == 20 and {k["status"] for k in kids} == {"SUCCESS"}
    after = {k["task_id"]: k["finished_at"] for k in kids}
    assert all(after[t] == f for t, f in done_before.items())  # finished batches were not run again


async def test_spectral_beyond_the_machines_memory_is_refused(
    setup: tuple[TestClient, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sidecar.clustering import params as cparams

    client, _ = setup
    monkeypatch.setattr(cparams, "available_memory_bytes", lambda: 200_000)  # a 200 kB machine
    resp = await client.post("/api/clustering/start", json={"clustering_method": "spectral"})
    assert resp.status == 400
    answer = await resp.json()
    assert (
        answer["detail"] == {"field": "clustering_method"}
        and "spectral clustering of 240 tracks" in answer["error"]
    )
    monkeypatch.undo()
    assert (await client.post("/api/clustering/start", json={"clustering_method": "spectral"})).status == 202


async def test_a_users_playlist_named_like_ours_is_left_alone(
    setup: tuple[TestClient, Any], endpoints: Endpoints, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only playlists this service wrote are replaced: a hand-made ``Mine_automatic.m3u8`` in the way
    is refused by the local provider and left untouched; the other playlists are written."""
    from sidecar.ai.naming import NamingResult
    from sidecar.clustering import naming

    async def fixed(config: Any, profile: Any, songs: Any, avoid: Any) -> NamingResult:
        return NamingResult("Mine", "fallback", None)

    monkeypatch.setattr(naming, "name_playlist", fixed)
    client, settings = setup
    settings.playlist_dir.mkdir(parents=True, exist_ok=True)
    mine = settings.playlist_dir / "Mine_automatic.m3u8"
    mine.write_text("#EXTM3U\nsomething/else.mp3\n")
    resp = await client.post("/api/clustering/start", json=BODY)
    await run_workers_until_idle(settings, endpoints, timeout_s=240)
    task = await tasks.get(client.app[DB], (await resp.json())["task_id"])
    assert task is not None and task["status"] == "SUCCESS", task
    assert mine.read_text() == "#EXTM3U\nsomething/else.mp3\n"
    assert any("'Mine_automatic' not written" in line for line in task["log"]), task["log"]
    lists = await (await client.get("/api/playlists")).json()
    assert "Mine_automatic" not in lists and "Mine_2_automatic" in lists


async def test_a_run_that_writes_nothing_keeps_the_earlier_playlists(
    setup: tuple[TestClient, Any], endpoints: Endpoints, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every playlist of the second run is refused (hand-made files in the way): the first run's
    automatic playlists are not deleted, so the user never ends up with none."""
    from sidecar.ai.naming import NamingResult
    from sidecar.clustering import naming

    base = "Ours"

    async def fixed(config: Any, profile: Any, songs: Any, avoid: Any) -> NamingResult:
        return NamingResult(base, "fallback", None)

    monkeypatch.setattr(naming, "name_playlist", fixed)
    client, settings = setup
    first = await client.post("/api/clustering/start", json=BODY)
    await run_workers_until_idle(settings, endpoints, timeout_s=240)
    task = await tasks.get(client.app[DB], (await first.json())["task_id"])
    assert task is not None and task["status"] == "SUCCESS", task
    ours = {p.name: p.read_bytes() for p in settings.playlist_dir.glob("Ours*_automatic.m3u8")}
    assert ours
    for i in range(1, 10):
        (settings.playlist_dir / f"Mine{'' if i == 1 else f'_{i}'}_automatic.m3u8").write_text("#EXTM3U\n")
    base = "Mine"
    second = await client.post("/api/clustering/start", json=BODY)
    await run_workers_until_idle(settings, endpoints, timeout_s=240)
    task = await tasks.get(client.app[DB], (await second.json())["task_id"])
    assert task is not None and task["status"] == "SUCCESS", task
    assert task["details"]["num_playlists_created"] == 0
    assert {p.name: p.read_bytes() for p in settings.playlist_dir.glob("Ours*_automatic.m3u8")} == ours
    assert any("automatic playlists of earlier runs are kept" in line for line in task["log"]), task["log"]
    recorded = await client.app[DB].fetch("SELECT name FROM playlists WHERE kind = 'automatic'")
    assert {r["name"] for r in recorded} == {n.removesuffix(".m3u8") for n in ours}
