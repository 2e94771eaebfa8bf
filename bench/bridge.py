"""Jellyfin bridge benchmark: what the bridge adds to an Instant Mix, media server excluded.

    python bench/bridge.py                       # 20,000 tracks, 50 clients, 2,000 mixes
    python bench/bridge.py --tracks 100000 --requests 5000 --limit 100

Set-up, three processes on loopback as in production: an embedded PostgreSQL 18 + pgvector
with a clustered synthetic library (tests/library_factory.py), the sidecar (main app + the
Jellyfin bridge in one process, or in `--web-processes` processes sharing the ports) and a stand-in Jellyfin (the fake Jellyfin of
tests/fakes/, serving the same track ids, with its OpenAPI self-checks switched off so that
it answers fast).  The load generator is this process, or wrk (below).

Measured at 1 and at ``--clients`` concurrent clients (default 50; closed loop: each client
sends its next request when the previous one is answered), random analysed seeds:

* ``mix via bridge``: ``GET /Items/{seed}/InstantMix?limit=N`` through the bridge (a sonic
  mix: pgvector k-NN + the mix engine, then ``GET /Items?ids=`` to Jellyfin, reordered),
  split with the bridge's ``Server-Timing`` into ``mix`` (engine + database, pool waits
  included), ``Jellyfin`` (waiting for ``/Items?ids=``) and ``bridge layer`` (the client's
  latency minus those two: routing, credentials, reordering, JSON, proxying and event-loop
  queueing outside the awaits) -- the bridge's own overhead, held to the target
  (p99 <= 10 ms at 50 clients) --, itself split into the time inside the bridge's handler
  (its ``Server-Timing`` ``bridge`` part: credentials, reordering, JSON) and the rest (the
  request waiting for the event loop, socket reads and writes, the scheduler);
* ``added vs direct``: mix via bridge minus the same ``/Items?ids=`` sent straight to the
  stand-in (percentile by percentile): everything the bridge adds, the mix included;
* ``/api/mix``: the same sonic mix from the sidecar's own API (no bridge, no Jellyfin), for
  reference;
* ``sidecar CPU per request``: the sidecar process's CPU time per bridge mix and per
  ``/api/mix`` (from /proc): the difference is the bridge layer's cost, independent of load;
* the same mixes from ``--clients`` clients that think between mixes, at ``--rates`` mixes per
  second in all (default 10 and 50: each of 50 clients asks for a mix every 5 s, or every
  second, on average; a closed loop of 50 clients measures saturation, not added latency),
  sent by ``--load-generator``: wrk (a C load generator, Debian's package ``wrk``; each
  connection a client with exponentially distributed think times, bench/wrk_clients.lua), the
  default when installed, and/or this process (aiohttp, requests arriving at random, open
  loop).  The Python client's own time counts in the latencies it measures (about 0.7 ms at p50
  here), wrk's much less: that is why wrk is the default;
* ``pass-through``: ``GET /System/Ping`` through the bridge and directly (proxy overhead on
  requests the bridge does not answer).

Everything shares the machine's cores, so the figures include CPU contention between the
database, the sidecar, the stand-in and the load generator.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing as mp
import os
import random
import re
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from library_factory import insert_library, make_embeddings, make_tracks  # noqa: E402
from percentiles import pct  # noqa: E402

from sidecar.db.migrate import migrate  # noqa: E402
from sidecar.embedded.postgres import EmbeddedPostgres, free_port  # noqa: E402
from sidecar.embedded.valkey import EmbeddedValkey  # noqa: E402

TOKEN = "0123456789abcdef0123456789abcdef"


# --------------------------------------------------------------------------- child processes


def run_fake_jellyfin(n: int, port_out: Any, ready: Any) -> None:
    """The stand-in Jellyfin: the fake, with the library's ids, contract checks off."""
    from fakes.jellyfin import FakeJellyfin, FakeTrack

    vectors, styles = make_embeddings(n, styles=max(12, n // 2000), seed=42)
    del vectors
    tracks = [
        FakeTrack.build(
            t.title,
            t.artist,
            t.album,
            Path(f"/music/{t.item_id}.flac"),
            id=t.item_id,
            genres=[t.genre],
            index_number=t.track_number,
            duration_s=200.0,
            date_created=datetime(2024, 1, 1, tzinfo=UTC),
        )
        for t in make_tracks(n, styles)
    ]

    async def serve() -> None:
        fake = FakeJellyfin(tracks, token=TOKEN, strict=False)
        fake.contract.check_json_response = lambda *a, **k: []  # type: ignore[method-assign]
        fake.contract.check_request = lambda *a, **k: []  # type: ignore[method-assign]
        await fake.start()
        port_out.value = fake.port
        ready.set()
        while True:
            await asyncio.sleep(3600)
            fake.clear_log()

    asyncio.run(serve())


def run_sidecar(env: dict[str, str], ready: Any) -> None:
    """The main app and the Jellyfin bridge in one process, as `audiomuse web` runs them (with
    ``WEB_PROCESSES`` > 1, several such processes share the two ports)."""
    from aiohttp import web

    from sidecar.app import create_app
    from sidecar.bridge import jellyfin
    from sidecar.config import load_settings
    from sidecar.services import Endpoints

    settings = load_settings(env)

    async def serve() -> None:
        main = create_app(settings, Endpoints(env["DATABASE_URL"], env["REDIS_URL"]))
        runners = [
            web.AppRunner(main, access_log=None),
            web.AppRunner(jellyfin.create_app(main), access_log=None),
        ]
        await runners[0].setup()
        await runners[1].setup()
        shared = settings.web_processes > 1
        await web.TCPSite(runners[0], "127.0.0.1", int(env["WEB_PORT"]), reuse_port=shared).start()
        await web.TCPSite(
            runners[1], "127.0.0.1", int(env["JELLYFIN_BRIDGE_PORT"]), reuse_port=shared
        ).start()
        gc.collect()  # as audiomuse web does once it listens (sidecar/cli.py)
        gc.freeze()
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(serve())


# --------------------------------------------------------------------------- load


async def timed_get(http: Any, url: str, since: float) -> dict[str, float]:
    """GET ``url``: {latency in ms counted from ``since``, and the ``Server-Timing`` parts}."""
    async with http.get(url) as resp:
        await resp.read()
        elapsed = (time.perf_counter() - since) * 1000
        if resp.status != 200:
            raise RuntimeError(f"{url}: {resp.status}")
        timing = resp.headers.get("Server-Timing", "")
    return {"latency": elapsed, **server_timing(timing)}


def server_timing(header: str) -> dict[str, float]:
    """The parts of a ``Server-Timing`` header, in ms."""
    return {k: float(v) for k, v in re.findall(r"(\w+);dur=([\d.]+)", header)}


async def load(
    urls: list[str], clients: int, headers: dict[str, str]
) -> tuple[list[dict[str, float]], float]:
    """Per request {latency, and the Server-Timing parts} in ms, and the wall time, of GETs
    at ``clients`` concurrency."""
    import aiohttp

    results: list[dict[str, float]] = []
    queue = list(reversed(urls))
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as http:

        async def client() -> None:
            while queue:
                results.append(await timed_get(http, queue.pop(), time.perf_counter()))

        t0 = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        return results, time.perf_counter() - t0


async def open_loop(
    urls: list[str], rate: float, clients: int, headers: dict[str, str]
) -> tuple[list[dict[str, float]], float]:
    """Like :func:`load`, but requests arrive at random (Poisson) at ``rate`` per second, at
    most ``clients`` in flight; latency counts from the planned arrival (no coordinated omission)."""
    import aiohttp

    results: list[dict[str, float]] = []
    rng = random.Random(2)
    gate = asyncio.Semaphore(clients)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients), headers=headers) as http:

        async def one(url: str, planned: float) -> None:
            async with gate:
                results.append(await timed_get(http, url, planned))

        tasks = []
        t0 = planned = time.perf_counter()
        for url in urls:
            planned += rng.expovariate(rate)
            await asyncio.sleep(max(0.0, planned - time.perf_counter()))
            tasks.append(asyncio.create_task(one(url, planned)))
        await asyncio.gather(*tasks)
        return results, time.perf_counter() - t0


async def wrk_clients(
    base: str, urls: list[str], rate: float, clients: int, seconds: float, headers: dict[str, str]
) -> tuple[list[dict[str, float]], float]:
    """Like :func:`open_loop`, with wrk (C, from Debian's package) as the load generator: each of
    ``clients`` connections is a client that asks for a random one of ``urls``, waits for the
    answer and thinks for an exponentially distributed time (mean ``clients / rate``), for
    ``seconds``.  Latency per request is taken in wrk's Lua (bench/wrk_clients.lua), from the
    request being written to the answer being parsed."""
    with tempfile.TemporaryDirectory() as tmp:
        paths, out = Path(tmp) / "paths", Path(tmp) / "out.tsv"
        paths.write_text("".join(url.removeprefix(base) + "\n" for url in urls))
        cmd = [
            "wrk",
            "-t",
            str(clients),
            "-c",
            str(clients),
            "-d",
            f"{seconds:g}s",
            "--timeout",
            "10s",
            "-s",
            str(Path(__file__).with_name("wrk_clients.lua")),
            *(a for k, v in headers.items() for a in ("-H", f"{k}: {v}")),
            base,
        ]
        env = {
            **os.environ,
            "PATHS_FILE": str(paths),
            "OUT_FILE": str(out),
            "THINK_MS": str(clients / rate * 1000),
        }
        proc = await asyncio.create_subprocess_exec(
            *cmd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        output, _ = await proc.communicate()
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"wrk failed: {output.decode(errors='replace')}")
        results = []
        for line in out.read_text().splitlines():
            status, latency, timing = (line.split("\t") + [""])[:3]
            if status != "200":
                raise RuntimeError(f"wrk: {base}: {status}")
            results.append({"latency": float(latency), **server_timing(timing)})
    return results, seconds


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of processes so far."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def col(results: list[dict[str, float]], key: str) -> list[float]:
    return [r[key] for r in results]


def row(name: str, values: list[float], wall: float | None = None) -> str:
    rate = f"{len(values) / wall:8.0f}/s" if wall else ""
    return f"  {name:<36} p50 {pct(values, 50):8.2f} ms   p99 {pct(values, 99):8.2f} ms   {rate}"


def added_row(mixes: list[dict[str, float]], direct: list[dict[str, float]]) -> str:
    """Mix via bridge minus the same ``/Items?ids=`` sent straight to Jellyfin, percentile by percentile."""
    p50, p99 = (pct(col(mixes, "latency"), q) - pct(col(direct, "latency"), q) for q in (50, 99))
    return f"  {'added vs direct (mix included)':<36} p50 {p50:8.2f} ms   p99 {p99:8.2f} ms"


async def bench(
    args: argparse.Namespace, bridge: str, api: str, jellyfin: str, seeds: list[str]
) -> dict[str, float]:
    import aiohttp

    auth = {
        "Authorization": f'MediaBrowser Client="bench", Device="bench", DeviceId="bench", Version="1", '
        f'Token="{TOKEN}"'
    }
    rng = random.Random(1)
    chosen = [rng.choice(seeds) for _ in range(args.requests)]
    mix_urls = [f"{bridge}/Items/{seed}/InstantMix?limit={args.limit}" for seed in chosen]
    api_urls = [f"{api}/api/mix?kind=song&seed={seed}&n={args.limit}" for seed in chosen]
    # the ids each of those mixes returns, for the direct /Items?ids= calls
    ids_for: dict[str, str] = {}
    async with aiohttp.ClientSession(headers=auth) as http:
        for url in dict.fromkeys(mix_urls):
            async with http.get(url) as resp:
                body = await resp.json()
                assert "mix;dur=" in resp.headers.get("Server-Timing", ""), "no sonic answer from the bridge"
            ids_for[url] = ",".join(i["Id"] for i in body["Items"])
    direct_urls = [f"{jellyfin}/Items?ids={ids_for[u]}&enableTotalRecordCount=false" for u in mix_urls]

    print(
        f"\nJellyfin bridge: {args.tracks} tracks, limit={args.limit}, {args.requests} requests per line "
        "(300 at 1 client)"
    )

    def report(title: str, mixes: list[dict[str, float]], wall: float) -> list[float]:
        layer = [r["latency"] - r["mix"] - r["upstream"] for r in mixes]
        print(f" {title}:")
        print(row("mix via bridge", col(mixes, "latency"), wall))
        print(row("  of which mix (engine + database)", col(mixes, "mix")))
        print(row("  of which Jellyfin /Items?ids=", col(mixes, "upstream")))
        print(row("  bridge layer (own overhead)", layer))
        print(row("    in the bridge's handler", col(mixes, "bridge")))
        print(
            row(
                "    outside it (queueing, sockets)",
                [x - r["bridge"] for x, r in zip(layer, mixes, strict=True)],
            )
        )
        return layer

    figures: dict[str, float] = {}
    for clients in (1, args.clients):
        n = args.requests if clients > 1 else min(args.requests, 300)
        cpu0 = cpu_seconds(args.sidecar_pids)
        mixes, wall = await load(mix_urls[:n], clients, auth)
        cpu_bridge = (cpu_seconds(args.sidecar_pids) - cpu0) / n * 1000
        direct, dwall = await load(direct_urls[:n], clients, auth)
        cpu0 = cpu_seconds(args.sidecar_pids)
        api_mix, awall = await load(api_urls[:n], clients, {})
        cpu_api = (cpu_seconds(args.sidecar_pids) - cpu0) / n * 1000
        ping, pwall = await load([f"{bridge}/System/Ping"] * n, clients, {})
        ping_direct, pdwall = await load([f"{jellyfin}/System/Ping"] * n, clients, {})
        title = f"{clients} client{'s' if clients > 1 else ''}" + (
            ", closed loop (saturation)" if clients > 1 else ""
        )
        layer = report(title, mixes, wall)
        print(row("Jellyfin /Items?ids= direct", col(direct, "latency"), dwall))
        print(added_row(mixes, direct))
        print(row("/api/mix (same mixes, no bridge)", col(api_mix, "latency"), awall))
        print(row("pass-through /System/Ping", col(ping, "latency"), pwall))
        print(row("/System/Ping direct", col(ping_direct, "latency"), pdwall))
        print(
            f"  sidecar CPU per request: bridge mix {cpu_bridge:.2f} ms, /api/mix {cpu_api:.2f} ms "
            f"(bridge layer {cpu_bridge - cpu_api:.2f} ms)"
        )
        figures[f"layer_p99_{clients}"] = pct(layer, 99)
    for rate in args.rates:
        for generator in args.load_generator:
            if generator == "wrk":
                title = f"{args.clients} clients (wrk), each thinking {args.clients / rate:g} s on average"
                mixes, wall = await wrk_clients(bridge, mix_urls, rate, args.clients, args.open_seconds, auth)
                direct, dwall = await wrk_clients(
                    jellyfin, direct_urls, rate, args.clients, args.open_seconds, auth
                )
            else:
                n = min(len(mix_urls), int(rate * args.open_seconds))
                title = f"{args.clients} clients (aiohttp), open loop at {rate:g} mixes/s ({n} requests)"
                mixes, wall = await open_loop(mix_urls[:n], rate, args.clients, auth)
                direct, dwall = await open_loop(direct_urls[:n], rate, args.clients, auth)
            layer = report(title, mixes, wall)
            print(row("Jellyfin /Items?ids= direct", col(direct, "latency"), dwall))
            print(added_row(mixes, direct))
            figures[f"layer_p99_{rate:g}/s_{generator}"] = pct(layer, 99)
    print()
    for key, value in figures.items():
        note = "; closed loop, saturated: every request queues" if key == f"layer_p99_{args.clients}" else ""
        print(
            f" bridge layer p99, {key.removeprefix('layer_p99_').replace('_', ' ')}: {value:.2f} ms "
            f"({'within' if value <= 10 else 'over'} the 10 ms target{note})"
        )
    return figures


async def prepare(pg: EmbeddedPostgres, n: int) -> tuple[str, list[str]]:
    admin = await asyncpg.connect(pg.dsn())
    await admin.execute('DROP DATABASE IF EXISTS "bench_bridge" WITH (FORCE)')
    await admin.execute('CREATE DATABASE "bench_bridge"')
    await admin.close()
    dsn = pg.dsn().rsplit("/", 1)[0] + "/bench_bridge"
    conn = await asyncpg.connect(dsn)
    from pgvector.asyncpg import register_vector

    await migrate(conn)
    await register_vector(conn)
    vectors, styles = make_embeddings(n, styles=max(12, n // 2000), seed=42)
    tracks = make_tracks(n, styles)
    await insert_library(conn, tracks, vectors, provider="jellyfin")
    await conn.execute("ANALYZE")
    await conn.close()
    return dsn, [t.item_id for t in tracks]


def load_generators(value: str) -> list[str]:
    names = value.split(",")
    unknown = [n for n in names if n not in ("wrk", "aiohttp")]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown load generator(s) {', '.join(unknown)}: wrk or aiohttp")
    if "wrk" in names and not shutil.which("wrk"):
        raise argparse.ArgumentTypeError("wrk is not installed (Debian: apt install wrk)")
    return names


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tracks", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument(
        "--web-processes", type=int, default=1, help="sidecar processes sharing the ports (WEB_PROCESSES)"
    )
    parser.add_argument("--limit", type=int, default=50, help="mix length asked for (clients send 50-200)")
    parser.add_argument(
        "--rates",
        type=lambda v: [float(x) for x in v.split(",")],
        default=[10.0, 50.0],
        help="mixes per second of the open-loop runs (default 10,50: 50 clients asking for a "
        "mix every 5 s, every second)",
    )
    parser.add_argument(
        "--load-generator",
        type=load_generators,
        default=["wrk"] if shutil.which("wrk") else ["aiohttp"],
        help="who sends the --rates runs: wrk (C; Debian package wrk; the default when "
        "installed) and/or aiohttp (this process), comma-separated",
    )
    parser.add_argument("--open-seconds", type=float, default=30.0, help="length of each open-loop run")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="am-bench-bridge-"))
    pg = EmbeddedPostgres(workdir / "pg")
    pg.start()
    valkey = EmbeddedValkey(workdir / "valkey")
    redis_url = valkey.start()
    ctx = mp.get_context("spawn")
    procs = []
    try:
        t0 = time.perf_counter()
        dsn, ids = asyncio.run(prepare(pg, args.tracks))
        print(f"library: {args.tracks} tracks loaded in {time.perf_counter() - t0:.1f} s")
        port, ready = ctx.Value("i", 0), ctx.Event()
        procs.append(ctx.Process(target=run_fake_jellyfin, args=(args.tracks, port, ready), daemon=True))
        procs[-1].start()
        if not ready.wait(120):
            raise SystemExit("the stand-in Jellyfin did not start")
        jellyfin = f"http://127.0.0.1:{port.value}"
        bridge_port, web_port = free_port(), free_port()
        env = {
            "MEDIASERVER_TYPE": "jellyfin",
            "JELLYFIN_URL": jellyfin,
            "JELLYFIN_USER_ID": "0" * 32,
            "JELLYFIN_TOKEN": TOKEN,
            "JELLYFIN_BRIDGE_PORT": str(bridge_port),
            "WEB_PORT": str(web_port),
            "DATABASE_URL": dsn,
            "REDIS_URL": redis_url,
            "AUDIOMUSE_DATA_DIR": str(workdir / "data"),
            "LOG_LEVEL": "WARNING",
            "AI_CHAT_DB_USER_NAME": "ai_user_bench_bridge",
            "WEB_PROCESSES": str(args.web_processes),
        }
        args.sidecar_pids = []
        for _ in range(args.web_processes):
            ready = ctx.Event()
            procs.append(ctx.Process(target=run_sidecar, args=(env, ready), daemon=True))
            procs[-1].start()
            if not ready.wait(120):
                raise SystemExit("the sidecar did not start")
            args.sidecar_pids.append(procs[-1].pid)
        asyncio.run(
            bench(args, f"http://127.0.0.1:{bridge_port}", f"http://127.0.0.1:{web_port}", jellyfin, ids)
        )
    finally:
        for proc in procs:
            proc.terminate()
            proc.join(10)
        valkey.stop()
        pg.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
