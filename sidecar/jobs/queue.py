"""Starting runs and keeping the tasks table honest about the queue.

* :func:`start_run` is the one way a run starts (API and command line): the task row is
  created atomically (one active run per kind), then its job is queued; a run whose job
  cannot be queued ends as FAILURE at once.
* :func:`settle` ends tasks whose job no longer exists (FAILURE, with the cause) and releases
  the lease of jobs whose worker died, so arq runs them again.  A 409 "already running" never
  points at a ghost: the start of a run settles the active one first.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import asyncpg
from arq import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix

from sidecar.db import tasks
from sidecar.jobs.names import JOB_QUEUES

log = logging.getLogger(__name__)

#: a task younger than this may still be waiting for its job to be queued
QUEUE_GRACE_S = 10.0


class AlreadyRunning(Exception):
    def __init__(self, task: dict[str, Any]) -> None:
        super().__init__(f"{task['task_type']} {task['task_id']} is already running")
        self.task = task


async def enqueue(redis: ArqRedis, job: str, *args: Any, job_id: str) -> bool:
    """Queue ``job`` on its queue; False when a job with this id is already queued or running."""
    return await redis.enqueue_job(job, *args, _job_id=job_id, _queue_name=JOB_QUEUES[job]) is not None


async def job_exists(redis: ArqRedis, job_id: str) -> bool:
    """True while arq knows the job: queued, deferred or running."""
    return bool(await redis.exists(job_key_prefix + job_id, in_progress_key_prefix + job_id))


async def start_run(
    db: asyncpg.Pool,
    redis: ArqRedis,
    task_type: str,
    job: str,
    *args: Any,
    details: dict[str, Any] | None = None,
) -> str:
    """Create the run's task and queue its job (the job gets the task id first, then ``args``).
    Raises :class:`AlreadyRunning` when a live run of the same kind exists."""
    for _ in range(2):
        task_id, running = await tasks.create_run(db, task_type, details=details)
        if task_id is not None:
            try:
                await enqueue(redis, job, task_id, *args, job_id=task_id)
            except Exception as exc:
                await tasks.fail(db, task_id, f"could not queue the job: {type(exc).__name__}: {exc}")
                raise
            return task_id
        if running is None:
            continue  # it ended between the insert and the look-up
        if not await _settle_one(db, redis, running, grace_s=QUEUE_GRACE_S):
            raise AlreadyRunning(running)
    raise AlreadyRunning(running or {"task_type": task_type, "task_id": "?"})


async def _settle_one(db: asyncpg.Pool, redis: ArqRedis, task: dict[str, Any], *, grace_s: float) -> bool:
    """End ``task`` as FAILURE when no job stands behind it (True); False when it is alive (its
    job is queued or running, or it is younger than ``grace_s`` and may be about to be queued)."""
    if await job_exists(redis, task["task_id"]) or _age_s(task) < grace_s:
        return False
    await tasks.fail(
        db,
        task["task_id"],
        "its job is gone from the queue (the worker or the queue lost it): ended so that a new run can start",
    )
    log.warning("task %s (%s) had no job behind it: ended as FAILURE", task["task_id"], task["task_type"])
    return True


def _age_s(task: dict[str, Any]) -> float:
    updated = task.get("updated_at") or task.get("created_at")
    if not updated:
        return float("inf")
    return (datetime.now(UTC) - datetime.fromisoformat(updated)).total_seconds()


async def settle(db: asyncpg.Pool, redis: ArqRedis, stale_after_s: float) -> dict[str, int]:
    """For every active task not updated for ``stale_after_s``: a running job whose worker died
    (lease left, heartbeat stale) is released so arq runs it again; a task with no job at all
    ends as FAILURE.  Tasks whose job is queued and waiting for a slot are left alone."""
    requeued = ended = 0
    for task in await tasks.stale(db, stale_after_s):
        task_id = task["task_id"]
        if await redis.exists(in_progress_key_prefix + task_id):
            if await redis.exists(job_key_prefix + task_id):
                await redis.delete(in_progress_key_prefix + task_id)
                await tasks.update(
                    db, task_id, status="PENDING", log_line="worker lost (no heartbeat): queued again"
                )
                requeued += 1
                continue
        if await redis.exists(job_key_prefix + task_id):
            continue  # queued, waiting for a slot
        await tasks.fail(db, task_id, "its job is gone from the queue (the worker or the queue lost it)")
        ended += 1
    if requeued or ended:
        log.warning(
            "tasks settled: %d queued again after a lost worker, %d ended without a job", requeued, ended
        )
    return {"requeued": requeued, "ended": ended}
