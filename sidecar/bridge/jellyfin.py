"""The Jellyfin bridge: a reverse proxy in front of Jellyfin whose Instant Mix and Similar
answers are sonic mixes.

Clients point at ``JELLYFIN_BRIDGE_PORT`` instead of Jellyfin.  These ``GET`` routes
(matched case-insensitively, like ASP.NET, below Jellyfin's base path if it has one) are
answered from our mix engine::

    /Items/{id}/InstantMix      song, album, artist, playlist or genre, whatever {id} is
    /Songs/{id}/InstantMix      /Albums/{id}/InstantMix     /Playlists/{id}/InstantMix
    /Artists/{id}/InstantMix    /Artists/InstantMix?id=     (an artist mix, by the artist's name)
    /MusicGenres/{name}/InstantMix                          /MusicGenres/InstantMix?id=
    /Items/{id}/Similar   /Albums/{id}/Similar   /Artists/{id}/Similar   (when {id} is a song)

The answer is made of Jellyfin's own DTOs: the chosen ids are fetched with
``GET /Items?ids=...`` carrying the caller's own credentials (every form clients use,
forwarded unchanged), ``Accept`` header (so ``profile="CamelCase"`` gives camelCase) and
presentation parameters (``userId, fields, enableImages, enableUserData, imageTypeLimit,
enableImageTypes``), then returned in mix order as ``{Items, TotalRecordCount, StartIndex}``
in the case convention Jellyfin used.  A song mix starts with the song.  ``limit`` is
honoured (default and cap 200 for mixes, as Jellyfin's own; default 50 for Similar), and
``excludeArtistIds`` for Similar.

Anything else falls back to forwarding the original request to Jellyfin, so the client
gets exactly Jellyfin's own answer: an item we have not analysed, not audio (Similar on an
album or an artist), of the wrong type for a typed route, a request without credentials,
a token Jellyfin refuses (its 401, through the forwarded request; such a token is then
forwarded straight away for ``BRIDGE_AUTH_CACHE_SECONDS``), an unparsable parameter, an
empty answer, or any error in our path (database, network, unexpected JSON).  The bridge
never answers with an error of its own on these routes, and never shows an item that
Jellyfin does not show the caller.

The AudioMuse-AI Jellyfin plugin's ``/AudioMuseAI/info``, ``health``, ``similar_tracks`` and
``find_path`` are answered too (:mod:`sidecar.bridge.jellyfin_plugin_api`).

Every other request is passed through unchanged and streamed (:mod:`sidecar.bridge.proxy`).
Credentials cache, failure policy and fallback record are the bridges' shared ones
(:mod:`sidecar.bridge.kit`): a fallback is logged with its reason and counted.
Mix answers carry ``Server-Timing: mix;dur=<ms>, upstream;dur=<ms>, bridge;dur=<ms>``: time
in the mix engine and its database queries, time waiting for Jellyfin, and the rest (routing,
credentials, reordering, JSON).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from aiohttp import ClientTimeout, web
from multidict import CIMultiDict, MultiMapping

from sidecar.bridge import kit
from sidecar.bridge.kit import Fallback
from sidecar.bridge.proxy import Upstream, is_websocket
from sidecar.similarity import store
from sidecar.similarity.service import MixKind, MixService, UnknownSeed
from sidecar.web.keys import SETTINGS

log = logging.getLogger(__name__)

MIX_LIMIT = 200  # Jellyfin's MusicManager caps instant mixes at 200 items
SIMILAR_DEFAULT = 50
IDS_PER_REQUEST = 100  # 100 ids keep /Items?ids= well under Kestrel's 8 KiB request line

#: credential headers and query parameters clients send (Jellyfin 12 reads the first and
#: ``ApiKey`` by default, the others with EnableLegacyAuthorization)
AUTH_HEADERS = ("Authorization", "X-Emby-Authorization", "X-Emby-Token", "X-MediaBrowser-Token")
AUTH_PARAMS = frozenset({"api_key", "apikey"})
#: presentation parameters of the mix routes, passed on to /Items (lower-case)
PRESENTATION = ("userid", "fields", "enableimages", "enableuserdata", "imagetypelimit", "enableimagetypes")

_GUID = re.compile(r"^\{?[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}\}?$")


@dataclass(frozen=True)
class Route:
    action: str  # "mix" or "similar"
    kind: str  # items, songs, albums, playlists, artists, genre-name, genre-id
    ident: str


def normalize_guid(value: str | None) -> str | None:
    """A Jellyfin GUID in any form Jellyfin accepts, as 32 lowercase hex (our ids); else None."""
    if not value or not _GUID.match(value.strip()):
        return None
    return value.strip().strip("{}").replace("-", "").lower()


def match_route(path: str, query: MultiMapping[str]) -> Route | None:
    """The mix route of a (raw) path below the base path, or None."""
    segments = [unquote(s) for s in path.strip("/").split("/")]
    low = [s.lower() for s in segments]
    if len(low) == 3 and low[2] == "instantmix":
        if low[0] in ("items", "songs", "albums", "playlists", "artists"):
            return Route("mix", low[0], segments[1])
        if low[0] == "musicgenres":
            return Route("mix", "genre-name", segments[1])
    elif len(low) == 2 and low[1] == "instantmix" and low[0] in ("artists", "musicgenres"):
        ident = _param(query, "id")
        if ident is None:
            return None
        return Route("mix", "artists" if low[0] == "artists" else "genre-id", ident)
    elif len(low) == 3 and low[2] == "similar" and low[0] in ("items", "albums", "artists"):
        return Route("similar", low[0], segments[1])
    return None


def _param(query: MultiMapping[str], name: str) -> str | None:
    """First non-empty value of a query parameter, matched case-insensitively (ASP.NET binding)."""
    for key, value in query.items():
        if key.lower() == name and value != "":
            return value
    return None


def _int_param(query: MultiMapping[str], name: str) -> int | None:
    raw = _param(query, name)
    if raw is None:
        return None
    try:
        return int(raw.strip())
    except ValueError:
        raise Fallback(f"{name}={raw!r} is not an integer") from None


@dataclass
class Caller:
    """What the bridge passes on to Jellyfin for the caller: credentials, Accept, origin."""

    headers: CIMultiDict[str]
    auth_query: list[tuple[str, str]]

    @classmethod
    def of(cls, request: web.Request) -> Caller:
        headers: CIMultiDict[str] = CIMultiDict()
        for name in (*AUTH_HEADERS, "Accept", "Accept-Language", "User-Agent"):
            for value in request.headers.getall(name, []):
                headers.add(name, value)
        peer = request.remote or ""
        prior = request.headers.get("X-Forwarded-For")
        if peer:
            headers["X-Forwarded-For"] = f"{prior}, {peer}" if prior else peer
        headers["Accept-Encoding"] = "identity"  # loopback/LAN: compression costs more than it saves
        auth_query = [(k, v) for k, v in request.query.items() if k.lower() in AUTH_PARAMS]
        return cls(headers, auth_query)

    @property
    def has_credentials(self) -> bool:
        return bool(self.auth_query) or any(self.headers.get(h) for h in AUTH_HEADERS)

    @property
    def key(self) -> bytes:
        """The credentials' key in the bridge's :class:`~sidecar.bridge.kit.CredentialCache`."""
        items = [(h.lower(), v) for h in AUTH_HEADERS for v in self.headers.getall(h, [])]
        return kit.CredentialCache.key(sorted(items + [(k.lower(), v) for k, v in self.auth_query]))


@dataclass
class Timing:
    """Where an answer's time went, for its ``Server-Timing`` header."""

    mix_s: float = 0.0
    upstream_s: float = 0.0
    started: float = field(default_factory=time.perf_counter)

    def header(self) -> str:
        rest = time.perf_counter() - self.started - self.mix_s - self.upstream_s
        return (
            f"mix;dur={self.mix_s * 1000:.2f}, upstream;dur={self.upstream_s * 1000:.2f}, "
            f"bridge;dur={rest * 1000:.2f}"
        )


class JellyfinBridge(kit.Bridge):
    """Keeps Jellyfin's refusals in its credential cache (:mod:`sidecar.bridge.kit`)."""

    label = "Jellyfin bridge"
    server = "Jellyfin"

    def __init__(self, main: web.Application) -> None:
        settings = main[SETTINGS]
        if not settings.jellyfin_url:
            raise RuntimeError("JELLYFIN_URL is not set: the Jellyfin bridge has nothing to proxy")
        super().__init__(
            main, Upstream(settings.jellyfin_url, connect_timeout_s=settings.media_http_timeout_seconds), log
        )
        self.timeout = ClientTimeout(total=settings.media_http_timeout_seconds)
        from sidecar.bridge.jellyfin_plugin_api import PluginApi  # (that module builds on this one)

        self.plugin = PluginApi(self)

    # ---- entry point

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.method == "GET" and not is_websocket(request):
            path = self.upstream.relative(request.rel_url.raw_path)
            endpoint = self.plugin.match(path)
            if endpoint is not None:
                return await self.plugin.answer(request, endpoint)
            route = match_route(path, request.query)
            if route is not None:
                answer = await self.answer(request, route)
                if answer is not None:
                    return answer
        return await self.upstream.forward(request)

    async def answer(self, request: web.Request, route: Route) -> web.Response | None:
        """Our sonic answer, or None to forward the request to Jellyfin."""
        caller = Caller.of(request)
        if not caller.has_credentials:
            self.fallbacks.declined(request.path, "no credentials")
            return None
        if self.credentials.refused(caller.key):
            self.fallbacks.declined(request.path, "credentials refused recently")
            return None
        return await self.attempt(request.path, lambda: self._answer(request, route, caller, Timing()))

    async def _answer(
        self, request: web.Request, route: Route, caller: Caller, timing: Timing
    ) -> web.Response:
        query = request.query
        limit = _int_param(query, "limit")
        if limit is not None and limit <= 0:
            raise Fallback("limit <= 0")
        service = self.mixes()
        started, upstream_before = time.perf_counter(), timing.upstream_s
        if route.action == "similar":
            n = min(limit or SIMILAR_DEFAULT, MIX_LIMIT)
            ids, exclude_artists = await self._similar(service, route, n, query)
        else:
            n = min(limit or MIX_LIMIT, MIX_LIMIT)
            ids = await self._mix(service, route, n, caller, query, timing)
            exclude_artists = set()
        timing.mix_s = time.perf_counter() - started - (timing.upstream_s - upstream_before)
        items, envelope = await self._dtos(ids, caller, query, timing)
        if exclude_artists:
            items = [i for i in items if not exclude_artists & _artist_ids(i)]
        items = items[:n]
        if not items:
            raise Fallback("Jellyfin returned none of the chosen items")
        pascal, content_type = envelope
        body = (
            {"Items": items, "TotalRecordCount": len(items), "StartIndex": 0}
            if pascal
            else {"items": items, "totalRecordCount": len(items), "startIndex": 0}
        )
        return web.Response(
            body=json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(),
            headers={"Content-Type": content_type, "Server-Timing": timing.header()},
        )

    # ---- choosing the ids

    async def _mix(
        self,
        service: MixService,
        route: Route,
        n: int,
        caller: Caller,
        query: MultiMapping[str],
        timing: Timing,
    ) -> list[str]:
        db = service.db
        kind, ident = route.kind, route.ident
        if kind in ("genre-name",):
            return _ids(await service.mix(MixKind.GENRE, ident, n))
        item_id = normalize_guid(ident)
        if item_id is None:
            raise Fallback(f"{ident!r} is not a GUID")
        if kind in ("items", "songs"):
            try:
                return _ids(await service.song_mix(item_id, n))  # one round trip for an analysed track
            except UnknownSeed:
                if kind == "songs":
                    raise Fallback("not an analysed track") from None
        if kind in ("items", "albums"):
            seeds = await store.album_seeds(db, item_id)
            if seeds:
                return _ids(await service.multi_mix(seeds, n))
            if kind == "albums":
                raise Fallback("no analysed track on this album")
        if kind == "playlists":
            return await self._playlist_mix(service, item_id, n, caller, query, timing)
        info = await self._item(item_id, caller, query, timing)
        item_type, name = info.get("Type"), info.get("Name")
        if not isinstance(name, str) or not name:
            raise Fallback("item without a name")
        if item_type == "MusicArtist" and kind in ("items", "artists"):
            return _ids(await service.mix(MixKind.ARTIST, name, n))
        if item_type in ("MusicGenre", "Genre") and kind in ("items", "genre-id"):
            return _ids(await service.mix(MixKind.GENRE, name, n))
        if item_type == "Playlist" and kind == "items":
            return await self._playlist_mix(service, item_id, n, caller, query, timing)
        raise Fallback(f"a {item_type} we cannot mix here ({kind} route)")

    async def _playlist_mix(
        self,
        service: MixService,
        playlist_id: str,
        n: int,
        caller: Caller,
        query: MultiMapping[str],
        timing: Timing,
    ) -> list[str]:
        status, payload, _ = await self._get_json(f"/Playlists/{playlist_id}", [], caller, timing)
        if status != 200 or not isinstance(payload, dict):
            raise Fallback(f"GET /Playlists/{playlist_id}: {status}")
        raw_ids = payload.get("ItemIds", payload.get("itemIds")) or []
        ids = [g for g in (normalize_guid(i) for i in raw_ids if isinstance(i, str)) if g]
        seeds = await store.seeds_by_ids(service.db, ids)
        if not seeds:
            raise Fallback("no analysed track in this playlist")
        return _ids(await service.multi_mix(seeds, n))

    async def _similar(
        self, service: MixService, route: Route, n: int, query: MultiMapping[str]
    ) -> tuple[list[str], set[str]]:
        item_id = normalize_guid(route.ident)
        if item_id is None:
            raise Fallback(f"{route.ident!r} is not a GUID")
        excluded = {
            g
            for k, v in query.items()
            if k.lower() == "excludeartistids"
            for g in (normalize_guid(p) for p in v.split(","))
            if g
        }
        try:
            similar = await service.similar(
                item_id, min(2 * n, MIX_LIMIT) if excluded else n, eliminate_duplicates=True
            )
        except UnknownSeed:
            raise Fallback("not an analysed track") from None  # albums, artists: Jellyfin's own answer
        return [c.item_id for c in similar], excluded

    # ---- talking to Jellyfin

    async def _get_json(
        self, path: str, params: list[tuple[str, str]], caller: Caller, timing: Timing, accept: bool = False
    ) -> tuple[int, Any, str]:
        """(status, JSON payload or None, Content-Type) of a GET with the caller's credentials.
        A 401/403 means the credentials are refused: remember them and forward the request."""
        headers = CIMultiDict(caller.headers)
        if not accept:
            headers["Accept"] = "application/json"
        url = self.upstream.url(path).with_query(params + caller.auth_query)
        started = time.perf_counter()
        try:
            async with self.upstream.session.get(
                url, headers=headers, timeout=self.timeout, allow_redirects=False
            ) as resp:
                if resp.status in (401, 403):
                    self.credentials.refuse(caller.key)
                    raise Fallback(f"Jellyfin refused the credentials ({resp.status})")
                if resp.status != 200:
                    return resp.status, None, ""
                raw = await resp.read()
                content_type = resp.headers.get("Content-Type", "application/json; charset=utf-8")
        finally:
            timing.upstream_s += time.perf_counter() - started
        return 200, json.loads(raw), content_type

    async def _item(
        self, item_id: str, caller: Caller, query: MultiMapping[str], timing: Timing
    ) -> dict[str, Any]:
        user = _param(query, "userid")
        status, payload, _ = await self._get_json(
            f"/Items/{item_id}", [("userId", user)] if user else [], caller, timing
        )
        if status != 200 or not isinstance(payload, dict):
            raise Fallback(f"GET /Items/{item_id}: {status}")
        return payload

    async def _dtos(
        self, ids: Sequence[str], caller: Caller, query: MultiMapping[str], timing: Timing
    ) -> tuple[list[dict[str, Any]], tuple[bool, str]]:
        """Jellyfin's DTOs of ``ids`` in that order (those it does not show the caller left out),
        and (PascalCase?, Content-Type) of its answer."""
        if not ids:
            raise Fallback("empty mix")
        passed = [(k, v) for k, v in query.items() if k.lower() in PRESENTATION]
        batches = [ids[i : i + IDS_PER_REQUEST] for i in range(0, len(ids), IDS_PER_REQUEST)]
        started = time.perf_counter()
        upstream_before = timing.upstream_s
        answers = await asyncio.gather(
            *(
                self._get_json(
                    "/Items",
                    [("ids", ",".join(batch)), *passed, ("enableTotalRecordCount", "false")],
                    caller,
                    Timing(),
                    accept=True,
                )
                for batch in batches
            )
        )
        timing.upstream_s = upstream_before + (time.perf_counter() - started)  # batches run in parallel
        by_id: dict[str, dict[str, Any]] = {}
        pascal, content_type = True, "application/json; charset=utf-8"
        for status, payload, ctype in answers:
            if status != 200 or not isinstance(payload, dict):
                raise Fallback(f"GET /Items?ids=: {status}")
            pascal = "Items" in payload
            content_type = ctype
            for dto in payload.get("Items" if pascal else "items") or []:
                item_id = normalize_guid(dto.get("Id" if pascal else "id"))
                if item_id:
                    by_id[item_id] = dto
        return [by_id[i] for i in ids if i in by_id], (pascal, content_type)


BRIDGE = web.AppKey("jellyfin_bridge", JellyfinBridge)


def _ids(result: Any) -> list[str]:
    return [c.item_id for c in result.tracks]


def _artist_ids(dto: dict[str, Any]) -> set[str]:
    out = set()
    for key in ("ArtistItems", "AlbumArtists", "artistItems", "albumArtists"):
        for pair in dto.get(key) or []:
            if isinstance(pair, dict):
                g = normalize_guid(pair.get("Id") or pair.get("id"))
                if g:
                    out.add(g)
    return out


def create_app(main: web.Application) -> web.Application:
    """The bridge app: reads settings and the database pool from ``main`` (sidecar.web.keys)."""
    return kit.create_app(main, BRIDGE, JellyfinBridge)
