"""The bridges' shared kit (sidecar/bridge/kit.py) and the options of their one proxy
(sidecar/bridge/proxy.py): the credential cache, the failure policy with its fallback record,
and the Upstream settings the Subsonic bridge uses where the Jellyfin bridge uses the defaults.

No database and no media server: a bare main app and small hand-written upstreams.  The
policy end to end, against a real client and server, is in test_bridge_jellyfin.py and
test_bridge_subsonic.py (test_our_failure_falls_back_to_*).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import asyncpg
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer
from servers.supysonic import find_free_port

from sidecar.bridge import jellyfin, kit, subsonic
from sidecar.bridge.kit import Bridge, CredentialCache, Fallback
from sidecar.bridge.proxy import Upstream
from sidecar.similarity.service import NothingAnalysed, UnknownSeed
from sidecar.web.keys import SETTINGS

LOGGER = "tests.bridge_kit"

# -- one credential cache ----------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_credential_cache_keeps_each_verdict_for_its_ttl() -> None:
    clock = Clock()
    cache = CredentialCache(60, clock)
    good, bad, other = (CredentialCache.key(["u", "t", "s", n]) for n in ("good", "bad", "other"))
    assert cache.verdict(good) is None and not cache.accepted(good) and not cache.refused(good)
    cache.accept(good)
    cache.refuse(bad)
    assert cache.accepted(good) and not cache.refused(good)
    assert cache.refused(bad) and not cache.accepted(bad)
    assert cache.verdict(other) is None
    clock.now += 59.9
    assert cache.accepted(good) and cache.refused(bad)
    clock.now += 0.1
    assert cache.verdict(good) is None and cache.verdict(bad) is None and len(cache) == 0
    cache.refuse(good)  # a new verdict replaces the old one
    cache.accept(good)
    assert cache.accepted(good)


def test_credential_cache_with_no_ttl_keeps_nothing() -> None:
    cache = CredentialCache(0)
    key = CredentialCache.key("token")
    cache.accept(key)
    cache.refuse(key)
    assert cache.verdict(key) is None and len(cache) == 0


def test_credential_cache_is_bounded() -> None:
    clock = Clock()
    cache = CredentialCache(10, clock)
    cache.MAX = 3
    keys = [CredentialCache.key(i) for i in range(5)]
    for key in keys[:3]:
        cache.accept(key)
    clock.now += 5
    cache.accept(keys[0])  # already held: no eviction
    assert len(cache) == 3
    cache.accept(keys[3])  # full and nothing expired: start over
    assert len(cache) == 1 and cache.accepted(keys[3])
    clock.now += 6
    cache.accept(keys[0])
    cache.accept(keys[1])
    clock.now += 4.5  # keys[3] expired, keys[0] and keys[1] not
    cache.accept(keys[4])  # full: the expired verdict goes
    assert len(cache) == 3 and cache.verdict(keys[3]) is None
    assert cache.accepted(keys[0]) and cache.accepted(keys[1]) and cache.accepted(keys[4])


def test_credential_keys_are_digests() -> None:
    secret = "my-password-123"
    key = CredentialCache.key(["alice", secret, None])
    assert isinstance(key, bytes) and len(key) == 32 and secret.encode() not in key
    assert (
        key
        == CredentialCache.key(["alice", secret, None])
        != CredentialCache.key(["alice", secret + "!", None])
    )


# -- one failure policy, one fallback record -----------------------------------------------------------


class Demo(Bridge):
    label = "Demo bridge"
    server = "Demo"


@pytest.fixture
def demo(make_settings: Any) -> Demo:
    main = web.Application()
    main[SETTINGS] = make_settings()
    return Demo(main, Upstream("http://127.0.0.1:9"), logging.getLogger(LOGGER))


def raising(exc: BaseException) -> Callable[[], Awaitable[str]]:
    async def answer() -> str:
        raise exc

    return answer


async def test_our_answer_when_nothing_fails(demo: Demo) -> None:
    async def answer() -> str:
        return "sonic"

    assert await demo.attempt("/x", answer) == "sonic"
    assert sum(demo.fallbacks.counts.values()) == 0


@pytest.mark.parametrize(
    "why", [Fallback("not a GUID"), UnknownSeed("abc", "track not analysed"), NothingAnalysed()]
)
async def test_no_sonic_answer_is_a_debug_record(
    demo: Demo, why: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        assert await demo.attempt("/Items/abc/InstantMix", raising(why)) is None
    assert dict(demo.fallbacks.counts) == {"declined": 1}
    (record,) = caplog.records
    assert record.name == LOGGER and record.levelno == logging.DEBUG and not record.exc_info
    assert (
        record.getMessage()
        == f"Demo bridge: /Items/abc/InstantMix: {str(why) or type(why).__name__}; Demo answers"
    )


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError("database down"),
        TimeoutError(),
        asyncpg.InterfaceError("pool is closed"),
        asyncpg.PostgresError("relation does not exist"),
        aiohttp.ServerDisconnectedError(),
    ],
)
async def test_database_or_network_trouble_is_a_warning_without_traceback(
    demo: Demo, exc: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        assert await demo.attempt("getSimilarSongs2", raising(exc)) is None
    assert dict(demo.fallbacks.counts) == {"unavailable": 1}
    (record,) = caplog.records
    assert record.levelno == logging.WARNING and not record.exc_info
    assert (
        record.getMessage() == f"Demo bridge: getSimilarSongs2: unavailable ({kit.reason(exc)}); Demo answers"
    )


async def test_a_bug_in_our_path_is_a_warning_with_traceback(
    demo: Demo, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        for exc in (RuntimeError("boom"), KeyError("Items"), ValueError("not JSON")):
            assert await demo.attempt("/Items/abc/Similar", raising(exc)) is None
    assert dict(demo.fallbacks.counts) == {"failed": 3}
    assert [r.levelno for r in caplog.records] == [logging.WARNING] * 3
    assert all(r.exc_info and r.exc_info[1] is not None for r in caplog.records)
    assert (
        caplog.records[0].getMessage()
        == "Demo bridge: /Items/abc/Similar: our path failed (RuntimeError: boom); "
        "Demo answers"
    )


async def test_cancellation_is_not_a_fallback(demo: Demo) -> None:
    with pytest.raises(asyncio.CancelledError):
        await demo.attempt("/x", raising(asyncio.CancelledError()))
    assert sum(demo.fallbacks.counts.values()) == 0


async def test_no_database_yet_is_a_fallback(demo: Demo) -> None:
    with pytest.raises(Fallback, match="database not ready"):
        demo.mixes()

    async def answer() -> str:
        demo.mixes()
        return "sonic"

    assert await demo.attempt("/x", answer) is None
    assert dict(demo.fallbacks.counts) == {"declined": 1}


def test_both_bridges_are_built_on_the_kit() -> None:
    for module, cls in ((jellyfin, jellyfin.JellyfinBridge), (subsonic, subsonic.SubsonicBridge)):
        assert issubclass(cls, Bridge), cls
        assert module.Fallback is kit.Fallback, module.__name__
        for name in ("RefusedCredentials", "dispatch", "_reason"):
            assert not hasattr(module, name), (module.__name__, name)
    assert not hasattr(subsonic.SubsonicBridge, "forward"), (
        "the Subsonic bridge forwards through proxy.Upstream"
    )


def test_a_bridge_without_its_server_url_does_not_start(make_settings: Any) -> None:
    main = web.Application()
    main[SETTINGS] = make_settings()
    with pytest.raises(RuntimeError, match="JELLYFIN_URL is not set"):
        jellyfin.JellyfinBridge(main)
    with pytest.raises(RuntimeError, match="NAVIDROME_URL is not set"):
        subsonic.SubsonicBridge(main)


# -- the proxy's options ---------------------------------------------------------------------------


@pytest_asyncio.fixture
async def echo() -> AsyncIterator[str]:
    """An upstream answering every request with what it received (JSON)."""

    async def handler(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "path": request.raw_path,
                "headers": dict(request.headers),
                "body": (await request.read()).decode(),
            }
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = TestServer(app)
    await server.start_server()
    yield str(server.make_url("/base"))
    await server.close()


@pytest_asyncio.fixture
async def proxy_to() -> AsyncIterator[Callable[..., Awaitable[str]]]:
    """Start a proxy in front of an Upstream(url, **options); returns the proxy's URL."""
    servers: list[TestServer] = []
    upstreams: list[Upstream] = []

    async def start(url: str, *, read_body: bool = False, **options: Any) -> str:
        upstream = Upstream(url, **options)
        upstreams.append(upstream)

        async def handler(request: web.Request) -> web.StreamResponse:
            body = await request.read() if read_body else None
            return await upstream.forward(request, body)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        server = TestServer(app)
        await server.start_server()
        servers.append(server)
        return str(server.make_url(""))

    yield start
    for server in servers:
        await server.close()
    for upstream in upstreams:
        await upstream.close()


async def test_forwarded_headers_and_dropped_request_headers(echo: str, proxy_to: Any) -> None:
    jellyfin_like = await proxy_to(echo)
    subsonic_like = await proxy_to(echo, add_forwarded=False, drop_request=frozenset({"expect", "x-private"}))
    headers = {"X-Client": "kept", "X-Private": "secret"}
    async with aiohttp.ClientSession() as http:
        async with http.get(jellyfin_like.rstrip("/") + "/rest/ping.view?u=me", headers=headers) as resp:
            seen = await resp.json()
        assert seen["path"] == "/base/rest/ping.view?u=me"
        assert seen["headers"]["X-Client"] == "kept" and seen["headers"]["X-Private"] == "secret"
        assert (
            seen["headers"]["X-Forwarded-For"].startswith("127.0.0.1")
            and "X-Forwarded-Host" in seen["headers"]
        )
        async with http.post(
            subsonic_like.rstrip("/") + "/rest/x", data=b"form=1", headers=headers, expect100=True
        ) as resp:
            seen = await resp.json()
        assert seen["headers"]["X-Client"] == "kept" and seen["body"] == "form=1"
        assert not {"X-Private", "Expect", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host"} & set(
            seen["headers"]
        )


async def test_forward_with_a_body_already_read(echo: str, proxy_to: Any) -> None:
    """A bridge that read a POST body (the Subsonic bridge reads form parameters) forwards it."""
    url = await proxy_to(echo, read_body=True)
    async with (
        aiohttp.ClientSession() as http,
        http.post(url.rstrip("/") + "/rest/getSimilarSongs2.view", data={"id": "a b", "u": "me"}) as resp,
    ):
        seen = await resp.json()
    assert seen["body"] == "id=a+b&u=me"
    assert seen["headers"]["Content-Type"] == "application/x-www-form-urlencoded"


async def test_unreachable_upstream_default_and_hook(proxy_to: Any) -> None:
    dead = f"http://127.0.0.1:{find_free_port()}"
    calls: list[tuple[str, str]] = []

    def unreachable(request: web.Request, exc: Exception) -> web.Response:
        calls.append((request.path, type(exc).__name__))
        return web.Response(status=299, text="ours")

    default, hooked = await proxy_to(dead), await proxy_to(dead, unreachable=unreachable)
    async with aiohttp.ClientSession() as http:
        async with http.get(default.rstrip("/") + "/x") as resp:
            assert resp.status == 502
        async with http.get(hooked.rstrip("/") + "/rest/ping") as resp:
            assert (resp.status, await resp.text()) == (299, "ours")
    assert calls == [("/rest/ping", "ClientConnectorError")]
