"""The music map: GET /map (the page), GET /api/map (the packed map; queues its computation
when missing or outdated), POST /api/map/compute, GET /api/map/tracks (details of points)."""

from __future__ import annotations

import asyncio

import aiohttp_jinja2
from aiohttp import web

from sidecar.db import map as map_db
from sidecar.jobs.map import MAP_JOB_ID, packed
from sidecar.jobs.names import COMPUTE_MAP
from sidecar.jobs.queue import enqueue
from sidecar.routes.params import list_param
from sidecar.web.errors import ApiError
from sidecar.web.keys import DB, QUEUE

routes = web.RouteTableDef()

MAX_DETAIL_IDS = 1000


@routes.get("/map")
async def map_page(request: web.Request) -> web.Response:
    return aiohttp_jinja2.render_template("map.html", request, {"page": "map", "title": "Music map"})


@routes.get("/api/map")
async def get_map(request: web.Request) -> web.Response:
    """``status``: ``ready`` (the map of the current library), ``stale`` (an outdated map while
    the new one is computed) or ``computing`` (none yet: no other field)."""
    db = request.app[DB]
    stored, signature = await asyncio.gather(map_db.load(db), map_db.library_signature(db))
    if stored is not None and stored.signature == signature:
        body = packed(stored, "ready")
    else:
        await enqueue(request.app[QUEUE], COMPUTE_MAP, job_id=MAP_JOB_ID)
        body = packed(stored, "stale") if stored is not None else {"status": "computing", "count": 0}
    # not compressed: gzip of the 2 MiB of 100k tracks cost more CPU time than the transfer
    # saves, even on a LAN (bench/map.py)
    return web.json_response(body)


@routes.post("/api/map/compute")
async def compute(request: web.Request) -> web.Response:
    """Queue a computation (nothing is done when the stored map is of the current library)."""
    queued = await enqueue(request.app[QUEUE], COMPUTE_MAP, job_id=MAP_JOB_ID)
    return web.json_response({"queued": queued}, status=202)


@routes.get("/api/map/tracks")
async def tracks(request: web.Request) -> web.Response:
    ids = list_param(request, "ids")
    if not ids:
        raise ApiError(400, "ids is required", "e.g. ?ids=a,b")
    if len(ids) > MAX_DETAIL_IDS:
        raise ApiError(400, f"ids may hold at most {MAX_DETAIL_IDS} ids", len(ids))
    return web.json_response(await map_db.track_details(request.app[DB], ids))
