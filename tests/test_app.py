"""The web app and the worker against the real embedded PostgreSQL and Valkey."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from audio_factory import DEFAULT_LIBRARY, make_library
from workers import run_workers_until_idle

from sidecar.app import create_app
from sidecar.db import tasks
from sidecar.db.migrate import migrations
from sidecar.jobs.names import CONTROL_QUEUE, WORK_QUEUE
from sidecar.jobs.worker import WorkerGroup
from sidecar.services import Endpoints


@pytest_asyncio.fixture
async def music(tmp_path: Path) -> Path:
    root = tmp_path / "music"
    make_library(root, DEFAULT_LIBRARY, seconds=0.5)
    return root


async def _client(settings: Any, endpoints: Endpoints) -> TestClient:
    client = TestClient(TestServer(create_app(settings, endpoints)))
    await client.start_server()
    return client


@pytest_asyncio.fixture
async def client(make_settings: Any, endpoints: Endpoints, music: Path) -> AsyncIterator[TestClient]:
    c = await _client(
        make_settings({"LOCAL_MUSIC_DIR": str(music)}, ai_chat_db_user_name="ai_user_app"), endpoints
    )
    yield c
    await c.close()


async def _drain_queue(redis_url: str) -> None:
    from redis.asyncio import Redis

    r = Redis.from_url(redis_url)
    keys = (
        [k async for k in r.scan_iter(f"{WORK_QUEUE}*")]
        + [k async for k in r.scan_iter(f"{CONTROL_QUEUE}*")]
        + [k async for k in r.scan_iter("arq:*")]
    )
    if keys:
        await r.delete(*keys)
    await r.aclose()


async def test_healthz_reports_database_redis_and_worker(
    client: TestClient, make_settings: Any, endpoints: Endpoints, music: Path
) -> None:
    # no worker running: the web app works (200) but says so
    resp = await client.get("/healthz")
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "degraded" and body["redis"]["status"] == "degraded"
    assert "no worker has reported" in body["redis"]["worker"]
    assert body["database"]["status"] == "ok" and body["database"]["version"].startswith("18")
    assert (
        body["database"]["pgvector"] == "0.8.6"
        and body["database"]["schema_version"] == migrations()[-1].version
    )
    # a worker reports: ok
    group = WorkerGroup(make_settings({"LOCAL_MUSIC_DIR": str(music)}), endpoints)
    await group.open()
    runner = asyncio.ensure_future(group.run())
    try:
        for _ in range(100):
            body = await (await client.get("/healthz")).json()
            if body["status"] == "ok":
                break
            await asyncio.sleep(0.1)
        assert body["status"] == "ok" and body["redis"]["worker"] == "ok", body
        assert (await client.get("/api/health")).status == 200
    finally:
        group.stop()
        await runner
        await group.close()
    # the worker stopped (its key is removed at a clean stop; a killed one's expires): degraded again
    assert (await (await client.get("/healthz")).json())["status"] == "degraded"


async def test_healthz_says_503_when_the_database_is_gone(
    make_settings: Any, endpoints: Endpoints, music: Path
) -> None:
    from sidecar.web.keys import DB

    c = await _client(
        make_settings({"LOCAL_MUSIC_DIR": str(music)}, ai_chat_db_user_name="ai_user_app"), endpoints
    )
    try:
        await c.app[DB].close()
        resp = await c.get("/healthz")
        assert resp.status == 503
        body = await resp.json()
        assert body["database"]["status"] == "error" and body["redis"]["status"] in ("ok", "degraded")
    finally:
        await c.close()


async def test_config_is_redacted(make_settings: Any, endpoints: Endpoints, music: Path) -> None:
    settings = make_settings(
        {
            "LOCAL_MUSIC_DIR": str(music),
            "API_TOKEN": "s3cret-token",
            "AI_CHAT_DB_USER_PASSWORD": "chat-password-1",
        },
        ai_chat_db_user_name="ai_user_app",
    )
    c = await _client(settings, endpoints)
    try:
        resp = await c.get("/api/config", headers={"Authorization": "Bearer s3cret-token"})
        body = await resp.json()
        assert resp.status == 200 and body["MEDIASERVER_TYPE"] == "local"
        assert body["API_TOKEN"] == "***" and body["AI_CHAT_DB_USER_PASSWORD"] == "***"
        assert "s3cret-token" not in await resp.text()
    finally:
        await c.close()


async def test_api_token_guards_the_api(make_settings: Any, endpoints: Endpoints, music: Path) -> None:
    c = await _client(
        make_settings(
            {"LOCAL_MUSIC_DIR": str(music), "API_TOKEN": "tok"}, ai_chat_db_user_name="ai_user_app"
        ),
        endpoints,
    )
    try:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic tok"}):
            resp = await c.get("/api/active_tasks", headers=headers)
            assert resp.status == 401
            assert (await resp.json())["error"] == "unauthorized"
        assert (await c.get("/api/active_tasks", headers={"Authorization": "Bearer tok"})).status == 200
        assert (await c.get("/api/health")).status == 200  # probes need no token
        assert (await c.get("/healthz")).status == 200
    finally:
        await c.close()


async def test_task_endpoints(client: TestClient) -> None:
    from sidecar.web.keys import DB

    db = client.app[DB]
    resp = await client.get("/api/last_task")
    assert (await resp.json())["status"] == "NO_PREVIOUS_TASK"
    resp = await client.get("/api/status/nope")
    assert resp.status == 404 and (await resp.json()) == {"error": "unknown task", "detail": "nope"}
    parent = await tasks.create(db, "main_analysis")
    child = await tasks.create(db, "album_analysis", parent_task_id=parent)
    await tasks.update(db, parent, status="PROGRESS", progress=40, details={"albums": 5}, log_line="working")
    body = await (await client.get(f"/api/status/{parent}")).json()
    assert (body["status"], body["state"], body["progress"], body["details"], body["status_message"]) == (
        "PROGRESS",
        "PROGRESS",
        40,
        {"albums": 5},
        "working",
    )
    assert [t["task_id"] for t in await (await client.get("/api/active_tasks")).json()] == [parent]
    assert (await (await client.get("/api/last_task")).json())["task_id"] == parent
    resp = await client.post(f"/api/cancel/{parent}")
    assert resp.status == 200 and (await resp.json())["status"] == "REVOKED"
    assert (await tasks.get(db, child))["status"] == "REVOKED"  # type: ignore[index]
    assert await tasks.is_revoked(db, child)
    assert (await client.post(f"/api/cancel/{parent}")).status == 409
    assert (await client.post("/api/cancel/unknown")).status == 404
    assert await (await client.get("/api/active_tasks")).json() == []


async def test_bad_requests_get_json_errors(client: TestClient) -> None:
    resp = await client.post(
        "/api/library/sync", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400 and (await resp.json())["error"] == "body is not valid JSON"
    resp = await client.post("/api/library/sync", json=[1, 2])
    assert resp.status == 400 and (await resp.json())["error"] == "body must be a JSON object"
    resp = await client.post("/api/library/sync", json={"num_recent_albums": -1})
    assert resp.status == 400
    resp = await client.get("/api/no/such/route")
    assert resp.status == 404 and (await resp.json())["error"] == "Not Found"
    resp = await client.put("/api/last_task")
    assert resp.status == 405 and "error" in await resp.json()


async def test_library_sync_through_the_worker(
    client: TestClient, make_settings: Any, endpoints: Endpoints, music: Path, valkey_url: str
) -> None:
    from sidecar.web.keys import DB

    await _drain_queue(valkey_url)
    resp = await client.post("/api/library/sync", json={})
    assert resp.status == 202
    started = await resp.json()
    assert started["status"] == "PENDING" and started["task_type"] == "library_sync"
    assert (await client.post("/api/library/sync", json={})).status == 409  # one at a time
    await run_workers_until_idle(make_settings({"LOCAL_MUSIC_DIR": str(music)}), endpoints)
    task = await tasks.get(client.app[DB], started["task_id"])
    assert task is not None and task["status"] == "SUCCESS" and task["progress"] == 100
    assert task["details"] == {
        "num_recent_albums": 0,
        "albums_total": 4,
        "albums_done": 4,
        "albums_failed": 0,
        "tracks": 9,
        "tracks_rejected": 0,
        "tracks_removed": 0,
    }
    stats = await (await client.get("/api/library/stats")).json()
    assert stats == {"pending": 9, "analyzing": 0, "analyzed": 0, "failed": 0}
    rows = await client.app[DB].fetch("SELECT title, artist, album, year, genres FROM tracks ORDER BY title")
    assert ("Adagio", "Beta Ensemble", "Quiet Rooms", 2010, ["Classical"]) in [tuple(r) for r in rows]


def test_the_web_process_does_not_import_the_analysis_stack() -> None:
    """Job names live in sidecar/jobs/names.py (no imports): the web app, its routes and bridges
    enqueue jobs without importing the jobs, so neither sidecar.ml nor onnxruntime / librosa."""
    import subprocess
    import sys

    code = (
        "import sys, sidecar.app, sidecar.serve, sidecar.bridge.jellyfin, sidecar.bridge.subsonic; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('onnxruntime', 'librosa') "
        "or m.startswith('sidecar.ml') or m.startswith('sidecar.jobs.analysis')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout
