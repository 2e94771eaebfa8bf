"""AudioMuse-AI calls that have no counterpart here yet: a clear 501 JSON error, never a 404
that a plugin would read as "wrong server"."""

from __future__ import annotations

from aiohttp import web

from sidecar.web.errors import ApiError

routes = web.RouteTableDef()


@routes.post("/api/clustering/start")
async def clustering_start(request: web.Request) -> web.Response:
    raise ApiError(501, "clustering is not implemented yet",
                   "automatic playlists from clustering come in a later release; instant mixes, similar "
                   "tracks and artists, paths and analysis are available")
