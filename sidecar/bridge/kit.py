"""What the protocol bridges share, besides the streaming proxy (:mod:`sidecar.bridge.proxy`).

* :class:`Bridge`, the base of both bridges: the main app (settings and database pool are read
  from its keys, sidecar.web.keys), the :class:`~sidecar.bridge.proxy.Upstream` that every request
  we do not answer goes through, one :class:`CredentialCache` and one :class:`FallbackRecord`.
* One credential cache: the media server's verdict on a caller's credentials, trusted for
  ``BRIDGE_AUTH_CACHE_SECONDS``.  Keys are digests (the cache holds no token or password).  The
  Jellyfin bridge keeps refusals (a refused token is forwarded at once, no mix computed), the
  Subsonic bridge keeps acceptances (its ``ping`` is not repeated; a refusal is never kept, so
  a corrected password works at once).
* One failure policy, :meth:`Bridge.attempt`: our answer on a route the bridge owns, or
  ``None``, and the media server's own answer goes to the client, when we have no sonic answer
  (:class:`Fallback`, an unknown or unanalysed seed, nothing analysed) and when our own path
  fails (the database, the network, a bug): never a 500 of ours.
* One fallback record: every fallback is logged on the bridge's own logger with its reason (at
  debug for "no sonic answer", as a warning for a failure, with the traceback unless the
  database or the network failed) and counted by outcome in :attr:`FallbackRecord.counts`.
* :func:`create_app`: the bridge's aiohttp app (one catch-all route; the bridge is built at
  start-up, its upstream closed at shutdown).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import ClassVar, TypeVar

import asyncpg
from aiohttp import ClientError, web

from sidecar.bridge.proxy import Upstream
from sidecar.config import Settings
from sidecar.similarity.service import MixService, NothingAnalysed, UnknownSeed
from sidecar.web.keys import DB, SETTINGS

R = TypeVar("R")
B = TypeVar("B", bound="Bridge")

#: our path could not reach the database or the media server: a warning without a traceback
UNAVAILABLE = (asyncpg.PostgresError, asyncpg.InterfaceError, ClientError, OSError, TimeoutError)
#: outcomes counted by :class:`FallbackRecord`
DECLINED, UNAVAILABLE_OUTCOME, FAILED = "declined", "unavailable", "failed"

MAIN = web.AppKey("main", web.Application)


class Fallback(Exception):
    """Our path gives up on a request (no sonic answer): the media server's own answer goes to
    the client."""


def reason(exc: BaseException) -> str:
    """``Type: message`` of an exception (just the type when the message is empty)."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class CredentialCache:
    """The media server's verdict on credentials, trusted for ``ttl_s`` seconds (0: never kept)."""

    MAX = 10_000

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self._verdicts: dict[bytes, tuple[bool, float]] = {}

    @staticmethod
    def key(parts: object) -> bytes:
        """A digest of credentials (any JSON-able value): what the cache holds instead of them."""
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).digest()

    def verdict(self, key: bytes) -> bool | None:
        """True: accepted, False: refused, None: not known (or no longer trusted)."""
        entry = self._verdicts.get(key)
        if entry is None:
            return None
        accepted, until = entry
        if until <= self.clock():
            del self._verdicts[key]
            return None
        return accepted

    def accepted(self, key: bytes) -> bool:
        return self.verdict(key) is True

    def refused(self, key: bytes) -> bool:
        return self.verdict(key) is False

    def accept(self, key: bytes) -> None:
        self._remember(key, True)

    def refuse(self, key: bytes) -> None:
        self._remember(key, False)

    def _remember(self, key: bytes, accepted: bool) -> None:
        if self.ttl_s <= 0:
            return
        now = self.clock()
        if key not in self._verdicts and len(self._verdicts) >= self.MAX:
            self._verdicts = {k: v for k, v in self._verdicts.items() if v[1] > now}
            if len(self._verdicts) >= self.MAX:
                self._verdicts.clear()
        self._verdicts[key] = (accepted, now + self.ttl_s)

    def __len__(self) -> int:
        return len(self._verdicts)


class FallbackRecord:
    """How a bridge notes that the media server's own answer went to the client, and why."""

    def __init__(self, log: logging.Logger, label: str, server: str) -> None:
        self.log, self.label, self.server = log, label, server
        #: fallbacks by outcome: ``declined`` (no sonic answer), ``unavailable`` (the database or
        #: the network failed), ``failed`` (anything else in our path)
        self.counts: Counter[str] = Counter()

    def declined(self, where: str, why: str) -> None:
        self.counts[DECLINED] += 1
        self.log.debug("%s: %s: %s; %s answers", self.label, where, why, self.server)

    def failed(self, where: str, exc: Exception) -> None:
        if isinstance(exc, UNAVAILABLE):
            self.counts[UNAVAILABLE_OUTCOME] += 1
            self.log.warning(
                "%s: %s: unavailable (%s); %s answers", self.label, where, reason(exc), self.server
            )
        else:
            self.counts[FAILED] += 1
            self.log.warning(
                "%s: %s: our path failed (%s); %s answers",
                self.label,
                where,
                reason(exc),
                self.server,
                exc_info=exc,
            )


class Bridge:
    """The base of a protocol bridge (see the module's docstring)."""

    #: names in log records: "Jellyfin bridge: <where>: <why>; Jellyfin answers"
    label: ClassVar[str] = "bridge"
    server: ClassVar[str] = "the server"

    def __init__(self, main: web.Application, upstream: Upstream, log: logging.Logger) -> None:
        self.main = main
        self.upstream = upstream
        self.log = log
        self.credentials = CredentialCache(self.settings.bridge_auth_cache_seconds)
        self.fallbacks = FallbackRecord(log, self.label, self.server)

    @property
    def settings(self) -> Settings:
        return self.main[SETTINGS]

    def mixes(self) -> MixService:
        if DB not in self.main:
            raise Fallback("database not ready")
        return MixService(self.main[DB], self.settings)

    async def attempt(self, where: str, answer: Callable[[], Awaitable[R]]) -> R | None:
        """The failure policy: ``answer()``, or None (recorded) when the server should answer."""
        try:
            return await answer()
        except (Fallback, UnknownSeed, NothingAnalysed) as why:
            self.fallbacks.declined(where, str(why) or type(why).__name__)
        except Exception as exc:
            self.fallbacks.failed(where, exc)
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:  # pragma: no cover - abstract
        raise NotImplementedError

    async def close(self) -> None:
        await self.upstream.close()


def create_app(
    main: web.Application, key: web.AppKey[B], make: Callable[[web.Application], B]
) -> web.Application:
    """A bridge's app: ``make(main)`` at start-up, stored under ``key``; every request to its
    :meth:`Bridge.handle`."""
    app = web.Application()
    app[MAIN] = main

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        bridge = app[key] = make(main)
        try:
            yield
        finally:
            await bridge.close()

    async def handle(request: web.Request) -> web.StreamResponse:
        return await request.app[key].handle(request)

    app.cleanup_ctx.append(lifecycle)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app
