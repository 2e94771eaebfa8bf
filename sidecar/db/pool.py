"""The asyncpg connection pool, with the pgvector codec registered on every connection."""

from __future__ import annotations

from typing import Any

import asyncpg
from pgvector.asyncpg import register_vector


async def _init_connection(conn: asyncpg.Connection) -> None:
    await register_vector(conn)
    # pgvector returns at most ef_search rows from an HNSW scan; queries that need more set it
    # per transaction.  Iterative scans keep filtered queries from starving.
    await conn.execute("SET hnsw.iterative_scan = relaxed_order")


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10, **kwargs: Any) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, init=_init_connection,
                                     command_timeout=60, **kwargs)
    assert pool is not None
    return pool
