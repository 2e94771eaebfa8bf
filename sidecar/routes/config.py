"""GET /api/config: the effective configuration, secrets redacted."""

from __future__ import annotations

from aiohttp import web

from sidecar.web.keys import ENDPOINTS, SETTINGS

routes = web.RouteTableDef()


@routes.get("/api/config")
async def get_config(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    return web.json_response(
        {**settings.redacted(), "embedded_servers": list(request.app[ENDPOINTS].embedded)}
    )
