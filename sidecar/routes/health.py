"""Health: GET /healthz (and /api/health, the name AudioMuse-AI plugins call)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from sidecar.appkeys import DB, QUEUE
from sidecar.jobs.worker import HEALTH_CHECK_KEY

routes = web.RouteTableDef()


async def _database(app: web.Application) -> dict[str, Any]:
    row = await app[DB].fetchrow(
        """SELECT current_setting('server_version') AS version,
                  (SELECT extversion FROM pg_extension WHERE extname = 'vector') AS pgvector,
                  (SELECT max(version) FROM schema_migrations) AS schema_version""")
    return {"status": "ok", "version": row["version"], "pgvector": row["pgvector"],
            "schema_version": row["schema_version"]}


async def _redis(app: web.Application) -> dict[str, Any]:
    queue = app[QUEUE]
    await queue.ping()
    worker = await queue.get(HEALTH_CHECK_KEY)
    return {"status": "ok", "worker": "ok" if worker else "no worker seen in the last seconds",
            "worker_report": worker.decode() if isinstance(worker, bytes) else worker}


async def _check(name: str, probe: Any) -> tuple[str, dict[str, Any]]:
    try:
        return name, await asyncio.wait_for(probe, timeout=5)
    except Exception as exc:  # any failure is the answer, not an error of this endpoint
        return name, {"status": "error", "detail": f"{type(exc).__name__}: {exc}"}


@routes.get("/healthz")
@routes.get("/api/health")
async def healthz(request: web.Request) -> web.Response:
    checks = dict(await asyncio.gather(_check("database", _database(request.app)),
                                       _check("redis", _redis(request.app))))
    ok = all(c["status"] == "ok" for c in checks.values())
    return web.json_response({"status": "ok" if ok else "error", **checks}, status=200 if ok else 503)
