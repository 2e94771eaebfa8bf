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
    finish, in seconds) and how many took at most each of ``buckets`` (ascending; cumulative).

    One pass: each task is grouped by how many bounds are >= its duration (``width_bucket`` over
    the negated bounds), the cumulative counts are summed up here."""
    bounds = sorted(buckets)
    rows = await db.fetch(
        """SELECT task_type, status, width_bucket(-s, $1::float8[]) AS at_or_above,
                  count(*) AS n, sum(s) AS total
           FROM (SELECT task_type, status,
                        greatest(extract(epoch FROM finished_at - coalesce(started_at, created_at)), 0)::float8 AS s
                 FROM tasks WHERE finished_at IS NOT NULL AND status = ANY($2::text[])) AS d
           GROUP BY 1, 2, 3""",
        [-b for b in reversed(bounds)],
        list(FINAL),
    )
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        group = out.setdefault(
            (r["task_type"], r["status"]),
            {
                "task_type": r["task_type"],
                "status": r["status"],
                "count": 0,
                "sum": 0.0,
                "buckets": [0] * len(bounds),
            },
        )
        n, above = int(r["n"]), int(r["at_or_above"])
        group["count"] += n
        group["sum"] += float(r["total"])
        # at most bounds[i] for the ``above`` largest bounds
        for i in range(len(bounds) - above, len(bounds)):
            group["buckets"][i] += n
    return list(out.values())
