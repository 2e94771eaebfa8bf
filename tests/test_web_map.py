"""The music map: the projection, its cache in the database (computed by the worker's job,
recomputed when the library changes), the packed API, and the /map page in a real Chromium
(points drawn on the canvas, hover, rectangle and click selection)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from clustering_data import insert_rows, synthetic_rows
from workers import run_workers_until_idle

from sidecar.app import create_app
from sidecar.db import map as map_db
from sidecar.jobs.map import project, quantise, refresh_map
from sidecar.services import Endpoints

CHROMIUM = "/usr/bin/chromium"
SIX = {"danceable", "aggressive", "happy", "party", "relaxed", "sad", "other"}


def test_projection_separates_clusters_and_is_deterministic() -> None:
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(2, 200)).astype(np.float32)
    labels = np.arange(400) % 2
    vectors = centres[labels] + 0.2 * rng.normal(size=(400, 200)).astype(np.float32)
    a = project(vectors.copy())
    # the first component separates the two clusters completely
    first = a[:, 0]
    assert (
        first[labels == 0].max() < first[labels == 1].min()
        or first[labels == 1].max() < first[labels == 0].min()
    )
    # same input, same map; rows in another order land on the same coordinates (no sign flips)
    np.testing.assert_allclose(project(vectors.copy()), a, rtol=1e-5, atol=1e-6)
    order = rng.permutation(400)
    np.testing.assert_allclose(project(vectors[order].copy()), a[order], rtol=1e-4, atol=1e-5)
    q = quantise(a)
    assert (
        q.dtype == np.dtype("<u2")
        and q.min(axis=0).tolist() == [0, 0]
        and q.max(axis=0).tolist() == [65535, 65535]
    )


def _decode(body: dict[str, Any]) -> tuple[np.ndarray, dict[str, list[str]]]:
    xy = np.frombuffer(base64.b64decode(body["xy"]), dtype="<u2").reshape(-1, 2)
    labels = {
        kind: [lab["names"][k] for k in base64.b64decode(lab["index"])]
        for kind, lab in body["labels"].items()
    }
    return xy, labels


@pytest.fixture
def music(tmp_path: Path) -> Path:
    root = tmp_path / "music"
    root.mkdir()
    return root


@pytest_asyncio.fixture
async def settings(make_settings: Any, music: Path) -> Any:
    return make_settings({"LOCAL_MUSIC_DIR": str(music)}, ai_chat_db_user_name="ai_user_map")


@pytest_asyncio.fixture
async def client(settings: Any, endpoints: Endpoints) -> AsyncIterator[TestClient]:
    c = TestClient(TestServer(create_app(settings, endpoints)))
    await c.start_server()
    yield c
    await c.close()


async def test_the_map_is_computed_by_the_worker_cached_and_recomputed_when_the_library_changes(
    client: TestClient, settings: Any, endpoints: Endpoints, db: asyncpg.Pool
) -> None:
    rows = synthetic_rows(60, styles=6)
    await insert_rows(db, rows)
    first = await client.get("/api/map")
    assert first.status == 200 and (await first.json()) == {"status": "computing", "count": 0}
    await run_workers_until_idle(settings, endpoints)
    body = await (await client.get("/api/map")).json()
    assert body["status"] == "ready" and body["count"] == 60 and body["method"] == "pca-cosine"
    assert sorted(body["ids"]) == sorted(r["item_id"] for r in rows)
    xy, labels = _decode(body)
    assert xy.shape == (60, 2)
    assert set(labels["mood"]) <= SIX and len(labels["mood"]) == 60
    # each style's top tag is a stratified genre (rock, electronic, jazz, pop, metal, folk)
    by_id = dict(zip(body["ids"], labels["genre"], strict=True))
    assert by_id["t00000"] == "rock" and by_id["t00001"] == "electronic" and by_id["t00002"] == "jazz"
    # tracks of one style lie closer to each other than to the other styles
    style = {r["item_id"]: r["style"] for r in rows}
    points = {i: xy[k].astype(float) for k, i in enumerate(body["ids"])}
    same = np.mean(
        [
            np.linalg.norm(points[a] - points[b])
            for a in points
            for b in points
            if a < b and style[a] == style[b]
        ]
    )
    other = np.mean(
        [np.linalg.norm(points[a] - points[b]) for a in points for b in points if style[a] != style[b]]
    )
    assert same < other / 2, (same, other)

    # cached: the stored map is of the current library, the job has nothing to do
    assert await refresh_map(db, settings) == {"status": "fresh"}
    computed_at = body["computed_at"]

    # the library changes: the old map is served as stale while the worker computes the new one
    more = synthetic_rows(72, styles=6, seed=3)[60:]
    await insert_rows(db, more)
    stale = await (await client.get("/api/map")).json()
    assert stale["status"] == "stale" and stale["count"] == 60 and stale["computed_at"] == computed_at
    await run_workers_until_idle(settings, endpoints)
    fresh = await (await client.get("/api/map")).json()
    assert fresh["status"] == "ready" and fresh["count"] == 72 and fresh["computed_at"] != computed_at

    # a track removed changes the signature too
    sig = await map_db.library_signature(db)
    await db.execute("DELETE FROM tracks WHERE item_id = 't00005'")
    assert await map_db.library_signature(db) != sig


async def test_map_details_and_compute(client: TestClient, db: asyncpg.Pool) -> None:
    await insert_rows(db, synthetic_rows(6, styles=3))
    resp = await client.get("/api/map/tracks", params={"ids": "t00002,nope,t00000"})
    assert resp.status == 200
    assert [(t["item_id"], t["title"]) for t in await resp.json()] == [
        ("t00002", "Song 2"),
        ("t00000", "Song 0"),
    ]
    assert (await client.get("/api/map/tracks")).status == 400
    too_many = ",".join(f"x{i}" for i in range(1001))
    assert (await client.get("/api/map/tracks", params={"ids": too_many})).status == 400
    resp = await client.post("/api/map/compute")
    assert resp.status == 202 and (await resp.json()) == {"queued": True}
    # one computation at a time: the same job id is refused while it is queued
    assert (await (await client.post("/api/map/compute")).json()) == {"queued": False}


async def test_an_empty_library_gives_an_empty_map(db: asyncpg.Pool, settings: Any) -> None:
    assert (await refresh_map(db, settings))["tracks"] == 0
    stored = await map_db.load(db)
    assert stored is not None and stored.item_ids == [] and stored.xy == b""


# --- the page in a real browser -------------------------------------------------------------


@pytest_asyncio.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    async with async_playwright() as pw:
        b = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        yield b
        await b.close()


async def test_the_map_page_draws_points_and_selects_them(
    client: TestClient, settings: Any, endpoints: Endpoints, db: asyncpg.Pool, browser: Any
) -> None:
    rows = synthetic_rows(120, styles=6)
    await insert_rows(db, rows)
    await refresh_map(db, settings)
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(str(client.make_url("/map")))
    await page.wait_for_selector("body[data-map-drawn='120']", timeout=20_000)

    # points are drawn: coloured pixels on the canvas, in more than one colour
    painted = await page.evaluate(
        """() => {
            const c = document.getElementById('map-canvas');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0; const colours = new Set();
            for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0) { n++; colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]); }
            return [n, colours.size];
        }"""
    )
    assert painted[0] >= 120 * 4 * 0.5 and painted[1] >= 2, painted
    assert await page.locator("#map-legend li").count() >= 2
    assert not await page.locator("#map-path").is_visible()  # offered for two songs only

    box = await page.locator("#map-canvas").bounding_box()
    # hover a point: the tooltip names a song
    x, y = await page.evaluate("AM_MAP.pointAt(0)")
    await page.mouse.move(box["x"] + x, box["y"] + y)
    tip = page.locator("#map-tip")
    await tip.wait_for(state="visible", timeout=10_000)
    assert "Song " in await tip.inner_text()

    # a rectangle over the whole canvas selects every point
    await page.mouse.move(box["x"] + 2, box["y"] + 2)
    await page.mouse.down()
    await page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=5)
    await page.mouse.move(box["x"] + box["width"] - 2, box["y"] + box["height"] - 2, steps=5)
    await page.mouse.up()
    await page.wait_for_function("document.getElementById('map-sel-count').textContent === '120'")
    assert sorted(await page.evaluate("AM_MAP.selectedIds()")) == sorted(r["item_id"] for r in rows)
    assert await page.locator("#map-create").is_enabled()

    # clear, then click two songs: the song path between them is offered
    await page.click("#map-clear")
    await page.locator("#map-canvas").scroll_into_view_if_needed()
    box = await page.locator("#map-canvas").bounding_box()  # the click may have scrolled the page
    for i in (0, 1):
        px, py = await page.evaluate(f"AM_MAP.pointAt({i})")
        await page.mouse.click(box["x"] + px, box["y"] + py)
    await page.wait_for_function("document.getElementById('map-sel-count').textContent === '2'")
    chosen = await page.evaluate("AM_MAP.selectedIds()")
    href = await page.locator("#map-path").get_attribute("href")
    assert await page.locator("#map-path").is_visible()
    assert all(i in href for i in chosen), (href, chosen)
    # following it opens the song path page with both songs chosen
    await page.click("#map-path")
    await page.wait_for_url("**/path?*")
    titles = {r["item_id"]: r["title"] for r in rows}
    for field, item_id in (("#start", chosen[0]), ("#end", chosen[1])):
        await page.wait_for_function(
            f"document.querySelector('{field}').value.startsWith({titles[item_id] + ' – '!r})"
        )
    assert not errors, errors
    await page.close()


async def test_the_worker_queues_a_new_map_when_the_library_changed_and_no_run_is_active(
    db: asyncpg.Pool, settings: Any, redis_url: str
) -> None:
    from arq import create_pool
    from arq.connections import RedisSettings

    from sidecar.jobs.context import JobContext
    from sidecar.jobs.map import keep_map_current
    from sidecar.jobs.names import WORK_QUEUE
    from sidecar.providers import make_provider

    redis = await create_pool(RedisSettings.from_dsn(redis_url))
    provider = make_provider(settings)
    ctx = {"app": JobContext(settings=settings, db=db, provider=provider), "redis": redis}
    try:
        await insert_rows(db, synthetic_rows(6, styles=3))
        await refresh_map(db, settings)
        assert await keep_map_current(ctx) == "current"
        await insert_rows(db, synthetic_rows(9, styles=3)[6:])
        # an analysis is running: wait for it to end
        await db.execute(
            "INSERT INTO tasks (task_id, task_type, status) VALUES ('run-1', 'main_analysis', 'PROGRESS')"
        )
        assert await keep_map_current(ctx) == "busy"
        await db.execute("UPDATE tasks SET status = 'SUCCESS' WHERE task_id = 'run-1'")
        assert await keep_map_current(ctx) == "queued"
        assert await redis.zcard(WORK_QUEUE) == 1
        assert await keep_map_current(ctx) == "already queued"
    finally:
        await provider.close()
        await redis.aclose()
