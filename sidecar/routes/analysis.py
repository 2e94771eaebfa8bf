"""POST /api/analysis/start: start an analysis run (AudioMuse-AI's name and shape)."""

from __future__ import annotations

from aiohttp import web

from sidecar import tasks
from sidecar.appkeys import DB, QUEUE, SETTINGS
from sidecar.http_errors import ApiError, read_json_object
from sidecar.jobs.analysis import MAIN_TASK

routes = web.RouteTableDef()


def _optional_int(body: dict, name: str, lo: int, hi: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ApiError(400, f"{name} must be an integer between {lo} and {hi}", value)
    return value


@routes.post("/api/analysis/start")
async def start_analysis(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    recent = _optional_int(body, "num_recent_albums", 0, 10_000_000)
    top_n = _optional_int(body, "top_n_moods", 1, 50)
    db = request.app[DB]
    running = await tasks.active(db, MAIN_TASK)
    if running:
        raise ApiError(409, "an analysis is already running", {"task_id": running[0]["task_id"]})
    settings = request.app[SETTINGS]
    task_id = await tasks.create(db, MAIN_TASK, details={
        "num_recent_albums": settings.num_recent_albums if recent is None else recent,
        "top_n_moods": top_n or settings.top_n_moods})
    await request.app[QUEUE].enqueue_job("run_analysis", task_id, recent, top_n, _job_id=task_id)
    return web.json_response({"task_id": task_id, "task_type": MAIN_TASK, "status": "PENDING"}, status=202)
