"""GET /metrics: Prometheus text format (see ``sidecar/web/metrics.py`` for what is counted where)."""

from __future__ import annotations

from aiohttp import web

from sidecar.jobs.names import CONTROL_QUEUE, WORK_QUEUE
from sidecar.web.keys import DB, QUEUE
from sidecar.web.metrics import CONTENT_TYPE, exposition, note_pool, shared_families

routes = web.RouteTableDef()


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """This process's (or every web process's) request counters, then the shared state read now
    from the database and Redis."""
    app = request.app
    note_pool(app.get(DB))
    shared = await shared_families(app[DB], app[QUEUE], {"control": CONTROL_QUEUE, "work": WORK_QUEUE})
    return web.Response(body=exposition(shared), headers={"Content-Type": CONTENT_TYPE})
