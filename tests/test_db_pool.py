"""The asyncpg pool (sidecar/db/pool.py) against a real PostgreSQL + pgvector: the numpy codec
for ``vector``, session settings that survive the connection going back to the pool, and no
state leaking from one borrower to the next despite the skipped reset query."""

from __future__ import annotations

import re
from pathlib import Path

import asyncpg
import numpy as np
import pytest
from pgvector import Vector

from sidecar.db.pool import SERVER_SETTINGS, create_pool, decode_vector, encode_vector


def test_codec_round_trip_without_a_server() -> None:
    for value in (
        [1.0, -2.5, 3.25],
        np.array([1.0, -2.5, 3.25], dtype=np.float64),
        Vector([1.0, -2.5, 3.25]),
    ):
        out = decode_vector(encode_vector(value))
        assert out.dtype == np.float32 and out.tolist() == [1.0, -2.5, 3.25]


async def test_vectors_are_numpy_both_ways(db: asyncpg.Pool) -> None:
    got = await db.fetchval("SELECT '[1,2.5,-3]'::vector")
    assert isinstance(got, np.ndarray) and got.dtype == np.float32 and got.tolist() == [1.0, 2.5, -3.0]
    for value in (np.array([0.5, 2.0], dtype=np.float32), [0.5, 2.0], Vector([0.5, 2.0])):
        assert await db.fetchval("SELECT $1::vector::text", value) == "[0.5,2]"
    # halfvec keeps pgvector's own codec
    assert (await db.fetchval("SELECT '[1,2]'::halfvec")).to_list() == [1.0, 2.0]


@pytest.mark.parametrize("name", sorted(SERVER_SETTINGS))
async def test_session_settings_survive_release(db_dsn: str, name: str) -> None:
    # a single connection, borrowed again and again: asyncpg's default reset (RESET ALL) used to
    # turn the iterative scans off after the first query
    pool = await create_pool(db_dsn, min_size=1, max_size=1)
    try:
        for _ in range(3):
            assert await pool.fetchval(f"SHOW {name}") == SERVER_SETTINGS[name]
    finally:
        await pool.close()


async def test_an_open_transaction_is_rolled_back_on_release(db_dsn: str) -> None:
    pool = await create_pool(db_dsn, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            await conn.execute("CREATE TABLE pool_probe (x int)")
        async with pool.acquire() as conn:
            await conn.execute("BEGIN")
            await conn.execute("INSERT INTO pool_probe VALUES (1)")
        # released mid-transaction: the next borrower sees nothing of it and is not in a transaction
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM pool_probe") == 0
            assert not conn.is_in_transaction()
    finally:
        await pool.close()


SESSION_STATE = [
    (
        re.compile(r"""["';]\s*SET\s+(?!LOCAL\b)""", re.I),
        "a session-level SET (use SET LOCAL in a transaction)",
    ),
    (re.compile(r"set_config\([^)]*,\s*false\s*\)", re.I), "set_config(..., false): a session-level setting"),
    (
        re.compile(r"pg_(try_)?advisory_lock(_shared)?\s*\(", re.I),
        "a session advisory lock (use *_xact_lock)",
    ),
    (re.compile(r"""["';]\s*(UN)?LISTEN\b|add_listener\(""", re.I), "LISTEN"),
    (re.compile(r"CREATE\s+(TEMP|TEMPORARY)\s+TABLE", re.I), "a temporary table"),
]


def test_no_sql_in_the_service_leaves_session_state() -> None:
    """The pool skips asyncpg's reset query, so SQL that would leave state on a connection for
    the next borrower must not appear (migrations and role set-up use their own connections and
    transaction-scoped locks)."""
    root = Path(__file__).resolve().parent.parent / "sidecar"
    found = [
        f"{path.relative_to(root.parent)}:{n}: {why}: {line.strip()}"
        for path in sorted(root.rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        for pattern, why in SESSION_STATE
        if pattern.search(line)
    ]
    assert found == []
    # the patterns do catch what they are for
    for bad in (
        'conn.execute("SET hnsw.ef_search = 10")',
        "db.execute('LISTEN x')",
        "SELECT set_config('a.b', '1', false)",
        "SELECT pg_advisory_lock(1)",
        "CREATE TEMP TABLE t (x int)",
    ):
        assert any(p.search(bad) for p, _ in SESSION_STATE), bad
    for fine in (
        'conn.execute("SET LOCAL hnsw.ef_search = 10")',
        "UPDATE tracks SET title = $1",
        "SELECT pg_advisory_xact_lock(1)",
        "set_config('hnsw.ef_search', '100', true)",
    ):
        assert not any(p.search(fine) for p, _ in SESSION_STATE), fine


#: the only homes of SQL: sidecar/db/ (by subject) and the k-NN queries of the similarity store
SQL_HOMES = ("sidecar/db/", "sidecar/similarity/store.py")
_QUERY_CALL = re.compile(r"\.(fetch|fetchrow|fetchval|execute|executemany|copy_records_to_table)\(")


def test_sql_lives_only_in_its_homes() -> None:
    """Every statement is a named function in sidecar/db/ (or the similarity store): a query
    call anywhere else in the service fails this test."""
    root = Path(__file__).resolve().parent.parent
    found = [
        f"{path.relative_to(root)}:{n}: {line.strip()}"
        for path in sorted((root / "sidecar").rglob("*.py"))
        if not str(path.relative_to(root)).startswith(SQL_HOMES)
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if _QUERY_CALL.search(line)
    ]
    assert not found, "SQL outside sidecar/db/ and sidecar/similarity/store.py:\n" + "\n".join(found)
