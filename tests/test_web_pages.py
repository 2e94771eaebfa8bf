"""Every page of the web admin in a real Chromium, on a library with analysed and failed tracks,
a finished clustering and a playlist: no console error, no failed request, at desktop and phone
width (screenshots under test-output/screenshots/); the sign-in flow and the CSRF refusal."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio
from aiohttp import ClientSession
from browser import DESKTOP, PHONE, artist_name, chromium, new_page, screenshot, served, song_title
from clustering_data import insert_rows, make_files, synthetic_rows

from sidecar.db import tasks
from sidecar.jobs.worker import WorkerGroup
from sidecar.providers import make_provider
from sidecar.services import Endpoints
from sidecar.web.keys import DB

N = 240
TOKEN = "browser-test-token-1234"
#: (path, a text the loaded page shows)
PAGES = [
    ("/", "tracks in the library"),
    ("/analysis", "Automatic playlists"),
    ("/similarity", "Similar songs"),
    ("/path", "Song path"),
    ("/chat", "Your request"),
    ("/playlists", "Export .m3u8"),
    ("/settings", "LOCAL_MUSIC_DIR"),
]
CLUSTERING = {
    "clustering_runs": 15,
    "iterations_per_batch_job": 5,
    "num_clusters_min": 6,
    "num_clusters_max": 8,
    "top_n_playlists": 6,
    "min_playlist_size": 4,
    "max_distance": 1.0,
}


async def _library(settings: Any, db: Any) -> list[str]:
    provider = make_provider(settings)
    ids = sorted([t.item_id for a in await provider.list_albums() for t in await provider.album_tracks(a.id)])
    await provider.close()
    rows = synthetic_rows(N, styles=6, seed=3)
    for i, (row, item) in enumerate(zip(rows, ids, strict=True)):
        row.update(item_id=item, title=song_title(i), artist=artist_name(row["style"] * 3 + i % 3))
    await insert_rows(db, rows)
    await db.execute(
        "UPDATE tracks SET analysis_status = 'failed', failure_reason = $2, analyzed_at = now() "
        "WHERE item_id = ANY($1::text[])",
        ids[-3:],
        "corrupt: the file ends in the middle of a frame",
    )
    await db.execute(
        "UPDATE tracks SET analysis_status = 'pending' WHERE item_id = ANY($1::text[])", ids[-8:-3]
    )
    return ids


@pytest_asyncio.fixture
async def site(
    make_settings: Any, endpoints: Endpoints, tmp_path: Path
) -> AsyncIterator[tuple[str, list[str]]]:
    """The web app and a worker on a library of N tracks (5 pending, 3 failed) after a
    clustering, with one playlist made from similar songs."""
    music = tmp_path / "music"
    make_files(music, N)
    settings = make_settings(
        {"LOCAL_MUSIC_DIR": str(music), "API_TOKEN": TOKEN, "OPENAI_API_KEY": "sk-never-shown"},
        ai_chat_db_user_name="ai_user_webpages",
    )
    group = WorkerGroup(settings, endpoints, poll_delay=0.05)
    await group.open()
    running = asyncio.ensure_future(group.run())
    async with served(settings, endpoints) as server:
        ids = await _library(settings, server.app[DB])
        client_headers = {"Authorization": f"Bearer {TOKEN}"}
        async with ClientSession(str(server.make_url("/")), headers=client_headers) as http:
            started = await http.post("/api/clustering/start", json=CLUSTERING)
            assert started.status == 202, await started.text()
            task_id = (await started.json())["task_id"]
            async with asyncio.timeout(240):
                while (task := await tasks.get(server.app[DB], task_id)) and task["status"] in tasks.ACTIVE:
                    await asyncio.sleep(0.2)
            assert task and task["status"] == "SUCCESS", (task or {}).get("log")
            similar = await (
                await http.get("/api/similar_tracks", params={"item_id": ids[0], "n": 12})
            ).json()
            made = await http.post(
                "/api/create_playlist",
                json={
                    "playlist_name": "Like Blue Morning",
                    "track_ids": [ids[0], *(s["item_id"] for s in similar)],
                },
            )
            assert made.status == 201, await made.text()
        try:
            yield str(server.make_url("")).rstrip("/"), ids
        finally:
            group.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await running
            await group.close()


async def _hide_test_paths(page: Any, tmp_root: str) -> None:
    """The test's temporary folders read as /srv/audiomuse in the screenshots made for README."""
    await page.evaluate(
        """root => { const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
        for (let n = walk.nextNode(); n; n = walk.nextNode())
          if (n.nodeValue.includes(root)) n.nodeValue = n.nodeValue.split(root).join('/srv/audiomuse'); }""",
        tmp_root,
    )


async def _other_pages(page: Any, base: str) -> list[tuple[str, str]]:
    """The pages other parts of the service add to the layout's navigation (the map, the API
    docs), where they exist: they must load as cleanly."""
    found = []
    for path in ("/map", "/apidocs"):
        status = await page.evaluate(f"fetch('{base}{path}').then(r => r.status)")
        if status == 200:
            found.append((path, ""))
    return found


async def _use(page: Any, path: str) -> None:
    """Use the page the way a person would before looking at it (the pickers, a request)."""
    if path == "/similarity":
        await page.fill("#song", "blue morning")
        await page.locator(".suggest li").first.click()
        await page.locator("#results tr").first.wait_for()
    elif path == "/path":
        await page.fill("#start", "blue morning")
        await page.locator(".suggest li").first.click()
        await page.fill("#end", "city shadows")
        await page.locator(".suggest li").first.click()
        await page.fill("#max_steps", "8")
        await page.click("#find-path")
        await page.locator("#path-rows tr").first.wait_for()
    elif path == "/chat":
        await page.fill("#request", "calm instrumental jazz")
        await page.click("#ask")
        await page.locator("#answer:not(.hidden)").wait_for()
    elif path == "/analysis":
        await page.locator("#task-status", has_text="SUCCESS").wait_for()
    await page.wait_for_load_state("networkidle")


async def _sign_in(page: Any, base: str, then: str = "/") -> None:
    await page.goto(f"{base}{then}")
    assert page.url.startswith(f"{base}/login")
    await page.fill("#token", TOKEN)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}{then}")


async def test_every_page_loads_cleanly_at_desktop_and_phone_width(
    site: tuple[str, list[str]], tmp_path: Path
) -> None:
    base, _ = site
    tmp_root = str(tmp_path)
    async with chromium() as browser:
        for label, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
            page, problems = await new_page(browser, viewport)
            await _sign_in(page, base)
            for path, marker in PAGES + await _other_pages(page, base):
                await page.goto(f"{base}{path}")
                await page.wait_for_load_state("networkidle")
                if marker:
                    await page.locator("main").get_by_text(marker).first.wait_for()
                await _use(page, path)
                html = await page.content()
                assert TOKEN not in html and "sk-never-shown" not in html, path
                name = "dashboard" if path == "/" else path.strip("/")
                await _hide_test_paths(page, tmp_root)
                await screenshot(page, f"{name}-{label}")
                if label == "desktop":
                    await page.evaluate("window.scrollTo(0, 0)")
                    await screenshot(page, f"{name}-viewport", full_page=False)
                assert not problems.seen, f"{path} ({label}): {problems.seen}"
            await page.context.close()


async def test_pages_show_the_library(site: tuple[str, list[str]]) -> None:
    base, _ = site
    async with chromium() as browser:
        page, problems = await new_page(browser)
        await _sign_in(page, base)
        await page.wait_for_function("document.getElementById('stat-total').textContent === '240'")
        assert await page.text_content("#stat-failed") == "3"
        assert await page.text_content("#stat-pending") == "5"
        assert "corrupt × 3" in (await page.text_content("#failed-reasons") or "")
        assert await page.locator("#failed-rows tr").count() == 3
        await page.locator("#health-worker", has_text="a worker is running").wait_for()
        await page.goto(f"{base}/analysis")
        await page.locator("#result-playlists .playlist-card").first.wait_for()
        assert await page.locator("#result-playlists .playlist-card").count() >= 1
        assert "tempo" in (await page.text_content("#result-playlists") or "")
        await page.goto(f"{base}/playlists")
        await page.get_by_text("Like Blue Morning").wait_for()
        async with page.expect_download() as download:
            await page.get_by_text("Export .m3u8").first.click()
        saved = await (await download.value).path()
        assert Path(saved).read_text().startswith("#EXTM3U")
        # Delete asks first: dismissed keeps the playlist, accepted deletes it (the CSRF-carrying DELETE)
        liked = page.locator(".playlist-card", has_text="Like Blue Morning")
        page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.dismiss()))
        await liked.get_by_role("button", name="Delete").click()
        assert await liked.count() == 1
        page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        await liked.get_by_role("button", name="Delete").click()
        await page.get_by_text("“Like Blue Morning” deleted").wait_for()
        await liked.wait_for(state="detached")
        names = await page.evaluate("AM.get('/api/playlists/list').then((l) => l.map((p) => p.name))")
        assert names and "Like Blue Morning" not in names
        await page.goto(f"{base}/settings")
        row = page.locator("#settings tr", has_text="OPENAI_API_KEY")
        assert "***" in (await row.text_content() or "") and "environment" in (await row.text_content() or "")
        assert not problems.seen, problems.seen


async def test_sign_in_and_csrf_refusal(site: tuple[str, list[str]]) -> None:
    base, _ = site
    async with chromium() as browser:
        page, problems = await new_page(browser)
        await page.goto(f"{base}/analysis")
        await page.wait_for_url(f"{base}/login?next=/analysis")
        assert await page.locator("nav a").count() == 0  # nothing to browse before signing in
        await screenshot(page, "login-desktop")
        problems.allow(401, r"/login$")
        await page.fill("#token", "not-the-token")
        await page.click("button[type=submit]")
        await page.get_by_text("That token is not right.").wait_for()
        await page.fill("#token", TOKEN)
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{base}/analysis")
        cookies = await page.context.cookies()
        session = next(c for c in cookies if c["name"] == "audiomuse_session")
        assert session["httpOnly"] and session["sameSite"] == "Strict"
        assert await page.evaluate("document.cookie") == ""  # not readable by scripts
        # a POST with the session cookie but without the page's token is refused
        problems.allow(403, r"/api/analysis/start$")
        status = await page.evaluate(
            "fetch('/api/analysis/start', {method: 'POST', body: '{}', "
            "headers: {'Content-Type': 'application/json'}}).then(r => r.status)"
        )
        assert status == 403
        # the same request through the page's helper (token in X-CSRF-Token) reaches the handler
        problems.allow(400, r"/api/clustering/start$")
        answer = await page.evaluate(
            "AM.api('POST', '/api/clustering/start', {clustering_runs: 0}).catch(e => [e.status, e.field])"
        )
        assert answer == [400, "clustering_runs"]
        # signing out ends the session
        await page.click(".nav-toggle") if await page.locator(".nav-toggle").is_visible() else None
        await page.click("#logout")
        await page.wait_for_url(f"{base}/login")
        await page.goto(f"{base}/")
        assert page.url.startswith(f"{base}/login")
        assert not problems.seen, problems.seen
