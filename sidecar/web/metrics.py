"""Prometheus metrics (served by ``sidecar/routes/metrics.py`` as ``GET /metrics``).

Two kinds, by where the truth lives:

* **Counted in the web process** that answers: HTTP requests by app (``web``,
  ``jellyfin_bridge``, ``subsonic_bridge``), route and status with latency histograms, mixes
  served, database pool use.  The label ``route`` is the route's canonical path (``/api/status/
  {task_id}``) or, on a bridge, the call it answers (``instantmix:albums``,
  ``/rest/getSimilarSongs``, ``proxy`` for everything passed through), never the raw URL.
  With ``WEB_PROCESSES`` > 1 the processes write their samples to files in one folder
  (prometheus-client's multiprocess mode, ``PROMETHEUS_MULTIPROC_DIR``, set up by
  ``sidecar.serve.share_metrics`` before any process imports prometheus-client) and a scrape,
  whichever process answers it, sums them.
* **Read at scrape time** from the database and Redis, the state every process shares: tracks
  by analysis status and failures by reason (the worker's work), runs in progress, finished
  task durations, queue depth.  Nothing counted in the worker process has to reach the web
  process, and the figures survive restarts.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import asyncpg
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from sidecar.config import Settings
from sidecar.logs import ROUTE
from sidecar.serve import MULTIPROC_ENV
from sidecar.web.errors import json_error

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: this process's own samples (multiprocess mode: written to files, summed at scrape)
REGISTRY = CollectorRegistry()

HTTP_REQUESTS = Counter(
    "audiomuse_http_requests",
    "HTTP requests answered, by app, route (canonical path), method and status.",
    ["app", "route", "method", "status"],
    registry=REGISTRY,
)
HTTP_DURATION = Histogram(
    "audiomuse_http_request_duration_seconds",
    "Time from a request's arrival to its answer (a streamed answer: to its end).",
    ["app", "route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120),
    registry=REGISTRY,
)
MIXES_SERVED = Counter(
    "audiomuse_mixes_served",
    "Mixes and similar-track lists answered by this service (not passed to the media server).",
    ["app", "route"],
    registry=REGISTRY,
)
DB_POOL = Gauge(
    "audiomuse_db_pool_connections",
    "Database connections of the web processes' pools: in_use, idle, max.",
    ["state"],
    multiprocess_mode="livesum",
    registry=REGISTRY,
)

#: answers of the web app that are mixes (when 2xx)
WEB_MIX_ROUTES = frozenset({"/api/mix", "/api/similar_tracks", "/api/find_path", "/api/similar_artists"})
TASK_BUCKETS = (1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 24 * 3600.0)


# -- counting requests -------------------------------------------------------------------------


#: the labelled children by (app, route, method, status): ``labels()`` costs 4x an increment
_CHILDREN: dict[tuple[str, str, str, int], tuple[Any, Any]] = {}
_MIX_CHILDREN: dict[tuple[str, str], Any] = {}


def observe(app: str, route: str, method: str, status: int, seconds: float, mix: bool) -> None:
    key = (app, route, method, status)
    children = _CHILDREN.get(key)
    if children is None:
        children = _CHILDREN[key] = (
            HTTP_REQUESTS.labels(app, route, method, str(status)),
            HTTP_DURATION.labels(app, route, method),
        )
    children[0].inc()
    children[1].observe(seconds)
    if mix:
        mixes = _MIX_CHILDREN.get((app, route))
        if mixes is None:
            mixes = _MIX_CHILDREN[(app, route)] = MIXES_SERVED.labels(app, route)
        mixes.inc()


def _canonical(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "(unmatched)"


def _counted(
    app: str, route_of: Callable[[web.Request], str], is_mix: Callable[[web.Request, str, Any], bool]
) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status, response = 500, None
        route = route_of(request)
        ROUTE.set(route)  # for the log records of this request (sidecar/logs.py)
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except asyncio.CancelledError:
            # the client went away: before its answer (499), or after it had it while a
            # proxied answer was still being finished (the status it got, noted at prepare)
            status = request.get(SENT_STATUS, 499)
            raise
        finally:
            mix = response is not None and 200 <= status < 300 and is_mix(request, route, response)
            observe(app, route, request.method, status, time.perf_counter() - started, mix)

    return middleware


def web_middleware() -> Any:
    """Outermost middleware of the main app: every answer counted, errors included."""
    return _counted("web", _canonical, lambda request, route, response: route in WEB_MIX_ROUTES)


def public_metrics(inner: Any, settings: Settings) -> Any:
    """``inner`` (the API token middleware), except for /metrics: public unless
    METRICS_REQUIRE_TOKEN is true and API_TOKEN set; then ``Authorization: Bearer <API_TOKEN>``
    or 401 (a scraper gets a clear refusal, not the login form)."""
    token = settings.api_token if settings.metrics_require_token else None

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/metrics":
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            if token and not (
                scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), token.encode())
            ):
                return json_error(401, "unauthorized", "send Authorization: Bearer <API_TOKEN>")
            return await handler(request)
        response: web.StreamResponse = await inner(request, handler)
        return response

    return middleware


# -- the bridges -------------------------------------------------------------------------------


def _jellyfin_route(request: web.Request) -> str:
    from sidecar.bridge import jellyfin

    bridge = request.app.get(jellyfin.BRIDGE)
    if bridge is None:
        return "proxy"
    path = bridge.upstream.relative(request.rel_url.raw_path)
    endpoint = bridge.plugin.match(path) if request.method == "GET" else None
    if endpoint is not None:
        return f"/AudioMuseAI/{endpoint}"
    route = jellyfin.match_route(path, request.query) if request.method == "GET" else None
    if route is None:
        return "proxy"
    return f"{'instantmix' if route.action == 'mix' else 'similar'}:{route.kind}"


def _jellyfin_mix(request: web.Request, route: str, response: Any) -> bool:
    if route.startswith("/AudioMuseAI/"):
        return route in ("/AudioMuseAI/similar_tracks", "/AudioMuseAI/find_path")
    # our own answers carry Server-Timing: mix;dur=..., Jellyfin's do not
    return route != "proxy" and "mix;" in response.headers.get("Server-Timing", "")


def _subsonic_route(request: web.Request) -> str:
    from urllib.parse import unquote

    from sidecar.bridge import subsonic

    bridge = request.app.get(subsonic.BRIDGE)
    if bridge is None:
        return "proxy"
    match = subsonic.REST_PATH.match(unquote(bridge.upstream.relative(request.rel_url.raw_path)))
    method = match.group(1) if match else ""
    if method in subsonic.AUTHENTICATED or method in subsonic.OPEN:
        return f"/rest/{method}"
    return "proxy"


#: the status of the answer a client was sent (a streamed answer's headers went out)
SENT_STATUS = web.RequestKey("metrics_sent_status", int)


async def _note_sent_status(request: web.Request, response: web.StreamResponse) -> None:
    request[SENT_STATUS] = response.status


def instrument_bridge(app: web.Application, name: str) -> web.Application:
    """Count a bridge app's requests (``name``: its label in the log, "Jellyfin bridge" or
    "Subsonic bridge").  A Subsonic answer is a mix served when the bridge's fallback count did
    not move while it was made (under concurrent fallbacks a mix may go uncounted)."""
    app.on_response_prepare.append(_note_sent_status)
    if "jellyfin" in name.lower():
        app.middlewares.append(_counted("jellyfin_bridge", _jellyfin_route, _jellyfin_mix))
        return app
    from sidecar.bridge import subsonic

    def fallbacks(request: web.Request) -> int:
        bridge = request.app.get(subsonic.BRIDGE)
        return sum(bridge.fallbacks.counts.values()) if bridge is not None else 0

    before_key = web.RequestKey("metrics_fallbacks_before", int)

    @web.middleware
    async def note_fallbacks(request: web.Request, handler: Handler) -> web.StreamResponse:
        request[before_key] = fallbacks(request)
        return await handler(request)

    def is_mix(request: web.Request, route: str, response: Any) -> bool:
        similar = route not in ("proxy", "/rest/getOpenSubsonicExtensions")
        return similar and fallbacks(request) == request.get(before_key, -1)

    app.middlewares.append(_counted("subsonic_bridge", _subsonic_route, is_mix))
    app.middlewares.append(note_fallbacks)
    return app


# -- the scrape --------------------------------------------------------------------------------


class _Snapshot(Collector):
    """Figures read at scrape time (database, Redis), as metric families."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families


async def shared_families(db: asyncpg.Pool, queue: Any, queues: dict[str, str]) -> list[Metric]:
    """The state every process shares: tracks, failures, runs, task durations, queue depth."""
    from sidecar.db import metrics as metrics_db
    from sidecar.db.tracks import status_counts

    counts, reasons, runs, durations, depths = await asyncio.gather(
        status_counts(db),
        metrics_db.failed_by_reason(db),
        metrics_db.active_runs(db),
        metrics_db.task_durations(db, TASK_BUCKETS),
        asyncio.gather(*(queue.zcard(key) for key in queues.values())),
    )
    tracks = GaugeMetricFamily(
        "audiomuse_tracks", "Tracks of the library by analysis status.", labels=["status"]
    )
    for status, n in sorted(counts.items()):
        tracks.add_metric([status], n)
    failed = GaugeMetricFamily(
        "audiomuse_tracks_failed",
        "Tracks whose analysis failed, by reason (the text before the first colon).",
        labels=["reason"],
    )
    for reason, n in sorted(reasons.items()):
        failed.add_metric([reason], n)
    active = GaugeMetricFamily(
        "audiomuse_runs_active", "Runs queued or running, by task type.", labels=["task_type"]
    )
    for task_type, n in sorted(runs.items()):
        active.add_metric([task_type], n)
    hist = HistogramMetricFamily(
        "audiomuse_task_duration_seconds",
        "Finished tasks (runs and their album / batch jobs) by type and final status: start to finish.",
        labels=["task_type", "status"],
    )
    for d in durations:
        le = [(_le(b), float(n)) for b, n in zip(TASK_BUCKETS, d["buckets"], strict=True)]
        hist.add_metric([d["task_type"], d["status"]], [*le, ("+Inf", float(d["count"]))], d["sum"])
    depth = GaugeMetricFamily(
        "audiomuse_queue_jobs", "Jobs waiting in a queue (queued or deferred).", labels=["queue"]
    )
    for name, n in zip(queues, depths, strict=True):
        depth.add_metric([name], int(n))
    return [tracks, failed, active, hist, depth]


def _le(bound: float) -> str:
    return str(int(bound)) if bound == int(bound) else str(bound)


def note_pool(pool: asyncpg.Pool | None) -> None:
    if pool is None:
        return
    size, idle = pool.get_size(), pool.get_idle_size()
    DB_POOL.labels("in_use").set(size - idle)
    DB_POOL.labels("idle").set(idle)
    DB_POOL.labels("max").set(pool.get_max_size())


def exposition(shared: list[Metric]) -> bytes:
    """The scrape's text: this process's samples (every web process's in multiprocess mode),
    then the shared figures."""
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        from prometheus_client import multiprocess

        own = CollectorRegistry()
        multiprocess.MultiProcessCollector(own, path)  # type: ignore[no-untyped-call]
    else:
        own = REGISTRY
    scrape = CollectorRegistry()
    scrape.register(_Snapshot(shared))
    return generate_latest(own) + generate_latest(scrape)
