"""POST /api/analysis/start: start an analysis run (AudioMuse-AI's name and shape)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from sidecar.jobs.names import MAIN_ANALYSIS_TASK, RUN_ANALYSIS
from sidecar.jobs.queue import AlreadyRunning, start_run
from sidecar.web.errors import ApiError, read_json_object
from sidecar.web.keys import DB, QUEUE, SETTINGS

routes = web.RouteTableDef()


def _optional_int(body: dict[str, Any], name: str, lo: int, hi: int) -> int | None:
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
    settings = request.app[SETTINGS]
    try:
        task_id = await start_run(
            request.app[DB],
            request.app[QUEUE],
            MAIN_ANALYSIS_TASK,
            RUN_ANALYSIS,
            recent,
            top_n,
            details={
                "num_recent_albums": settings.num_recent_albums if recent is None else recent,
                "top_n_moods": top_n or settings.top_n_moods,
            },
        )
    except AlreadyRunning as exc:
        raise ApiError(409, "an analysis is already running", {"task_id": exc.task["task_id"]}) from None
    return web.json_response(
        {"task_id": task_id, "task_type": MAIN_ANALYSIS_TASK, "status": "PENDING"}, status=202
    )
