"""Health: GET /healthz (and /api/health, the name AudioMuse-AI plugins call)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from sidecar.db.server import server_info
from sidecar.jobs.names import HEALTH_CHECK_INTERVAL_S, HEALTH_CHECK_KEY
from sidecar.jobs.schedule import next_runs
from sidecar.web.keys import DB, QUEUE, SETTINGS

routes = web.RouteTableDef()


async def _database(app: web.Application) -> dict[str, Any]:
    info = await server_info(app[DB])
    return {
        "status": "ok",
        "version": info.version,
        "pgvector": info.pgvector,
        "schema_version": info.schema_version,
    }


async def _redis(app: web.Application) -> dict[str, Any]:
    """Redis, and whether a worker reported lately (each worker process refreshes a key that
    expires ~11 s after its last report: missing means no worker is alive)."""
    queue = app[QUEUE]
    await queue.ping()
    worker = await queue.get(HEALTH_CHECK_KEY)
    if not worker:
        return {
            "status": "degraded",
            "worker": f"no worker has reported in the last {HEALTH_CHECK_INTERVAL_S + 1} s: "
            "analysis and other jobs wait until one runs (`audiomuse worker`)",
            "worker_report": None,
        }
    return {
        "status": "ok",
        "worker": "ok",
        "worker_report": worker.decode() if isinstance(worker, bytes) else worker,
    }


async def _check(name: str, probe: Any) -> tuple[str, dict[str, Any]]:
    try:
        return name, await asyncio.wait_for(probe, timeout=5)
    except Exception as exc:  # any failure is the answer, not an error of this endpoint
        return name, {"status": "error", "detail": f"{type(exc).__name__}: {exc}"}


@routes.get("/healthz")
@routes.get("/api/health")
async def healthz(request: web.Request) -> web.Response:
    """200 "ok"; 200 "degraded" when no worker is alive (the web app itself works: a probe must
    not restart it for that); 503 "error" when the database or Redis cannot be reached."""
    checks = dict(
        await asyncio.gather(_check("database", _database(request.app)), _check("redis", _redis(request.app)))
    )
    states = {c["status"] for c in checks.values()}
    status = "error" if "error" in states else "degraded" if "degraded" in states else "ok"
    body = {"status": status, **checks, "schedules": next_runs(request.app[SETTINGS])}
    return web.json_response(body, status=503 if status == "error" else 200)
