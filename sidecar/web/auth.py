"""Optional API token: when API_TOKEN is set, /api/* needs ``Authorization: Bearer <token>``."""

from __future__ import annotations

import hmac

from aiohttp import web

from sidecar.web.errors import Handler, json_error

#: reachable without a token (container health probes)
PUBLIC_PATHS = frozenset({"/api/health"})


def api_token_middleware(token: str | None):  # type: ignore[no-untyped-def]
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if token and request.path.startswith("/api/") and request.path not in PUBLIC_PATHS:
            given = request.headers.get("Authorization", "")
            scheme, _, value = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
                return json_error(401, "unauthorized", "send Authorization: Bearer <API_TOKEN>")
        return await handler(request)

    return middleware
