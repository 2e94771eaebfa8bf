"""GET /metrics scraped after real requests (the web app, the Jellyfin bridge in front of the
contract fake), with the shared figures read from the real database and queue; several web
processes summed through prometheus-client's multiprocess folder; the optional token."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from arq import create_pool
from arq.connections import RedisSettings
from fakes.jellyfin import FakeJellyfin
from library_factory import insert_library, make_embeddings, make_tracks
from prometheus_client.parser import text_string_to_metric_families
from servers.supysonic import SupysonicServer
from test_bridge_jellyfin import build_library, mediabrowser, sync_and_analyse
from test_bridge_subsonic import UNANALYSED_TITLE, bridge_settings, fill_library

from sidecar.app import create_app
from sidecar.bridge import jellyfin as jellyfin_bridge
from sidecar.bridge import subsonic as subsonic_bridge
from sidecar.db import tasks
from sidecar.jobs.names import ANALYZE_ALBUM
from sidecar.jobs.queue import enqueue
from sidecar.serve import MULTIPROC_ENV
from sidecar.services import Endpoints
from sidecar.web.metrics import exposition, instrument_bridge

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(client: TestClient, **headers: str) -> Samples:
    resp = await client.get("/metrics", headers=headers)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse(await resp.text())


async def scrape_after(client: TestClient, before: Samples, app: str, requests: int) -> Samples:
    """A scrape once ``requests`` more requests of ``app`` are counted: a streamed (proxied)
    answer is counted when its handler ends, which may be a moment after the client has it."""
    after = before
    for _ in range(100):
        after = await scrape(client)
        total = sum(
            v
            for (name, ls), v in after.items()
            if name == "audiomuse_http_requests_total" and ("app", app) in ls
        )
        done = sum(
            v
            for (name, ls), v in before.items()
            if name == "audiomuse_http_requests_total" and ("app", app) in ls
        )
        if total - done >= requests:
            return after
        await asyncio.sleep(0.05)
    return after


@pytest_asyncio.fixture
async def client(make_settings: Any, endpoints: Endpoints) -> AsyncIterator[TestClient]:
    c = TestClient(TestServer(create_app(make_settings(ai_chat_db_user_name="ai_user_metrics"), endpoints)))
    await c.start_server()
    yield c
    await c.close()


async def test_requests_by_canonical_route_and_status_with_latency(client: TestClient) -> None:
    before = await scrape(client)
    route = "/api/status/{task_id}"
    for i in range(3):
        assert (await client.get(f"/api/status/no-such-task-{i}")).status == 404
    assert (await client.get("/healthz")).status == 200
    after = await scrape(client)
    labels = {"app": "web", "route": route, "method": "GET"}
    assert value(after, "audiomuse_http_requests_total", **labels, status="404") - value(
        before, "audiomuse_http_requests_total", **labels, status="404"
    ) == pytest.approx(3)
    assert value(after, "audiomuse_http_request_duration_seconds_count", **labels) - value(
        before, "audiomuse_http_request_duration_seconds_count", **labels
    ) == pytest.approx(3)
    assert value(after, "audiomuse_http_request_duration_seconds_bucket", **labels, le="+Inf") >= 3
    assert value(after, "audiomuse_http_request_duration_seconds_sum", **labels) > 0
    # the raw URL never becomes a label
    assert not any("no-such-task" in v for _, ls in after for _, v in ls)
    # unknown paths are one series, not one per URL
    await client.get("/nowhere/at/all")
    assert (
        value(
            await scrape(client),
            "audiomuse_http_requests_total",
            app="web",
            route="(unmatched)",
            method="GET",
            status="404",
        )
        >= 1
    )


async def test_mixes_and_the_shared_state(client: TestClient, db: asyncpg.Pool, endpoints: Endpoints) -> None:
    vectors, styles = make_embeddings(40, styles=4, seed=3)
    lib = make_tracks(40, styles)
    await insert_library(db, lib, vectors)
    # two failures, one finished task of each outcome, one job waiting in the work queue
    await db.execute(
        """UPDATE tracks SET analysis_status = 'failed', failure_reason = r.reason
           FROM (VALUES ($1, 'corrupt: no audio stream'), ($2, 'timeout: 900 s')) AS r(id, reason)
           WHERE item_id = r.id""",
        lib[0].item_id,
        lib[1].item_id,
    )
    done = await tasks.create(db, "main_analysis")
    await db.execute(
        "UPDATE tasks SET status = 'SUCCESS', started_at = now() - interval '42 seconds', "
        "finished_at = now() WHERE task_id = $1",
        done,
    )
    on_the_bound = await tasks.create(db, "main_analysis")  # exactly 60 s: counted at le="60"
    await db.execute(
        "UPDATE tasks SET status = 'SUCCESS', started_at = now() - interval '60 seconds', "
        "finished_at = now() WHERE task_id = $1",
        on_the_bound,
    )
    running, _ = await tasks.create_run(db, "main_clustering")
    assert running is not None
    redis = await create_pool(RedisSettings.from_dsn(endpoints.redis_url))
    try:
        await enqueue(redis, ANALYZE_ALBUM, "t", job_id="metrics-test-job")
    finally:
        await redis.aclose()

    before = await scrape(client)
    seed = lib[10].item_id
    resp = await client.get("/api/similar_tracks", params={"item_id": seed, "n": "5"})
    assert resp.status == 200, await resp.text()
    assert (await client.get("/api/similar_tracks", params={"item_id": "unknown"})).status == 404
    after = await scrape(client)

    mixes = {"app": "web", "route": "/api/similar_tracks"}
    assert value(after, "audiomuse_mixes_served_total", **mixes) - value(
        before, "audiomuse_mixes_served_total", **mixes
    ) == pytest.approx(1)  # the 404 is not a mix
    assert value(after, "audiomuse_tracks", status="analyzed") == 38
    assert value(after, "audiomuse_tracks", status="failed") == 2
    assert value(after, "audiomuse_tracks_failed", reason="corrupt") == 1
    assert value(after, "audiomuse_tracks_failed", reason="timeout") == 1
    assert value(after, "audiomuse_runs_active", task_type="main_clustering") == 1
    finished = {"task_type": "main_analysis", "status": "SUCCESS"}
    assert value(after, "audiomuse_task_duration_seconds_count", **finished) == 2
    assert value(after, "audiomuse_task_duration_seconds_sum", **finished) == pytest.approx(102)
    assert value(after, "audiomuse_task_duration_seconds_bucket", **finished, le="10") == 0
    assert value(after, "audiomuse_task_duration_seconds_bucket", **finished, le="60") == 2
    assert value(after, "audiomuse_task_duration_seconds_bucket", **finished, le="+Inf") == 2
    assert value(after, "audiomuse_queue_jobs", queue="work") == 1
    assert value(after, "audiomuse_queue_jobs", queue="control") == 0
    pool_max = value(after, "audiomuse_db_pool_connections", state="max")
    assert pool_max >= 1 and value(after, "audiomuse_db_pool_connections", state="in_use") <= pool_max


async def test_jellyfin_bridge_requests_and_mixes(
    db: asyncpg.Pool, endpoints: Endpoints, make_settings: Any, tmp_path: Path
) -> None:
    tracks, vectors = build_library(tmp_path / "media")
    fake = FakeJellyfin(tracks)
    await fake.start()
    try:
        await sync_and_analyse(db, fake, tracks, vectors, tracks[5])
        settings = make_settings(
            {
                "MEDIASERVER_TYPE": "jellyfin",
                "JELLYFIN_URL": fake.base_url,
                "JELLYFIN_USER_ID": fake.user_id,
                "JELLYFIN_TOKEN": fake.token,
                "JELLYFIN_BRIDGE_PORT": "0",
            },
            ai_chat_db_user_name="ai_user_metrics_jf",
        )
        main = TestClient(TestServer(create_app(settings, endpoints)))
        await main.start_server()
        bridge = TestServer(instrument_bridge(jellyfin_bridge.create_app(main.app), "Jellyfin bridge"))
        await bridge.start_server()
        try:
            before = await scrape(main)
            auth = {"Authorization": mediabrowser(fake.token)}
            url = str(bridge.make_url("")).rstrip("/")
            async with aiohttp.ClientSession(headers=auth) as http:
                async with http.get(f"{url}/Items/{tracks[7].id}/InstantMix", params={"limit": "5"}) as r:
                    assert r.status == 200 and "mix;" in r.headers["Server-Timing"]
                async with http.get(f"{url}/Items/{tracks[5].id}/InstantMix") as r:  # not analysed
                    assert r.status == 200 and "Server-Timing" not in r.headers  # Jellyfin's answer
                async with http.get(f"{url}/System/Info/Public") as r:
                    assert r.status == 200
            after = await scrape_after(main, before, "jellyfin_bridge", 3)
        finally:
            await bridge.close()
            await main.close()
    finally:
        await fake.stop()

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    mix = {"app": "jellyfin_bridge", "route": "instantmix:items"}
    assert moved("audiomuse_http_requests_total", **mix, method="GET", status="200") == 2
    assert moved("audiomuse_mixes_served_total", **mix) == 1  # the other one was Jellyfin's
    proxied = {"app": "jellyfin_bridge", "route": "proxy", "method": "GET"}
    assert moved("audiomuse_http_requests_total", **proxied, status="200") == 1
    assert moved("audiomuse_http_request_duration_seconds_count", **proxied) == 1
    assert not any(tracks[7].id in v for _, ls in after for _, v in ls)  # no raw URL


async def test_subsonic_bridge_requests_and_mixes(
    subsonic_server: SupysonicServer, db: asyncpg.Pool, endpoints: Endpoints, tmp_path: Path
) -> None:
    srv = subsonic_server
    await fill_library(db, srv)
    main = TestClient(TestServer(create_app(bridge_settings(srv, tmp_path / "data"), endpoints)))
    await main.start_server()
    bridge = TestServer(instrument_bridge(subsonic_bridge.create_app(main.app), "Subsonic bridge"))
    await bridge.start_server()
    rest = str(bridge.make_url("/rest"))
    songs = [
        s
        for a in srv.get_json("getAlbumList2", type="newest")["albumList2"]["album"]
        for s in srv.get_json("getAlbum", id=a["id"])["album"]["song"]
    ]
    analysed = next(s for s in songs if s["title"] != UNANALYSED_TITLE)
    unanalysed = next(s for s in songs if s["title"] == UNANALYSED_TITLE)
    try:
        before = await scrape(main)
        statuses = []
        async with aiohttp.ClientSession() as http:
            for song in (analysed, unanalysed):
                params = {**srv.auth_params(fmt="json"), "id": song["id"], "count": "5"}
                async with http.get(f"{rest}/getSimilarSongs2.view", params=params) as r:
                    statuses.append(r.status)
            async with http.get(f"{rest}/ping.view", params=srv.auth_params(fmt="json")) as r:
                assert r.status == 200
        after = await scrape_after(main, before, "subsonic_bridge", 3)
    finally:
        await bridge.close()
        await main.close()

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    similar = {"app": "subsonic_bridge", "route": "/rest/getSimilarSongs2"}
    # ours, then supysonic's own answer (it has no getSimilarSongs2: 404)
    assert statuses == [200, 404]
    assert moved("audiomuse_http_requests_total", **similar, method="GET", status="200") == 1
    assert moved("audiomuse_http_requests_total", **similar, method="GET", status="404") == 1
    assert moved("audiomuse_mixes_served_total", **similar) == 1
    proxied = {"app": "subsonic_bridge", "route": "proxy", "method": "GET", "status": "200"}
    assert moved("audiomuse_http_requests_total", **proxied) == 1


async def test_metrics_token_is_optional(make_settings: Any, endpoints: Endpoints) -> None:
    for required, expected in (("false", 200), ("true", 401)):
        settings = make_settings(
            {"API_TOKEN": "s3cret-token", "METRICS_REQUIRE_TOKEN": required},
            ai_chat_db_user_name="ai_user_metrics_tok",
        )
        client = TestClient(TestServer(create_app(settings, endpoints)))
        await client.start_server()
        try:
            resp = await client.get("/metrics", allow_redirects=False)
            assert resp.status == expected
            if expected == 401:
                assert (await resp.json())["error"] == "unauthorized"
                ok = await client.get("/metrics", headers={"Authorization": "Bearer s3cret-token"})
                assert ok.status == 200
                wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
                assert wrong.status == 401
            # the API itself stays behind the token either way
            assert (await client.get("/api/active_tasks")).status == 401
        finally:
            await client.close()


CHILD = """
import sys
from sidecar.web import metrics
for _ in range(int(sys.argv[1])):
    metrics.observe("web", "/api/mix", "GET", 200, 0.02, True)
"""


def test_several_web_processes_are_summed(tmp_path: Path, monkeypatch: Any) -> None:
    """Each web process writes its samples to the shared folder; a scrape sums them all."""
    folder = tmp_path / "metrics"
    folder.mkdir()
    env = {**os.environ, MULTIPROC_ENV: str(folder)}
    for n in (2, 3):  # two processes
        subprocess.run([sys.executable, "-c", CHILD, str(n)], env=env, check=True, timeout=120)
    monkeypatch.setenv(MULTIPROC_ENV, str(folder))
    samples = parse(exposition([]).decode())
    labels = {"app": "web", "route": "/api/mix"}
    assert value(samples, "audiomuse_http_requests_total", **labels, method="GET", status="200") == 5
    assert value(samples, "audiomuse_mixes_served_total", **labels) == 5
    assert value(samples, "audiomuse_http_request_duration_seconds_count", **labels, method="GET") == 5
    assert len(list(folder.glob("counter_*.db"))) == 2  # one file per process
