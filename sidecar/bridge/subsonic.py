"""The Subsonic bridge: a proxy in front of Navidrome or any Subsonic server (``NAVIDROME_URL``).

Clients point at ``SUBSONIC_BRIDGE_PORT`` instead of the server.  The bridge answers

* ``getSimilarSongs`` / ``getSimilarSongs2`` (``id`` = a song, an album or an artist;
  ``count`` default 50) with a sonic mix.  The seed song is *not* in the answer (these calls
  return songs similar to the seed; clients play the seed themselves).  Album and artist ids
  give a mix around their analysed tracks, which the answer also leaves out;
* the OpenSubsonic ``sonicSimilarity`` extension: ``getSonicSimilarTracks?id&count`` (default
  10, seed excluded) and ``findSonicPath?startSongId&endSongId&count`` (default 25, both ends
  included), ``sonicMatch: [{entry, similarity}]`` with similarity = cosine similarity in
  [-1, 1] to the query song (to the start song for a path);
* ``getOpenSubsonicExtensions`` (no auth): the server's list plus ``sonicSimilarity``, or
  ``sonicSimilarity`` alone when the server does not know the call.

Each of these, in XML (default), ``f=json`` or ``f=jsonp``, on ``/rest/<m>`` and
``/rest/<m>.view``, by GET or form POST.  Song entries are the server's own ``Child`` objects,
fetched from it (``getSong``, concurrently) with the caller's credentials, in mix order.

Credentials (``u``+``t``+``s``, ``u``+``p``, ``apiKey``, HTTP Basic) are checked by the server
itself: the bridge sends them to its ``ping`` and trusts a success for
``BRIDGE_AUTH_CACHE_SECONDS``; a refusal is relayed as the server wrote it (error 40 ...) and is
never cached, so a fixed password works at once.

Once the credentials are accepted, a call the bridge owns is answered by the bridge itself when
the request is wrong, as Subsonic errors (HTTP 200, ``status="failed"``, in the caller's format):

* code 10 ("Required parameter is missing") for a missing ``id`` / ``startSongId`` /
  ``endSongId``, and for an invalid value (``count`` not an integer or below its minimum, 0 or
  1 for ``findSonicPath``; the same start and end song); the message names the parameter;
* code 70 ("The requested data was not found") for an id we cannot answer for:
  ``getSonicSimilarTracks`` and ``findSonicPath`` for a song that is unknown or not analysed
  yet (or when nothing is analysed yet); ``getSimilarSongs(2)`` for an id that neither we nor
  the server know (asked ``getArtist``, ``getSong``, ``getAlbum``, ``getMusicDirectory``).

``getSimilarSongs(2)`` still goes to the server, unchanged, and its own answer is relayed, when
the id is valid but we have no sonic answer for it (a song not analysed yet, an id only the
server knows, nothing analysed yet): the server may have its own similar songs.  Every owned
call also goes to the server when the database is unavailable and when anything fails in our
own path (logged as a warning and counted: the failure policy and fallback record of
:mod:`sidecar.bridge.kit`, shared with the Jellyfin bridge): the client gets the server's
answer, never a 500 of ours.  (A server without the call, e.g. supysonic, answers its own
"Unknown method"; that is what the client would get without the bridge.)

Everything else is proxied byte for byte and streamed both ways (``stream``, ``download``,
``getCoverArt``, Range requests, POST bodies) by :mod:`sidecar.bridge.proxy`: same method, path,
query string and headers minus hop-by-hop ones and ``Expect`` (nothing added, no cookie kept);
compressed bodies are not decoded.  A base path in ``NAVIDROME_URL`` (``http://host/music``) is
prepended to client paths that lack it.  When the server cannot be reached a ``/rest/`` call
gets Subsonic error 0 naming the server (HTTP 200), any other path a 502.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote

import aiohttp
import numpy as np
from aiohttp import web
from multidict import CIMultiDict, MultiDict

from sidecar.bridge import kit
from sidecar.bridge import subsonic_format as doc
from sidecar.bridge.kit import Fallback, reason
from sidecar.bridge.proxy import Upstream, end_to_end
from sidecar.db import tracks as tracks_db
from sidecar.mix.engine import Candidate
from sidecar.similarity.service import MixKind, MixService, NothingAnalysed, UnknownSeed
from sidecar.web.keys import SETTINGS

log = logging.getLogger(__name__)

MAX_COUNT = 500
FETCH_CONCURRENCY = 8
MAX_CONNECTIONS = 256
AUTH_PARAMS = ("u", "p", "t", "s", "apiKey")
CLIENT_PARAMS = ("v", "c")
#: request headers never forwarded besides the hop-by-hop ones and Host: the bridge answers Expect
DROP_REQUEST = frozenset({"expect"})
SKIP_AUTO_HEADERS = frozenset({"Accept", "Accept-Encoding", "User-Agent", "Content-Type"})
REST_PATH = re.compile(r"^/rest/([A-Za-z0-9]+?)(?:\.view)?$")


class SubsonicError(Exception):
    """An error the bridge answers itself (code 10: a parameter is missing or invalid, code 70:
    not found), in the caller's format."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


MISSING = 10  # "Required parameter is missing" (also used for invalid values)
NOT_FOUND = 70  # "The requested data was not found"


class UpstreamDown(Exception):
    """The upstream server could not be reached."""


@dataclass
class Answer:
    """A whole answer of the server to one of the bridge's own requests."""

    status: int
    headers: CIMultiDict[str]
    body: bytes


@dataclass
class Call:
    """One request for a call the bridge answers: its parameters (form body first, then the
    query, as Subsonic servers merge them), the raw body (to forward it) and the answer format."""

    request: web.Request
    method: str
    params: MultiDict[str]
    body: bytes | None
    fmt: doc.Format

    @classmethod
    async def read(cls, request: web.Request, method: str) -> Call:
        params: MultiDict[str] = MultiDict()
        body: bytes | None = None
        if request.method == "POST":
            body = await request.read()
            if request.content_type == "application/x-www-form-urlencoded":
                params.extend(
                    parse_qsl(body.decode(request.charset or "utf-8", "replace"), keep_blank_values=True)
                )
        params.extend(request.query)
        return cls(request, method, params, body, doc.Format.of(params))

    def get(self, name: str) -> str | None:
        value = self.params.get(name)
        return value if value else None

    def required(self, name: str) -> str:
        """A parameter the call needs; Subsonic error 10 when it is missing or empty."""
        value = self.get(name)
        if value is None:
            raise SubsonicError(MISSING, f"Required parameter is missing: {name}")
        return value

    def credentials(self) -> bytes:
        """The credentials' key in the bridge's :class:`~sidecar.bridge.kit.CredentialCache`."""
        parts = [*(self.params.get(k) for k in AUTH_PARAMS), self.request.headers.get("Authorization")]
        return kit.CredentialCache.key(parts)

    def auth_query(self) -> list[tuple[str, str]]:
        return [(k, v) for k in (*AUTH_PARAMS, *CLIENT_PARAMS) if (v := self.params.get(k)) is not None]

    def count(self, default: int, minimum: int) -> int:
        """``count`` bounded to MAX_COUNT; Subsonic error 10 when it is not an integer >= ``minimum``."""
        raw = self.get("count")
        if raw is None:
            return default
        try:
            n = int(raw)
        except ValueError:
            raise SubsonicError(
                MISSING, f"Invalid value for parameter count: {raw!r} is not an integer"
            ) from None
        if n < minimum:
            raise SubsonicError(MISSING, f"Invalid value for parameter count: {n} (the minimum is {minimum})")
        return min(n, MAX_COUNT)


class SubsonicBridge(kit.Bridge):
    """Keeps the server's acceptances in its credential cache (:mod:`sidecar.bridge.kit`)."""

    label = "Subsonic bridge"
    server = "the server"

    def __init__(self, main: web.Application) -> None:
        settings = main[SETTINGS]
        if not settings.navidrome_url:
            raise RuntimeError("NAVIDROME_URL is not set: the Subsonic bridge has nothing to proxy")
        upstream = Upstream(
            settings.navidrome_url,
            connect_timeout_s=settings.media_http_timeout_seconds,
            max_connections=MAX_CONNECTIONS,
            add_forwarded=False,
            drop_request=DROP_REQUEST,
            unreachable=self.unreachable,
        )
        super().__init__(main, upstream, log)
        #: envelope fields (version, type, serverVersion) of the server's last successful ping
        self.info: dict[str, Any] = {}
        #: how many times credentials were checked with the server (for tests and logs)
        self.auth_checks = 0

    @property
    def base_url(self) -> str:
        return (self.settings.navidrome_url or "").rstrip("/")

    # -- the entry point ----------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Our answer to a call the bridge owns; else (or when we fall back) the server's."""
        match = REST_PATH.match(unquote(self.upstream.relative(request.rel_url.raw_path)))
        method = match.group(1) if match else ""
        handler = AUTHENTICATED.get(method) or OPEN.get(method)
        if handler is None or request.method not in ("GET", "POST"):
            return await self.upstream.forward(request)
        call = await Call.read(request, method)
        answer = await self.attempt(method, lambda: self.owned(handler, call))
        return answer if answer is not None else await self.upstream.forward(request, call.body)

    async def owned(self, handler: Handler, call: Call) -> web.StreamResponse:
        """``handler``'s answer once the server accepts the credentials; the server's refusal,
        or a Subsonic error of ours (a bad request, the server unreachable)."""
        try:
            if call.method in AUTHENTICATED:
                refused = await self.authenticate(call)
                if refused is not None:
                    return refused
            return await handler(self, call)
        except UpstreamDown as exc:
            return self.down(call.fmt, str(exc))
        except SubsonicError as exc:
            log.debug("Subsonic bridge: %s: error %s", call.method, exc)
            return doc.render(call.fmt, self.info, doc.error(exc.code, exc.message), status="failed")

    # -- talking to the server ----------------------------------------------------------------
    async def api(
        self, call: Call, method: str, extra: Sequence[tuple[str, str]], fmt: Sequence[tuple[str, str]]
    ) -> Answer:
        """GET /rest/<method>.view with the caller's credentials (and client name, version,
        User-Agent, Basic auth) plus ``extra`` and the format ``fmt``; the whole answer."""
        t = self.settings.media_http_timeout_seconds
        headers = {"Accept-Encoding": "identity"}
        for name in ("Authorization", "User-Agent"):
            if name in call.request.headers:
                headers[name] = call.request.headers[name]
        try:
            async with self.upstream.session.get(
                self.upstream.url(f"/rest/{method}.view"),
                params=[*call.auth_query(), *fmt, *extra],
                headers=headers,
                allow_redirects=False,
                skip_auto_headers=SKIP_AUTO_HEADERS,
                auto_decompress=False,
                timeout=aiohttp.ClientTimeout(sock_connect=t, sock_read=t),
            ) as resp:
                return Answer(resp.status, CIMultiDict(resp.headers), await resp.read())
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamDown(reason(exc)) from None

    async def authenticate(self, call: Call) -> web.Response | None:
        """None when the server accepts the caller's credentials; else its own refusal."""
        key = call.credentials()
        if self.credentials.accepted(key):
            return None
        self.auth_checks += 1
        answer = await self.api(call, "ping", [], [("f", "json")])
        inner = doc.parse_json(answer.body)
        if answer.status == 200 and inner is not None and inner.get("status") == "ok":
            self.info = doc.upstream_info(inner)
            self.credentials.accept(key)
            return None
        if call.fmt.fmt is not doc.Fmt.JSON:
            answer = await self.api(call, "ping", [], call.fmt.query())
        return relay(answer)

    async def entries(self, call: Call, ids: Sequence[str]) -> list[doc.Entry | None]:
        """The server's ``Child`` of each id (None where it has none), in the caller's format."""
        sem = asyncio.Semaphore(FETCH_CONCURRENCY)
        fetch = call.fmt.fetch

        async def one(item_id: str) -> doc.Entry | None:
            async with sem:
                answer = await self.api(call, "getSong", [("id", item_id)], [("f", fetch)])
            return doc.entry_of(answer.body, fetch) if answer.status == 200 else None

        return list(await asyncio.gather(*(one(i) for i in ids)))

    async def artist_name(self, call: Call, artist_id: str) -> str | None:
        answer = await self.api(call, "getArtist", [("id", artist_id)], [("f", "json")])
        inner = doc.parse_json(answer.body)
        artist = inner.get("artist") if inner and inner.get("status") == "ok" else None
        name = artist.get("name") if isinstance(artist, dict) else None
        return name if isinstance(name, str) and name else None

    async def knows(self, call: Call, item_id: str) -> bool:
        """Does the server know ``item_id`` as a song, an album or a directory?"""
        answers = await asyncio.gather(
            *(
                self.api(call, method, [("id", item_id)], [("f", "json")])
                for method in ("getSong", "getAlbum", "getMusicDirectory")
            )
        )
        return any(a.status == 200 and (doc.parse_json(a.body) or {}).get("status") == "ok" for a in answers)

    def down(self, fmt: doc.Format, why: str) -> web.Response:
        message = f"Subsonic bridge: cannot reach the Subsonic server at {self.base_url} ({why})"
        log.warning("%s", message)
        return doc.render(fmt, self.info, doc.error(0, message), status="failed")

    def unreachable(self, request: web.Request, exc: Exception) -> web.Response:
        """The proxy's answer when the server cannot be reached: Subsonic error 0 on ``/rest/``."""
        if self.upstream.relative(request.rel_url.raw_path).startswith("/rest/"):
            return self.down(doc.Format.of(request.query), reason(exc))
        return web.Response(
            status=502, text=f"Subsonic bridge: cannot reach {self.base_url} ({reason(exc)})\n"
        )


def relay(answer: Answer) -> web.Response:
    """The server's answer as it wrote it (hop-by-hop headers and length recomputed)."""
    return web.Response(
        status=answer.status,
        body=answer.body,
        headers=end_to_end(answer.headers, frozenset({"content-length"})),
    )


def _similarity(x: float) -> float:
    return round(max(-1.0, min(1.0, x)), 6)


def _cosine(a: Any, b: Any) -> float:
    va, vb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    denom = float(np.linalg.norm(va) * np.linalg.norm(vb))
    return float(va @ vb) / denom if denom else 0.0


def _no_sonic_answer(param: str, item_id: str, exc: UnknownSeed | NothingAnalysed) -> SubsonicError:
    """Subsonic error 70 for a song we have no sonic data for."""
    if isinstance(exc, NothingAnalysed):
        return SubsonicError(NOT_FOUND, "No song has been analysed yet")
    if exc.reason == "unknown track":
        return SubsonicError(NOT_FOUND, f"Song not found: {param}={item_id}")
    return SubsonicError(NOT_FOUND, f"Song {param}={item_id} has no sonic analysis yet ({exc.reason})")


async def _seed(svc: MixService, param: str, item_id: str) -> Candidate:
    try:
        return await svc.song_seed(item_id)
    except (UnknownSeed, NothingAnalysed) as exc:
        raise _no_sonic_answer(param, item_id, exc) from None


# -- the calls the bridge answers ----------------------------------------------------------------


async def similar_songs(bridge: SubsonicBridge, call: Call) -> web.StreamResponse:
    seed_id = call.required("id")
    count = call.count(50, 0)
    svc = bridge.mixes()
    kind = await tracks_db.id_kind(svc.db, seed_id)
    try:
        if kind == "song":
            result = await svc.mix(MixKind.SONG, seed_id, count + 1)
        elif kind == "album":
            result = await svc.mix(MixKind.ALBUM, seed_id, count)
        else:
            name = await bridge.artist_name(call, seed_id)
            if name is None:
                if await bridge.knows(call, seed_id):
                    raise Fallback(f"{seed_id}: known to the server only")
                raise SubsonicError(NOT_FOUND, f"Song, album or artist not found: id={seed_id}")
            result = await svc.mix(MixKind.ARTIST, name, count)
    except (UnknownSeed, NothingAnalysed) as exc:
        raise Fallback(str(exc) or "nothing analysed") from None
    ids = [c.item_id for c in result.tracks if c.item_id != seed_id][:count]
    entries = [e for e in await bridge.entries(call, ids) if e is not None]
    if not entries:
        raise Fallback("empty mix")
    key = "similarSongs2" if call.method == "getSimilarSongs2" else "similarSongs"
    return doc.render(call.fmt, bridge.info, doc.songs(key, entries))


async def sonic_similar_tracks(bridge: SubsonicBridge, call: Call) -> web.StreamResponse:
    seed_id = call.required("id")
    count = call.count(10, 0)
    svc = bridge.mixes()
    try:  # one round trip: the seed and its neighbours
        similar = await svc.similar(seed_id, count, eliminate_duplicates=True) if count else []
    except (UnknownSeed, NothingAnalysed) as exc:
        raise _no_sonic_answer("id", seed_id, exc) from None
    if not count:
        await _seed(svc, "id", seed_id)
    entries = await bridge.entries(call, [c.item_id for c in similar])
    matches = [
        (e, _similarity(1.0 - c.distance)) for c, e in zip(similar, entries, strict=True) if e is not None
    ]
    return doc.render(call.fmt, bridge.info, doc.sonic_matches(matches))


async def find_sonic_path(bridge: SubsonicBridge, call: Call) -> web.StreamResponse:
    start_id, end_id = call.required("startSongId"), call.required("endSongId")
    count = call.count(25, 1)
    if start_id == end_id:
        raise SubsonicError(
            MISSING, f"Invalid value for parameter endSongId: {end_id} is also the startSongId"
        )
    svc = bridge.mixes()
    start, end = await _seed(svc, "startSongId", start_id), await _seed(svc, "endSongId", end_id)
    path = (await svc.path(start, end, max(2, count))).tracks
    entries = await bridge.entries(call, [c.item_id for c in path])
    matches = [
        (e, _similarity(_cosine(start.embedding, c.embedding)))
        for c, e in zip(path, entries, strict=True)
        if e is not None
    ]
    return doc.render(call.fmt, bridge.info, doc.sonic_matches(matches))


async def open_subsonic_extensions(bridge: SubsonicBridge, call: Call) -> web.StreamResponse:
    own = {*AUTH_PARAMS, *CLIENT_PARAMS, "f", "callback"}
    extra = [(k, v) for k, v in call.params.items() if k not in own]
    answer = await bridge.api(call, "getOpenSubsonicExtensions", extra, [("f", "json")])
    inner = doc.parse_json(answer.body) or {}
    info = {**bridge.info, **doc.upstream_info(inner)}
    listed = (
        inner.get("openSubsonicExtensions") if answer.status == 200 and inner.get("status") == "ok" else None
    )
    items = [e for e in listed or [] if isinstance(e, dict) and e.get("name") != doc.SONIC_EXTENSION["name"]]
    return doc.render(call.fmt, info, doc.extensions([*items, doc.SONIC_EXTENSION]))


Handler = Callable[[SubsonicBridge, Call], Awaitable[web.StreamResponse]]
AUTHENTICATED: dict[str, Handler] = {
    "getSimilarSongs": similar_songs,
    "getSimilarSongs2": similar_songs,
    "getSonicSimilarTracks": sonic_similar_tracks,
    "findSonicPath": find_sonic_path,
}
OPEN: dict[str, Handler] = {"getOpenSubsonicExtensions": open_subsonic_extensions}

BRIDGE = web.AppKey("subsonic_bridge", SubsonicBridge)


def create_app(main: web.Application) -> web.Application:
    """The Subsonic bridge app; settings and the database pool come from ``main`` (sidecar.web.keys)."""
    return kit.create_app(main, BRIDGE, SubsonicBridge)
