"""The worker process: two arq workers (control and work queues, see ``jobs/names.py``) sharing
one database pool and one media provider.

Parents (runs that wait for their children) take control slots, children take the
``WORKER_MAX_JOBS`` work slots: a waiting parent never holds a slot a child needs, whatever
``WORKER_MAX_JOBS`` is.  Every job is wrapped by :func:`task_job`: an exception in our own code
ends the job's task as FAILURE with the cause instead of leaving it "running" forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from arq.connections import RedisSettings
from arq.cron import cron
from arq.worker import Worker, func

from sidecar.config import Settings
from sidecar.db import open_database, tasks
from sidecar.jobs import names
from sidecar.jobs.analysis import analyze_album, run_analysis
from sidecar.jobs.clustering import clustering_batch, run_clustering
from sidecar.jobs.context import JobContext, job_context
from sidecar.jobs.library import sync_library
from sidecar.jobs.map import compute_map, keep_map_current
from sidecar.jobs.queue import settle
from sidecar.jobs.schedule import scheduled_cron_jobs
from sidecar.logs import TASK_ID
from sidecar.providers import make_provider
from sidecar.services import Endpoints
from sidecar.similarity import refit

log = logging.getLogger(__name__)

Job = Callable[..., Awaitable[dict[str, Any]]]


def task_job(fn: Job) -> Any:
    """Run a job whose first argument is its task id; an unexpected exception ends that task
    as FAILURE naming the exception (a stop of the worker, CancelledError, is not a failure:
    arq runs the job again)."""

    @functools.wraps(fn)
    async def wrapper(ctx: dict[str, Any], task_id: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        noted = TASK_ID.set(task_id)  # the job's log records carry its task id
        try:
            return await fn(ctx, task_id, *args, **kwargs)
        except Exception as exc:
            log.exception("job %s of task %s failed", fn.__name__, task_id)
            reason = f"internal error: {type(exc).__name__}: {exc}"
            await tasks.fail(job_context(ctx).db, task_id, reason)
            return {"status": "FAILURE", "error": reason}
        finally:
            TASK_ID.reset(noted)

    return wrapper


async def recover_orphans(ctx: dict[str, Any]) -> dict[str, int]:
    """Periodic: release the jobs of workers that died, end tasks whose job is gone."""
    app = job_context(ctx)
    return await settle(app.db, ctx["redis"], app.settings.task_orphan_seconds)


async def keep_similarity_space_fitted(ctx: dict[str, Any]) -> str | None:
    """Periodic: fit the similarity space's statistics when the library moved (after an
    upgrade: its first fit) and place tracks without a vector (sidecar/similarity/refit.py)."""
    return await refit.keep_fitted(job_context(ctx).db, refit.AT_REST)


#: every job the workers run, by queue; each is also listed in README.md
CONTROL_FUNCTIONS = [
    func(task_job(sync_library), name=names.SYNC_LIBRARY, timeout=6 * 3600),
    func(task_job(run_analysis), name=names.RUN_ANALYSIS, timeout=7 * 24 * 3600, max_tries=1000),
    func(task_job(run_clustering), name=names.RUN_CLUSTERING, timeout=7 * 24 * 3600, max_tries=1000),
]
WORK_FUNCTIONS = [
    func(task_job(analyze_album), name=names.ANALYZE_ALBUM, timeout=6 * 3600, max_tries=1000),
    func(task_job(clustering_batch), name=names.CLUSTERING_BATCH, timeout=24 * 3600, max_tries=1000),
    func(compute_map, name=names.COMPUTE_MAP, timeout=3600, keep_result=0),  # id reusable at once
]
FUNCTIONS = CONTROL_FUNCTIONS + WORK_FUNCTIONS
#: periodic jobs: settle the tasks of workers that died (stale heartbeat) or jobs that vanished
CRON_JOBS = [
    cron(recover_orphans, name=names.RECOVER_ORPHANS, second={0, 30}, run_at_startup=True, timeout=60),
    cron(
        keep_similarity_space_fitted,
        name=names.KEEP_SPACE_FITTED,
        second={45},
        run_at_startup=True,
        timeout=6 * 3600,
    ),
    cron(keep_map_current, name=names.KEEP_MAP_CURRENT, minute=set(range(0, 60, 5)), second={20}, timeout=60),
]


def redis_settings(url: str) -> RedisSettings:
    return RedisSettings.from_dsn(url)


class WorkerGroup:
    """The control and work workers of one process.  Build, ``run`` and ``close`` inside the
    event loop they run on."""

    def __init__(self, settings: Settings, endpoints: Endpoints, **overrides: Any) -> None:
        self.settings, self.endpoints, self.overrides = settings, endpoints, overrides
        self.app: JobContext | None = None
        self.workers: list[Worker] = []

    async def open(self) -> None:
        s = self.settings
        pool, _ = await open_database(
            self.endpoints.postgres_dsn,
            min_size=s.db_pool_min_size,
            max_size=max(s.db_pool_max_size, s.worker_max_jobs + names.CONTROL_MAX_JOBS),
        )
        self.app = JobContext(settings=s, db=pool, provider=make_provider(s))
        common: dict[str, Any] = dict(
            redis_settings=redis_settings(self.endpoints.redis_url),
            health_check_interval=names.HEALTH_CHECK_INTERVAL_S,
            job_timeout=6 * 3600,
            keep_result=24 * 3600,
            handle_signals=False,
        )
        common.update(self.overrides)
        self.workers = [
            Worker(
                functions=CONTROL_FUNCTIONS,
                cron_jobs=CRON_JOBS + scheduled_cron_jobs(s),
                queue_name=names.CONTROL_QUEUE,
                health_check_key=names.CONTROL_HEALTH_CHECK_KEY,
                max_jobs=names.CONTROL_MAX_JOBS,
                ctx={"app": self.app},
                **common,
            ),
            Worker(
                functions=WORK_FUNCTIONS,
                queue_name=names.WORK_QUEUE,
                health_check_key=names.HEALTH_CHECK_KEY,
                max_jobs=s.worker_max_jobs,
                ctx={"app": self.app},
                **common,
            ),
        ]
        log.info(
            "worker ready (queues %s, %s; %d work slots)",
            names.CONTROL_QUEUE,
            names.WORK_QUEUE,
            s.worker_max_jobs,
        )

    async def run(self) -> None:
        """Until :meth:`stop` (or a worker's failure)."""
        runs = [asyncio.ensure_future(w.async_run()) for w in self.workers]
        try:
            await asyncio.gather(*runs)
        except asyncio.CancelledError:
            pass  # stop() cancels the workers' main tasks: a normal stop
        finally:
            for r in runs:
                r.cancel()

    async def drain(self, timeout_s: float = 300.0, poll_s: float = 0.1) -> None:
        """Run until both queues are empty (nothing queued, deferred or running), then stop."""
        runner = asyncio.ensure_future(self.run())
        pool = self.workers[0].pool if self.workers[0]._pool is not None else None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        idle = 0
        try:
            while idle < 3:
                if runner.done():
                    runner.result()
                    return
                if loop.time() > deadline:
                    raise TimeoutError(f"the queues did not drain in {timeout_s:.0f} s")
                await asyncio.sleep(poll_s)
                pool = pool or (self.workers[0].pool if self.workers[0]._pool is not None else None)
                if pool is None:
                    continue
                queued = await pool.zcard(names.CONTROL_QUEUE) + await pool.zcard(names.WORK_QUEUE)
                idle = idle + 1 if queued == 0 else 0
        finally:
            self.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await runner

    def running_jobs(self) -> int:
        """Jobs being run by this process's workers right now."""
        return sum(1 for w in self.workers for t in w.tasks.values() if not t.done())

    def stop(self) -> None:
        for w in self.workers:
            w.handle_sig(signal.SIGTERM)

    async def close(self) -> None:
        for w in self.workers:
            with contextlib.suppress(Exception):
                await w.close()
        self.workers = []
        if self.app is not None:
            await self.app.provider.close()
            await self.app.db.close()
            self.app = None
