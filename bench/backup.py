"""Backup benchmark: export and import of the analysis of a large library, streamed.

    python bench/backup.py                  # 100,000 analysed tracks (a few minutes on 2 cores)
    python bench/backup.py --tracks 10000

A fresh database of an embedded PostgreSQL 18 + pgvector gets N analysed tracks made in SQL
(50 MSD + 50 MTT tag scores, two 200-d embeddings, a fingerprint, a path, tags: the shape the
analysis stores).  The real export writes the backup file; a second database lists the same
files under new ids (a media server that re-created its ids, no fingerprints to compute) and
the real import matches them by path and stores everything; a second import of the same file
finds everything already there.  Printed: time, file size, and this process's peak RSS above
its baseline during each step (the file is never held whole: the figure stays flat as N grows).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sidecar.backup.export import export_analysis  # noqa: E402
from sidecar.backup.importer import import_analysis  # noqa: E402
from sidecar.db import create_pool  # noqa: E402
from sidecar.db.migrate import migrate  # noqa: E402
from sidecar.embedded.postgres import EmbeddedPostgres  # noqa: E402

VERSION = "bench-v1"

_TRACKS = """
INSERT INTO tracks (item_id, provider, title, artist, album, album_artist, album_id, track_number, duration_s,
                    year, genres, file_path, analysis_status, model_version, analyzed_at)
SELECT $2 || i, $3, 'Song ' || i, 'Artist ' || (i / 30), 'Album ' || (i / 10), 'Artist ' || (i / 30),
       'al' || (i / 10), i % 10 + 1, 180 + i % 120, 1960 + i % 60, ARRAY['Rock'],
       '/music/Artist ' || (i / 30) || '/Album ' || (i / 10) || '/' || (i % 10 + 1) || ' Song ' || i || '.flac',
       $4, $5, now()
FROM generate_series(1, $1) AS i
"""

_ANALYSIS = """
INSERT INTO track_analysis (item_id, tempo, key, scale, energy, energy_normalized, tags, mtt_tags, moods,
                            danceable, aggressive, happy, party, relaxed, sad, features, model_version)
SELECT 'src' || i, 60 + random() * 120, 'C', 'major', random() * 0.3, random(),
       (SELECT jsonb_object_agg('msd tag ' || g, random()) FROM generate_series(1, 50 + i * 0) g),
       (SELECT jsonb_object_agg('mtt tag ' || g, random()) FROM generate_series(1, 50 + i * 0) g),
       ARRAY['rock', 'pop', 'indie', 'dance', 'jazz'], random(), random(), random(), random(), random(), random(),
       jsonb_build_object('key_confidence', 0.8, 'content_fingerprint', 'v1:' || (4000000 + i) || ':' || md5(i::text)),
       $2
FROM generate_series(1, $1) AS i
"""

_EMBEDDINGS = """
INSERT INTO embeddings (item_id, embedding, mtt_embedding, model_version)
SELECT 'src' || i,
       (SELECT array_agg(random()::real) FROM generate_series(1, 200 + i * 0))::vector,
       (SELECT array_agg(random()::real) FROM generate_series(1, 200 + i * 0))::vector, $2
FROM generate_series(1, $1) AS i
"""


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> float:
    """Reset the peak RSS to the current RSS (Linux clear_refs 5); the current RSS in MB."""
    Path("/proc/self/clear_refs").write_text("5")
    return peak_rss_mb()


async def database(pg: EmbeddedPostgres, name: str) -> str:
    admin = await asyncpg.connect(pg.dsn())
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    dsn = pg.dsn().rsplit("/", 1)[0] + f"/{name}"
    conn = await asyncpg.connect(dsn)
    await migrate(conn)
    await conn.close()
    return dsn


async def file_chunks(path: Path) -> AsyncIterator[bytes]:
    with open(path, "rb") as f:
        while chunk := await asyncio.to_thread(f.read, 1 << 20):
            yield chunk


async def run(pg: EmbeddedPostgres, n: int, workdir: Path) -> None:
    src_dsn, dst_dsn = await database(pg, "bench_backup_src"), await database(pg, "bench_backup_dst")
    t0 = time.perf_counter()
    conn = await asyncpg.connect(src_dsn)
    await conn.execute(_TRACKS, n, "src", "local", "analyzed", VERSION)
    await conn.execute(_ANALYSIS, n, VERSION)
    await conn.execute(_EMBEDDINGS, n, VERSION)
    await conn.execute("VACUUM ANALYZE")
    await conn.close()
    conn = await asyncpg.connect(dst_dsn)
    await conn.execute(_TRACKS, n, "new", "navidrome", "pending", None)
    await conn.execute("VACUUM ANALYZE")
    await conn.close()
    print(
        f"made {n:,} analysed tracks and {n:,} pending ones in {time.perf_counter() - t0:.0f} s", flush=True
    )

    src = await create_pool(src_dsn, min_size=1, max_size=2)
    dst = await create_pool(dst_dsn, min_size=1, max_size=2)
    target = workdir / "backup.jsonl.gz"

    def row(step: str, seconds: float, rss: float, what: str) -> None:
        print(f"| {step} | {seconds:.1f} | {n / seconds:,.0f} | {rss:.0f} | {what} |", flush=True)

    try:
        print("| step | seconds | tracks/s | peak RSS above baseline, MB | outcome |")
        print("|---|---|---|---|---|", flush=True)
        base = reset_peak()
        t0 = time.perf_counter()
        with open(target, "wb") as out:

            async def write(data: bytes) -> None:
                await asyncio.to_thread(out.write, data)

            count = await export_analysis(src, "local", VERSION, write)
        size = target.stat().st_size
        row(
            "export",
            time.perf_counter() - t0,
            peak_rss_mb() - base,
            f"{count:,} records, {size / 1e6:.1f} MB ({size / n:.0f} bytes a track)",
        )
        for step in ("import", "import again"):
            base = reset_peak()
            t0 = time.perf_counter()
            report = (await import_analysis(dst, file_chunks(target), VERSION)).as_json()
            what = (
                f"{report['imported']:,} imported, {report['unchanged']:,} unchanged, "
                f"matched by path {report['matched_by']['path']:,}, not imported {report['not_imported']}; "
                + ", ".join(f"{k} {v}" for k, v in report["timings"].items())
            )
            row(step, time.perf_counter() - t0, peak_rss_mb() - base, what)
    finally:
        await src.close()
        await dst.close()
    print(f"{n:,} tracks, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tracks", type=int, default=100_000)
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="am-bench-backup-"))
    pg = EmbeddedPostgres(workdir / "pg")
    pg.start()
    try:
        asyncio.run(run(pg, args.tracks, workdir))
    finally:
        pg.stop()


if __name__ == "__main__":
    main()
