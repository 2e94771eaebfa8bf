"""What the database server is: its version, pgvector's, and the schema's (for /healthz and
`audiomuse check`)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class ServerInfo:
    version: str
    pgvector: str | None  # installed in this database, else the version available to install
    pgvector_installed: bool
    schema_version: int


async def server_info(db: asyncpg.Pool | asyncpg.Connection) -> ServerInfo:
    row = await db.fetchrow(
        """SELECT current_setting('server_version') AS version,
                  (SELECT extversion FROM pg_extension WHERE extname = 'vector') AS installed,
                  (SELECT default_version FROM pg_available_extensions WHERE name = 'vector') AS available,
                  to_regclass('schema_migrations') IS NOT NULL AS migrated"""
    )
    schema = 0
    if row["migrated"]:  # a database no migration has run on yet has no schema_migrations table
        schema = int(await db.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations"))
    return ServerInfo(
        version=row["version"],
        pgvector=row["installed"] or row["available"],
        pgvector_installed=row["installed"] is not None,
        schema_version=schema,
    )
