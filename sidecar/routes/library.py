"""Library: POST /api/library/sync starts a sync job; GET /api/library/stats counts tracks."""

from __future__ import annotations

from aiohttp import web

from sidecar import library, tasks
from sidecar.appkeys import DB, QUEUE, SETTINGS
from sidecar.http_errors import ApiError, read_json_object
from sidecar.jobs.library import TASK_TYPE

routes = web.RouteTableDef()


@routes.post("/api/library/sync")
async def start_sync(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    recent = body.get("num_recent_albums", request.app[SETTINGS].num_recent_albums)
    if not isinstance(recent, int) or isinstance(recent, bool) or recent < 0:
        raise ApiError(400, "num_recent_albums must be a non-negative integer", recent)
    db = request.app[DB]
    if await tasks.active(db, TASK_TYPE):
        raise ApiError(409, "a library sync is already running")
    task_id = await tasks.create(db, TASK_TYPE, details={"num_recent_albums": recent})
    await request.app[QUEUE].enqueue_job("sync_library", task_id, recent, _job_id=task_id)
    return web.json_response({"task_id": task_id, "task_type": TASK_TYPE, "status": "PENDING"}, status=202)


@routes.get("/api/library/stats")
async def stats(request: web.Request) -> web.Response:
    return web.json_response(await library.status_counts(request.app[DB]))
