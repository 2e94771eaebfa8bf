"""JSON errors for the API: every error is ``{"error": ..., "detail": ...}`` with its status.

The error middleware maps domain errors to HTTP in one place: the mix service's (nothing
analysed 503, unknown seed 404, ambiguous name 409) and the media server's (not found 404,
refused 400/409/422, credentials 502, unavailable 503, other 502)."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMethod, HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from sidecar.providers.base import (
    ProviderAuthError,
    ProviderError,
    ProviderNotFound,
    ProviderRefused,
    ProviderUnavailable,
)
from sidecar.similarity.service import AmbiguousSeed, MixKind, NothingAnalysed, UnknownSeed

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """Raise from a handler to answer a JSON error."""

    def __init__(self, status: int, error: str, detail: Any = None) -> None:
        super().__init__(f"{status} {error}: {detail}")
        self.status, self.error, self.detail = status, error, detail


def json_error(status: int, error: str, detail: Any = None) -> web.Response:
    return web.json_response({"error": error, "detail": detail}, status=status)


#: longest request line or header line aiohttp's parser accepts
MAX_LINE_BYTES = 8190
#: deepest JSON body accepted (objects and arrays inside each other)
MAX_JSON_DEPTH = 32


def _has_nul(request: web.Request) -> bool:
    return "\x00" in request.path or any("\x00" in k or "\x00" in v for k, v in request.query.items())


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        if _has_nul(request):
            raise ApiError(
                400, "the request contains a NUL character", "remove %00 from the path and parameters"
            )
        return await handler(request)
    except ApiError as exc:
        return json_error(exc.status, exc.error, exc.detail)
    except web.HTTPException as exc:
        if exc.content_type == "application/json" or exc.status < 400:
            raise
        return json_error(exc.status, exc.reason, exc.text if exc.text and exc.text != exc.reason else None)
    except NothingAnalysed:
        return json_error(503, "no track has been analysed yet", "run an analysis first")
    except UnknownSeed as exc:
        if exc.suggestions is None:
            return json_error(404, exc.reason, exc.what)
        return json_error(
            404, exc.reason, {"seed": exc.what, "suggestions": [asdict(h) for h in exc.suggestions]}
        )
    except AmbiguousSeed as exc:
        how = (
            "give one's album_id as the seed"
            if exc.kind is MixKind.ALBUM
            else "give one of these names exactly"
        )
        return json_error(
            409,
            f"{exc.what!r} matches {len(exc.candidates)} {exc.kind.value}s: {how}",
            {"candidates": [asdict(h) for h in exc.candidates]},
        )
    except ProviderNotFound as exc:
        return json_error(404, "not found on the media server", str(exc))
    except ProviderRefused as exc:
        return json_error(exc.status if exc.status in (400, 409, 422) else 409, exc.reason, str(exc))
    except ProviderAuthError as exc:
        return json_error(502, "media server rejected our credentials", str(exc))
    except ProviderUnavailable as exc:
        return json_error(503, "media server unavailable", str(exc))
    except ProviderError as exc:
        return json_error(502, "media server error", str(exc))
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_error(500, "internal error", "see the service log")


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body ({} when empty); 400 for anything else."""
    if not request.can_read_body:
        return {}
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, "body is not valid JSON", str(exc)) from None
    except RecursionError:
        raise ApiError(400, "body is nested too deeply", f"at most {MAX_JSON_DEPTH} levels") from None
    if not isinstance(body, dict):
        raise ApiError(400, "body must be a JSON object", type(body).__name__)
    _check_value(body, 1)
    return body


def _check_value(value: Any, depth: int) -> None:
    """400 for a body nested deeper than MAX_JSON_DEPTH or holding a NUL character in a string."""
    if depth > MAX_JSON_DEPTH:
        raise ApiError(400, "body is nested too deeply", f"at most {MAX_JSON_DEPTH} levels")
    if isinstance(value, str):
        if "\x00" in value:
            raise ApiError(
                400, "body contains a NUL character in a string", value[:80].replace("\x00", "\\0")
            )
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_value(k, depth)
            _check_value(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _check_value(v, depth + 1)


class _JsonProtocolErrors(RequestHandler):
    """A request the HTTP parser rejects (a request line over 8 KB, a malformed header) gets a
    JSON error and one log line, instead of a plain-text echo and a traceback per request."""

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        code = 414 if isinstance(exc, LineTooLong) else 400
        # non-HTTP traffic on the port (BadHttpMethod) is common on a network: not worth a warning
        level = logging.DEBUG if isinstance(exc, BadHttpMethod) else logging.WARNING
        log.log(level, "rejected a malformed request from %s: %s", request.remote, type(exc).__name__)
        error = "request line or header too long" if code == 414 else "malformed HTTP request"
        resp = json_error(
            code, error, f"the line limit is {MAX_LINE_BYTES} bytes" if code == 414 else type(exc).__name__
        )
        resp.force_close()
        return resp


class _JsonProtocolErrorServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _JsonProtocolErrors(self, loop=self._loop, **self._kwargs)


class AppRunner(web.AppRunner):
    """``web.AppRunner`` whose connections answer HTTP parse errors in JSON (see above)."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _JsonProtocolErrorServer  # same state, one method more
        return server
