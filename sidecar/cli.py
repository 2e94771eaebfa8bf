"""`audiomuse` command line: up, web, worker, db migrate, check, sync, analyze."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import gc
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sidecar.config import MediaServerType, Settings, SettingsError, load_settings, redact_url
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
    from sidecar.web.errors import AppRunner

    main = create_app(settings, endpoints)
    runners = [AppRunner(main, handle_signals=False, access_log=None)]
    await runners[0].setup()  # runs the main app's start-up: pool, queue, provider
    try:
        shared = settings.web_processes > 1  # several processes accept on the same ports
        await _listen(web.TCPSite(runners[0], settings.web_host, settings.web_port, reuse_port=shared),
                      "WEB_PORT", settings.web_host, settings.web_port)
        port = runners[0].addresses[0][1] if runners[0].addresses else settings.web_port
        print(f"AudioMuse sidecar listening on http://{settings.web_host}:{port}", flush=True)
        for name, bridge_port, factory in configured_bridges(settings):
            runner = AppRunner(factory(main), handle_signals=False, access_log=None)
            await runner.setup()
            runners.append(runner)
            variable = "JELLYFIN_BRIDGE_PORT" if "jellyfin" in name.lower() else "SUBSONIC_BRIDGE_PORT"
            await _listen(web.TCPSite(runner, settings.bridge_host, bridge_port, reuse_port=shared),
                          variable, settings.bridge_host, bridge_port)
            actual = runner.addresses[0][1] if runner.addresses else bridge_port
            print(f"{name} listening on http://{settings.bridge_host}:{actual}", flush=True)
        await until()
    finally:
        for runner in reversed(runners):
            await runner.cleanup()


async def _listen(site: Any, variable: str, host: str, port: int) -> None:
    """Start listening; a port that is taken (or not ours to use) is one clear line naming the
    variable that sets it, not a traceback."""
    try:
        await site.start()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise RuntimeError(f"{variable}={port}: {host}:{port} is already in use by another program "
                               f"(another audiomuse?); stop it or set {variable} to a free port") from None
        raise RuntimeError(f"{variable}={port}: cannot listen on {host}:{port}: {exc.strerror or exc}") from None


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
    from sidecar.supervise import Supervised, stop_all

    _prepare_dirs(settings)
    with Servers(settings) as endpoints:
        version, applied = asyncio.run(_migrate(endpoints))
        print(f"AudioMuse sidecar: {_describe(settings, endpoints)}; schema version {version}", flush=True)
        env = {**os.environ, "DATABASE_URL": endpoints.postgres_dsn, "REDIS_URL": endpoints.redis_url}
        children = [Supervised("worker", [sys.executable, "-m", "sidecar", "worker"], env),
                    *_web_siblings(settings, endpoints)]
        try:
            asyncio.run(serve_web(settings, endpoints, _supervising(children)))
        finally:
            stop_all(children)
        print("AudioMuse sidecar stopped", flush=True)
    return 0


def _supervising(children: list[Any]) -> Callable[[], Awaitable[None]]:
    """Start ``children``; the returned coroutine function (serve_web's ``until``) restarts any
    that exits while the web app runs, until a stop signal."""
    from sidecar.supervise import watch_all

    for child in children:
        child.start()

    async def until() -> None:
        watcher = asyncio.ensure_future(watch_all(children))
        try:
            await _freeze_heap_then_wait_for_stop_signal()
        finally:
            watcher.cancel()

    return until


def _web_siblings(settings: Settings, endpoints: Endpoints) -> list[Any]:
    """WEB_PROCESSES - 1 more web processes on the same ports (SO_REUSEPORT), supervised."""
    from sidecar.supervise import Supervised

    env = {**os.environ, "DATABASE_URL": endpoints.postgres_dsn, "REDIS_URL": endpoints.redis_url}
    return [Supervised(f"web process {i + 2}", [sys.executable, "-m", "sidecar", "web", "--single"], env)
            for i in range(settings.web_processes - 1)]


def cmd_web(settings: Settings, args: argparse.Namespace) -> int:
    from sidecar.supervise import stop_all

    _prepare_dirs(settings)
    with Servers(settings) as endpoints:
        siblings = [] if args.single else _web_siblings(settings, endpoints)
        try:
            asyncio.run(serve_web(settings, endpoints, _supervising(siblings)))
        finally:
            stop_all(siblings)
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from sidecar.jobs.worker import WorkerGroup

    _prepare_dirs(settings)
    with Servers(settings) as endpoints:
        async def run() -> None:
            group = WorkerGroup(settings, endpoints)  # built inside the loop it runs on
            await group.open()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, group.stop)
            try:
                await group.run()
            finally:
                await group.close()

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

    from sidecar.db.migrate import migrations
    from sidecar.db.server import server_info
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
            info = await server_info(conn)
            version, vector, schema = info.version, info.pgvector, info.schema_version
            if vector is None:
                raise RuntimeError(f"PostgreSQL {version} has no pgvector extension")
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
            return f"{name} {info.get('valkey_version') or info.get('redis_version')} at {redact_url(endpoints.redis_url)}"
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


def _sync_line(task: dict[str, Any], started: float, done_at_start: int) -> str:
    d = task.get("details") or {}
    return (f"{d.get('albums_done', 0)}/{d.get('albums_total', '?')} albums, {d.get('tracks', 0)} tracks "
            f"({d.get('albums_failed', 0)} albums failed)")


async def _run_here(settings: Settings, endpoints: Endpoints, task_type: str, job: str, args: tuple[Any, ...],
                    details: dict[str, Any], progress: Callable[[dict[str, Any], float, int], str]) -> dict[str, Any]:
    """Start (or join) a run, work on it with an in-process worker, draw its progress until it
    ends.  Ctrl-C cancels the run (the tracks being analysed finish first; a second Ctrl-C
    stops at once); the task comes back with ``interrupted`` set."""
    from arq import create_pool as create_arq_pool

    from sidecar.db import open_database, tasks
    from sidecar.jobs.names import WORK_QUEUE
    from sidecar.jobs.queue import AlreadyRunning, start_run
    from sidecar.jobs.worker import WorkerGroup, redis_settings

    pool, _ = await open_database(endpoints.postgres_dsn, min_size=1, max_size=4)
    queue = await create_arq_pool(redis_settings(endpoints.redis_url), default_queue_name=WORK_QUEUE)
    group = WorkerGroup(settings, endpoints)
    await group.open()
    worker_task = asyncio.ensure_future(group.run())
    presses: list[int] = []  # Ctrl-C (or SIGTERM) presses
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, presses.append, sig)
    tty = sys.stderr.isatty()
    interrupted = False
    try:
        try:
            task_id = await start_run(pool, queue, task_type, job, *args, details=details)
        except AlreadyRunning as exc:
            task_id = exc.task["task_id"]
            print(f"joining the {task_type} already running ({task_id})", file=sys.stderr)
        started, first, last_print = time.monotonic(), None, 0.0
        while True:
            task = await tasks.get(pool, task_id) or {}
            d = task.get("details") or {}
            if first is None and (d.get("tracks_total") is not None or d.get("albums_total") is not None):
                first = int(d.get("tracks_analyzed") or 0) + int(d.get("tracks_failed") or 0)
                started = time.monotonic()
            if first is not None and (tty or time.monotonic() - last_print >= 5):
                print(progress(task, started, first), end="\r" if tty else "\n", file=sys.stderr, flush=True)
                last_print = time.monotonic()
            if task.get("status") in tasks.FINAL:
                break
            if presses and not interrupted:
                interrupted = True
                await tasks.cancel(pool, task_id, "cancelled from the command line (Ctrl-C)")
                print("\ncancelling: the tracks being analysed finish first (Ctrl-C again to stop now)",
                      file=sys.stderr, flush=True)
            if worker_task.done():
                raise RuntimeError(f"the worker stopped: {worker_task.exception()!r}")
            await asyncio.sleep(0.25 if interrupted else 0.5)
        if tty:
            print(file=sys.stderr)
        if interrupted:  # jobs stop between tracks: let them store the track at hand
            deadline = time.monotonic() + 120
            while group.running_jobs() and len(presses) < 2 and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.2)
        return {**(await tasks.get(pool, task_id) or {}), "interrupted": interrupted}
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        group.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await worker_task
        await group.close()
        await queue.aclose()
        await pool.close()


def cmd_sync(settings: Settings, args: argparse.Namespace) -> int:
    """Run a library sync with an in-process worker and print its summary."""
    from sidecar.jobs.names import LIBRARY_SYNC_TASK, SYNC_LIBRARY

    _prepare_dirs(settings)
    with Servers(settings) as endpoints:
        task = asyncio.run(_run_here(settings, endpoints, LIBRARY_SYNC_TASK, SYNC_LIBRARY, (args.recent,),
                                     {"num_recent_albums": args.recent}, _sync_line))
    d = task.get("details") or {}
    print({"status": task.get("status"), **{k: v for k, v in d.items() if k != "num_recent_albums"}})
    if task.get("interrupted"):
        print("cancelled: run again to sync the rest", file=sys.stderr)
        return 130
    return 0 if task.get("status") == "SUCCESS" else 1


def cmd_analyze(settings: Settings, args: argparse.Namespace) -> int:
    """Analyse the library in this process, with a progress bar (tracks/s, ETA)."""
    from sidecar.jobs.names import MAIN_ANALYSIS_TASK, RUN_ANALYSIS

    _prepare_dirs(settings)
    with Servers(settings) as endpoints:
        task = asyncio.run(_run_here(settings, endpoints, MAIN_ANALYSIS_TASK, RUN_ANALYSIS, (args.recent, None),
                                     {"num_recent_albums": args.recent}, _progress_line))
    d = task.get("details") or {}
    done = int(d.get("tracks_analyzed", 0)) + int(d.get("tracks_failed", 0))
    if task.get("interrupted"):
        print(f"cancelled: {done} of {d.get('tracks_total', '?')} tracks analysed; run again to resume")
        return 130
    print(f"{task.get('status')}: {d.get('tracks_analyzed', 0)} analysed, {d.get('tracks_failed', 0)} failed, "
          f"{d.get('tracks_total', 0)} tracks in {d.get('albums_total', 0)} albums "
          f"({d.get('albums_skipped', 0)} already analysed)")
    for r in d.get("failure_reasons") or []:
        print(f"  failed {r['count']:>5} x {r['reason']}  (e.g. {r['example']})")
    for a in d.get("albums_failed") or []:
        print(f"  album job failed: {a.get('album')}: {a.get('error')}")
    if d.get("tracks_rejected"):
        print(f"  {d['tracks_rejected']} tracks not recorded (metadata refused): see the task log")
    if d.get("error"):
        print(f"  {d['error']}")
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
