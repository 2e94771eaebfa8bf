"""The asyncpg connection pool, with a numpy codec for pgvector's ``vector`` on every connection.

Two choices made for the mix path, where every query counts (see README "Similarity"):

* ``vector`` values decode straight to ``numpy.float32`` arrays (pgvector's own codec builds a
  ``Vector`` object first, which cost ~10% of a mix's Python time); any sequence, numpy array
  or ``pgvector.Vector`` encodes.
* A connection going back to the pool is not sent asyncpg's default reset query
  (which releases advisory locks, closes cursors, drops listeners and runs RESET ALL), a round trip on every
  query through ``Pool.fetch`` (6-7% of a mix's Python time, and a statement on the server).
  Nothing here leaves session state behind: settings are startup parameters or
  ``set_config(..., true)`` inside a transaction, advisory locks are transaction-scoped, no
  LISTEN, no cursors outside transactions -- tests/test_db_pool.py fails on SQL in sidecar/
  that would.  asyncpg still rolls back a transaction left open.
"""

from __future__ import annotations

import struct
from typing import Any

import asyncpg
import numpy as np
from pgvector.asyncpg import register_vector

#: Session defaults sent in the startup packet (so they survive any RESET ALL).  Iterative
#: scans keep filtered k-NN queries (exclusions) from starving; pgvector returns at most
#: ``hnsw.ef_search`` rows per scan otherwise (``am_nearest`` raises it per query).
SERVER_SETTINGS = {"hnsw.iterative_scan": "relaxed_order"}

_HEADER = struct.Struct(">HH")


def decode_vector(data: bytes) -> np.ndarray:
    """pgvector's binary ``vector``: uint16 dimensions, uint16 unused, big-endian float4s."""
    (dim, _) = _HEADER.unpack_from(data)
    return np.frombuffer(data, dtype=">f4", count=dim, offset=_HEADER.size).astype(np.float32)


def encode_vector(value: Any) -> bytes:
    to_numpy = getattr(value, "to_numpy", None)
    array = np.asarray(to_numpy() if to_numpy else value, dtype=">f4")
    if array.ndim != 1:
        raise ValueError(f"a vector must be 1-D, got shape {array.shape}")
    return _HEADER.pack(array.size, 0) + array.tobytes()


async def _init_connection(conn: asyncpg.Connection) -> None:
    await register_vector(conn)  # halfvec and sparsevec
    await conn.set_type_codec("vector", encoder=encode_vector, decoder=decode_vector, format="binary")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release without the reset query (asyncpg has already rolled back an open transaction)."""


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10, **kwargs: Any) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_keep_session,
        command_timeout=60,
        server_settings=SERVER_SETTINGS,
        **kwargs,
    )
    assert pool is not None
    return pool
