"""A streaming reverse proxy to one upstream server, shared by the protocol bridges.

:class:`Upstream` forwards an aiohttp request to the media server and streams the answer
back: method, path (raw, percent-encoding kept), query string, body and headers go through
unchanged except the hop-by-hop headers (RFC 9110 7.6.1, plus those named in
``Connection``) and ``Host``; ``X-Forwarded-For/-Proto/-Host`` are added.  Bodies are never
buffered whole in either direction (uploads stream from the client, downloads are copied
chunk by chunk as they arrive, compressed bodies stay compressed), redirects are passed
back to the client, and no cookie is kept between clients.  A websocket upgrade is proxied
frame by frame in both directions.  An upstream that cannot be reached gives ``502``, a
connect timeout ``504``, like nginx.

Each bridge tunes its :class:`Upstream`: whether ``X-Forwarded-*`` is added, which request
headers are dropped besides the hop-by-hop ones, and what an unreachable upstream gives.

If the upstream URL has a base path (``http://host:8096/jellyfin``), a client path that
already starts with it is forwarded as it is, any other path gets it prepended; mix routes
are matched on :meth:`Upstream.relative` (the path below the base path).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import (
    ClientError,
    ClientResponse,
    ClientSession,
    ClientTimeout,
    ClientWebSocketResponse,
    DummyCookieJar,
    TCPConnector,
    WSMsgType,
    WSServerHandshakeError,
    web,
)
from multidict import CIMultiDict, MultiMapping
from yarl import URL

log = logging.getLogger(__name__)

#: RFC 9110 section 7.6.1, plus the non-standard names proxies also strip
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "proxy-connection",
    }
)
#: auto headers aiohttp's client would add when the client sent none: leave them out
_NO_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")


def _connection_tokens(headers: MultiMapping[str]) -> set[str]:
    values = headers.getall("Connection", [])
    return {t.strip().lower() for v in values for t in (v or "").split(",") if t.strip()}


def end_to_end(headers: MultiMapping[str], drop: frozenset[str] = frozenset()) -> CIMultiDict[str]:
    """``headers`` without the hop-by-hop ones (and without ``drop``, lower-case names)."""
    named = _connection_tokens(headers)
    out: CIMultiDict[str] = CIMultiDict()
    for key, value in headers.items():
        low = key.lower()
        if low in HOP_BY_HOP or low in named or low in drop:
            continue
        out.add(key, value)
    return out


def is_websocket(request: web.BaseRequest) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


async def stream_back(request: web.Request, upstream: ClientResponse, label: str) -> web.StreamResponse:
    """Stream ``upstream``'s answer (status, end-to-end headers, body) back to the client.

    When the upstream breaks off mid-body the client's connection is cut too, so it sees a
    truncated answer rather than a complete one; the upstream connection is returned to the
    pool only when its body was read to the end.
    """
    complete = False
    try:
        response = web.StreamResponse(
            status=upstream.status, reason=upstream.reason, headers=end_to_end(upstream.headers)
        )
        await response.prepare(request)
        if request.method != "HEAD":
            try:
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
            except (ClientError, TimeoutError) as exc:
                log.warning("%s: upstream body broke off: %s", label, exc)
                if request.transport is not None:
                    request.transport.abort()
                return response
        await response.write_eof()
        complete = True
        return response
    except ConnectionResetError:  # the client went away mid-body
        return response
    finally:
        if complete:
            upstream.release()
        else:
            upstream.close()  # unread body: do not put the connection back in the pool


#: what a bridge answers when its upstream cannot be reached: (request, exception) -> answer
Unreachable = Callable[[web.Request, Exception], web.StreamResponse]


class Upstream:
    """One upstream server (``base_url`` may carry a base path) and the HTTP client pool to it."""

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout_s: float = 10.0,
        max_connections: int = 1024,
        add_forwarded: bool = True,
        drop_request: frozenset[str] = frozenset(),
        unreachable: Unreachable | None = None,
    ) -> None:
        """``add_forwarded``: add ``X-Forwarded-For/-Proto/-Host`` to forwarded requests;
        ``drop_request``: request headers (lower-case) never forwarded, besides the hop-by-hop
        ones and ``Host``; ``unreachable(request, exc)``: the answer when the upstream cannot be
        reached or times out (default: 502, 504 for a connect timeout)."""
        url = URL(base_url)
        if not url.absolute or url.scheme not in ("http", "https"):
            raise ValueError(f"upstream must be an http(s) URL, got {base_url!r}")
        self.origin = url.origin()
        self.base_path = url.path.rstrip("/")  # "" or "/jellyfin"
        self.connect_timeout_s = connect_timeout_s
        self.add_forwarded = add_forwarded
        self.drop_request = frozenset(drop_request)
        self.unreachable = unreachable
        self._max_connections = max_connections
        self._session: ClientSession | None = None

    # ---- lifecycle

    @property
    def session(self) -> ClientSession:
        if self._session is None or self._session.closed:
            self._session = ClientSession(
                connector=TCPConnector(limit=self._max_connections, limit_per_host=0),
                cookie_jar=DummyCookieJar(),  # never carry one client's cookies to another
                timeout=ClientTimeout(total=None, sock_connect=self.connect_timeout_s),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ---- paths

    def relative(self, raw_path: str) -> str:
        """``raw_path`` below the base path (the base path itself is optional in client paths)."""
        base = self.base_path
        if (
            base
            and raw_path.lower().startswith(base.lower())
            and raw_path[len(base) : len(base) + 1] in ("", "/")
        ):
            return raw_path[len(base) :] or "/"
        return raw_path

    def url(self, raw_path: str, raw_query: str = "") -> URL:
        """The upstream URL of a client path (raw, percent-encoded) and raw query string."""
        target = self.base_path + self.relative(raw_path)
        return URL(str(self.origin) + target + ("?" + raw_query if raw_query else ""), encoded=True)

    # ---- forwarding

    def forwarded_headers(
        self, request: web.BaseRequest, drop: frozenset[str] = frozenset()
    ) -> CIMultiDict[str]:
        """The request's end-to-end headers, ``Host`` handled by the client, plus
        ``X-Forwarded-For/-Proto/-Host`` (unless ``add_forwarded`` is off)."""
        headers = end_to_end(request.headers, drop | self.drop_request | {"host"})
        if not self.add_forwarded:
            return headers
        peer = request.remote or ""
        prior = request.headers.get("X-Forwarded-For")
        if peer:
            headers["X-Forwarded-For"] = f"{prior}, {peer}" if prior else peer
        headers.setdefault("X-Forwarded-Proto", request.scheme)
        if request.host:
            headers.setdefault("X-Forwarded-Host", request.host)
        return headers

    async def forward(self, request: web.Request, body: bytes | None = None) -> web.StreamResponse:
        """Send ``request`` upstream unchanged (with ``body`` when the bridge already read it,
        else the request's own stream) and stream the answer back."""
        url = self.url(request.rel_url.raw_path, request.rel_url.raw_query_string)
        if is_websocket(request):
            return await self._forward_websocket(request, url)
        headers = self.forwarded_headers(request)
        data: Any = body if body is not None else (request.content if request.body_exists else None)
        try:
            upstream = await self.session.request(
                request.method,
                url,
                headers=headers,
                data=data,
                allow_redirects=False,
                auto_decompress=False,
                skip_auto_headers=_NO_AUTO_HEADERS,
            )
        except TimeoutError as exc:
            if self.unreachable is not None:
                return self.unreachable(request, exc)
            return web.Response(status=504, text="upstream timed out\n")
        except (ClientError, OSError) as exc:
            if self.unreachable is not None:
                return self.unreachable(request, exc)
            log.warning("bridge: %s %s: upstream unreachable: %s", request.method, url.path, exc)
            return web.Response(status=502, text="upstream unreachable\n")
        return await stream_back(request, upstream, f"bridge: {request.method} {url.path}")

    async def _forward_websocket(self, request: web.Request, url: URL) -> web.StreamResponse:
        headers = self.forwarded_headers(
            request,
            drop=frozenset(
                {
                    "sec-websocket-key",
                    "sec-websocket-version",
                    "sec-websocket-extensions",
                    "sec-websocket-protocol",
                }
            ),
        )
        protocols = [
            p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()
        ]
        try:
            upstream = await self.session.ws_connect(
                url, headers=headers, protocols=protocols, autoping=True, max_msg_size=0
            )
        except WSServerHandshakeError as exc:
            # the server refused the upgrade (401 without a valid token, ...): same status to the client
            return web.Response(status=exc.status, headers=end_to_end(exc.headers) if exc.headers else None)
        except (ClientError, OSError, TimeoutError) as exc:
            log.warning("bridge: websocket %s: upstream unreachable: %s", url.path, exc)
            return web.Response(status=502, text="upstream unreachable\n")
        client = web.WebSocketResponse(
            protocols=[upstream.protocol] if upstream.protocol else (), autoping=True, max_msg_size=0
        )
        try:
            await client.prepare(request)
            to_up = asyncio.ensure_future(_pump(client, upstream))
            to_client = asyncio.ensure_future(_pump(upstream, client))
            try:
                await asyncio.wait([to_up, to_client], return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (to_up, to_client):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            code = upstream.close_code or client.close_code or 1000
            await client.close(code=code)
            return client
        finally:
            await upstream.close()


async def _pump(
    src: web.WebSocketResponse | ClientWebSocketResponse, dst: web.WebSocketResponse | ClientWebSocketResponse
) -> None:
    """Copy messages from ``src`` to ``dst`` until ``src`` closes; then close ``dst`` with its code."""
    async for msg in src:
        if msg.type == WSMsgType.TEXT:
            await dst.send_str(msg.data)
        elif msg.type == WSMsgType.BINARY:
            await dst.send_bytes(msg.data)
        elif msg.type == WSMsgType.ERROR:
            break
    if not dst.closed:
        await dst.close(code=src.close_code or 1000)
