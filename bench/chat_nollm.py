"""Latency of the instant-playlist chat without an LLM (the rules path), on a 100k-track library.

    python bench/chat_nollm.py                  # 100,000 tracks (a few minutes, most of it loading)
    python bench/chat_nollm.py --tracks 20000 --rounds 5

It generates a clustered library (tests/library_factory.py: styles in a latent space projected
to 200-d, about 30 tracks and three albums per artist), gives every track an analysis whose tag
scores, tempo, energy and features depend on its style (a few tags high per style, the rest
low, as the models' outputs look), spreads release years over 1960-2024, loads it with COPY into
a fresh database of an embedded PostgreSQL 18 + pgvector, builds the HNSW indexes, sets up the
read-only chat role, and then answers a fixed set of requests (moods, genres, tempo and energy
words, decades, "by ARTIST", "like ARTIST", "like SONG", "like SONG by ARTIST") through the
service's own code path (:func:`sidecar.chat.service.chat_playlist` with no AI provider: the
rules, the validator, the chat role's own connection, the read-only transaction, the tracks
check), in-process (no HTTP).  One warm-up round, then ``--rounds`` timed rounds.

It prints the p50/p90/p99 over all requests and p50/max per request (a query cancelled by
CHAT_QUERY_TIMEOUT_SECONDS, which the service answers with 503, is counted as failed and timed);
the README quotes them.  ``--reuse`` skips the load when an earlier run left the database
(migrating it to the current schema first).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from library_factory import insert_library, make_embeddings, make_tracks  # noqa: E402
from percentiles import pct  # noqa: E402

from sidecar.chat.columns import MSD_LABELS, MTT_LABELS, OTHER_FEATURES  # noqa: E402
from sidecar.chat.service import ChatRunner, chat_playlist  # noqa: E402
from sidecar.config import load_settings  # noqa: E402
from sidecar.db.chat import ChatQueryError  # noqa: E402
from sidecar.db.migrate import migrate  # noqa: E402
from sidecar.db.pool import create_pool  # noqa: E402
from sidecar.db.roles import ensure_chat_role  # noqa: E402
from sidecar.embedded.postgres import EmbeddedPostgres  # noqa: E402

KEYS = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
ROLE, PASSWORD = "ai_user_bench", "bench-chat-pass-1"


def analyses(item_ids: list[str], styles: np.ndarray, seed: int = 7) -> list[tuple[object, ...]]:
    """One track_analysis row per track: style-dependent tags, tempo, energy and features."""
    rng = np.random.default_rng(seed)
    n_styles = int(styles.max()) + 1
    style_msd = [rng.choice(len(MSD_LABELS), 4, replace=False) for _ in range(n_styles)]
    style_mtt = [rng.choice(len(MTT_LABELS), 4, replace=False) for _ in range(n_styles)]
    style_tempo = rng.uniform(70, 170, n_styles)
    style_energy = rng.uniform(0.15, 0.85, n_styles)
    style_feat = rng.uniform(0.05, 0.9, (n_styles, len(OTHER_FEATURES)))
    n = len(item_ids)
    msd = rng.beta(1.2, 12, (n, len(MSD_LABELS)))
    mtt = rng.beta(1.2, 12, (n, len(MTT_LABELS)))
    for i, s in enumerate(styles):
        msd[i, style_msd[s]] = rng.uniform(0.15, 0.9, 4)
        mtt[i, style_mtt[s]] = rng.uniform(0.15, 0.9, 4)
    tempo = np.clip(style_tempo[styles] + rng.normal(0, 12, n), 40, 200)
    energy = np.clip(style_energy[styles] + rng.normal(0, 0.12, n), 0, 1)
    feats = np.clip(style_feat[styles] + rng.normal(0, 0.15, (n, len(OTHER_FEATURES))), 0, 1)
    rows: list[tuple[object, ...]] = []
    for i, item_id in enumerate(item_ids):
        tags = {label: round(float(v), 4) for label, v in zip(MSD_LABELS, msd[i], strict=True)}
        mtt_tags = {label: round(float(v), 4) for label, v in zip(MTT_LABELS, mtt[i], strict=True)}
        moods = [MSD_LABELS[j] for j in np.argsort(-msd[i])[:5]]
        rows.append(
            (
                item_id,
                float(tempo[i]),
                KEYS[i % 12],
                "major" if i % 3 else "minor",
                float(energy[i]) * 0.15,
                float(energy[i]),
                json.dumps(tags),
                json.dumps(mtt_tags),
                moods,
                *(float(v) for v in feats[i]),
                "test-v1",
            )
        )
    return rows


async def prepare(pg: EmbeddedPostgres, n: int, reuse: bool) -> tuple[str, list[str], list[tuple[str, str]]]:
    """A fresh database ``bench_chat_<n>`` with the library (with ``reuse``, the one an earlier
    run left when it holds the n analysed tracks); (dsn, artists, titles)."""
    name = f"bench_chat_{n}"
    dsn = pg.dsn().rsplit("/", 1)[0] + f"/{name}"
    if reuse:
        try:
            conn = await asyncpg.connect(dsn)
        except asyncpg.InvalidCatalogNameError:
            pass
        else:
            try:
                await migrate(conn)  # an earlier run's database gets the migrations added since
                if await conn.fetchval("SELECT count(*) FROM chat.chat_tracks") == n:
                    assert await ensure_chat_role(conn, ROLE, PASSWORD)
                    artists = sorted(r[0] for r in await conn.fetch("SELECT DISTINCT artist FROM tracks"))
                    titles = [
                        (r[0], r[1])
                        for r in await conn.fetch("SELECT title, artist FROM tracks ORDER BY item_id")
                    ]
                    print(f"reusing the {n:,}-track database {name}", flush=True)
                    return dsn, artists, titles
            finally:
                await conn.close()
    admin = await asyncpg.connect(pg.dsn())
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    conn = await asyncpg.connect(dsn)
    from pgvector.asyncpg import register_vector

    await migrate(conn)
    await register_vector(conn)
    hnsw = [
        (r["indexname"], r["indexdef"])
        for r in await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'embeddings' "
            "AND indexdef LIKE '%USING hnsw%'"
        )
    ]
    for index, _ in hnsw:  # built once after the load: much faster than row by row
        await conn.execute(f'DROP INDEX "{index}"')
    t0 = time.perf_counter()
    vectors, styles = make_embeddings(n, styles=max(12, n // 5000), seed=42)
    tracks = make_tracks(n, styles, tracks_per_artist=30)
    await insert_library(conn, tracks, vectors)
    await conn.execute("UPDATE tracks SET year = 1960 + abs(hashtext(item_id)) % 65")
    await conn.copy_records_to_table(
        "track_analysis",
        records=analyses([t.item_id for t in tracks], styles),
        columns=[
            "item_id",
            "tempo",
            "key",
            "scale",
            "energy",
            "energy_normalized",
            "tags",
            "mtt_tags",
            "moods",
            *OTHER_FEATURES,
            "model_version",
        ],
    )
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    await conn.execute("SET maintenance_work_mem = '1GB'")
    for _, definition in hnsw:
        await conn.execute(definition)
    index_s = time.perf_counter() - t0
    for table in ("tracks", "track_analysis", "embeddings"):
        await conn.execute(f"VACUUM ANALYZE {table}")
    assert await ensure_chat_role(conn, ROLE, PASSWORD)
    await conn.close()
    print(f"{n:,} tracks loaded in {load_s:.1f} s, HNSW indexes built in {index_s:.1f} s", flush=True)
    artists = sorted({t.artist for t in tracks})
    return dsn, artists, [(t.title, t.artist) for t in tracks]


def requests(
    artists: list[str], titles: list[tuple[str, str]], rng: np.random.Generator
) -> list[tuple[str, str]]:
    """(kind, request) pairs: word requests, then name requests with names from the library."""
    words = [
        "energetic rock for running",
        "calm piano",
        "sad 80s songs",
        "fast metal",
        "happy dance party",
        "chill electronic for study",
        "slow acoustic folk",
        "mellow female vocalists",
        "aggressive punk",
        "90s hip hop",
        "instrumental ambient for sleep",
        "jazz from 1995",
    ]
    a = [artists[i] for i in rng.choice(len(artists), 4, replace=False)]
    t = [titles[i] for i in rng.choice(len(titles), 3, replace=False)]
    return [
        *(("words", w) for w in words),
        ("by artist", f"songs by {a[0]}"),
        ("by artist", f"energetic songs by {a[1]}"),
        ("like artist", f"like {a[2]}"),
        ("like artist", f"calm songs like {a[3]}"),
        ("like song", f"songs like {t[0][0]}"),
        ("like song", f"fast songs like {t[1][0]}"),
        ("like song by artist", f"like {t[2][0]} by {t[2][1]}"),
    ]


async def measure(
    dsn: str, artists: list[str], titles: list[tuple[str, str]], rounds: int, query_timeout: float | None
) -> list[dict[str, object]]:
    with tempfile.TemporaryDirectory(prefix="am-bench-chat-") as tmp:
        env = {"AUDIOMUSE_DATA_DIR": tmp, "LOCAL_MUSIC_DIR": tmp}
        if query_timeout:
            env["CHAT_QUERY_TIMEOUT_SECONDS"] = str(query_timeout)
        settings = load_settings(
            env,
            ai_chat_db_user_name=ROLE,
            ai_chat_db_user_password=PASSWORD,
        )
        pool = await create_pool(dsn, min_size=2, max_size=4)
        runner = ChatRunner(pool, dsn, settings)
        asked = requests(artists, titles, np.random.default_rng(3))
        times: dict[str, list[float]] = {text: [] for _, text in asked}
        songs: dict[str, int] = {}
        failed: dict[str, int] = {text: 0 for _, text in asked}
        try:
            for r in range(rounds + 1):
                for _, text in asked:
                    t0 = time.perf_counter()
                    try:
                        result = await chat_playlist(runner, text, None)
                        songs[text] = len(result.tracks or [])
                    except ChatQueryError as exc:  # the service answers 503: counted, and timed
                        print(f"{text!r}: {exc.reason}", flush=True)
                        failed[text] += 1
                    elapsed = time.perf_counter() - t0
                    if r:  # round 0 warms the caches
                        times[text].append(elapsed)
        finally:
            await pool.close()
    return [
        {"kind": k, "request": t, "times": times[t], "songs": songs.get(t, 0), "failed": failed[t]}
        for k, t in asked
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tracks", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=10, help="timed rounds over the request set")
    ap.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "audiomuse-bench" / "chat",
    )
    ap.add_argument("--reuse", action="store_true", help="reuse the database of an earlier run of this size")
    ap.add_argument("--query-timeout", type=float, help="CHAT_QUERY_TIMEOUT_SECONDS (default: the setting's)")
    args = ap.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    pg = EmbeddedPostgres(args.data_dir)
    pg.start()
    try:
        dsn, artists, titles = asyncio.run(prepare(pg, args.tracks, args.reuse))
        rows = asyncio.run(measure(dsn, artists, titles, args.rounds, args.query_timeout))
    finally:
        pg.stop()
    every = [t * 1000 for r in rows for t in r["times"]]  # type: ignore[attr-defined]
    print(
        f"\nno-LLM chat, {args.tracks:,} tracks, {len(every)} timed requests ({args.rounds} rounds), "
        f"{os.cpu_count()} cores: p50 {pct(every, 50):.0f} ms, p90 {pct(every, 90):.0f} ms, "
        f"p99 {pct(every, 99):.0f} ms, max {max(every):.0f} ms\n"
    )
    print("| kind | request | songs | p50 ms | max ms | failed |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        ms = [t * 1000 for t in r["times"]]  # type: ignore[attr-defined]
        cells = [r["kind"], r["request"], r["songs"], f"{pct(ms, 50):.0f}", f"{max(ms):.0f}", r["failed"]]
        print("| " + " | ".join(str(c) for c in cells) + " |")
    by_kind: dict[str, list[float]] = {}
    for r in rows:
        by_kind.setdefault(str(r["kind"]), []).extend(t * 1000 for t in r["times"])  # type: ignore[attr-defined]
    print("\n| kind | p50 ms | p99 ms |")
    print("|---|---|---|")
    for kind, ms in by_kind.items():
        print(f"| {kind} | {pct(ms, 50):.0f} | {pct(ms, 99):.0f} |")


if __name__ == "__main__":
    main()
