"""The web admin's pages (HTML) and its sign-in: GET /, /analysis, /similarity, /path, /chat,
/playlists, /settings, GET/POST /login, POST /logout.  Each page is a template that reads the
JSON API from the browser (``static/app.js``); the settings page is rendered here.  Templates
and static files are set up by ``sidecar/web/pages.py``."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from sidecar.config import MediaServerType, Settings, redact_url, setting_docs
from sidecar.db import clustering as clustering_db
from sidecar.db import tasks as tasks_db
from sidecar.jobs.names import LIBRARY_SYNC_TASK, MAIN_ANALYSIS_TASK, MAIN_CLUSTERING_TASK
from sidecar.web.auth import (
    SESSION_COOKIE,
    auth_enabled,
    clear_session_cookie,
    safe_next,
    set_session_cookie,
    signer_of,
)
from sidecar.web.forms import form_context
from sidecar.web.keys import DB, ENDPOINTS, SETTINGS

routes = web.RouteTableDef()

#: seconds a wrong token waits before its answer (slows guessing)
LOGIN_FAILURE_DELAY = 0.5

#: the top-level tasks the dashboard lists (the newest of each)
TOP_LEVEL_TASKS = (MAIN_ANALYSIS_TASK, MAIN_CLUSTERING_TASK, LIBRARY_SYNC_TASK)

#: page id -> (path, template, title)
PAGES: dict[str, tuple[str, str, str]] = {
    "dashboard": ("/", "dashboard.html", "Dashboard"),
    "analysis": ("/analysis", "analysis.html", "Analysis & clustering"),
    "similarity": ("/similarity", "similarity.html", "Similar songs"),
    "path": ("/path", "path.html", "Song path"),
    "chat": ("/chat", "chat.html", "Instant playlist"),
    "playlists": ("/playlists", "playlists.html", "Playlists"),
}


def _page_handler(page: str, template: str, title: str):  # type: ignore[no-untyped-def]
    async def handler(request: web.Request) -> web.Response:
        context = {"page": page, "title": title, **await _page_data(request, page)}
        return aiohttp_jinja2.render_template(template, request, context)

    handler.__name__ = f"{page}_page"
    return handler


async def _page_data(request: web.Request, page: str) -> dict[str, Any]:
    settings, db = request.app[SETTINGS], request.app[DB]
    if page == "analysis":
        has_clustering = await clustering_db.last_success(db, MAIN_CLUSTERING_TASK) is not None
        return {**form_context(settings), "has_clustering": has_clustering}
    if page == "path":
        return {"default_steps": settings.path_default_length}
    if page == "chat":
        return {"ai_provider": settings.ai_model_provider.value, "max_songs": settings.chat_max_songs}
    if page == "similarity":
        return {"max_per_artist": settings.max_songs_per_artist}
    if page == "dashboard":
        last = [await tasks_db.last(db, kind) for kind in TOP_LEVEL_TASKS]
        return {
            "mediaserver_type": settings.mediaserver_type.value,
            "media_location": _media_location(settings),
            "last_tasks": sorted((t for t in last if t), key=lambda t: t["created_at"], reverse=True),
            "has_clustering": await clustering_db.last_success(db, MAIN_CLUSTERING_TASK) is not None,
        }
    return {}


def _media_location(settings: Settings) -> str:
    """Where the music comes from, for the dashboard (a URL without credentials)."""
    if settings.mediaserver_type is MediaServerType.LOCAL:
        return f"the folder {settings.music_dir}"
    return redact_url(settings.media_server_url or "")


for _page, (_path, _template, _title) in PAGES.items():
    routes.get(_path, name=f"page_{_page}")(_page_handler(_page, _template, _title))


@routes.get("/settings", name="page_settings")
async def settings_page(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    shown = settings.redacted()
    given = settings.model_fields_set
    rows = [
        {
            "name": doc.env,
            "value": shown[doc.env],
            "default": "***" if shown[doc.env] == "***" and doc.default else doc.default,
            "description": doc.description,
            "from_env": doc.env.lower() in given,
            "secret": shown[doc.env] == "***",
        }
        for doc in setting_docs()
    ]
    context = {
        "page": "settings",
        "title": "Settings",
        "rows": rows,
        "embedded": list(request.app[ENDPOINTS].embedded),
        "auth_enabled": auth_enabled(request),
    }
    return aiohttp_jinja2.render_template("settings.html", request, context)


@routes.get("/login", name="login")
async def login_form(request: web.Request) -> web.Response:
    if not auth_enabled(request):
        raise web.HTTPSeeOther("/")
    context = {
        "page": "login",
        "title": "Sign in",
        "next": safe_next(request.query.get("next")),
        "error": None,
    }
    return aiohttp_jinja2.render_template("login.html", request, context)


@routes.post("/login")
async def login(request: web.Request) -> web.StreamResponse:
    signer = signer_of(request)
    if signer is None:
        raise web.HTTPSeeOther("/")
    form = await request.post()
    token, target = form.get("token"), safe_next(str(form.get("next") or "/"))
    if not isinstance(token, str) or not signer.token_matches(token):
        await asyncio.sleep(LOGIN_FAILURE_DELAY)
        context = {"page": "login", "title": "Sign in", "next": target, "error": "That token is not right."}
        return aiohttp_jinja2.render_template("login.html", request, context, status=401)
    response = web.HTTPSeeOther(target)
    set_session_cookie(response, request, signer.issue())
    raise response


@routes.post("/logout")
async def logout(request: web.Request) -> web.Response:
    response = web.json_response({"signed_out": SESSION_COOKIE in request.cookies})
    clear_session_cookie(response)
    return response
