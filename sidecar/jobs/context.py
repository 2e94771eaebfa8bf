"""What every job gets in its arq ``ctx``: settings, database pool, media provider."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from sidecar.config import Settings
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
