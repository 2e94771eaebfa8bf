"""Task endpoints (names and shapes compatible with AudioMuse-AI):
GET /api/status/{task_id}, POST /api/cancel/{task_id}, GET /api/active_tasks, GET /api/last_task."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from sidecar.db import tasks
from sidecar.routes.params import int_param
from sidecar.web.errors import ApiError
from sidecar.web.keys import DB

routes = web.RouteTableDef()


def task_view(task: dict[str, Any]) -> dict[str, Any]:
    """Our task row plus AudioMuse-AI's field names (state, status_message, task_type_from_db)."""
    log = task.get("log") or []
    return {
        **task,
        "state": task["status"],
        "status_message": log[-1] if log else task["status"],
        "task_type_from_db": task["task_type"],
    }


@routes.get("/api/status/{task_id}")
async def status(request: web.Request) -> web.Response:
    """The task, and its children (``children_limit`` of them, failed and running first, with
    counts by status)."""
    db = request.app[DB]
    task = await tasks.get(db, request.match_info["task_id"])
    if task is None:
        raise ApiError(404, "unknown task", request.match_info["task_id"])
    limit = int_param(request, "children_limit", 200, 0, 10_000)
    return web.json_response(
        {**task_view(task), "children": await tasks.children(db, task["task_id"], limit)}
    )


@routes.post("/api/cancel/{task_id}")
async def cancel(request: web.Request) -> web.Response:
    db = request.app[DB]
    task_id = request.match_info["task_id"]
    task = await tasks.get(db, task_id)
    if task is None:
        raise ApiError(404, "unknown task", task_id)
    if task["status"] not in tasks.ACTIVE:
        raise ApiError(409, "task is not running", f"status is {task['status']}")
    cancelled = await tasks.cancel(db, task_id)
    return web.json_response(
        {
            "task_id": task_id,
            "status": "REVOKED",
            "cancelled": bool(cancelled),
            "message": "cancellation requested",
        }
    )


@routes.get("/api/active_tasks")
async def active_tasks(request: web.Request) -> web.Response:
    return web.json_response([task_view(t) for t in await tasks.active(request.app[DB])])


@routes.get("/api/last_task")
async def last_task(request: web.Request) -> web.Response:
    task = await tasks.last(request.app[DB])
    return web.json_response(task_view(task) if task else {"task_id": None, "status": "NO_PREVIOUS_TASK"})
