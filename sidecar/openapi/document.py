"""The OpenAPI 3.1 document of the web app, built from its router: every route, its query
parameters and body keys as the handler reads them (:mod:`sidecar.openapi.introspect`), and
the entry of :data:`sidecar.openapi.operations.OPERATIONS` describing it."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from aiohttp import web

from sidecar.openapi.introspect import QueryParam, handler_reads
from sidecar.openapi.operations import JSON, OPERATIONS, Op

Route = tuple[str, str, Callable[..., Any]]

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "detail": {}},
}
_PATH_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")


def app_routes(app: web.Application) -> Iterator[Route]:
    """(method, path template, handler) of every route of ``app`` but static files and the HEAD
    twins aiohttp adds to GET routes."""
    for route in app.router.routes():
        resource = route.resource
        if route.method == "HEAD" or resource is None or isinstance(resource, web.StaticResource):
            continue
        yield route.method, resource.canonical, route.handler


def _query_schema(p: QueryParam) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": p.type}
    if p.type == "array":
        schema["items"] = {"type": "string"}
    if p.default is not None:
        schema["default"] = p.default
    if p.minimum is not None:
        schema["minimum"] = p.minimum
    if p.maximum is not None:
        schema["maximum"] = p.maximum
    return schema


def _parameters(
    path: str, op: Op | None, handler: Callable[..., Any]
) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    reads = handler_reads(handler)
    out: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAM.findall(path)
    ]
    for p in reads.query.values():
        text = "; ".join(t for t in ((op.params.get(p.name, "") if op else ""), "; ".join(p.notes)) if t)
        if p.type == "array":
            text = (text + "; " if text else "") + "repeated (?x=a&x=b) or comma-separated (?x=a,b)"
        param: dict[str, Any] = {"name": p.name, "in": "query", "schema": _query_schema(p)}
        if p.required:
            param["required"] = True
        if p.type == "array":
            param["explode"] = True
        if text:
            param["description"] = text
        out.append(param)
    return out, reads.body_keys, reads.form_keys


def _body(op: Op | None, keys: list[str]) -> dict[str, Any]:
    props: dict[str, Any] = {k: dict((op.body.get(k) if op else None) or {}) for k in keys}
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if op and op.body_note:
        schema["description"] = op.body_note
    if not (op and op.body_open):
        schema["additionalProperties"] = True  # unknown keys are ignored, as the handlers do
    return {"required": False, "content": {JSON: {"schema": schema}}}


def operation(method: str, path: str, handler: Callable[..., Any]) -> dict[str, Any]:
    op = OPERATIONS.get(f"{method} {path}")
    params, body_keys, form_keys = _parameters(path, op, handler)
    status = op.status if op else 200
    content = op.content if op else JSON
    success_schema: dict[str, Any] = {"type": "string"} if content != JSON else {}
    success: dict[str, Any] = {"description": (op.returns or op.summary) if op else "see the handler"}
    if not 300 <= status < 400:
        success["content"] = {content: {"schema": success_schema}}
    out: dict[str, Any] = {
        "operationId": f"{method.lower()}{re.sub(r'[^A-Za-z0-9]+', '_', path).rstrip('_') or '_root'}",
        "tags": [op.tag if op else "undocumented"],
        "summary": op.summary if op else f"{method} {path}",
        "responses": {str(status): success},
    }
    if params:
        out["parameters"] = params
    if method in ("POST", "PUT", "PATCH") and (body_keys or (op and (op.body or op.body_open))):
        out["requestBody"] = _body(op, body_keys)
    if op is not None and op.upload:
        raw = {"type": "string", "contentMediaType": op.upload}
        out["requestBody"] = {"required": True, "content": {op.upload: {"schema": raw}}}
    if form_keys:
        form = {"type": "object", "properties": {k: {"type": "string"} for k in form_keys}}
        out["requestBody"] = {"content": {"application/x-www-form-urlencoded": {"schema": form}}}
    errors = dict(op.errors) if op else {}
    if content == JSON and (params or "requestBody" in out):
        errors.setdefault(400, "a parameter or body key is missing or wrong")
    for code, when in sorted(errors.items()):
        out["responses"][str(code)] = {
            "description": when,
            "content": {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    if op is None or op.auth:
        if path.startswith("/api/") or path.startswith("/chat/api/"):
            out["security"] = [{"bearerAuth": []}]
            out["responses"]["401"] = {
                "description": "API_TOKEN is set and the request does not carry it",
                "content": {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
    return out


def _version() -> str:
    try:
        return version("audiomuse-sidecar")
    except PackageNotFoundError:
        return "0"


def build_document(routes: Iterable[Route], server_url: str = "/") -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for method, path, handler in sorted(routes, key=lambda r: (r[1], r[0])):
        paths.setdefault(path, {})[method.lower()] = operation(method, path, handler)
    tags = sorted({op["tags"][0] for ops in paths.values() for op in ops.values()})
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "AudioMuse sidecar",
            "version": _version(),
            "description": "The web app's API (built from the running app's routes). Every error is "
            '{"error", "detail"}. When API_TOKEN is set, /api/* (but /api/health) and /chat/api/* '
            "need Authorization: Bearer <API_TOKEN>; the pages need a signed-in session.",
        },
        "servers": [{"url": server_url}],
        "tags": [{"name": t} for t in tags],
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR_SCHEMA},
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }
