"""The API's own documentation: GET /openapi.json (OpenAPI 3.1, built from this app's routes)
and GET /apidocs (an interactive viewer of it, served locally)."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from sidecar.openapi import app_routes, build_document

routes = web.RouteTableDef()


def document(app: web.Application) -> dict[str, Any]:
    """Built from the app's router at each request (a few ms: the handlers' sources are parsed
    once per process)."""
    return build_document(app_routes(app))


@routes.get("/openapi.json")
async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(document(request.app))


@routes.get("/apidocs")
async def apidocs_page(request: web.Request) -> web.Response:
    return aiohttp_jinja2.render_template("apidocs.html", request, {"page": "apidocs", "title": "API docs"})
