"""The web admin's plumbing: Jinja2 templates (``sidecar/web/templates``), the static files
(``sidecar/web/static``) and what every page's template sees (navigation, CSRF token,
versioned static URLs).  The page handlers live in ``sidecar/routes/pages.py``."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from sidecar.web.auth import auth_enabled, csrf_token_for, session_of

WEB_DIR = Path(__file__).parent
TEMPLATE_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"
STATIC_PREFIX = "/static"

#: (path, label, page id) of the navigation, in order
NAVIGATION: tuple[tuple[str, str, str], ...] = (
    ("/", "Dashboard", "dashboard"),
    ("/analysis", "Analysis & clustering", "analysis"),
    ("/similarity", "Similar songs", "similarity"),
    ("/path", "Song path", "path"),
    ("/chat", "Instant playlist", "chat"),
    ("/playlists", "Playlists", "playlists"),
    ("/map", "Map", "map"),
    ("/settings", "Settings", "settings"),
    ("/apidocs", "API docs", "apidocs"),
)


@cache
def _file_version(name: str) -> str:
    """A short content hash: browsers may cache a static file for as long as it is unchanged."""
    return hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:10]


def static_url(name: str) -> str:
    """``/static/<name>?v=<content hash>`` (plain path when the file does not exist)."""
    try:
        return f"{STATIC_PREFIX}/{name}?v={_file_version(name)}"
    except OSError:
        return f"{STATIC_PREFIX}/{name}"


async def _page_context(request: web.Request) -> dict[str, Any]:
    session = session_of(request)
    return {
        "navigation": NAVIGATION,
        "csrf_token": csrf_token_for(request, session),
        "signed_in": session is not None,
        "auth_enabled": auth_enabled(request),
        "request_path": request.path,
    }


def setup_pages(app: web.Application) -> None:
    """Jinja2 templates (autoescaped) and the static files (``/static/<name>``) on ``app``."""
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        autoescape=jinja2.select_autoescape(["html"], default=True),
        context_processors=[_page_context],
        undefined=jinja2.StrictUndefined,
    )
    env.globals["static_url"] = static_url
    app.router.add_static(STATIC_PREFIX, STATIC_DIR, name="static")
