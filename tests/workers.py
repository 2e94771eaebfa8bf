"""Running the real worker processes' job runners inside a test, until the queues are empty."""

from __future__ import annotations

from typing import Any

from sidecar.jobs.worker import WorkerGroup
from sidecar.services import Endpoints


async def run_workers_until_idle(settings: Any, endpoints: Endpoints, timeout_s: float = 240) -> None:
    """Both queues' workers (control and work), as `audiomuse worker` runs them, until nothing is
    queued, deferred or running."""
    group = WorkerGroup(settings, endpoints, poll_delay=0.05)
    await group.open()
    try:
        await group.drain(timeout_s)
    finally:
        await group.close()
