"""Library: POST /api/library/sync starts a sync job; GET /api/library/stats counts tracks;
GET /api/library/failed lists the tracks that could not be analysed, with their reasons."""

from __future__ import annotations

from aiohttp import web

from sidecar.db import analysis as analysis_db
from sidecar.db import tracks
from sidecar.jobs.names import LIBRARY_SYNC_TASK, SYNC_LIBRARY
from sidecar.jobs.queue import AlreadyRunning, start_run
from sidecar.routes.params import int_param
from sidecar.web.errors import ApiError, read_json_object
from sidecar.web.keys import DB, QUEUE, SETTINGS

routes = web.RouteTableDef()


@routes.post("/api/library/sync")
async def start_sync(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    recent = body.get("num_recent_albums", request.app[SETTINGS].num_recent_albums)
    if not isinstance(recent, int) or isinstance(recent, bool) or recent < 0:
        raise ApiError(400, "num_recent_albums must be a non-negative integer", recent)
    try:
        task_id = await start_run(
            request.app[DB],
            request.app[QUEUE],
            LIBRARY_SYNC_TASK,
            SYNC_LIBRARY,
            recent,
            details={"num_recent_albums": recent},
        )
    except AlreadyRunning as exc:
        raise ApiError(409, "a library sync is already running", {"task_id": exc.task["task_id"]}) from None
    return web.json_response(
        {"task_id": task_id, "task_type": LIBRARY_SYNC_TASK, "status": "PENDING"}, status=202
    )


@routes.get("/api/library/stats")
async def stats(request: web.Request) -> web.Response:
    return web.json_response(await tracks.status_counts(request.app[DB]))


@routes.get("/api/library/failed")
async def failed(request: web.Request) -> web.Response:
    """Failed tracks, newest failure first, ``start``/``end`` paged (at most 500 a page), with
    the reasons grouped and counted over all of them."""
    start = int_param(request, "start", 0, 0, 10_000_000)
    end = int_param(request, "end", start + 50, start + 1, start + 500)
    db = request.app[DB]
    total, items = await analysis_db.failed_tracks(db, start, end - start)
    reasons = await analysis_db.failure_reasons(db, None)
    return web.json_response(
        {"total": total, "start": start, "end": start + len(items), "reasons": reasons, "items": items}
    )
