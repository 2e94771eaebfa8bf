"""A run worked on by this process: `audiomuse analyze` and `audiomuse sync` start (or join) a
run, work on it with an in-process worker (both queues), and draw its progress until it ends."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from sidecar.config import Settings
from sidecar.services import Endpoints


def analysis_progress_line(task: dict[str, Any], started: float, done_at_start: int) -> str:
    d = task.get("details") or {}
    total = int(d.get("tracks_total") or 0)
    done = int(d.get("tracks_analyzed") or 0) + int(d.get("tracks_failed") or 0)
    elapsed = max(1e-6, time.monotonic() - started)
    rate = (done - done_at_start) / elapsed
    eta = (total - done) / rate if rate > 0 else None
    width = 30
    filled = int(width * done / total) if total else 0
    eta_text = f"ETA {int(eta // 60)}m{int(eta % 60):02d}s" if eta is not None else "ETA --"
    return (
        f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} tracks "
        f"({d.get('tracks_failed', 0)} failed) {rate:.2f} tracks/s {eta_text}"
    )


def sync_progress_line(task: dict[str, Any], started: float, done_at_start: int) -> str:
    d = task.get("details") or {}
    return (
        f"{d.get('albums_done', 0)}/{d.get('albums_total', '?')} albums, {d.get('tracks', 0)} tracks "
        f"({d.get('albums_failed', 0)} albums failed)"
    )


async def run_here(
    settings: Settings,
    endpoints: Endpoints,
    task_type: str,
    job: str,
    args: tuple[Any, ...],
    details: dict[str, Any],
    progress: Callable[[dict[str, Any], float, int], str],
) -> dict[str, Any]:
    """Start (or join) a run, work on it with an in-process worker, draw its progress until it
    ends.  Ctrl-C cancels the run (the tracks being analysed finish first; a second Ctrl-C
    stops at once); the task comes back with ``interrupted`` set."""
    from arq import create_pool as create_arq_pool

    from sidecar.db import open_database, tasks
    from sidecar.jobs.names import WORK_QUEUE
    from sidecar.jobs.queue import AlreadyRunning, start_run
    from sidecar.jobs.worker import WorkerGroup, redis_settings

    pool, _ = await open_database(endpoints.postgres_dsn, min_size=1, max_size=4)
    queue = await create_arq_pool(redis_settings(endpoints.redis_url), default_queue_name=WORK_QUEUE)
    group = WorkerGroup(settings, endpoints)
    await group.open()
    worker_task = asyncio.ensure_future(group.run())
    presses: list[int] = []  # Ctrl-C (or SIGTERM) presses
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, presses.append, sig)
    tty = sys.stderr.isatty()
    interrupted = False
    try:
        try:
            task_id = await start_run(pool, queue, task_type, job, *args, details=details)
        except AlreadyRunning as exc:
            task_id = exc.task["task_id"]
            print(f"joining the {task_type} already running ({task_id})", file=sys.stderr)
        started, first, last_print = time.monotonic(), None, 0.0
        while True:
            task = await tasks.get(pool, task_id) or {}
            d = task.get("details") or {}
            if first is None and (d.get("tracks_total") is not None or d.get("albums_total") is not None):
                first = int(d.get("tracks_analyzed") or 0) + int(d.get("tracks_failed") or 0)
                started = time.monotonic()
            if first is not None and (tty or time.monotonic() - last_print >= 5):
                print(progress(task, started, first), end="\r" if tty else "\n", file=sys.stderr, flush=True)
                last_print = time.monotonic()
            if task.get("status") in tasks.FINAL:
                break
            if presses and not interrupted:
                interrupted = True
                await tasks.cancel(pool, task_id, "cancelled from the command line (Ctrl-C)")
                print(
                    "\ncancelling: the tracks being analysed finish first (Ctrl-C again to stop now)",
                    file=sys.stderr,
                    flush=True,
                )
            if worker_task.done():
                raise RuntimeError(f"the worker stopped: {worker_task.exception()!r}")
            await asyncio.sleep(0.25 if interrupted else 0.5)
        if tty:
            print(file=sys.stderr)
        if interrupted:  # jobs stop between tracks: let them store the track at hand
            deadline = time.monotonic() + 120
            while group.running_jobs() and len(presses) < 2 and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.2)
        return {**(await tasks.get(pool, task_id) or {}), "interrupted": interrupted}
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        group.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await worker_task
        await group.close()
        await queue.aclose()
        await pool.close()
