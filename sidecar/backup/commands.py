"""``audiomuse export FILE`` and ``audiomuse import FILE``: the analysis backup from the command
line (``-`` is standard output / input).  An export is written beside FILE and renamed into
place when complete, so a failed export never leaves a half file under the name asked for."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any

from sidecar.backup import format as fmt
from sidecar.backup.export import export_analysis
from sidecar.backup.importer import ImportBusy, import_analysis
from sidecar.backup.model_version import installed_model_version
from sidecar.config import Settings
from sidecar.services import Endpoints, Servers

CHUNK = 1 << 20


async def _pool(endpoints: Endpoints) -> Any:
    import asyncpg

    from sidecar.db import create_pool
    from sidecar.db.migrate import migrate

    conn = await asyncpg.connect(endpoints.postgres_dsn)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return await create_pool(endpoints.postgres_dsn, min_size=1, max_size=2)


async def _export(settings: Settings, endpoints: Endpoints, out: IO[bytes]) -> int:
    db = await _pool(endpoints)
    try:

        async def write(data: bytes) -> None:
            await asyncio.to_thread(out.write, data)

        version = installed_model_version(settings.model_dir)
        return await export_analysis(db, settings.mediaserver_type.value, version, write)
    finally:
        await db.close()


def cmd_export(settings: Settings, args: argparse.Namespace) -> int:
    """Write the analysis of every analysed track to FILE (gzip JSON lines)."""
    settings.audiomuse_data_dir.mkdir(parents=True, exist_ok=True)
    target = str(args.file)
    with Servers(settings) as endpoints:
        if target == "-":
            count = asyncio.run(_export(settings, endpoints, sys.stdout.buffer))
        else:
            partial = Path(target + ".partial")
            try:
                with open(partial, "wb") as out:
                    count = asyncio.run(_export(settings, endpoints, out))
                os.replace(partial, target)
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
    print(f"exported {count} analysed tracks to {target}", file=sys.stderr)
    return 0


async def _chunks(src: IO[bytes]) -> AsyncIterator[bytes]:
    while chunk := await asyncio.to_thread(src.read, CHUNK):
        yield chunk


async def _import(settings: Settings, endpoints: Endpoints, src: IO[bytes], dry_run: bool) -> dict[str, Any]:
    db = await _pool(endpoints)
    try:
        version = installed_model_version(settings.model_dir)
        report = await import_analysis(db, _chunks(src), version, dry_run=dry_run)
        return report.as_json()
    finally:
        await db.close()


def print_report(report: dict[str, Any]) -> None:
    m = report["matched_by"]
    print(
        f"{'dry run: would import' if report['dry_run'] else 'imported'} {report['imported']} of "
        f"{report['records']} records ({report['unchanged']} already there, {report['not_imported']} not "
        f"imported); matched by fingerprint {m['fingerprint']}, id {m['item_id']}, path {m['path']}, "
        f"tags {m['tags']}"
    )
    for r in report["reasons"]:
        ex = r["examples"][0] if r["examples"] else {}
        print(
            f"  not imported {r['count']:>6} x {r['reason']}: {r['meaning']} "
            f"(e.g. line {ex.get('line')}: {ex.get('artist')} - {ex.get('title')})"
        )
    if report.get("hint"):
        print(f"  {report['hint']}")


def cmd_import(settings: Settings, args: argparse.Namespace) -> int:
    """Match the records of FILE to this library's tracks and store their analysis."""
    settings.audiomuse_data_dir.mkdir(parents=True, exist_ok=True)
    try:
        src = sys.stdin.buffer if str(args.file) == "-" else open(args.file, "rb")  # noqa: SIM115
    except OSError as exc:
        print(f"audiomuse: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    try:
        with Servers(settings) as endpoints:
            report = asyncio.run(_import(settings, endpoints, src, args.dry_run))
    except fmt.FormatError as exc:
        print(f"audiomuse: import refused, nothing was changed: {exc}", file=sys.stderr)
        return 1
    except ImportBusy:
        print("audiomuse: another import is running; nothing was changed", file=sys.stderr)
        return 1
    finally:
        src.close()
    print_report(report)
    return 0


def add_parsers(sub: Any) -> None:
    """The two sub-commands, on the main parser's sub-parsers."""
    export = sub.add_parser(
        "export", help="write the analysis of every analysed track to FILE (gzip JSON lines)"
    )
    export.add_argument("file", help="the backup file to write (- for standard output)")
    imp = sub.add_parser(
        "import",
        help="store the analysis of a backup FILE into this library's matching tracks (no re-analysis)",
    )
    imp.add_argument("file", help="the backup file to read (- for standard input)")
    imp.add_argument("--dry-run", action="store_true", help="report what would be imported, change nothing")
