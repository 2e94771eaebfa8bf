"""The AudioMuse-AI Jellyfin plugin's API, answered by the Jellyfin bridge.

Jellyfin clients that know the AudioMuse-AI plugin (Symfonium, ...) call its routes on the
Jellyfin server itself.  The bridge answers these ``GET`` routes (matched case-insensitively, like
ASP.NET, below Jellyfin's base path if it has one); every other ``/AudioMuseAI/...`` request is
passed to Jellyfin like any other::

    /AudioMuseAI/info            {"Version", "AvailableEndpoints": ["GET /AudioMuseAI/find_path", ...]}
    /AudioMuseAI/health          {"status": "ok", "version", "analysed": any track analysed?};
                                 503 {"status": "error", "version", "detail"} without the database
    /AudioMuseAI/similar_tracks?item_id&n&eliminate_duplicates   (or title&artist instead of item_id)
                                 [{"author", "distance", "item_id", "title"}], nearest first
    /AudioMuseAI/find_path?start_song_id&end_song_id&max_steps
                                 {"path": [{"author", "distance", "item_id", "title"}], "total_distance"}

with the semantics of ``/api/similar_tracks`` and ``/api/find_path`` (sidecar.routes.similarity):
``n`` 1..500 (default 10), ``eliminate_duplicates`` true/false (default
``SIMILARITY_ELIMINATE_DUPLICATES_DEFAULT``), ``max_steps`` 2..200 (default
``PATH_DEFAULT_LENGTH``); ids are Jellyfin item ids (32 hex, dashes and braces accepted).
Parameter names are matched case-insensitively, like ASP.NET's binding.

Credentials are checked by Jellyfin, as for the bridge's mix routes: a request without any, or
with a token Jellyfin refused in the last ``BRIDGE_AUTH_CACHE_SECONDS``, gets ``401`` at once;
otherwise an answer is given only once a request to Jellyfin carrying the caller's credentials
succeeded: ``GET /Items?ids=`` of the tracks to be shown (seeds included; a track
Jellyfin does not show the caller is left out, a seed it does not show is a 404), or
``GET /System/Info`` for ``info``, ``health`` and every error answer.  Jellyfin's own non-200
answer to that request (401 and 403, also remembered as refused; 503 while it starts) is
relayed as it is; Jellyfin unreachable gives 502, no answer in time 504.

Errors of ours are JSON ``{"error", "detail"}`` like the main API's: 400 for a missing or invalid
parameter (naming it), 404 for a track that is unknown, not analysed yet or hidden from the
caller, 503 when the database cannot be reached, 500 (logged) for anything else.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import asyncpg
from aiohttp import ClientError, web
from multidict import CIMultiDict, MultiMapping

from sidecar.bridge.jellyfin import IDS_PER_REQUEST, Caller, _param, normalize_guid
from sidecar.bridge.subsonic_format import SIDECAR_VERSION
from sidecar.mix.engine import Candidate, total_distance
from sidecar.similarity import store
from sidecar.similarity.service import MixService, NothingAnalysed, UnknownSeed
from sidecar.web.errors import json_error
from sidecar.web.keys import DB, SETTINGS

if TYPE_CHECKING:
    from sidecar.bridge.jellyfin import JellyfinBridge

log = logging.getLogger(__name__)

PREFIX = "AudioMuseAI"
#: what ``info`` lists (as the plugin does, without ``info`` itself), sorted
ENDPOINTS = ("find_path", "health", "similar_tracks")
MAX_N = 500  # as /api/similar_tracks
MAX_STEPS = 200  # as /api/find_path
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_JSON = "application/json; charset=utf-8"


class Relay(Exception):
    """Jellyfin did not accept the check (or could not be asked): this is the caller's answer."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


class PluginError(Exception):
    """An error answer of ours, given once Jellyfin accepted the caller's credentials."""

    def __init__(self, status: int, error: str, detail: Any = None) -> None:
        super().__init__(f"{status} {error}: {detail}")
        self.status, self.error, self.detail = status, error, detail


def item_json(c: Candidate) -> dict[str, Any]:
    return {
        "author": c.artist,
        "distance": round(float(c.distance), 6),
        "item_id": c.item_id,
        "title": c.title,
    }


def _int(query: MultiMapping[str], name: str, default: int, lo: int, hi: int) -> int:
    raw = _param(query, name)
    if raw is None:
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise PluginError(400, f"{name} must be an integer", raw) from None
    if not lo <= value <= hi:
        raise PluginError(400, f"{name} must be between {lo} and {hi}", value)
    return value


def _bool(query: MultiMapping[str], name: str, default: bool) -> bool:
    raw = _param(query, name)
    if raw is None:
        return default
    if raw.strip().lower() in _TRUE:
        return True
    if raw.strip().lower() in _FALSE:
        return False
    raise PluginError(400, f"{name} must be true or false", raw)


def _item_id(query: MultiMapping[str], name: str) -> str | None:
    raw = _param(query, name)
    if raw is None or not raw.strip():
        return None
    item_id = normalize_guid(raw)
    if item_id is None:
        raise PluginError(400, f"{name} must be a Jellyfin item id", raw)
    return item_id


def _unknown(exc: UnknownSeed | NothingAnalysed) -> PluginError:
    if isinstance(exc, NothingAnalysed):
        return PluginError(404, "no track has been analysed yet", "run an analysis first")
    return PluginError(404, exc.reason, exc.what)


class PluginApi:
    """The plugin's routes for one Jellyfin bridge (its upstream, timeout and refused credentials)."""

    def __init__(self, bridge: JellyfinBridge) -> None:
        self.bridge = bridge

    @staticmethod
    def match(path: str) -> str | None:
        """The endpoint of a (raw) path below the base path (``info``, ``health``, ...), or None."""
        segments = [unquote(s).lower() for s in path.strip("/").split("/")]
        if len(segments) == 2 and segments[0] == PREFIX.lower() and segments[1] in ("info", *ENDPOINTS):
            return segments[1]
        return None

    @property
    def main(self) -> web.Application:
        return self.bridge.main

    def service(self) -> MixService:
        if DB not in self.main:
            raise PluginError(503, "database unavailable", "the database is not ready yet")
        return MixService(self.main[DB], self.main[SETTINGS])

    async def answer(self, request: web.Request, endpoint: str) -> web.StreamResponse:
        caller = Caller.of(request)
        if not caller.has_credentials or self.bridge.credentials.refused(caller.key):
            return web.Response(status=401)  # what Jellyfin answers
        try:
            if endpoint == "info":
                await self.check(caller)
                return _json(
                    {
                        "Version": SIDECAR_VERSION,
                        "AvailableEndpoints": [f"GET /{PREFIX}/{e}" for e in ENDPOINTS],
                    }
                )
            if endpoint == "health":
                await self.check(caller)
                return await self.health()
            if endpoint == "similar_tracks":
                return await self.similar_tracks(request.query, caller)
            return await self.find_path(request.query, caller)
        except Relay as relay:
            return relay.response
        except PluginError as exc:
            error = exc
        except asyncio.CancelledError:
            raise
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            log.warning("bridge: %s: database unavailable: %s", request.path, exc)
            error = PluginError(503, "database unavailable", f"{type(exc).__name__}: {exc}")
        except Exception:
            log.exception("bridge: %s: unexpected error", request.path)
            error = PluginError(500, "internal error", "see the service log")
        try:
            await self.check(caller)  # errors of ours only for a caller Jellyfin accepts
        except Relay as relay:
            return relay.response
        return json_error(error.status, error.error, error.detail)

    # ---- the routes

    async def health(self) -> web.Response:
        try:
            analysed = await store.anything_analysed(self.service().db)
        except (PluginError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            detail = exc.detail if isinstance(exc, PluginError) else f"{type(exc).__name__}: {exc}"
            return _json(
                {"status": "error", "version": SIDECAR_VERSION, "detail": f"database: {detail}"}, 503
            )
        return _json({"status": "ok", "version": SIDECAR_VERSION, "analysed": analysed})

    async def similar_tracks(self, query: MultiMapping[str], caller: Caller) -> web.Response:
        settings = self.main[SETTINGS]
        n = _int(query, "n", 10, 1, MAX_N)
        dedupe = _bool(query, "eliminate_duplicates", settings.similarity_eliminate_duplicates_default)
        _bool(query, "radius_similarity", True)  # accepted, as /api/similar_tracks does
        item_id = _item_id(query, "item_id")
        svc = self.service()
        seed: Candidate | str
        try:
            if item_id is not None:
                seed = item_id
            else:
                title, artist = _param(query, "title"), _param(query, "artist")
                if not title or not artist:
                    raise PluginError(400, "item_id is required (or title and artist)")
                seed = await svc.seed_by_title_artist(title, artist)
            tracks = await svc.similar(seed, n, dedupe)
        except (UnknownSeed, NothingAnalysed) as exc:
            raise _unknown(exc) from None
        seed_id = seed if isinstance(seed, str) else seed.item_id
        visible = await self.visible(caller, [seed_id, *(c.item_id for c in tracks)])
        if seed_id not in visible:
            raise PluginError(404, "unknown track", seed_id)
        return _json([item_json(c) for c in tracks if c.item_id in visible])

    async def find_path(self, query: MultiMapping[str], caller: Caller) -> web.Response:
        start_id, end_id = _item_id(query, "start_song_id"), _item_id(query, "end_song_id")
        if start_id is None:
            raise PluginError(400, "start_song_id is required")
        if end_id is None:
            raise PluginError(400, "end_song_id is required")
        steps = _int(query, "max_steps", self.main[SETTINGS].path_default_length, 2, MAX_STEPS)
        if start_id == end_id:
            raise PluginError(400, "start_song_id and end_song_id are the same track")
        svc = self.service()
        try:
            start, end = await svc.song_seed(start_id), await svc.song_seed(end_id)
        except (UnknownSeed, NothingAnalysed) as exc:
            raise _unknown(exc) from None
        path = (await svc.path(start, end, steps)).tracks
        visible = await self.visible(caller, [start_id, end_id, *(c.item_id for c in path)])
        for item_id in (start_id, end_id):
            if item_id not in visible:
                raise PluginError(404, "unknown track", item_id)
        path = [c for c in path if c.item_id in visible]
        return _json({"path": [item_json(c) for c in path], "total_distance": round(total_distance(path), 6)})

    # ---- asking Jellyfin, with the caller's credentials

    async def check(self, caller: Caller) -> None:
        """Jellyfin accepts the caller's credentials (GET /System/Info), else :class:`Relay`."""
        await self._get("/System/Info", [], caller)

    async def visible(self, caller: Caller, ids: Sequence[str]) -> set[str]:
        """Those of ``ids`` Jellyfin shows the caller (GET /Items?ids=, in batches)."""
        unique = list(dict.fromkeys(ids))
        batches = [unique[i : i + IDS_PER_REQUEST] for i in range(0, len(unique), IDS_PER_REQUEST)]
        answers = await asyncio.gather(
            *(
                self._get(
                    "/Items",
                    [
                        ("ids", ",".join(batch)),
                        ("enableImages", "false"),
                        ("enableUserData", "false"),
                        ("enableTotalRecordCount", "false"),
                    ],
                    caller,
                )
                for batch in batches
            )
        )
        out: set[str] = set()
        for payload in answers:
            items = payload.get("Items", payload.get("items")) if isinstance(payload, dict) else None
            if not isinstance(items, list):
                raise Relay(json_error(502, "unexpected answer from Jellyfin", "GET /Items"))
            for dto in items:
                item_id = normalize_guid(dto.get("Id", dto.get("id"))) if isinstance(dto, dict) else None
                if item_id:
                    out.add(item_id)
        return out

    async def _get(self, path: str, params: list[tuple[str, str]], caller: Caller) -> Any:
        """The JSON of a GET to Jellyfin with the caller's credentials; any other answer than 200
        is relayed (401/403 also remembered as refused credentials)."""
        upstream = self.bridge.upstream
        headers = CIMultiDict(caller.headers)
        headers["Accept"] = "application/json"
        url = upstream.url(path).with_query(params + caller.auth_query)
        try:
            async with upstream.session.get(
                url, headers=headers, timeout=self.bridge.timeout, allow_redirects=False
            ) as resp:
                raw = await resp.read()
                if resp.status != 200:
                    if resp.status in (401, 403):
                        self.bridge.credentials.refuse(caller.key)
                    relayed = CIMultiDict(
                        (k, v)
                        for k, v in resp.headers.items()
                        if k.lower() in ("content-type", "www-authenticate", "retry-after")
                    )
                    raise Relay(web.Response(status=resp.status, body=raw, headers=relayed))
        except TimeoutError:
            raise Relay(json_error(504, "Jellyfin did not answer in time", path)) from None
        except (ClientError, OSError) as exc:
            raise Relay(json_error(502, "Jellyfin unreachable", f"{type(exc).__name__}: {exc}")) from None
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            raise Relay(json_error(502, "unexpected answer from Jellyfin", path)) from None


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode(),
        headers={"Content-Type": _JSON},
    )
