"""Database access: the asyncpg pool, migrations and roles, and every SQL statement of the service
(by subject: ``tasks``, ``tracks``, ``analysis``; k-NN queries live in ``sidecar/similarity/store.py``)."""

from __future__ import annotations

import asyncpg

from sidecar.db.migrate import migrate
from sidecar.db.pool import create_pool

__all__ = ["create_pool", "open_database"]


async def open_database(dsn: str, *, min_size: int = 1, max_size: int = 10) -> tuple[asyncpg.Pool, list[int]]:
    """Migrate the schema (pooled connections need the vector type to exist), then open the pool.

    Returns the pool and the migration versions applied now.
    """
    conn = await asyncpg.connect(dsn)
    try:
        applied = await migrate(conn)
    finally:
        await conn.close()
    return await create_pool(dsn, min_size=min_size, max_size=max_size), applied
