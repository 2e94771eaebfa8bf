"""Instant playlists from a plain-language request (AudioMuse-AI's chat, made safe):
POST /chat/api/chatPlaylist and POST /api/chat/playlist (same answer), POST /chat/api/create_playlist,
GET /chat/api/config_defaults (the default provider, models and URLs; never a key).

``/chat/api/*`` lies outside ``/api/``, so these handlers check ``API_TOKEN`` themselves.
"""

from __future__ import annotations

import hmac
import logging
import unicodedata
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web

from sidecar.ai import AI_OVERRIDE_KEYS, ai_config
from sidecar.chat.service import ChatRunner, chat_playlist
from sidecar.db import playlists
from sidecar.db.chat import ChatQueryError, ChatUnavailable
from sidecar.web.errors import ApiError, read_json_object
from sidecar.web.keys import DB, ENDPOINTS, PROVIDER, SETTINGS

log = logging.getLogger(__name__)

routes = web.RouteTableDef()

MAX_REQUEST_CHARS = 2000
#: upstream's request keys, besides AI_OVERRIDE_KEYS
_UPSTREAM_KEYS = {"userInput", "user_input"}


def _check_token(request: web.Request) -> None:
    token = request.app[SETTINGS].api_token
    if not token:
        return
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
        raise ApiError(401, "unauthorized", "send Authorization: Bearer <API_TOKEN>")


async def _chat(request: web.Request) -> web.Response:
    _check_token(request)
    body = await read_json_object(request)
    text = body.get("userInput", body.get("user_input"))
    if not isinstance(text, str) or not text.strip():
        raise ApiError(
            400, "userInput is required", "a plain-language request, e.g. 'calm piano for reading'"
        )
    if len(text) > MAX_REQUEST_CHARS:
        raise ApiError(400, f"userInput may hold at most {MAX_REQUEST_CHARS} characters", len(text))
    unknown = sorted(set(body) - _UPSTREAM_KEYS - AI_OVERRIDE_KEYS)
    if unknown:
        raise ApiError(400, f"{unknown[0]}: unknown key", sorted(_UPSTREAM_KEYS | AI_OVERRIDE_KEYS))
    settings = request.app[SETTINGS]
    overrides: dict[str, Any] = {k: v for k, v in body.items() if k in AI_OVERRIDE_KEYS}
    try:
        config = ai_config(settings, overrides)
    except ValueError as exc:
        raise ApiError(400, str(exc)) from exc
    runner = ChatRunner(request.app[DB], request.app[ENDPOINTS].postgres_dsn, settings)
    try:
        result = await chat_playlist(runner, text.strip(), config)
    except ChatUnavailable as exc:
        raise ApiError(503, "the read-only chat role is not available", str(exc)) from exc
    except ChatQueryError as exc:
        raise ApiError(503, "the playlist query failed", exc.reason) from exc
    return web.json_response({"response": result.as_json()})


def public_url(url: str | None) -> str | None:
    """``url`` without what may carry a secret: user name and password, query, fragment."""
    if not url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@routes.get("/chat/api/config_defaults")
async def chat_config_defaults(request: web.Request) -> web.Response:
    """AudioMuse-AI's defaults call, for a page to prefill its form: the default provider, each
    provider's model and URL.  No API key is ever sent (upstream sent Gemini's): the key fields
    stay empty, and an empty key in a chat request means "the server's"."""
    _check_token(request)
    s = request.app[SETTINGS]
    return web.json_response(
        {
            "default_ai_provider": s.ai_model_provider.value,
            "default_ollama_model_name": s.ollama_model_name,
            "ollama_server_url": public_url(s.ollama_server_url),
            "default_gemini_model_name": s.gemini_model_name,
            "default_gemini_api_key": "",
            "gemini_server_url": public_url(s.gemini_server_url),
            "default_openai_model_name": s.openai_model_name,
            "openai_server_url": public_url(s.openai_server_url),
            "default_openai_api_key": "",
            "chat_max_songs": s.chat_max_songs,
        }
    )


@routes.post("/chat/api/chatPlaylist")
async def chat_playlist_upstream(request: web.Request) -> web.Response:
    return await _chat(request)


@routes.post("/api/chat/playlist")
async def chat_playlist_api(request: web.Request) -> web.Response:
    return await _chat(request)


@routes.post("/chat/api/create_playlist")
async def create_instant_playlist(request: web.Request) -> web.Response:
    """Upstream's create call: the name gets ``_instant`` appended; recorded as kind instant."""
    _check_token(request)
    body = await read_json_object(request)
    name, ids = body.get("playlist_name"), body.get("item_ids")
    if (
        not isinstance(name, str)
        or not name.strip()
        or len(name) > 190
        or any(unicodedata.category(ch) == "Cc" for ch in name)
    ):
        return web.json_response(
            {"message": "playlist_name must be one line of 1-190 characters"}, status=400
        )
    if (
        not isinstance(ids, list)
        or not ids
        or len(ids) > 5000
        or not all(isinstance(i, str) and i for i in ids)
    ):
        return web.json_response({"message": "item_ids must be a non-empty list of track ids"}, status=400)
    ids = list(dict.fromkeys(ids))
    db, provider = request.app[DB], request.app[PROVIDER]
    full = name.strip() + "_instant"
    existing = await playlists.provider_id(db, provider.name, "instant", full)
    playlist_id = await provider.create_playlist(full, ids, replace_id=existing)
    await playlists.record(db, provider.name, "instant", full, ids, playlist_id)
    return web.json_response(
        {
            "message": f"Successfully created playlist '{full}' with {len(ids)} songs. ID: {playlist_id}",
            "playlist_id": playlist_id,
            "name": full,
            "track_count": len(ids),
        }
    )
