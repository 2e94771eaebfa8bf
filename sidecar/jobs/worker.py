"""The arq worker: its functions, its start-up (database pool, migrations, provider)."""

from __future__ import annotations

import logging
from typing import Any

from arq.connections import RedisSettings
from arq.cron import cron
from arq.worker import Worker, func

from sidecar.config import Settings
from sidecar.db import open_database
from sidecar.jobs.context import JobContext
from sidecar.jobs.analysis import analyze_album, recover_orphans, run_analysis
from sidecar.jobs.library import sync_library
from sidecar.providers import make_provider
from sidecar.services import Endpoints

log = logging.getLogger(__name__)

QUEUE_NAME = "audiomuse:queue"
HEALTH_CHECK_KEY = QUEUE_NAME + ":health-check"
HEALTH_CHECK_INTERVAL_S = 10

#: every job the worker runs; each is also listed in README.md
FUNCTIONS = [
    func(sync_library, name="sync_library", timeout=6 * 3600),
    func(run_analysis, name="run_analysis", timeout=7 * 24 * 3600, max_tries=1000),
    func(analyze_album, name="analyze_album", timeout=6 * 3600, max_tries=1000),
]
#: periodic jobs: re-queue the work of workers that died (stale heartbeat)
CRON_JOBS = [cron(recover_orphans, name="recover_orphans", second={0, 30}, run_at_startup=True, timeout=60)]


def redis_settings(url: str) -> RedisSettings:
    return RedisSettings.from_dsn(url)


def build_worker(settings: Settings, endpoints: Endpoints, **overrides: Any) -> Worker:
    async def on_startup(ctx: dict[str, Any]) -> None:
        pool, _ = await open_database(endpoints.postgres_dsn, min_size=settings.db_pool_min_size,
                                      max_size=settings.db_pool_max_size)
        ctx["app"] = JobContext(settings=settings, db=pool, provider=make_provider(settings))
        log.info("worker ready (queue %s)", QUEUE_NAME)

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        app = ctx.get("app")
        if isinstance(app, JobContext):
            await app.provider.close()
            await app.db.close()

    options: dict[str, Any] = dict(
        functions=FUNCTIONS,
        cron_jobs=CRON_JOBS,
        redis_settings=redis_settings(endpoints.redis_url),
        queue_name=QUEUE_NAME,
        health_check_key=HEALTH_CHECK_KEY,
        health_check_interval=HEALTH_CHECK_INTERVAL_S,
        on_startup=on_startup,
        on_shutdown=on_shutdown,
        max_jobs=settings.worker_max_jobs,
        job_timeout=6 * 3600,
        keep_result=24 * 3600,
        handle_signals=True,
    )
    options.update(overrides)
    return Worker(**options)
