"""`audiomuse` command line: up, web, worker, db migrate, check, sync, analyze."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sidecar.config import MediaServerType, Settings, SettingsError, load_settings
from sidecar.services import Endpoints, Servers

log = logging.getLogger("audiomuse")


def _setup_logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def _prepare_dirs(settings: Settings) -> None:
    settings.audiomuse_data_dir.mkdir(parents=True, exist_ok=True)
    if settings.mediaserver_type is MediaServerType.LOCAL and settings.local_music_dir is None:
        settings.music_dir.mkdir(parents=True, exist_ok=True)
    settings.download_dir.mkdir(parents=True, exist_ok=True)


async def _wait_for_stop_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def _freeze_heap_then_wait_for_stop_signal() -> None:
    """Run once the web app and the bridges listen.  What exists by now (modules, the app, pools,
    caches) lives as long as the process: ``gc.freeze`` takes it out of the cyclic collector's
    full passes, which otherwise paused a loaded web process for up to 80 ms (bench/bridge.py:
    gen-2 collections 369 ms in all, longest 82 ms; frozen: 42 ms, longest 29 ms)."""
    gc.collect()
    gc.freeze()
    await _wait_for_stop_signal()


async def serve_web(settings: Settings, endpoints: Endpoints,
                    until: Callable[[], Awaitable[None]] = _freeze_heap_then_wait_for_stop_signal) -> None:
    """The web app, and the protocol bridges whose ports are set, until a stop signal."""
    from aiohttp import web

    from sidecar.app import create_app
    from sidecar.bridge import configured_bridges

    main = create_app(settings, endpoints)
    runners = [web.AppRunner(main, handle_signals=False, access_log=None)]
    await runners[0].setup()  # runs the main app's start-up: pool, queue, provider
    try:
        shared = settings.web_processes > 1  # several processes accept on the same ports
        await web.TCPSite(runners[0], settings.web_host, settings.web_port, reuse_port=shared).start()
        port = runners[0].addresses[0][1] if runners[0].addresses else settings.web_port
        print(f"AudioMuse sidecar listening on http://{settings.web_host}:{port}", flush=True)
        for name, bridge_port, factory in configured_bridges(settings):
            runner = web.AppRunner(factory(main), handle_signals=False, access_log=None)
            await runner.setup()
            runners.append(runner)
            await web.TCPSite(runner, settings.bridge_host, bridge_port, reuse_port=shared).start()
            actual = runner.addresses[0][1] if runner.addresses else bridge_port
            print(f"{name} listening on http://{settings.bridge_host}:{actual}", flush=True)
        await until()
    finally:
        for runner in reversed(runners):
            await runner.cleanup()


async def _migrate(endpoints: Endpoints) -> tuple[int, list[int]]:
    import asyncpg

    from sidecar.db.migrate import current_version, migrate

    conn = await asyncpg.connect(endpoints.postgres_dsn)
    try:
        applied = await migrate(conn)
        return await current_version(conn), applied
    finally:
        await conn.close()


def _describe(settings: Settings, endpoints: Endpoints) -> str:
    where = []
    where.append("embedded PostgreSQL" if "postgres" in endpoints.embedded else "external PostgreSQL")
    where.append("embedded Valkey" if "valkey" in endpoints.embedded else "external Redis")
    media = settings.mediaserver_type.value
    if settings.mediaserver_type is MediaServerType.LOCAL:
        media += f" folder {settings.music_dir.resolve()}"
    else:
        media += f" at {settings.media_server_url}"
    data = f", data in {settings.audiomuse_data_dir.resolve()}" if endpoints.embedded else ""
    return f"{' + '.join(where)}{data}; media server: {media}"


# -- commands ------------------------------------------------------------------------------

def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    _prepare_dirs(settings)
    with Servers(settings) as endpoints:
        version, applied = asyncio.run(_migrate(endpoints))
        print(f"AudioMuse sidecar: {_describe(settings, endpoints)}; schema version {version}", flush=True)
        env = {**os.environ, "DATABASE_URL": endpoints.postgres_dsn, "REDIS_URL": endpoints.redis_url}
        children = [subprocess.Popen([sys.executable, "-m", "sidecar", "worker"], env=env),
                    *_spawn_web_siblings(settings, endpoints)]
        try:
            asyncio.run(serve_web(settings, endpoints))
        finally:
            _stop_children(children)
        print("AudioMuse sidecar stopped", flush=True)
    return 0


def _spawn_web_siblings(settings: Settings, endpoints: Endpoints) -> list[subprocess.Popen[bytes]]:
    """WEB_PROCESSES - 1 more web processes on the same ports (SO_REUSEPORT)."""
    env = {**os.environ, "DATABASE_URL": endpoints.postgres_dsn, "REDIS_URL": endpoints.redis_url}
    return [subprocess.Popen([sys.executable, "-m", "sidecar", "web", "--single"], env=env)
            for _ in range(settings.web_processes - 1)]


def _stop_children(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=60)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def cmd_web(settings: Settings, args: argparse.Namespace) -> int:
    _prepare_dirs(settings)
    with Servers(settings) as endpoints:
        siblings = [] if args.single else _spawn_web_siblings(settings, endpoints)
        try:
            asyncio.run(serve_web(settings, endpoints))
        finally:
            _stop_children(siblings)
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from sidecar.jobs.worker import build_worker

    _prepare_dirs(settings)
    with Servers(settings) as endpoints:
        async def run() -> None:
            worker = build_worker(settings, endpoints)  # built inside the loop it runs on
            try:
                await worker.async_run()
            except asyncio.CancelledError:
                pass  # arq cancels its main task on SIGINT/SIGTERM: a normal stop
            finally:
                await worker.close()

        asyncio.run(run())
    return 0


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    _prepare_dirs(settings)
    with Servers(settings) as endpoints:
        version, applied = asyncio.run(_migrate(endpoints))
    print(f"schema at version {version}" + (f" (applied {applied})" if applied else " (nothing to apply)"))
    return 0


async def _checks(settings: Settings, endpoints: Endpoints) -> list[tuple[str, bool, str]]:
    import asyncpg
    from redis.asyncio import Redis

    from sidecar.db.migrate import current_version, migrations
    from sidecar.providers import make_provider

    results: list[tuple[str, bool, str]] = []

    async def check(name: str, probe: Awaitable[str]) -> None:
        try:
            results.append((name, True, await asyncio.wait_for(probe, timeout=60)))
        except Exception as exc:
            results.append((name, False, f"{type(exc).__name__}: {exc}" if not str(exc).startswith(
                ("Jellyfin", "Subsonic", "local")) else str(exc)))

    async def database() -> str:
        conn = await asyncpg.connect(endpoints.postgres_dsn, timeout=10)
        try:
            version = await conn.fetchval("SHOW server_version")
            vector = await conn.fetchval(
                "SELECT coalesce((SELECT extversion FROM pg_extension WHERE extname = 'vector'), "
                "(SELECT default_version FROM pg_available_extensions WHERE name = 'vector'))")
            if vector is None:
                raise RuntimeError(f"PostgreSQL {version} has no pgvector extension")
            schema = await current_version(conn)
            latest = migrations()[-1].version
            note = "up to date" if schema == latest else f"{latest - schema} migration(s) pending, " \
                                                          f"run `audiomuse db migrate`"
            return f"PostgreSQL {version}, pgvector {vector}, schema version {schema} ({note})"
        finally:
            await conn.close()

    async def redis() -> str:
        client = Redis.from_url(endpoints.redis_url, socket_connect_timeout=10)
        try:
            await client.ping()
            info = await client.info("server")
            name = "Valkey" if info.get("valkey_version") else "Redis"
            return f"{name} {info.get('valkey_version') or info.get('redis_version')} at {endpoints.redis_url}"
        finally:
            await client.aclose()

    async def media() -> str:
        provider = make_provider(settings)
        try:
            return await provider.ping()
        finally:
            await provider.close()

    async def models() -> str:
        from sidecar.ml.pipeline import AnalysisParams, model_version

        return await asyncio.to_thread(model_version, AnalysisParams(model_dir=settings.model_dir))

    await check("database", database())
    await check("redis", redis())
    await check("media server", media())
    await check("models", models())
    return results


def cmd_check(settings: Settings, args: argparse.Namespace) -> int:
    print(f"OK    configuration: MEDIASERVER_TYPE={settings.mediaserver_type.value}", flush=True)
    _prepare_dirs(settings)
    try:
        servers = Servers(settings)
        endpoints = servers.start()
    except Exception as exc:
        print(f"FAIL  embedded servers: {exc}")
        return 1
    try:
        results = asyncio.run(_checks(settings, endpoints))
    finally:
        servers.stop()
    for name, ok, detail in results:
        print(f"{'OK  ' if ok else 'FAIL'}  {name}: {detail}", flush=True)
    return 0 if all(ok for _, ok, _ in results) else 1


def cmd_sync(settings: Settings, args: argparse.Namespace) -> int:
    """Run a library sync in this process (no worker needed) and print its summary."""
    from sidecar import tasks
    from sidecar.db import open_database
    from sidecar.jobs.context import JobContext
    from sidecar.jobs.library import TASK_TYPE, sync_library
    from sidecar.providers import make_provider

    _prepare_dirs(settings)
    with Servers(settings) as endpoints:
        async def run() -> dict[str, Any]:
            pool, _ = await open_database(endpoints.postgres_dsn, min_size=1, max_size=2)
            provider = make_provider(settings)
            try:
                task_id = await tasks.create(pool, TASK_TYPE)
                ctx = {"app": JobContext(settings, pool, provider)}
                return await sync_library(ctx, task_id, args.recent)
            finally:
                await provider.close()
                await pool.close()

        summary = asyncio.run(run())
    print(summary)
    return 0 if summary.get("status") == "SUCCESS" else 1


def _progress_line(task: dict[str, Any], started: float, done_at_start: int) -> str:
    d = task.get("details") or {}
    total = int(d.get("tracks_total") or 0)
    done = int(d.get("tracks_analyzed") or 0) + int(d.get("tracks_failed") or 0)
    elapsed = max(1e-6, time.monotonic() - started)
    rate = (done - done_at_start) / elapsed
    eta = (total - done) / rate if rate > 0 else None
    width = 30
    filled = int(width * done / total) if total else 0
    eta_text = f"ETA {int(eta // 60)}m{int(eta % 60):02d}s" if eta is not None else "ETA --"
    return (f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} tracks "
            f"({d.get('tracks_failed', 0)} failed) {rate:.2f} tracks/s {eta_text}")


async def _run_analysis_here(settings: Settings, endpoints: Endpoints, recent: int | None) -> dict[str, Any]:
    """Start (or join) an analysis run, work on it with an in-process worker, draw its progress."""
    from arq import create_pool as create_arq_pool

    from sidecar import tasks
    from sidecar.db import open_database
    from sidecar.jobs.analysis import MAIN_TASK
    from sidecar.jobs.worker import QUEUE_NAME, build_worker, redis_settings

    pool, _ = await open_database(endpoints.postgres_dsn, min_size=1, max_size=4)
    queue = await create_arq_pool(redis_settings(endpoints.redis_url), default_queue_name=QUEUE_NAME)
    worker = build_worker(settings, endpoints, handle_signals=False)
    worker_task = asyncio.create_task(worker.main())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    tty = sys.stderr.isatty()
    try:
        running = await tasks.active(pool, MAIN_TASK)
        if running:
            task_id = running[0]["task_id"]
            print(f"joining the analysis already running ({task_id})", file=sys.stderr)
        else:
            task_id = await tasks.create(pool, MAIN_TASK, details={"num_recent_albums": recent})
            await queue.enqueue_job("run_analysis", task_id, recent, None, _job_id=task_id)
        started, first, last_print = time.monotonic(), None, 0.0
        while True:
            task = await tasks.get(pool, task_id) or {}
            d = task.get("details") or {}
            if first is None and d.get("tracks_total") is not None:
                first = int(d.get("tracks_analyzed") or 0) + int(d.get("tracks_failed") or 0)
                started = time.monotonic()
            if first is not None and (tty or time.monotonic() - last_print >= 5):
                end = "\r" if tty else "\n"
                print(_progress_line(task, started, first), end=end, file=sys.stderr, flush=True)
                last_print = time.monotonic()
            if task.get("status") in tasks.FINAL:
                break
            if stop.is_set():
                await pool.execute("UPDATE tasks SET status = 'REVOKED', finished_at = now() "
                                   "WHERE (task_id = $1 OR parent_task_id = $1) AND status = ANY($2::text[])",
                                   task_id, list(tasks.ACTIVE))
                print("\ncancelling: finishing the current track ...", file=sys.stderr)
            if worker_task.done():
                raise RuntimeError(f"the worker stopped: {worker_task.exception()!r}")
            await asyncio.sleep(0.5)
        if tty:
            print(file=sys.stderr)
        return await tasks.get(pool, task_id) or {}
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        worker_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker_task
        await worker.close()
        await queue.aclose()
        await pool.close()


def cmd_analyze(settings: Settings, args: argparse.Namespace) -> int:
    """Analyse the library in this process, with a progress bar (tracks/s, ETA)."""
    _prepare_dirs(settings)
    with Servers(settings) as endpoints:
        task = asyncio.run(_run_analysis_here(settings, endpoints, args.recent))
    d = task.get("details") or {}
    print(f"{task.get('status')}: {d.get('tracks_analyzed', 0)} analysed, {d.get('tracks_failed', 0)} failed, "
          f"{d.get('tracks_total', 0)} tracks in {d.get('albums_total', 0)} albums "
          f"({d.get('albums_skipped', 0)} already analysed)")
    return 0 if task.get("status") == "SUCCESS" else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="audiomuse", description="AudioMuse sidecar: sonic analysis, "
                                     "instant mixes and playlists for Jellyfin, Navidrome or a music folder.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="run everything: embedded servers where none is configured, web app, worker")
    web_cmd = sub.add_parser("web", help="run the web app and API only (WEB_PROCESSES processes)")
    web_cmd.add_argument("--single", action="store_true", help=argparse.SUPPRESS)  # a sibling of another web
    sub.add_parser("worker", help="run one background worker only")
    db = sub.add_parser("db", help="database administration")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("migrate", help="apply pending schema migrations")
    sub.add_parser("check", help="validate the configuration and reach the database, Redis and media server")
    analyze = sub.add_parser("analyze", help="analyse the library here, with a progress bar")
    analyze.add_argument("--recent", type=int, default=None, help="only the N newest albums (default: "
                         "NUM_RECENT_ALBUMS; 0 = all)")
    sync = sub.add_parser("sync", help="read the media server's albums and tracks into the database")
    sync.add_argument("--recent", type=int, default=None, help="only the N newest albums (default: "
                      "NUM_RECENT_ALBUMS; 0 = all)")
    return parser


COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
    "up": cmd_up, "web": cmd_web, "worker": cmd_worker, "check": cmd_check, "sync": cmd_sync, "analyze": cmd_analyze,
    "db migrate": cmd_migrate,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"audiomuse: {exc}", file=sys.stderr)
        return 2
    _setup_logging(settings)
    if getattr(args, "recent", 0) is None:
        args.recent = settings.num_recent_albums
    name = args.command + (f" {args.db_command}" if args.command == "db" else "")
    try:
        return COMMANDS[name](settings, args)
    except KeyboardInterrupt:
        return 130
    except RuntimeError as exc:  # embedded servers that cannot start, unreachable external ones
        print(f"audiomuse: {exc}", file=sys.stderr)
        return 1
