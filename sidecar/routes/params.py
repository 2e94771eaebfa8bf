"""Query-parameter parsing with precise 400 errors."""

from __future__ import annotations

from aiohttp import web

from sidecar.web.errors import ApiError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer", raw) from None
    if not lo <= value <= hi:
        raise ApiError(400, f"{name} must be between {lo} and {hi}", value)
    return value


def bool_param(request: web.Request, name: str, default: bool) -> bool:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ApiError(400, f"{name} must be true or false", raw)


def str_param(request: web.Request, name: str, required: bool = False) -> str | None:
    raw = request.query.get(name)
    value = raw.strip() if raw is not None else None
    if required and not value:
        raise ApiError(400, f"{name} is required")
    return value or None


def list_param(request: web.Request, name: str) -> list[str]:
    """Repeated (?x=a&x=b) or comma-separated (?x=a,b) values."""
    out: list[str] = []
    for raw in request.query.getall(name, []):
        out.extend(v.strip() for v in raw.split(",") if v.strip())
    return out
