"""`audiomuse check`: the configuration's servers reached one by one (database, Redis, media
server, models), each an (name, ok, detail) line."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from sidecar.config import Settings, redact_url
from sidecar.services import Endpoints


async def run_checks(settings: Settings, endpoints: Endpoints) -> list[tuple[str, bool, str]]:
    import asyncpg
    from redis.asyncio import Redis

    from sidecar.db.migrate import migrations
    from sidecar.db.server import server_info
    from sidecar.providers import make_provider

    results: list[tuple[str, bool, str]] = []

    async def check(name: str, probe: Awaitable[str]) -> None:
        try:
            results.append((name, True, await asyncio.wait_for(probe, timeout=60)))
        except Exception as exc:
            results.append(
                (
                    name,
                    False,
                    f"{type(exc).__name__}: {exc}"
                    if not str(exc).startswith(("Jellyfin", "Subsonic", "local"))
                    else str(exc),
                )
            )

    async def database() -> str:
        conn = await asyncpg.connect(endpoints.postgres_dsn, timeout=10)
        try:
            info = await server_info(conn)
            version, vector, schema = info.version, info.pgvector, info.schema_version
            if vector is None:
                raise RuntimeError(f"PostgreSQL {version} has no pgvector extension")
            latest = migrations()[-1].version
            note = (
                "up to date"
                if schema == latest
                else f"{latest - schema} migration(s) pending, run `audiomuse db migrate`"
            )
            return f"PostgreSQL {version}, pgvector {vector}, schema version {schema} ({note})"
        finally:
            await conn.close()

    async def redis() -> str:
        client = Redis.from_url(endpoints.redis_url, socket_connect_timeout=10)
        try:
            await client.ping()
            info = await client.info("server")
            name = "Valkey" if info.get("valkey_version") else "Redis"
            return f"{name} {info.get('valkey_version') or info.get('redis_version')} at {redact_url(endpoints.redis_url)}"
        finally:
            await client.aclose()

    async def media() -> str:
        provider = make_provider(settings)
        try:
            return await provider.ping()
        finally:
            await provider.close()

    async def models() -> str:
        from sidecar.ml.pipeline import AnalysisParams, model_version

        return await asyncio.to_thread(model_version, AnalysisParams(model_dir=settings.model_dir))

    await check("database", database())
    await check("redis", redis())
    await check("media server", media())
    await check("models", models())
    return results
