"""The music map at library scale: computing it (read + PCA + store) for N synthetic analysed
tracks, the size and time of GET /api/map, and the time to first paint of /map in Chromium.

    python bench/map.py                  # 100k tracks
    python bench/map.py --tracks 20000 --paints 5

Embedded PostgreSQL and Valkey in a temporary folder; tracks in clustered styles (a 16-d latent
space projected to 200-d, like tests/library_factory.py).  Memory: the peak of Python and numpy
allocations during the computation (tracemalloc).  First paint:
Playwright driving Debian's /usr/bin/chromium (headless, --no-sandbox --disable-gpu), the time
from the start of the navigation to the end of the first full canvas draw (map.js records it),
median of --paints page loads.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import statistics
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import asyncpg
import numpy as np
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from clustering_data import STYLE_TAGS  # noqa: E402
from scratch_db import scratch_database  # noqa: E402

from sidecar.app import create_app  # noqa: E402
from sidecar.config import load_settings  # noqa: E402
from sidecar.db import create_pool  # noqa: E402
from sidecar.db import map as map_db  # noqa: E402
from sidecar.embedded.postgres import EmbeddedPostgres, free_port  # noqa: E402
from sidecar.embedded.valkey import EmbeddedValkey  # noqa: E402
from sidecar.jobs.map import project, refresh_map  # noqa: E402
from sidecar.services import Endpoints  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
SIX = ("danceable", "aggressive", "happy", "party", "relaxed", "sad")


async def fill(dsn: str, n: int, styles: int = 24, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    style = rng.integers(0, styles, n)
    centres = rng.normal(size=(styles, 16))
    latent = centres[style] + 0.45 * rng.normal(size=(n, 16))
    vectors = (latent @ rng.normal(size=(16, 200)) / 4 + 0.05 * rng.normal(size=(n, 200))).astype(np.float32)
    feats = rng.uniform(0, 1, size=(n, 6)).astype(np.float32)
    ids = [f"id{i:07d}" for i in range(n)]
    now = datetime.now(UTC)
    started = time.perf_counter()

    def log(what: str) -> None:
        print(f"  {what}: {time.perf_counter() - started:.1f} s", flush=True)

    conn = await asyncpg.connect(dsn)
    try:
        from sidecar.db.pool import encode_vector

        await conn.set_type_codec("vector", encoder=encode_vector, decoder=bytes, format="binary")
        # the map reads neither index: filling without them takes seconds instead of minutes
        for index in ("embeddings_space_hnsw_idx", "embeddings_hnsw_cosine_idx"):
            await conn.execute(f"DROP INDEX IF EXISTS {index}")
        await conn.copy_records_to_table(
            "tracks",
            records=[
                (
                    ids[i],
                    "local",
                    f"Song {i}",
                    f"Artist {style[i]}-{i % 40}",
                    f"Album {i // 10}",
                    "analyzed",
                    "b1",
                    now,
                )
                for i in range(n)
            ],
            columns=[
                "item_id",
                "provider",
                "title",
                "artist",
                "album",
                "analysis_status",
                "model_version",
                "analyzed_at",
            ],
        )
        log("tracks")
        await conn.copy_records_to_table(
            "track_analysis",
            records=[
                (ids[i], list(STYLE_TAGS[style[i] % len(STYLE_TAGS)]), *map(float, feats[i]), "b1")
                for i in range(n)
            ],
            columns=["item_id", "moods", *SIX, "model_version"],
        )
        log("track_analysis")
        await conn.copy_records_to_table(
            "embeddings",
            records=[(ids[i], vectors[i], "b1") for i in range(n)],
            columns=["item_id", "embedding", "model_version"],
        )
        log("embeddings")
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def first_paints(url: str, n: int, paints: int, screenshot: Path | None) -> list[dict[str, float]]:
    from playwright.async_api import async_playwright

    out = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            for _ in range(paints):
                page = await browser.new_page(viewport={"width": 1440, "height": 900})
                await page.goto(url)
                await page.wait_for_selector(f"body[data-map-drawn='{n}']", timeout=120_000)
                out.append(await page.evaluate("AM_MAP.timings"))
                if screenshot is not None:
                    await page.screenshot(path=str(screenshot))
                await page.close()
        finally:
            await browser.close()
    return out


async def run(args: argparse.Namespace, pg: EmbeddedPostgres, redis_url: str, work: Path) -> None:
    async with scratch_database(pg, "bench_map", migrated=True) as dsn:
        t = time.perf_counter()
        await fill(dsn, args.tracks)
        print(f"filled {args.tracks:,} analysed tracks in {time.perf_counter() - t:.1f} s")
        (work / "music").mkdir(exist_ok=True)
        settings = load_settings(
            {"AUDIOMUSE_DATA_DIR": str(work / "data"), "LOCAL_MUSIC_DIR": str(work / "music")},
            ai_chat_db_user_name="ai_user_bench",
        )
        pool = await create_pool(dsn, min_size=1, max_size=2)
        try:
            cpu0 = time.process_time()
            t = time.perf_counter()
            result = await refresh_map(pool, settings, force=True)
            wall = time.perf_counter() - t
            cpu = time.process_time() - cpu0
            tracemalloc.start()  # slows Python down: a second run for the memory only
            await refresh_map(pool, settings, force=True)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            vectors = np.random.default_rng(0).normal(size=(args.tracks, 200)).astype(np.float32)
            t = time.perf_counter()
            project(vectors)
            pca = time.perf_counter() - t
            async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
                t = time.perf_counter()
                rows = 0
                async for chunk in map_db.analysed_chunks(conn):
                    rows += len(chunk[0])
                read = time.perf_counter() - t
            t = time.perf_counter()
            again = await refresh_map(pool, settings)
            cached = time.perf_counter() - t
        finally:
            await pool.close()
        assert result["tracks"] == args.tracks and again == {"status": "fresh"}
        print(
            f"compute_map: {wall:.2f} s wall, {cpu:.2f} s CPU of this process (read + PCA + store; "
            f"the read of the tracks alone {read:.2f} s, the PCA alone {pca:.2f} s)"
        )
        print(f"  peak Python + numpy allocations during a computation: {peak / 2**20:.0f} MiB")
        print(f"  a run with the map up to date (signature check only): {cached * 1000:.0f} ms")

        app = create_app(settings, Endpoints(dsn, redis_url))
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            async with aiohttp.ClientSession(auto_decompress=False) as http:
                times, sizes = [], {}
                for enc in ("identity", "gzip"):
                    for _ in range(5):
                        t = time.perf_counter()
                        async with http.get(
                            f"http://127.0.0.1:{port}/api/map", headers={"Accept-Encoding": enc}
                        ) as resp:
                            body = await resp.read()
                            assert resp.status == 200
                        times.append((enc, time.perf_counter() - t))
                    sizes[enc] = len(body)
                assert len(gzip.decompress(body)) == sizes["identity"]
            for enc in ("identity", "gzip"):
                ms = statistics.median(t * 1000 for e, t in times if e == enc)
                print(f"GET /api/map ({enc}): {sizes[enc] / 2**20:.2f} MiB, median {ms:.0f} ms")
            paints = await first_paints(
                f"http://127.0.0.1:{port}/map", args.tracks, args.paints, args.screenshot
            )
            steps = ("requested", "received", "decoded", "laidOut", "drawn")
            med = {k: statistics.median(p[k] for p in paints) for k in steps}
            print(
                f"/map first paint with {args.tracks:,} points (navigation start -> canvas drawn): "
                f"median {med['drawn']:.0f} ms over {len(paints)} loads "
                f"(min {min(p['drawn'] for p in paints):.0f}, max {max(p['drawn'] for p in paints):.0f}); "
                f"map asked for at {med['requested']:.0f} ms, received +{med['received'] - med['requested']:.0f}, decoded +{med['decoded'] - med['received']:.0f}, "
                f"laid out +{med['laidOut'] - med['decoded']:.0f}, drawn +{med['drawn'] - med['laidOut']:.0f}"
            )
        finally:
            await runner.cleanup()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tracks", type=int, default=100_000)
    ap.add_argument("--paints", type=int, default=3)
    ap.add_argument("--screenshot", type=Path, help="save a PNG of the drawn page here")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="am-map-"))
    pg = EmbeddedPostgres(work)
    pg.start()
    valkey = EmbeddedValkey(work)
    redis_url = valkey.start()
    try:
        asyncio.run(run(args, pg, redis_url, work))
    finally:
        valkey.stop()
        pg.stop()


if __name__ == "__main__":
    main()
