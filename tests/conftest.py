"""Real servers for the test session: embedded PostgreSQL 18 + pgvector and Valkey.

Each test that needs a database gets a fresh one (``CREATE DATABASE``) on the shared
cluster, migrated to the latest schema, dropped afterwards.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from scratch_db import scratch_database

from sidecar.config import Settings, load_settings
from sidecar.db import create_pool
from sidecar.db.migrate import migrate
from sidecar.embedded.postgres import EmbeddedPostgres
from sidecar.embedded.valkey import EmbeddedValkey
from sidecar.services import Endpoints

_db_counter = itertools.count()


@pytest.fixture(scope="session")
def servers_dir() -> Iterator[Path]:
    # Short path: the embedded servers' run-time files live here.
    path = Path(tempfile.mkdtemp(prefix="am-test-"))
    yield path


@pytest.fixture(scope="session")
def pg_cluster(servers_dir: Path) -> Iterator[EmbeddedPostgres]:
    pg = EmbeddedPostgres(servers_dir)
    pg.start()
    yield pg
    pg.stop()


@pytest.fixture(scope="session")
def valkey_url(servers_dir: Path) -> Iterator[str]:
    vk = EmbeddedValkey(servers_dir)
    url = vk.start()
    yield url
    vk.stop()


@pytest_asyncio.fixture
async def empty_dsn(pg_cluster: EmbeddedPostgres) -> AsyncIterator[str]:
    """DSN of a brand-new, empty database (no schema)."""
    async with scratch_database(pg_cluster, f"t{os.getpid()}_{next(_db_counter)}", migrated=False) as dsn:
        yield dsn


@pytest_asyncio.fixture
async def db_dsn(empty_dsn: str) -> str:
    """DSN of a fresh database migrated to the latest schema."""
    conn = await asyncpg.connect(empty_dsn)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return empty_dsn


@pytest_asyncio.fixture
async def db(db_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(db_dsn, min_size=1, max_size=4)
    yield pool
    await pool.close()


_redis_db_counter = itertools.count(1)


@pytest_asyncio.fixture
async def redis_url(valkey_url: str) -> str:
    """A Redis database of its own for this test (Valkey has 16; emptied before use), so queued
    jobs of one test never reach another test's worker."""
    from redis.asyncio import Redis

    url = valkey_url.rsplit("/", 1)[0] + f"/{next(_redis_db_counter) % 15 + 1}"
    client = Redis.from_url(url)
    await client.flushdb()
    await client.aclose()
    return url


@pytest.fixture
def endpoints(db_dsn: str, redis_url: str) -> Endpoints:
    return Endpoints(db_dsn, redis_url)


@pytest.fixture
def make_settings(tmp_path: Path) -> Any:
    """Build validated settings for a test; the data dir is the test's tmp_path."""

    def build(env: dict[str, str] | None = None, **overrides: Any) -> Settings:
        # no nightly analysis starting by itself in a test that happens to run at 03:00
        base = {"AUDIOMUSE_DATA_DIR": str(tmp_path / "data"), "ANALYSIS_SCHEDULE": ""}
        return load_settings({**base, **(env or {})}, **overrides)

    return build


@pytest.fixture(scope="session")
def subsonic_library(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Any]]:
    """The default test library (9 tagged one-second tracks), for the shared Subsonic server."""
    from audio_factory import DEFAULT_LIBRARY, make_library

    root = tmp_path_factory.mktemp("subsonic-shared") / "music"
    return root, make_library(root, DEFAULT_LIBRARY, seconds=1.0)


@pytest.fixture(scope="session")
def subsonic_server(
    subsonic_library: tuple[Path, list[Any]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """One real Subsonic server (supysonic) for the session, shared by the provider and bridge
    tests (they only read its library; tests that need a server of their own start one)."""
    from servers.supysonic import running_supysonic

    with running_supysonic(subsonic_library[0], tmp_path_factory.mktemp("subsonic-shared-work")) as srv:
        yield srv
