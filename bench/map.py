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
import statistics
import time
import tracemalloc
from pathlib import Path

import aiohttp
import numpy as np
from browser_timing import bench_settings, chromium, embedded_services, fill, serving
from scratch_db import scratch_database

from sidecar.db import create_pool
from sidecar.db import map as map_db
from sidecar.embedded.postgres import EmbeddedPostgres
from sidecar.jobs.map import project, refresh_map
from sidecar.services import Endpoints


async def first_paints(url: str, n: int, paints: int, screenshot: Path | None) -> list[dict[str, float]]:
    out = []
    async with chromium() as browser:
        for _ in range(paints):
            page = await browser.new_page(viewport={"width": 1440, "height": 900})
            await page.goto(url)
            await page.wait_for_selector(f"body[data-map-drawn='{n}']", timeout=120_000)
            out.append(await page.evaluate("AM_MAP.timings"))
            if screenshot is not None:
                await page.screenshot(path=str(screenshot))
            await page.close()
    return out


async def run(args: argparse.Namespace, pg: EmbeddedPostgres, redis_url: str, work: Path) -> None:
    async with scratch_database(pg, "bench_map", migrated=True) as dsn:
        t = time.perf_counter()
        await fill(dsn, args.tracks)
        print(f"filled {args.tracks:,} analysed tracks in {time.perf_counter() - t:.1f} s")
        settings = bench_settings(work)
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

        async with serving(settings, Endpoints(dsn, redis_url)) as base:
            async with aiohttp.ClientSession() as http:
                times, size = [], 0
                for _ in range(5):
                    t = time.perf_counter()
                    async with http.get(f"{base}/api/map") as resp:
                        size = len(await resp.read())
                        assert resp.status == 200
                    times.append(time.perf_counter() - t)
            print(f"GET /api/map: {size / 2**20:.2f} MiB, median {statistics.median(times) * 1000:.0f} ms")
            paints = await first_paints(f"{base}/map", args.tracks, args.paints, args.screenshot)
            steps = ("requested", "received", "decoded", "laidOut", "drawn")
            med = {k: statistics.median(p[k] for p in paints) for k in steps}
            print(
                f"/map first paint with {args.tracks:,} points (navigation start -> canvas drawn): "
                f"median {med['drawn']:.0f} ms over {len(paints)} loads "
                f"(min {min(p['drawn'] for p in paints):.0f}, max {max(p['drawn'] for p in paints):.0f}); "
                f"map asked for at {med['requested']:.0f} ms, received +{med['received'] - med['requested']:.0f}, decoded +{med['decoded'] - med['received']:.0f}, "
                f"laid out +{med['laidOut'] - med['decoded']:.0f}, drawn +{med['drawn'] - med['laidOut']:.0f}"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tracks", type=int, default=100_000)
    ap.add_argument("--paints", type=int, default=3)
    ap.add_argument("--screenshot", type=Path, help="save a PNG of the drawn page here")
    args = ap.parse_args()
    with embedded_services("am-map-") as (pg, redis_url, work):
        asyncio.run(run(args, pg, redis_url, work))


if __name__ == "__main__":
    main()
