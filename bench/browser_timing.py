"""Shared harness of the page benchmarks (bench/map.py, bench/pages.py): embedded PostgreSQL and
Valkey in a temporary folder, a synthetic analysed library filled with COPY, the web app served
on a free port, and Debian's Chromium through Playwright (headless, --no-sandbox --disable-gpu).

The library: tracks in clustered styles (a 16-d latent space projected to 200-d, like
tests/library_factory.py), moods and six mood scores per style; optionally some failed and
pending tracks (the last ids), which get no analysis and no embedding.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from clustering_data import STYLE_TAGS  # noqa: E402

from sidecar.app import create_app  # noqa: E402
from sidecar.config import Settings, load_settings  # noqa: E402
from sidecar.db.pool import encode_vector  # noqa: E402
from sidecar.embedded.postgres import EmbeddedPostgres, free_port  # noqa: E402
from sidecar.embedded.valkey import EmbeddedValkey  # noqa: E402
from sidecar.services import Endpoints  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
SIX = ("danceable", "aggressive", "happy", "party", "relaxed", "sad")
#: failure reasons of the synthetic failed tracks (kind: detail, as the analysis writes them)
FAILURES = (
    "corrupt: the file ends in the middle of a frame",
    "download: the media server answered 404",
    "timeout: decoding took longer than 300 s",
)


def track_id(i: int) -> str:
    return f"id{i:07d}"


async def fill(dsn: str, n: int, styles: int = 24, seed: int = 0, failed: int = 0, pending: int = 0) -> None:
    """Insert ``n`` tracks: the last ``failed`` failed, the ``pending`` before them pending, the
    others analysed (moods, scores, embedding).  The HNSW indexes are dropped first: the pages
    measured here read neither, and filling without them takes seconds instead of minutes."""
    rng = np.random.default_rng(seed)
    style = rng.integers(0, styles, n)
    centres = rng.normal(size=(styles, 16))
    latent = centres[style] + 0.45 * rng.normal(size=(n, 16))
    vectors = (latent @ rng.normal(size=(16, 200)) / 4 + 0.05 * rng.normal(size=(n, 200))).astype(np.float32)
    feats = rng.uniform(0, 1, size=(n, 6)).astype(np.float32)
    ids = [track_id(i) for i in range(n)]
    analysed = n - failed - pending
    now = datetime.now(UTC)
    started = time.perf_counter()

    def log(what: str) -> None:
        print(f"  {what}: {time.perf_counter() - started:.1f} s", flush=True)

    def status(i: int) -> tuple[str, str | None, str | None, datetime | None]:
        if i < analysed:
            return "analyzed", None, "b1", now
        if i < analysed + pending:
            return "pending", None, None, None
        return "failed", FAILURES[i % len(FAILURES)], "b1", now

    conn = await asyncpg.connect(dsn)
    try:
        await conn.set_type_codec("vector", encoder=encode_vector, decoder=bytes, format="binary")
        for index in ("embeddings_space_hnsw_idx", "embeddings_hnsw_cosine_idx"):
            await conn.execute(f"DROP INDEX IF EXISTS {index}")
        await conn.copy_records_to_table(
            "tracks",
            records=[
                (ids[i], "local", f"Song {i}", f"Artist {style[i]}-{i % 40}", f"Album {i // 10}", *status(i))
                for i in range(n)
            ],
            columns=[
                "item_id",
                "provider",
                "title",
                "artist",
                "album",
                "analysis_status",
                "failure_reason",
                "model_version",
                "analyzed_at",
            ],
        )
        log("tracks")
        await conn.copy_records_to_table(
            "track_analysis",
            records=[
                (ids[i], list(STYLE_TAGS[style[i] % len(STYLE_TAGS)]), *map(float, feats[i]), "b1")
                for i in range(analysed)
            ],
            columns=["item_id", "moods", *SIX, "model_version"],
        )
        log("track_analysis")
        await conn.copy_records_to_table(
            "embeddings",
            records=[(ids[i], vectors[i], "b1") for i in range(analysed)],
            columns=["item_id", "embedding", "model_version"],
        )
        log("embeddings")
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    # placed in the similarity space as the worker places them (what the map and mixes read)
    from sidecar.db import create_pool
    from sidecar.similarity import refit

    pool = await create_pool(dsn, min_size=1, max_size=1)
    try:
        await refit.keep_fitted(pool, refit.AT_REST)
    finally:
        await pool.close()
    log("similarity space")


@contextmanager
def embedded_services(prefix: str) -> Iterator[tuple[EmbeddedPostgres, str, Path]]:
    """A running embedded PostgreSQL and Valkey in a new temporary folder: (pg, redis_url, folder)."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    pg = EmbeddedPostgres(work)
    pg.start()
    valkey = EmbeddedValkey(work)
    try:
        redis_url = valkey.start()
        try:
            yield pg, redis_url, work
        finally:
            valkey.stop()
    finally:
        pg.stop()


def bench_settings(work: Path) -> Settings:
    """Settings of the benchmarked service: the local provider over an empty folder of ``work``."""
    (work / "music").mkdir(exist_ok=True)
    return load_settings(
        {"AUDIOMUSE_DATA_DIR": str(work / "data"), "LOCAL_MUSIC_DIR": str(work / "music")},
        ai_chat_db_user_name="ai_user_bench",
    )


@asynccontextmanager
async def serving(settings: Settings, endpoints: Endpoints) -> AsyncIterator[str]:
    """The web app on a free loopback port; yields its base URL (no trailing slash)."""
    runner = web.AppRunner(create_app(settings, endpoints))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    """Debian's Chromium, headless, through Playwright (no browser download)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield browser
        finally:
            await browser.close()


def medians(samples: Sequence[dict[str, float]], keys: Sequence[str]) -> dict[str, float]:
    """The median of each key over the samples."""
    return {k: statistics.median(s[k] for s in samples) for k in keys}


def spread(samples: Sequence[dict[str, float]], key: str) -> str:
    """'median M ms (min A, max B) over N loads' of one key."""
    values = [s[key] for s in samples]
    return (
        f"median {statistics.median(values):.0f} ms (min {min(values):.0f}, max {max(values):.0f}) "
        f"over {len(values)} loads"
    )
