"""What every job gets in its arq ``ctx``: settings, database pool, media provider; and the
heartbeat that tells the rest of the system a job's worker is alive."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg

from sidecar.config import Settings
from sidecar.db import tasks
from sidecar.providers.base import MediaProvider


@dataclass
class JobContext:
    settings: Settings
    db: asyncpg.Pool
    provider: MediaProvider


def job_context(ctx: dict[str, Any]) -> JobContext:
    jc = ctx.get("app")
    if not isinstance(jc, JobContext):
        raise RuntimeError("worker context not initialised (on_startup did not run)")
    return jc


@contextlib.asynccontextmanager
async def heartbeat(app: JobContext, task_id: str) -> AsyncIterator[None]:
    """Touch the task row every TASK_ORPHAN_SECONDS / 3 while the body runs (the event loop
    stays free: analysis runs in a thread)."""
    db = app.db
    interval = app.settings.task_orphan_seconds / 3

    async def beat() -> None:
        while True:
            await asyncio.sleep(interval)
            await tasks.touch(db, task_id)

    pulse = asyncio.create_task(beat())
    try:
        yield
    finally:
        pulse.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pulse
