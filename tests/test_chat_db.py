"""The chat view and executor against a real PostgreSQL: the view's columns, and defence in depth
(every hostile answer of tests/test_chat_validate.py, run directly under the chat role with no
validation, cannot write, read other relations or secrets, escalate, or run long)."""

from __future__ import annotations

import json
import time
from typing import Any

import asyncpg
import pytest
from test_chat_validate import HOSTILE

from sidecar.chat.columns import ALL_COLUMNS, MSD_LABELS, MTT_LABELS, OTHER_FEATURES
from sidecar.chat.validate import validate
from sidecar.db.chat import ChatQueryError, ChatUnavailable, chat_view_columns, known_tracks, run_chat_query
from sidecar.db.roles import ensure_chat_role

ROLE, PASSWORD = "ai_user_chat_db", "chat-db-pass-123"
SECRET = "SECRET-MARKER-7f3a"


async def add_track(
    db: asyncpg.Pool,
    item_id: str,
    *,
    title: str = "",
    artist: str = "A",
    year: int | None = None,
    tempo: float = 120.0,
    energy: float = 0.5,
    tags: dict[str, float] | None = None,
    mtt: dict[str, float] | None = None,
    features: dict[str, float] | None = None,
    status: str = "analyzed",
    genres: list[str] | None = None,
) -> None:
    f = {name: 0.1 for name in OTHER_FEATURES} | (features or {})
    await db.execute(
        "INSERT INTO tracks (item_id, provider, title, artist, year, genres, file_path, analysis_status, "
        "failure_reason, model_version) VALUES ($1, 'local', $2, $3, $4, $5, $6, $7, $8, 'v')",
        item_id,
        title or item_id,
        artist,
        year,
        genres or [],
        f"/music/{SECRET}/{item_id}.mp3",
        status,
        "corrupt: x" if status == "failed" else None,
    )
    await db.execute(
        f"INSERT INTO track_analysis (item_id, tempo, key, scale, energy, energy_normalized, tags, mtt_tags, "
        f"{', '.join(OTHER_FEATURES)}, model_version) VALUES ($1, $2, 'C', 'major', $3, $4, $5::jsonb, "
        f"$6::jsonb, $7, $8, $9, $10, $11, $12, 'v')",
        item_id,
        tempo,
        energy * 0.15,
        energy,
        json.dumps({k: 0.01 for k in MSD_LABELS} | (tags or {})),
        json.dumps({k: 0.01 for k in MTT_LABELS} | (mtt or {})),
        *(f[n] for n in OTHER_FEATURES),
    )


async def setup_role(db: asyncpg.Pool) -> None:
    async with db.acquire() as conn:
        assert await ensure_chat_role(conn, ROLE, PASSWORD)


async def run(dsn: str, sql: str, *, max_rows: int = 25, timeout_s: float = 1.0) -> list[dict[str, Any]]:
    return await run_chat_query(dsn, ROLE, PASSWORD, sql, max_rows=max_rows, timeout_s=timeout_s)


def test_the_label_lists_are_the_analysis_lists() -> None:
    from sidecar.ml.features.moods import MSD_LABELS as ML_MSD
    from sidecar.ml.features.moods import MTT_LABELS as ML_MTT
    from sidecar.ml.features.moods import OTHER_FEATURES as ML_OTHER

    assert (MSD_LABELS, MTT_LABELS, OTHER_FEATURES) == (ML_MSD, ML_MTT, ML_OTHER)


async def test_the_view_has_every_column_as_a_real_column(db: asyncpg.Pool) -> None:
    assert await chat_view_columns(db) == list(ALL_COLUMNS)
    await add_track(
        db,
        "t1",
        title="Song",
        year=1984,
        tags={"rock": 0.6, "Hip-Hop": 0.3},
        mtt={"no vocals": 0.4},
        features={"sad": 0.8},
        genres=["Rock", "Pop"],
    )
    await add_track(db, "t2", status="failed")
    rows = await db.fetch("SELECT * FROM chat.chat_tracks")
    assert len(rows) == 1
    row = rows[0]
    assert (row["title"], row["year"], row["genres"], row["energy"]) == ("Song", 1984, "Rock, Pop", 0.5)
    assert (row["mood_rock"], row["mood_hip_hop"], row["mtt_no_vocals"], row["sad"]) == (
        pytest.approx(0.6),
        pytest.approx(0.3),
        pytest.approx(0.4),
        pytest.approx(0.8),
    )
    assert "file_path" not in row.keys()


async def test_the_executor_runs_as_the_read_only_role(db: asyncpg.Pool, db_dsn: str) -> None:
    await setup_role(db)
    for i in range(30):
        await add_track(db, f"t{i:02d}", tags={"rock": i / 100})
    rows = await run(
        db_dsn,
        "SELECT current_user AS u, session_user AS s, "
        "current_setting('transaction_read_only') AS ro, current_setting('statement_timeout') AS st, "
        "current_setting('search_path') AS sp",
    )
    assert rows == [{"u": ROLE, "s": ROLE, "ro": "on", "st": "1s", "sp": "chat"}]
    # the cursor fetches at most max_rows whatever the query says
    rows = await run(db_dsn, "SELECT item_id FROM chat_tracks ORDER BY mood_rock DESC", max_rows=5)
    assert [r["item_id"] for r in rows] == ["t29", "t28", "t27", "t26", "t25"]
    # a validated query runs as it is
    sql = validate("SELECT item_id, title, artist FROM chat_tracks WHERE mood_rock >= 0.2", 25).sql
    assert len(await run(db_dsn, sql)) == 10
    # the answer is checked against tracks: unknown ids are dropped, titles come from tracks
    assert await known_tracks(db, ["t01", "nope", "t01", "t00"]) == [
        {"item_id": "t01", "title": "t01", "artist": "A"},
        {"item_id": "t00", "title": "t00", "artist": "A"},
    ]


async def test_a_wrong_password_means_unavailable(db: asyncpg.Pool, db_dsn: str) -> None:
    await setup_role(db)
    with pytest.raises(ChatUnavailable):
        await run_chat_query(db_dsn, ROLE, "wrong-password-1", "SELECT 1", max_rows=1, timeout_s=1)


async def _state(db: asyncpg.Pool) -> tuple[Any, ...]:
    return tuple(
        await db.fetchrow(
            """SELECT (SELECT string_agg(item_id || title || coalesce(file_path, ''), ',' ORDER BY item_id) FROM tracks),
                  (SELECT count(*) FROM track_analysis), (SELECT count(*) FROM tasks), (SELECT count(*) FROM playlists),
                  (SELECT count(*) FROM private_notes),
                  (SELECT string_agg(n.nspname || '.' || c.relname, ',' ORDER BY 1) FROM pg_class c
                     JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname IN ('public', 'chat')),
                  (SELECT rolsuper::text || rolcreaterole::text || rolcreatedb::text FROM pg_roles WHERE rolname = $1),
                  (SELECT count(*) FROM pg_largeobject_metadata)""",
            ROLE,
        )
    )


# Statements only the executor's layers stop (the validator refuses them too: see HOSTILE).
DIRECT_EXTRA = [
    "SELECT set_config('role', 'audiomuse', true), query_to_xml('select * from private_notes', true, true, '')",
    "SELECT set_config('role', 'audiomuse', true) AS r, (SELECT count(*) FROM tracks) AS n",
    "SELECT query_to_xml('select file_path from public.tracks', true, true, '') AS item_id",
    "SELECT * FROM public.track_analysis",
    "SELECT note FROM private_notes",
    "SELECT pg_sleep(30)",
    "SELECT count(*) FROM generate_series(1, 10000000000)",
    "SELECT set_config('transaction_read_only', 'off', true), 1",
    "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
    "SELECT lo_from_bytea(0, 'x'::bytea)",
    "CREATE TEMP TABLE t AS SELECT 1",
    "SELECT nextval('tracks_id_seq')",
    "SELECT pg_advisory_lock(42)",
]


#: hostile answers the database does run (the validator refuses them all): comments and strings that
#: only look dangerous, catalog metadata, a session advisory lock released when the connection
#: closes, a cross join stopped by the cursor's row cap, nothing that writes or reads a secret
RUN_HARMLESSLY = {
    "SELECT item_id FROM chat_tracks -- ; DROP TABLE tracks",
    "SELECT item_id FROM chat_tracks /* nested /* */ ; DROP TABLE tracks; */",
    "SELECT item_id FROM chat_tracks WHERE title = E'x\\'; DELETE FROM tracks'",
    "SELECT $$; DROP TABLE tracks; $$ AS item_id FROM chat_tracks",
    "SELECT $tag$ x $tag$ AS item_id FROM chat_tracks",
    "RESET ROLE",
    "LISTEN secrets",
    "SELECT item_id FROM public.track_features",
    "SELECT table_name AS item_id FROM information_schema.tables",
    "WITH RECURSIVE r(item_id) AS (SELECT item_id FROM chat_tracks UNION ALL SELECT item_id FROM r) "
    "SELECT item_id FROM r",
    "SELECT pg_terminate_backend(1) AS item_id FROM chat_tracks",
    "SELECT pg_advisory_lock(1) AS item_id FROM chat_tracks",
    "SELECT version() AS item_id FROM chat_tracks",
    "SELECT item_id FROM chat_tracks WHERE title ~ '(a+)+$'",
    "SELECT item_id FROM chat_tracks WHERE title ~* 'love'",
    "SELECT a.item_id FROM chat_tracks a, chat_tracks b, chat_tracks c, chat_tracks d, chat_tracks e",
    "SELECT string_agg(title, repeat('x', 10000000)) AS item_id FROM chat_tracks",
    "SELECT item_id FROM chat_tracks LIMIT (SELECT count(*) FROM chat_tracks)",
    "SELECT item_id FROM chat_tracks OFFSET 100000000",
    "SELECT title, artist FROM chat_tracks",
    "SELECT 1 AS item_id",
    "",
    "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
    "SELECT pg_advisory_lock(42)",
}


async def test_hostile_sql_is_harmless_even_without_validation(db: asyncpg.Pool, db_dsn: str) -> None:
    await setup_role(db)
    await db.execute("CREATE TABLE private_notes (note text)")
    await db.execute("INSERT INTO private_notes VALUES ($1)", SECRET)
    for i in range(6):
        await add_track(db, f"h{i}", title=f"Song {i}")
    before = await _state(db)
    refused = 0
    ran: list[str] = []
    statements = [a for a, _ in HOSTILE] + DIRECT_EXTRA
    for sql in statements:
        started = time.monotonic()
        try:
            rows = await run(db_dsn, sql, timeout_s=1.0)
        except ChatQueryError:
            refused += 1
        else:
            ran.append(sql)
            assert SECRET not in repr(rows), sql
        assert time.monotonic() - started < 4.0, f"ran long: {sql}"
        assert await _state(db) == before, f"changed the database: {sql}"
    # the role's own login still has no more rights than before
    assert await db.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = $1", ROLE) is False
    # what ran is harmless (checked above); what writes, escalates, sleeps or reads elsewhere did not run
    assert set(ran) <= RUN_HARMLESSLY, sorted(set(ran) - RUN_HARMLESSLY)


async def test_at_most_four_chat_queries_run_at_once(db: asyncpg.Pool, db_dsn: str) -> None:
    import asyncio

    await setup_role(db)
    started = time.monotonic()
    await asyncio.gather(*(run(db_dsn, "SELECT pg_sleep(0.3)", timeout_s=5) for _ in range(8)))
    assert time.monotonic() - started >= 0.6  # two rounds of four
