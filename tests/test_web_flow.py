"""A new user's whole path through the web admin, in a real Chromium, on real audio: start an
analysis from the page and watch it finish (a real worker process), find similar songs and make
a playlist, see a bad clustering parameter refused next to its field, run a small clustering and
see its playlists, get an instant playlist without an LLM, find everything on the playlists page."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from audio_factory import make_library
from browser import chromium, new_page, screenshot, served

from sidecar.services import Endpoints

ALBUMS = [
    {
        "artist": "Alpha Band",
        "album": "First Light",
        "genre": "Rock",
        "fmt": "flac",
        "tracks": ["Dawn", "Morning Run", "High Noon"],
    },
    {
        "artist": "Alpha Band",
        "album": "Second Wind",
        "genre": "Rock",
        "fmt": "mp3",
        "tracks": ["Gust", "Breeze", "Squall"],
    },
    {
        "artist": "Beta Ensemble",
        "album": "Quiet Rooms",
        "genre": "Classical",
        "fmt": "ogg",
        "tracks": ["Adagio", "Largo", "Lento"],
    },
    {
        "artist": "Gamma",
        "album": "Loops",
        "genre": "Electronic",
        "fmt": "m4a",
        "tracks": ["Loop One", "Loop Two", "Loop Three"],
    },
]
SLOW = 240_000  # ms: an analysis or clustering on a loaded 2-core machine


@pytest.fixture
def music(tmp_path: Path) -> Path:
    root = tmp_path / "music"
    make_library(root, ALBUMS, seconds=4.0)
    return root


@pytest.fixture
def worker(music: Path, endpoints: Endpoints, tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """`audiomuse worker` as a separate process on the test's database and queue."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "MEDIASERVER_", "API_TOKEN"))
    }
    env.update(
        DATABASE_URL=endpoints.postgres_dsn,
        REDIS_URL=endpoints.redis_url,
        LOCAL_MUSIC_DIR=str(music),
        AUDIOMUSE_DATA_DIR=str(tmp_path / "data"),
        AI_CHAT_DB_USER_NAME="ai_user_webflow",
        LOG_LEVEL="WARNING",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "sidecar", "worker"],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    yield proc
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest_asyncio.fixture
async def base(make_settings: Any, endpoints: Endpoints, music: Path, worker: Any) -> AsyncIterator[str]:
    settings = make_settings({"LOCAL_MUSIC_DIR": str(music)}, ai_chat_db_user_name="ai_user_webflow")
    async with served(settings, endpoints) as server:
        yield str(server.make_url("")).rstrip("/")


async def _toast(page: Any, text: str, timeout: float = 30_000) -> None:
    await page.locator(".toast", has_text=text).first.wait_for(timeout=timeout)


@pytest.mark.slow
async def test_a_new_user_goes_from_analysis_to_playlists(base: str) -> None:
    async with chromium() as browser:
        page, problems = await new_page(browser)

        # 1. the first analysis, started from the page, followed until it ends
        await page.goto(f"{base}/analysis")
        await page.fill("#f-num_recent_albums", "0")
        await page.click("#start-analysis")
        await _toast(page, "Analysis started")
        await page.locator("#task-status", has_text="SUCCESS").wait_for(timeout=SLOW)
        await _toast(page, "Analysis finished")
        assert await page.locator("#children-rows tr").count() == len(ALBUMS)  # one job per album
        assert "100%" in (await page.text_content("#task-percent") or "")
        await page.goto(f"{base}/")
        await page.wait_for_function("document.getElementById('stat-analyzed').textContent === '12'")

        # 2. similar songs, typed as a search, and a playlist of them
        await page.goto(f"{base}/similarity")
        await page.fill("#song", "dawn alpha")
        await page.locator(".suggest li", has_text="Dawn").first.click()
        await page.locator("#results tr").first.wait_for()
        assert await page.locator("#results tr").count() >= 3
        await page.fill("#playlist-name", "Like Dawn")
        await page.click("#create-playlist")
        await _toast(page, "Playlist “Like Dawn” created")
        await screenshot(page, "flow-similarity-desktop")

        # 3. the clustering: a refused value is shown next to its field, then a small run
        await page.goto(f"{base}/analysis")
        problems.allow(400, r"/api/clustering/start$")
        await page.fill("#f-num_clusters_min", "1")
        await page.fill("#f-num_clusters_max", "3")
        await page.click("#start-clustering")
        error = page.locator(".field.invalid .error")
        await error.wait_for()
        assert "num_clusters_min" in (await error.text_content() or "")
        await page.fill("#f-num_clusters_min", "2")
        await page.fill("#f-clustering_runs", "4")
        await page.click("details.advanced >> text=Advanced (")
        await page.fill("#f-min_playlist_size", "2")
        await page.fill("#f-iterations_per_batch_job", "2")
        await page.click("#start-clustering")
        await _toast(page, "Clustering started")
        await page.locator("#task-status", has_text="SUCCESS").wait_for(timeout=SLOW)
        await _toast(page, "Clustering finished")
        await page.locator("#result-playlists .playlist-card").first.wait_for()
        first = page.locator("#result-playlists .playlist-card").first
        assert "songs" in (await first.text_content() or "")
        await screenshot(page, "flow-clustering-desktop")

        # 4. an instant playlist without any LLM (AI_MODEL_PROVIDER=NONE)
        await page.goto(f"{base}/chat")
        await page.fill("#request", "songs by Alpha Band")
        await page.click("#ask")
        await page.locator("#answer:not(.hidden)").wait_for(timeout=60_000)
        assert "rules" in (await page.text_content("#provider") or "")
        assert (await page.text_content("#understood") or "").strip() not in ("", "–")
        assert await page.locator("#songs tr").count() >= 1
        await page.fill("#playlist-name", "Alpha evening")
        await page.click("#create-playlist")
        await _toast(page, "Alpha evening_instant")
        await screenshot(page, "flow-chat-desktop")

        # 5. everything this service made, on the playlists page
        await page.goto(f"{base}/playlists")
        await page.get_by_text("Like Dawn").wait_for()
        await page.get_by_text("Alpha evening_instant").wait_for()
        kinds = await page.locator("#kind option").all_text_contents()
        assert any("instant" in k for k in kinds) and len(kinds) >= 3, kinds
        await screenshot(page, "flow-playlists-desktop")
        assert not problems.seen, problems.seen
