"""What GET /metrics reads from the database at scrape time: the truth shared by every web and
worker process (tracks by analysis status and failure reason, runs in progress, finished task
durations)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from sidecar.db.tasks import ACTIVE, FINAL


async def failed_by_reason(db: asyncpg.Pool | asyncpg.Connection) -> dict[str, int]:
    """Failed tracks by the kind of reason (the text before the first colon)."""
    rows = await db.fetch(
        """SELECT split_part(failure_reason, ':', 1) AS reason, count(*) AS n
           FROM tracks WHERE analysis_status = 'failed' GROUP BY 1"""
    )
    return {r["reason"]: int(r["n"]) for r in rows}


async def active_runs(db: asyncpg.Pool | asyncpg.Connection) -> dict[str, int]:
    """Top-level tasks queued or running, by task type."""
    rows = await db.fetch(
        """SELECT task_type, count(*) AS n FROM tasks
           WHERE parent_task_id IS NULL AND status = ANY($1::text[]) GROUP BY 1""",
        list(ACTIVE),
    )
    return {r["task_type"]: int(r["n"]) for r in rows}


async def task_durations(
    db: asyncpg.Pool | asyncpg.Connection, buckets: Sequence[float]
) -> list[dict[str, Any]]:
    """Finished tasks by (task type, final status): how many, their summed duration (start to
    finish, in seconds) and how many took at most each of ``buckets`` (cumulative)."""
    rows = await db.fetch(
        """WITH d AS (
               SELECT task_type, status,
                      greatest(extract(epoch FROM finished_at - coalesce(started_at, created_at)), 0)::float8 AS s
               FROM tasks WHERE finished_at IS NOT NULL AND status = ANY($2::text[]))
           SELECT d.task_type, d.status, b.i, count(*) FILTER (WHERE d.s <= b.le) AS le,
                  count(*) AS n, sum(d.s) AS total
           FROM d CROSS JOIN unnest($1::float8[]) WITH ORDINALITY AS b(le, i)
           GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""",
        list(buckets),
        list(FINAL),
    )
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        group = out.setdefault(
            (r["task_type"], r["status"]),
            {
                "task_type": r["task_type"],
                "status": r["status"],
                "count": int(r["n"]),
                "sum": float(r["total"]),
                "buckets": [],
            },
        )
        group["buckets"].append(int(r["le"]))
    return list(out.values())
