"""Waiting out a media-server outage: a call that finds the server unreachable (network error,
5xx, after the HTTP client's own retries) is tried again until MEDIA_OUTAGE_WAIT_SECONDS have
passed since the outage was first seen; only then does it fail.  One :class:`OutageWindow` per
job: once an outage has used up its budget, the job's next calls fail at once instead of each
waiting again, and any success closes the window."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sidecar.providers.base import ProviderUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

#: longest pause between two tries during an outage
MAX_PAUSE_S = 15.0


class OutageWindow:
    def __init__(self, budget_s: float, on_wait: Callable[[str], Awaitable[None]] | None = None) -> None:
        self.budget_s = budget_s
        self.on_wait = on_wait
        self.deadline: float | None = None

    async def call(self, attempt: Callable[[], Awaitable[T]]) -> T:
        pause = 1.0
        while True:
            try:
                result = await attempt()
            except ProviderUnavailable as exc:
                now = time.monotonic()
                if self.deadline is None:
                    self.deadline = now + self.budget_s
                    message = f"media server unavailable ({exc.reason}): waiting up to {self.budget_s:.0f} s"
                    log.warning("%s", message)
                    if self.on_wait is not None:
                        await self.on_wait(message)
                if now >= self.deadline:
                    raise
                await asyncio.sleep(min(pause, MAX_PAUSE_S, self.deadline - now))
                pause *= 2
                continue
            if self.deadline is not None:
                log.info("media server reachable again")
            self.deadline = None
            return result
