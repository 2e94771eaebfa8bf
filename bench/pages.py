"""The dashboard ``/`` at library scale: the time to first paint, to first contentful paint and
until its data is shown, in Chromium, on N synthetic tracks; and the API answers it waits for.

    python bench/pages.py                 # 100k tracks, 7 loads
    python bench/pages.py --tracks 20000 --loads 5

The library (bench/browser_timing.py): N tracks, 1 % failed (three reasons), 2 % pending, the
others analysed; the task history of one finished analysis of all of it (one child job per
album of 10 tracks) and a finished clustering.  Each load opens a new browser context (nothing
cached) and navigates to ``/``; first paint and first contentful paint come from the Performance
API (``paint`` entries), the HTML from the navigation entry; "data shown" is the first animation
frame after the dashboard wrote the library counts (``#stat-total``), the failed tracks
(``#failed-rows``) and the health (``#health-db``) into the page (a MutationObserver installed
before the page's scripts).  Medians over --loads loads; the first load is among them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg
from browser_timing import bench_settings, chromium, embedded_services, fill, medians, serving, spread
from scratch_db import scratch_database

from sidecar.embedded.postgres import EmbeddedPostgres
from sidecar.services import Endpoints

#: records when the dashboard's data reached the page (the next animation frame after it did)
WATCH = """(() => {
  const seen = {}, pending = {};
  window.__dashboard = seen;
  const note = (key, done) => {
    if (seen[key] !== undefined || pending[key] || !done) return;
    pending[key] = true;
    requestAnimationFrame(() => { seen[key] = performance.now(); });
  };
  const check = () => {
    const total = document.getElementById("stat-total");
    note("stats", total && /[0-9]/.test(total.textContent));
    const failed = document.getElementById("failed-rows");
    note("failed", failed && failed.children.length > 0);
    const db = document.getElementById("health-db");
    note("health", db && db.textContent.trim() !== "–" && db.textContent.trim() !== "");
  };
  new MutationObserver(check).observe(document, { subtree: true, childList: true, characterData: true });
})();"""

READ = """() => {
  const paint = Object.fromEntries(performance.getEntriesByType("paint").map((e) => [e.name, e.startTime]));
  const nav = performance.getEntriesByType("navigation")[0];
  const d = window.__dashboard;
  return { firstPaint: paint["first-paint"], firstContentfulPaint: paint["first-contentful-paint"],
           html: nav.responseEnd, domContentLoaded: nav.domContentLoadedEventEnd, load: nav.loadEventEnd,
           stats: d.stats, failed: d.failed, health: d.health, data: Math.max(d.stats, d.failed, d.health) };
}"""

STEPS = (
    "html",
    "firstPaint",
    "firstContentfulPaint",
    "domContentLoaded",
    "stats",
    "failed",
    "health",
    "data",
)
#: what the dashboard asks for while it loads (and, for the stats, on every poll of a running task)
API = ("/", "/api/library/stats", "/api/library/failed?start=0&end=50", "/api/active_tasks", "/healthz")


async def fill_tasks(dsn: str, tracks: int) -> None:
    """A finished analysis of the whole library (a child job per album of 10) and clustering."""
    now = datetime.now(UTC)
    rows: list[tuple[str, str | None, str, str, int, str, datetime, datetime]] = []

    def task(parent: str | None, kind: str, age_s: float) -> str:
        task_id = str(uuid.uuid4())
        at = now - timedelta(seconds=age_s)
        rows.append((task_id, parent, kind, "SUCCESS", 100, json.dumps({}), at, at))
        return task_id

    analysis = task(None, "main_analysis", 7200)
    for album in range(tracks // 10):
        task(analysis, "analyze_album", 7200 - album * 0.5)
    clustering = task(None, "main_clustering", 600)
    for batch in range(40):
        task(clustering, "clustering_batch", 600 - batch)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.copy_records_to_table(
            "tasks",
            records=rows,
            columns=[
                "task_id",
                "parent_task_id",
                "task_type",
                "status",
                "progress",
                "details",
                "created_at",
                "finished_at",
            ],
        )
        await conn.execute("ANALYZE tasks")
    finally:
        await conn.close()
    print(f"  tasks: {len(rows):,} rows")


async def api_times(base: str, repeat: int) -> dict[str, float]:
    """Median milliseconds of each request of :data:`API`, after one warm-up each."""
    out = {}
    async with aiohttp.ClientSession() as http:
        for path in API:
            times = []
            for i in range(repeat + 1):
                t = time.perf_counter()
                async with http.get(base + path) as resp:
                    await resp.read()
                    assert resp.status in (200, 503), (path, resp.status)
                if i:
                    times.append((time.perf_counter() - t) * 1000)
            out[path] = statistics.median(times)
    return out


async def dashboard_loads(base: str, loads: int, screenshot: Path | None) -> list[dict[str, float]]:
    out = []
    async with chromium() as browser:
        for _ in range(loads):
            context = await browser.new_context(viewport={"width": 1280, "height": 800})
            page = await context.new_page()
            await page.add_init_script(WATCH)
            await page.goto(base + "/")
            await page.wait_for_function(
                "window.__dashboard && ['stats', 'failed', 'health'].every((k) => window.__dashboard[k] !== undefined)",
                timeout=120_000,
            )
            out.append(await page.evaluate(READ))
            if screenshot is not None:
                await page.screenshot(path=str(screenshot))
            await context.close()
    return out


async def run(args: argparse.Namespace, pg: EmbeddedPostgres, redis_url: str, work: Path) -> None:
    async with scratch_database(pg, "bench_pages", migrated=True) as dsn:
        t = time.perf_counter()
        failed, pending = args.tracks // 100, args.tracks // 50
        await fill(dsn, args.tracks, failed=failed, pending=pending)
        await fill_tasks(dsn, args.tracks)
        print(
            f"filled {args.tracks:,} tracks ({failed:,} failed, {pending:,} pending) "
            f"in {time.perf_counter() - t:.1f} s"
        )
        async with serving(bench_settings(work), Endpoints(dsn, redis_url)) as base:
            for path, ms in (await api_times(base, args.repeat)).items():
                print(f"GET {path}: median {ms:.1f} ms over {args.repeat}")
            samples = await dashboard_loads(base, args.loads, args.screenshot)
        med = medians(samples, STEPS)
        print(f"dashboard / with {args.tracks:,} tracks, from the start of the navigation (median ms):")
        print("  " + ", ".join(f"{k} {med[k]:.0f}" for k in STEPS))
        print(f"  first contentful paint: {spread(samples, 'firstContentfulPaint')}")
        print(f"  data shown (counts, failed tracks, health): {spread(samples, 'data')}")
        print(
            f"  first load: first paint {samples[0]['firstPaint']:.0f}, data shown {samples[0]['data']:.0f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tracks", type=int, default=100_000)
    ap.add_argument("--loads", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=15, help="requests per API answer timed")
    ap.add_argument("--screenshot", type=Path, help="save a PNG of the loaded dashboard here")
    args = ap.parse_args()
    with embedded_services("am-pages-") as (pg, redis_url, work):
        asyncio.run(run(args, pg, redis_url, work))


if __name__ == "__main__":
    main()
