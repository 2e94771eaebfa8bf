"""Similarity benchmark: pgvector HNSW at 100k and 1M tracks, through the real HTTP API.

    python bench/similarity.py                      # 100,000 tracks (minutes)
    python bench/similarity.py --sizes 1000000      # the 1M case (tens of minutes; not in CI)

For each size it generates a clustered library (tests/library_factory.py: clusters in a
16-d latent space projected to 200-d; about 30 tracks, three albums, per artist), loads it with COPY into a fresh database of an
embedded PostgreSQL 18 + pgvector, builds the HNSW index, starts `audiomuse web` as its own
process and measures:

* load time, HNSW build time, index size;
* recall@50 of GET /api/similar_tracks (eliminate_duplicates=false) against exact search
  (numpy brute force over all vectors);
* single-client HTTP latency p50/p99 of /api/similar_tracks and /api/mix;
* throughput and latency under 50 concurrent clients of /api/mix?kind=song&n=50 with random
  seeds (wrk with a Lua script when `wrk` is installed, else an aiohttp client).

It prints a table; the README quotes the latest one with this command.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
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

from sidecar.db.migrate import migrate  # noqa: E402
from sidecar.embedded.postgres import EmbeddedPostgres, free_port  # noqa: E402
from sidecar.embedded.valkey import EmbeddedValkey  # noqa: E402


async def prepare_database(pg: EmbeddedPostgres, n: int, args: argparse.Namespace) -> dict:
    name = f"bench_{n}"
    admin = await asyncpg.connect(pg.dsn())
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    dsn = pg.dsn().rsplit("/", 1)[0] + f"/{name}"
    conn = await asyncpg.connect(dsn)
    from pgvector.asyncpg import register_vector

    await migrate(conn)
    await register_vector(conn)
    # the searched index (the similarity space's) is built after the load, as before; the 200-d
    # embedding's index, which nothing searches, is left out of this database
    await conn.execute("DROP INDEX IF EXISTS embeddings_hnsw_cosine_idx")
    await conn.execute("DROP INDEX IF EXISTS embeddings_space_hnsw_idx")
    t0 = time.perf_counter()
    vectors, styles = make_embeddings(n, styles=max(12, n // 5000), seed=42)
    tracks = make_tracks(n, styles, tracks_per_artist=30)  # ~3 albums of 10 per artist, as in real libraries
    gen_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    chunk = 100_000
    for i in range(0, n, chunk):
        await insert_library(conn, tracks[i : i + chunk], vectors[i : i + chunk])
    load_s = time.perf_counter() - t0
    await conn.execute(f"SET maintenance_work_mem = '{args.maintenance_work_mem}'")
    await conn.execute(f"SET max_parallel_maintenance_workers = {args.build_workers}")
    t0 = time.perf_counter()
    await conn.execute(
        f"CREATE INDEX embeddings_space_hnsw_idx ON embeddings USING hnsw (space vector_cosine_ops) "
        f"WITH (m = {args.m}, ef_construction = {args.ef_construction})"
    )
    build_s = time.perf_counter() - t0
    await conn.execute("VACUUM ANALYZE tracks")
    await conn.execute("VACUUM ANALYZE embeddings")
    index_bytes = await conn.fetchval("SELECT pg_relation_size('embeddings_space_hnsw_idx')")
    table_bytes = await conn.fetchval("SELECT pg_total_relation_size('embeddings')")
    # warm the index and the heap into shared buffers / the OS cache
    await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
    await conn.execute(
        "SELECT pg_prewarm('embeddings_space_hnsw_idx'), pg_prewarm('embeddings'), pg_prewarm('tracks')"
    )
    await conn.close()
    return {
        "dsn": dsn,
        "vectors": vectors,
        "ids": [t.item_id for t in tracks],
        "gen_s": gen_s,
        "load_s": load_s,
        "build_s": build_s,
        "index_mb": index_bytes / 2**20,
        "table_mb": table_bytes / 2**20,
    }


def start_web(
    dsn: str, redis_url: str, port: int, workdir: Path, processes: int, pool_size: int = 4
) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "REDIS_URL": redis_url,
        "WEB_PORT": str(port),
        "WEB_PROCESSES": str(processes),
        "AUDIOMUSE_DATA_DIR": str(workdir),
        "LOG_LEVEL": "WARNING",
        "DB_POOL_MAX_SIZE": str(pool_size),
        "DB_POOL_MIN_SIZE": str(pool_size),
        "AI_CHAT_DB_USER_PASSWORD": "bench-readonly-pw",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "sidecar", "web"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if "listening on" in line:
            return proc
        if not line and proc.poll() is not None:
            break
    raise RuntimeError("audiomuse web did not start")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def exact_top(vectors: np.ndarray, unit: np.ndarray, i: int, k: int) -> list[int]:
    d = 1.0 - unit @ unit[i]
    d[i] = np.inf
    top = np.argpartition(d, k)[:k]
    return [int(j) for j in top[np.argsort(d[top])]]


async def single_client(base: str, data: dict, rng: np.random.Generator, args: argparse.Namespace) -> dict:
    import aiohttp

    vectors, ids = data["vectors"], data["ids"]
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    recalls = []
    sim_ms: list[float] = []
    mix_ms: list[float] = []
    async with aiohttp.ClientSession() as http:
        for i in rng.choice(len(ids), size=args.recall_queries, replace=False):
            async with http.get(
                f"{base}/api/similar_tracks",
                params={"item_id": ids[i], "n": "50", "eliminate_duplicates": "false"},
            ) as resp:
                body = await resp.json()
                assert resp.status == 200, body
                got = {x["item_id"] for x in body}
            exact = {ids[j] for j in exact_top(vectors, unit, int(i), 50)}
            recalls.append(len(got & exact) / 50)
        for path, params, sink in (
            ("/api/similar_tracks", {"n": "10"}, sim_ms),
            ("/api/mix", {"n": "50", "kind": "song"}, mix_ms),
        ):
            seeds = rng.choice(len(ids), size=args.latency_queries)
            for j, i in enumerate(seeds):
                key = "item_id" if path.endswith("similar_tracks") else "seed"
                t0 = time.perf_counter()
                async with http.get(base + path, params={key: ids[i], **params}) as resp:
                    await resp.read()
                    assert resp.status == 200, await resp.text()
                if j >= 20:  # first requests warm connections and caches
                    sink.append((time.perf_counter() - t0) * 1000)
    return {
        "recall@50": float(np.mean(recalls)),
        "similar_p50_ms": pct(sim_ms, 50),
        "similar_p99_ms": pct(sim_ms, 99),
        "mix_p50_ms": pct(mix_ms, 50),
        "mix_p99_ms": pct(mix_ms, 99),
    }


WRK_SCRIPT = """
local ids = {}
for line in io.lines("%s") do ids[#ids + 1] = line end
math.randomseed(%d)
request = function()
  return wrk.format("GET", "/api/mix?kind=song&n=50&seed=" .. ids[math.random(#ids)])
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%d %%d %%f %%f %%f %%d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), latency.mean, summary.errors.status + summary.errors.connect
    + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def load_wrk(base: str, ids: list[str], args: argparse.Namespace, workdir: Path) -> dict:
    idfile = workdir / "ids.txt"
    sample = np.random.default_rng(7).choice(len(ids), size=min(len(ids), 20000), replace=False)
    idfile.write_text("\n".join(ids[i] for i in sample))
    script = workdir / "mix.lua"
    script.write_text(WRK_SCRIPT % (idfile, 7))
    out = subprocess.run(
        [
            "wrk",
            "-t",
            "1",
            "-c",
            str(args.clients),
            "-d",
            f"{args.duration}s",
            "--latency",
            "-s",
            str(script),
            base,
        ],
        capture_output=True,
        text=True,
        timeout=args.duration + 60,
    )
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT"))
    reqs, dur_us, p50, p99, _mean, errors = line.split()[1:]
    return {
        "loader": "wrk",
        "mixes_per_s": int(reqs) / (int(dur_us) / 1e6),
        "load_p50_ms": float(p50) / 1000,
        "load_p99_ms": float(p99) / 1000,
        "errors": int(errors),
    }


async def load_python(base: str, ids: list[str], args: argparse.Namespace) -> dict:
    import aiohttp

    rng = np.random.default_rng(7)
    lat: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + args.duration

    async def client(http: aiohttp.ClientSession) -> None:
        nonlocal errors
        while time.perf_counter() < stop_at:
            seed = ids[int(rng.integers(len(ids)))]
            t0 = time.perf_counter()
            async with http.get(f"{base}/api/mix", params={"kind": "song", "n": "50", "seed": seed}) as resp:
                await resp.read()
                errors += resp.status != 200
            lat.append((time.perf_counter() - t0) * 1000)

    connector = aiohttp.TCPConnector(limit=args.clients)
    async with aiohttp.ClientSession(connector=connector) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(args.clients)))
        elapsed = time.perf_counter() - t0
    return {
        "loader": "python",
        "mixes_per_s": len(lat) / elapsed,
        "load_p50_ms": pct(lat, 50),
        "load_p99_ms": pct(lat, 99),
        "errors": errors,
    }


async def run_size(
    n: int, pg: EmbeddedPostgres, redis_url: str, args: argparse.Namespace, workdir: Path
) -> dict:
    print(f"== {n:,} tracks: generating and loading ...", flush=True)
    data = await prepare_database(pg, n, args)
    print(
        f"   load {data['load_s']:.1f}s, HNSW build {data['build_s']:.1f}s, index {data['index_mb']:.0f} MB",
        flush=True,
    )
    port = free_port()
    web = start_web(data["dsn"], redis_url, port, workdir, args.web_processes, args.db_pool_size)
    base = f"http://127.0.0.1:{port}"
    try:
        single = await single_client(base, data, np.random.default_rng(1), args)
        print(f"   single client: {json.dumps({k: round(v, 3) for k, v in single.items()})}", flush=True)
        if shutil.which("wrk") and not args.python_loader:
            load = load_wrk(base, data["ids"], args, workdir)
        else:
            load = await load_python(base, data["ids"], args)
        print(
            f"   {args.clients} clients: {json.dumps({k: (round(v, 2) if isinstance(v, float) else v) for k, v in load.items()})}",
            flush=True,
        )
    finally:
        stop(web)
    return {"n": n, **{k: v for k, v in data.items() if k not in ("vectors", "ids", "dsn")}, **single, **load}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    ap.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        / "audiomuse-bench"
        / "similarity",
    )
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=128)
    ap.add_argument("--maintenance-work-mem", default="2GB")
    ap.add_argument(
        "--build-workers", type=int, default=1, help="parallel maintenance workers besides the leader"
    )
    ap.add_argument("--shared-buffers", default="2GB")
    ap.add_argument("--recall-queries", type=int, default=200)
    ap.add_argument("--latency-queries", type=int, default=500)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--web-processes", type=int, default=2, help="WEB_PROCESSES of the server under test")
    ap.add_argument(
        "--db-pool-size",
        type=int,
        default=4,
        help="DB_POOL_MIN_SIZE = DB_POOL_MAX_SIZE of each web process under test",
    )
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument(
        "--python-loader", action="store_true", help="use the aiohttp load generator even if wrk exists"
    )
    args = ap.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="am-bench-"))
    pg = EmbeddedPostgres(args.data_dir)
    pg.start()
    # more shared memory than the laptop default; applied by a restart
    asyncio.run(_alter_system(pg, args.shared_buffers))
    pg.stop()
    pg = EmbeddedPostgres(args.data_dir)
    pg.start()
    valkey = EmbeddedValkey(workdir)
    redis_url = valkey.start()
    results = []
    try:
        for n in args.sizes:
            results.append(asyncio.run(run_size(n, pg, redis_url, args, workdir)))
    finally:
        valkey.stop()
        pg.stop()
    print(
        f"\nHNSW m={args.m}, ef_construction={args.ef_construction}, ef_search=max(100, LIMIT), "
        f"shared_buffers={args.shared_buffers}, WEB_PROCESSES={args.web_processes}, {os.cpu_count()} cores, "
        f"loader={results[-1]['loader']}"
    )
    cols = [
        ("n", "tracks", "{:,}"),
        ("load_s", "load s", "{:.1f}"),
        ("build_s", "build s", "{:.1f}"),
        ("index_mb", "index MB", "{:.0f}"),
        ("recall@50", "recall@50", "{:.4f}"),
        ("similar_p50_ms", "similar p50 ms", "{:.2f}"),
        ("similar_p99_ms", "similar p99 ms", "{:.2f}"),
        ("mix_p50_ms", "mix p50 ms", "{:.2f}"),
        ("mix_p99_ms", "mix p99 ms", "{:.2f}"),
        ("mixes_per_s", f"mixes/s @{args.clients}", "{:.0f}"),
        ("load_p99_ms", "p99 ms @load", "{:.1f}"),
        ("errors", "errors", "{}"),
    ]
    print("| " + " | ".join(c[1] for c in cols) + " |")
    print("|" + "---|" * len(cols))
    for r in results:
        print("| " + " | ".join(fmt.format(r[key]) for key, _, fmt in cols) + " |")


async def _alter_system(pg: EmbeddedPostgres, shared_buffers: str) -> None:
    conn = await asyncpg.connect(pg.dsn())
    await conn.execute(f"ALTER SYSTEM SET shared_buffers = '{shared_buffers}'")
    await conn.close()


if __name__ == "__main__":
    main()
