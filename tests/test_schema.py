"""The schema against a real PostgreSQL 18 + pgvector: migrations, constraints, indexes, chat role."""

from __future__ import annotations

import asyncpg
import numpy as np
import pytest

from sidecar.db.migrate import current_version, migrate, migrations
from sidecar.db.roles import ensure_chat_role

CATALOG_SNAPSHOT = """
SELECT
  (SELECT string_agg(table_name || '.' || column_name || ':' || data_type || ':' || coalesce(column_default, ''),
                     ',' ORDER BY table_name, column_name)
     FROM information_schema.columns WHERE table_schema = 'public'),
  (SELECT string_agg(indexname || ':' || indexdef, ',' ORDER BY indexname) FROM pg_indexes WHERE schemaname = 'public'),
  (SELECT string_agg(conname || ':' || pg_get_constraintdef(oid), ',' ORDER BY conname)
     FROM pg_constraint WHERE connamespace = 'public'::regnamespace),
  (SELECT string_agg(proname || ':' || md5(prosrc), ',' ORDER BY proname) FROM pg_proc
     WHERE pronamespace = 'public'::regnamespace AND proname LIKE 'am_%'),
  (SELECT string_agg(viewname || ':' || md5(definition), ',') FROM pg_views WHERE schemaname = 'public'),
  (SELECT count(*) FROM schema_migrations)
"""


async def test_fresh_database_migrates_to_latest(empty_dsn: str) -> None:
    conn = await asyncpg.connect(empty_dsn)
    try:
        assert await current_version(conn) == 0
        applied = await migrate(conn)
        assert applied == [m.version for m in migrations()]
        assert await current_version(conn) == migrations()[-1].version
        tables = {
            r["tablename"]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")
        }
        assert {"tracks", "track_analysis", "embeddings", "tasks", "playlists", "schema_migrations"} <= tables
        # every table is explained
        undocumented = await conn.fetch(
            """SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace
               AND c.relkind IN ('r', 'v') AND obj_description(c.oid, 'pg_class') IS NULL"""
        )
        assert not undocumented
    finally:
        await conn.close()


async def test_migrate_twice_changes_nothing(db_dsn: str) -> None:
    conn = await asyncpg.connect(db_dsn)
    try:
        before = await conn.fetchrow(CATALOG_SNAPSHOT)
        assert await migrate(conn) == []
        # re-running the baseline itself is also harmless (every statement is idempotent)
        await conn.execute(migrations()[0].sql)
        after = await conn.fetchrow(CATALOG_SNAPSHOT)
        assert tuple(before) == tuple(after)
    finally:
        await conn.close()


async def test_concurrent_migrations_do_not_race(empty_dsn: str) -> None:
    import asyncio

    conns = [await asyncpg.connect(empty_dsn) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
        assert sorted(len(r) for r in results) == [0, 0, len(migrations())]
    finally:
        for c in conns:
            await c.close()


async def test_embedding_column_and_hnsw_cosine_index(db: asyncpg.Pool) -> None:
    # migration 0007: the similarity space is searched (the 200-d embedding keeps its index)
    idx = await db.fetchval("SELECT indexdef FROM pg_indexes WHERE indexname = 'embeddings_space_hnsw_idx'")
    assert "USING hnsw (space vector_cosine_ops)" in idx
    assert "m='16'" in idx and "ef_construction='128'" in idx, idx
    assert await db.fetchval("SELECT 1 FROM pg_indexes WHERE indexname = 'embeddings_hnsw_cosine_idx'")
    types = {
        r["attname"]: r["t"]
        for r in await db.fetch(
            "SELECT attname, format_type(atttypid, atttypmod) AS t FROM pg_attribute "
            "WHERE attrelid = 'embeddings'::regclass AND attname IN ('embedding', 'mtt_embedding', 'space')"
        )
    }
    assert types == {"embedding": "vector(200)", "mtt_embedding": "vector(200)", "space": "vector(404)"}
    rng = np.random.default_rng(1)
    vecs = rng.normal(size=(300, 200)).astype(np.float32)
    padded = np.hstack([vecs, np.zeros((300, 204), np.float32)])
    await db.executemany(
        "INSERT INTO tracks (item_id, provider, title) VALUES ($1, 'local', $1)",
        [(f"t{i}",) for i in range(300)],
    )
    await db.executemany(
        "INSERT INTO embeddings (item_id, embedding, space, model_version)"
        " VALUES ($1, $2, $2 || array_fill(0::real, ARRAY[204])::vector, 'v')",
        [(f"t{i}", v) for i, v in enumerate(vecs)],
    )
    async with db.acquire() as conn:
        async with conn.transaction():
            await conn.execute("SET LOCAL enable_seqscan = off")
            await conn.execute("SET LOCAL hnsw.ef_search = 100")
            plan = "\n".join(
                r[0]
                for r in await conn.fetch(
                    "EXPLAIN SELECT item_id FROM embeddings ORDER BY space <=> $1 LIMIT 10", padded[0]
                )
            )
            assert "embeddings_space_hnsw_idx" in plan
            got = [
                r["item_id"]
                for r in await conn.fetch(
                    "SELECT item_id FROM embeddings ORDER BY space <=> $1 LIMIT 10", padded[0]
                )
            ]
    unit = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    exact = [f"t{i}" for i in np.argsort(1 - unit @ unit[0])[:10]]
    assert got[0] == "t0" and len(set(got) & set(exact)) >= 9
    with pytest.raises(asyncpg.DataError):
        await db.execute(
            "INSERT INTO embeddings (item_id, embedding, model_version) VALUES ('t1', $1, 'v')",
            np.zeros(100, dtype=np.float32),
        )


async def test_trigram_search_is_accent_and_case_insensitive(db: asyncpg.Pool) -> None:
    await db.executemany(
        "INSERT INTO tracks (item_id, provider, title, artist) VALUES ($1, 'local', $2, $3)",
        [
            ("a", "Café del Mar", "Energy 52"),
            ("b", "Nothing Else Matters", "Metallica"),
            ("c", "Björk Song", "Björk"),
        ],
    )
    rows = await db.fetch(
        "SELECT item_id FROM tracks WHERE search_text % am_search_text($1) "
        "ORDER BY similarity(search_text, am_search_text($1)) DESC",
        "cafe del mar",
    )
    assert [r["item_id"] for r in rows][:1] == ["a"]
    rows = await db.fetch(
        "SELECT item_id FROM tracks WHERE search_text ILIKE '%' || am_search_text($1) || '%'", "BJORK"
    )
    assert [r["item_id"] for r in rows] == ["c"]
    idx = await db.fetchval("SELECT indexdef FROM pg_indexes WHERE indexname = 'tracks_search_trgm_idx'")
    assert "gin_trgm_ops" in idx


async def test_constraints_keep_status_honest(db: asyncpg.Pool) -> None:
    await db.execute("INSERT INTO tracks (item_id, provider) VALUES ('x', 'local')")
    with pytest.raises(asyncpg.CheckViolationError):  # failed needs a reason
        await db.execute("UPDATE tracks SET analysis_status = 'failed' WHERE item_id = 'x'")
    with pytest.raises(asyncpg.CheckViolationError):  # a reason only for failures
        await db.execute("UPDATE tracks SET failure_reason = 'oops' WHERE item_id = 'x'")
    await db.execute(
        "UPDATE tracks SET analysis_status = 'failed', failure_reason = 'corrupt' WHERE item_id = 'x'"
    )
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute(
            "UPDATE tracks SET analysis_status = 'lost', failure_reason = NULL WHERE item_id = 'x'"
        )
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute("INSERT INTO tasks (task_id, task_type, progress) VALUES ('t', 'x', 101)")
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute(
            "INSERT INTO playlists (name, kind, track_ids, provider) VALUES ('p', 'random', '{}', 'l')"
        )
    # deleting a track removes its analysis and embedding
    await db.execute("INSERT INTO track_analysis (item_id, model_version) VALUES ('x', 'v')")
    await db.execute("DELETE FROM tracks WHERE item_id = 'x'")
    assert await db.fetchval("SELECT count(*) FROM track_analysis") == 0


async def test_chat_role_reads_only_the_view(db: asyncpg.Pool, db_dsn: str) -> None:
    async with db.acquire() as conn:
        assert await ensure_chat_role(conn, "ai_user_test", "readonly-pass-123")
        assert await ensure_chat_role(conn, "ai_user_test", "readonly-pass-123")  # idempotent
    await db.execute(
        "INSERT INTO tracks (item_id, provider, title, analysis_status, model_version) "
        "VALUES ('s1', 'local', 'Song', 'analyzed', 'v')"
    )
    await db.execute("INSERT INTO track_analysis (item_id, tempo, model_version) VALUES ('s1', 120, 'v')")
    user_dsn = db_dsn.replace("audiomuse:", "ai_user_test:", 1).split("@", 1)
    user_dsn = user_dsn[0].rsplit(":", 1)[0] + ":readonly-pass-123@" + user_dsn[1]
    # what an earlier version granted is taken back at the next start
    await db.execute("GRANT SELECT ON track_features, tracks TO ai_user_test")
    async with db.acquire() as conn:
        assert await ensure_chat_role(conn, "ai_user_test", "readonly-pass-123")
    # its only grants: SELECT on the view, USAGE on its schema, CONNECT (no column grants either)
    grants = await db.fetch(
        "SELECT table_schema || '.' || table_name AS rel, privilege_type FROM "
        "information_schema.role_table_grants WHERE grantee = 'ai_user_test'"
    )
    assert [(g["rel"], g["privilege_type"]) for g in grants] == [("chat.chat_tracks", "SELECT")]
    assert not await db.fetchval(
        "SELECT count(*) FROM information_schema.role_column_grants WHERE grantee = 'ai_user_test' "
        "AND (table_schema, table_name) <> ('chat', 'chat_tracks')"
    )
    # every other relation of every schema but the system ones
    others = [
        r["name"]
        for r in await db.fetch(
            "SELECT format('%I.%I', n.nspname, c.relname) AS name FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f', 'S') "
            "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp)' "
            "AND (n.nspname, c.relname) <> ('chat', 'chat_tracks') ORDER BY 1"
        )
    ]
    assert {"public.tracks", "public.track_analysis", "public.track_features", "public.embeddings"} <= set(
        others
    ) and len(others) > 8
    conn = await asyncpg.connect(user_dsn)
    try:
        # the view reads tracks and track_analysis with its owner's rights, not the role's
        rows = await conn.fetch("SELECT title, tempo FROM chat.chat_tracks")
        assert [(r["title"], r["tempo"]) for r in rows] == [("Song", 120.0)]
        for name in others:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.fetch(f"SELECT * FROM {name} LIMIT 1")
        with pytest.raises((asyncpg.ReadOnlySQLTransactionError, asyncpg.InsufficientPrivilegeError)):
            await conn.execute("UPDATE tracks SET title = 'x'")
        with pytest.raises((asyncpg.ReadOnlySQLTransactionError, asyncpg.InsufficientPrivilegeError)):
            await conn.execute("CREATE TABLE evil (x int)")
        # even switching the session to read-write does not grant writes
        await conn.execute("SET default_transaction_read_only = off")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("INSERT INTO tracks (item_id, provider) VALUES ('z', 'x')")
    finally:
        await conn.close()


async def test_chat_role_setup_is_safe_when_processes_start_together(db: asyncpg.Pool) -> None:
    import asyncio

    async def setup() -> bool:
        async with db.acquire() as conn:
            return await ensure_chat_role(conn, "ai_user_race", "readonly-pass-123")

    assert await asyncio.gather(*(setup() for _ in range(4))) == [True] * 4


#: every released migration's SHA-256: a released file must never change (existing databases
#: would never see the edit).  A new migration adds a line here; an edit of an old one fails.
RELEASED = {
    1: "681e2e91812d88cf58f580b43bb537e05d41b50ad6d90ec5700a6fd006fb9bbb",
    2: "f28bc763e491a6c93818e3b1633e3bbfd5b7acfedfde4dab7faa8d3edf7ec729",
    3: "4b1f078c47ffa6bce0385e968a38dab38e70f4c89a0dc8e3481319dbbb0ea2cf",
    4: "1984b3f1aeadf326453040f76b35a24b44f5d3181f5cb4b926f9cd33c2cdd5ea",
    5: "f10a8c2cb8f9c024ed2cbc2834b81734f2a22e7127f8b20b0b46f0025f1bb847",
    6: "21506eb280fbf79039011dffd1077d6b4093eb2fec777ce0bec81b507b373d8f",
    7: "831a6dddbc97b3126e528cb57ea7a471b2962bbdb0291c874bb15085bac8ca03",
    8: "d5eb423c25a8f184dda1545354aa721a7349a265ebb2feb64ec4b4ddae6ad5db",
    10: "ac2c41ecd4414775214c7e1a86b57497cb5e1b43afedb5c60be760e874f7716b",
    11: "77018e97fcc0652a8c545c7bb18e9512b2870e1fbd3d1e5744d2c935b15bb010",
}


def test_released_migrations_are_unchanged() -> None:
    found = {m.version: m.checksum for m in migrations()}
    changed = [
        f"{m.file}" for m in migrations() if m.version in RELEASED and RELEASED[m.version] != m.checksum
    ]
    assert not changed, f"released migrations edited (add a new migration instead): {changed}"
    assert set(found) == set(RELEASED), "a new migration: pin its checksum in RELEASED"


async def test_an_edited_applied_migration_stops_the_start_naming_the_file(
    db_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    migrate_module = importlib.import_module("sidecar.db.migrate")  # the package re-exports migrate()

    real = migrate_module.migrations()
    edited = [
        m if m.version != 2 else migrate_module.Migration(m.version, m.name, m.sql + "\n-- edited\n", m.file)
        for m in real
    ]
    monkeypatch.setattr(migrate_module, "migrations", lambda: edited)
    conn = await asyncpg.connect(db_dsn)
    try:
        with pytest.raises(
            migrate_module.MigrationChanged, match="sidecar/migrations/0002_nearest_function.sql"
        ):
            await migrate(conn)
    finally:
        await conn.close()


async def test_a_database_made_from_the_edited_baseline_is_accepted(empty_dsn: str) -> None:
    """Databases created while schema.sql carried the HNSW edit recorded that text's checksum."""
    from sidecar.db.migrate import HISTORICAL_CHECKSUMS

    conn = await asyncpg.connect(empty_dsn)
    try:
        await migrate(conn)
        (old,) = HISTORICAL_CHECKSUMS[1]
        await conn.execute("UPDATE schema_migrations SET checksum = $1 WHERE version = 1", old)
        assert await migrate(conn) == []
    finally:
        await conn.close()
