"""`audiomuse` command line: up, web, worker, db migrate, check, sync, analyze, export, import.
This module parses the commands and wires their parts (``serve``, ``supervise``, ``check``,
``jobs.here``, ``backup.commands``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence

from sidecar.backup import commands as backup_commands
from sidecar.check import run_checks
from sidecar.config import MediaServerType, Settings, SettingsError, load_settings
from sidecar.jobs.here import analysis_progress_line, run_here, sync_progress_line
from sidecar.jobs.schedule import schedule_summary
from sidecar.serve import serve_web, share_metrics, supervising, unshare_metrics, web_siblings
from sidecar.services import Endpoints, Servers

log = logging.getLogger("audiomuse")


def _setup_logging(settings: Settings) -> None:
    from sidecar.logs import setup_logging

    setup_logging(settings.log_level, settings.log_format)


def _prepare_dirs(settings: Settings) -> None:
    settings.audiomuse_data_dir.mkdir(parents=True, exist_ok=True)
    if settings.mediaserver_type is MediaServerType.LOCAL and settings.local_music_dir is None:
        settings.music_dir.mkdir(parents=True, exist_ok=True)
    settings.download_dir.mkdir(parents=True, exist_ok=True)


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
        metrics_dir = share_metrics(settings)  # before the processes start
        children = [
            Supervised("worker", [sys.executable, "-m", "sidecar", "worker"], env),
            *web_siblings(settings, endpoints),
        ]
        try:
            asyncio.run(serve_web(settings, endpoints, supervising(children)))
        finally:
            stop_all(children)
            unshare_metrics(metrics_dir)
        print("AudioMuse sidecar stopped", flush=True)
    return 0


def cmd_web(settings: Settings, args: argparse.Namespace) -> int:
    from sidecar.supervise import stop_all

    _prepare_dirs(settings)
    with Servers(settings) as endpoints:
        metrics_dir = None if args.single else share_metrics(settings)
        siblings = [] if args.single else web_siblings(settings, endpoints)
        try:
            asyncio.run(serve_web(settings, endpoints, supervising(siblings)))
        finally:
            stop_all(siblings)
            unshare_metrics(metrics_dir)
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


def cmd_check(settings: Settings, args: argparse.Namespace) -> int:
    print(
        f"OK    configuration: MEDIASERVER_TYPE={settings.mediaserver_type.value}; {schedule_summary(settings)}",
        flush=True,
    )
    _prepare_dirs(settings)
    try:
        servers = Servers(settings)
        endpoints = servers.start()
    except Exception as exc:
        print(f"FAIL  embedded servers: {exc}")
        return 1
    try:
        results = asyncio.run(run_checks(settings, endpoints))
    finally:
        servers.stop()
    for name, ok, detail in results:
        print(f"{'OK  ' if ok else 'FAIL'}  {name}: {detail}", flush=True)
    return 0 if all(ok for _, ok, _ in results) else 1


def cmd_sync(settings: Settings, args: argparse.Namespace) -> int:
    """Run a library sync with an in-process worker and print its summary."""
    from sidecar.jobs.names import LIBRARY_SYNC_TASK, SYNC_LIBRARY

    _prepare_dirs(settings)
    with Servers(settings) as endpoints:
        task = asyncio.run(
            run_here(
                settings,
                endpoints,
                LIBRARY_SYNC_TASK,
                SYNC_LIBRARY,
                (args.recent,),
                {"num_recent_albums": args.recent},
                sync_progress_line,
            )
        )
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
        task = asyncio.run(
            run_here(
                settings,
                endpoints,
                MAIN_ANALYSIS_TASK,
                RUN_ANALYSIS,
                (args.recent, None),
                {"num_recent_albums": args.recent},
                analysis_progress_line,
            )
        )
    d = task.get("details") or {}
    done = int(d.get("tracks_analyzed", 0)) + int(d.get("tracks_failed", 0))
    if task.get("interrupted"):
        print(f"cancelled: {done} of {d.get('tracks_total', '?')} tracks analysed; run again to resume")
        return 130
    print(
        f"{task.get('status')}: {d.get('tracks_analyzed', 0)} analysed, {d.get('tracks_failed', 0)} failed, "
        f"{d.get('tracks_total', 0)} tracks in {d.get('albums_total', 0)} albums "
        f"({d.get('albums_skipped', 0)} already analysed)"
    )
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
    parser = argparse.ArgumentParser(
        prog="audiomuse",
        description="AudioMuse sidecar: sonic analysis, "
        "instant mixes and playlists for Jellyfin, Navidrome or a music folder.",
    )
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
    analyze.add_argument(
        "--recent",
        type=int,
        default=None,
        help="only the N newest albums (default: NUM_RECENT_ALBUMS; 0 = all)",
    )
    sync = sub.add_parser("sync", help="read the media server's albums and tracks into the database")
    sync.add_argument(
        "--recent",
        type=int,
        default=None,
        help="only the N newest albums (default: NUM_RECENT_ALBUMS; 0 = all)",
    )
    backup_commands.add_parsers(sub)
    return parser


COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
    "up": cmd_up,
    "web": cmd_web,
    "worker": cmd_worker,
    "check": cmd_check,
    "sync": cmd_sync,
    "analyze": cmd_analyze,
    "db migrate": cmd_migrate,
    "export": backup_commands.cmd_export,
    "import": backup_commands.cmd_import,
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
