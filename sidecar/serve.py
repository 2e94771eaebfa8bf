"""Serving: the web app and the bridges on their ports, until a stop signal, with the child
processes `audiomuse up` / `web` keep running (see ``sidecar/supervise.py``)."""

from __future__ import annotations

import asyncio
import errno
import gc
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from sidecar.config import Settings
from sidecar.services import Endpoints


async def wait_for_stop_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def freeze_heap_then_wait_for_stop_signal() -> None:
    """Run once the web app and the bridges listen.  What exists by now (modules, the app, pools,
    caches) lives as long as the process: ``gc.freeze`` takes it out of the cyclic collector's
    full passes, which otherwise paused a loaded web process for up to 80 ms (bench/bridge.py:
    gen-2 collections 369 ms in all, longest 82 ms; frozen: 42 ms, longest 29 ms)."""
    gc.collect()
    gc.freeze()
    await wait_for_stop_signal()


async def serve_web(
    settings: Settings,
    endpoints: Endpoints,
    until: Callable[[], Awaitable[None]] = freeze_heap_then_wait_for_stop_signal,
) -> None:
    """The web app, and the protocol bridges whose ports are set, until a stop signal."""
    from aiohttp import web

    from sidecar.app import create_app
    from sidecar.bridge import configured_bridges
    from sidecar.web.errors import AppRunner
    from sidecar.web.metrics import instrument_bridge

    main = create_app(settings, endpoints)
    runners = [AppRunner(main, handle_signals=False, access_log=None)]
    await runners[0].setup()  # runs the main app's start-up: pool, queue, provider
    try:
        shared = settings.web_processes > 1  # several processes accept on the same ports
        await listen(
            web.TCPSite(runners[0], settings.web_host, settings.web_port, reuse_port=shared),
            "WEB_PORT",
            settings.web_host,
            settings.web_port,
        )
        port = runners[0].addresses[0][1] if runners[0].addresses else settings.web_port
        print(f"AudioMuse sidecar listening on http://{settings.web_host}:{port}", flush=True)
        for name, bridge_port, factory in configured_bridges(settings):
            runner = AppRunner(instrument_bridge(factory(main), name), handle_signals=False, access_log=None)
            await runner.setup()
            runners.append(runner)
            variable = "JELLYFIN_BRIDGE_PORT" if "jellyfin" in name.lower() else "SUBSONIC_BRIDGE_PORT"
            await listen(
                web.TCPSite(runner, settings.bridge_host, bridge_port, reuse_port=shared),
                variable,
                settings.bridge_host,
                bridge_port,
            )
            actual = runner.addresses[0][1] if runner.addresses else bridge_port
            print(f"{name} listening on http://{settings.bridge_host}:{actual}", flush=True)
        await until()
    finally:
        for runner in reversed(runners):
            await runner.cleanup()


async def listen(site: Any, variable: str, host: str, port: int) -> None:
    """Start listening; a port that is taken (or not ours to use) is one clear line naming the
    variable that sets it, not a traceback."""
    try:
        await site.start()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise RuntimeError(
                f"{variable}={port}: {host}:{port} is already in use by another program "
                f"(another audiomuse?); stop it or set {variable} to a free port"
            ) from None
        raise RuntimeError(
            f"{variable}={port}: cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from None


def supervising(children: list[Any]) -> Callable[[], Awaitable[None]]:
    """Start ``children``; the returned coroutine function (serve_web's ``until``) restarts any
    that exits while the web app runs, until a stop signal."""
    from sidecar.supervise import watch_all

    for child in children:
        child.start()

    async def until() -> None:
        watcher = asyncio.ensure_future(watch_all(children))
        try:
            await freeze_heap_then_wait_for_stop_signal()
        finally:
            watcher.cancel()

    return until


#: where the web processes write their metrics' samples when there are several (prometheus-client)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def share_metrics(settings: Settings) -> str | None:
    """With WEB_PROCESSES > 1, before any process imports prometheus-client: a fresh folder where
    each web process writes its metrics' samples (summed by whichever answers a scrape), named in
    the environment the processes inherit.  Returns it, for :func:`unshare_metrics`."""
    import tempfile

    if settings.web_processes <= 1 or os.environ.get(MULTIPROC_ENV):
        return None
    path = tempfile.mkdtemp(prefix="audiomuse-metrics-")
    os.environ[MULTIPROC_ENV] = path
    return path


def unshare_metrics(path: str | None) -> None:
    if path:
        import shutil

        shutil.rmtree(path, ignore_errors=True)
        os.environ.pop(MULTIPROC_ENV, None)


def web_siblings(settings: Settings, endpoints: Endpoints) -> list[Any]:
    """WEB_PROCESSES - 1 more web processes on the same ports (SO_REUSEPORT), supervised."""
    from sidecar.supervise import Supervised

    env = {**os.environ, "DATABASE_URL": endpoints.postgres_dsn, "REDIS_URL": endpoints.redis_url}
    return [
        Supervised(f"web process {i + 2}", [sys.executable, "-m", "sidecar", "web", "--single"], env)
        for i in range(settings.web_processes - 1)
    ]
