"""Throw-away databases on the session's embedded PostgreSQL cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from sidecar.db.migrate import migrate
from sidecar.embedded.postgres import EmbeddedPostgres


@asynccontextmanager
async def scratch_database(pg: EmbeddedPostgres, name: str, *, migrated: bool) -> AsyncIterator[str]:
    """Create database ``name`` (migrated to the latest schema if asked), yield its DSN, drop it."""
    admin = await asyncpg.connect(pg.dsn())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = pg.dsn().rsplit("/", 1)[0] + f"/{name}"
    if migrated:
        conn = await asyncpg.connect(dsn)
        try:
            await migrate(conn)
        finally:
            await conn.close()
    try:
        yield dsn
    finally:
        admin = await asyncpg.connect(pg.dsn())
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
