"""Versioned, idempotent schema migrations.

Version 1 is ``schema.sql`` (the baseline).  Each later version is a file
``sidecar/migrations/NNNN_short_name.sql``.  ``migrate()`` takes an advisory lock (so web and
worker processes starting together do not race), checks that every version already applied
is the file it was (its SHA-256 recorded in ``schema_migrations``: a file edited after it was
applied stops the start with a message naming it, since the edit would never reach existing
databases), applies in one transaction every version above the highest recorded, and records
it.  Applying twice changes nothing.  A change to an existing object is a new migration,
never an edit of an applied file.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)

_PACKAGE_DIR = Path(__file__).resolve().parent.parent
_LOCK_KEY = 0x41554D53  # "AUMS"
_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


#: checksums a file had in a release, accepted besides its current one: schema.sql was edited
#: (HNSW ef_construction 64 -> 128) after migration 0002 existed; databases made from that text
#: recorded this checksum.  The edit now lives in migration 0005 and schema.sql is as it was.
HISTORICAL_CHECKSUMS = {1: frozenset({"e9cea7ea081ebc2be24569cd0a513bd537073bcea21fcb7afd8553a0b79ef52c"})}


class MigrationChanged(RuntimeError):
    """An applied migration's file no longer matches what was applied."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str
    file: str = ""

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations() -> list[Migration]:
    """All known migrations in order: the baseline schema, then sidecar/migrations/*.sql."""
    found = [Migration(1, "baseline", (_PACKAGE_DIR / "schema.sql").read_text(), "schema.sql")]
    for path in sorted((_PACKAGE_DIR / "migrations").glob("*.sql")):
        m = _FILE_RE.match(path.name)
        if not m:
            raise RuntimeError(f"migration file name {path.name!r} does not match NNNN_name.sql")
        version = int(m.group(1))
        if version <= found[-1].version:
            raise RuntimeError(f"migration {path.name}: version {version} is not above {found[-1].version}")
        found.append(Migration(version, m.group(2), path.read_text(), f"sidecar/migrations/{path.name}"))
    return found


async def verify_applied(conn: asyncpg.Connection) -> None:
    """Raise :class:`MigrationChanged` naming the first applied file whose text has changed."""
    recorded = {
        r["version"]: r["checksum"]
        for r in await conn.fetch("SELECT version, checksum FROM schema_migrations")
    }
    for m in migrations():
        was = recorded.get(m.version)
        if was is None or was == m.checksum or was in HISTORICAL_CHECKSUMS.get(m.version, ()):
            continue
        raise MigrationChanged(
            f"{m.file} (schema version {m.version}) was changed after it was applied to this database "
            f"(checksum {was[:12]}... recorded, {m.checksum[:12]}... now): the change would never reach "
            "this database. Restore the file and put the change in a new migration."
        )


async def current_version(conn: asyncpg.Connection) -> int:
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return 0
    return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations"))


async def migrate(conn: asyncpg.Connection) -> list[int]:
    """Apply pending migrations; return the versions applied (empty when up to date)."""
    applied: list[int] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version    integer PRIMARY KEY,
                   name       text NOT NULL,
                   checksum   text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        await conn.execute(
            "COMMENT ON TABLE schema_migrations IS "
            "'Schema versions applied to this database (see sidecar/db/migrate.py).'"
        )
        await verify_applied(conn)
        have = await current_version(conn)
        for m in migrations():
            if m.version <= have:
                continue
            log.info("applying schema migration %04d_%s", m.version, m.name)
            await conn.execute(m.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                m.version,
                m.name,
                m.checksum,
            )
            applied.append(m.version)
    return applied
