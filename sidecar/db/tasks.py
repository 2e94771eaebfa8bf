"""The tasks table: background work, its status, progress and log.

Statuses follow AudioMuse-AI (PENDING, STARTED, PROGRESS, SUCCESS, FAILURE, REVOKED) so that
its plugins can read ours.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg

ACTIVE = ("PENDING", "STARTED", "PROGRESS")
FINAL = ("SUCCESS", "FAILURE", "REVOKED")

_COLUMNS = (
    "task_id, parent_task_id, task_type, status, progress, details, log, created_at, started_at, "
    "updated_at, finished_at"
)


def new_task_id() -> str:
    return str(uuid.uuid4())


def _row(record: asyncpg.Record | None) -> dict[str, Any] | None:
    if record is None:
        return None
    out = dict(record)
    if isinstance(out.get("details"), str):
        out["details"] = json.loads(out["details"])
    for key in ("created_at", "started_at", "updated_at", "finished_at"):
        if out.get(key) is not None:
            out[key] = out[key].isoformat()
    return out


async def create_run(
    db: asyncpg.Pool | asyncpg.Connection, task_type: str, *, details: dict[str, Any] | None = None
) -> tuple[str | None, dict[str, Any] | None]:
    """Create a top-level task unless one of the same type is active: ``(new id, None)``, or
    ``(None, the active task)``.  Atomic: a unique partial index (migration 0004) admits one
    active top-level task per type, so simultaneous starts cannot both succeed."""
    task_id = new_task_id()
    created = await db.fetchval(
        """INSERT INTO tasks (task_id, task_type, details) VALUES ($1, $2, $3::jsonb)
           ON CONFLICT (task_type) WHERE parent_task_id IS NULL AND status IN ('PENDING', 'STARTED', 'PROGRESS')
           DO NOTHING RETURNING task_id""",
        task_id,
        task_type,
        json.dumps(details or {}),
    )
    if created is not None:
        return task_id, None
    running = await active(db, task_type)
    return None, (running[0] if running else None)


async def create(
    db: asyncpg.Pool | asyncpg.Connection,
    task_type: str,
    *,
    task_id: str | None = None,
    parent_task_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> str:
    task_id = task_id or new_task_id()
    await db.execute(
        "INSERT INTO tasks (task_id, parent_task_id, task_type, details) VALUES ($1, $2, $3, $4::jsonb)",
        task_id,
        parent_task_id,
        task_type,
        json.dumps(details or {}),
    )
    return task_id


async def update(
    db: asyncpg.Pool | asyncpg.Connection,
    task_id: str,
    *,
    status: str | None = None,
    progress: int | None = None,
    details: dict[str, Any] | None = None,
    log_line: str | None = None,
) -> None:
    """Merge ``details`` into the task's details, append ``log_line``, set status/progress."""
    await db.execute(
        """UPDATE tasks SET
               status = coalesce($2, status),
               progress = coalesce($3, progress),
               details = details || coalesce($4::jsonb, '{}'::jsonb),
               log = CASE WHEN $5::text IS NULL THEN log ELSE (log || $5::text)[greatest(1, cardinality(log) - 198):] END,
               started_at = CASE WHEN $2 IN ('STARTED', 'PROGRESS') THEN coalesce(started_at, now()) ELSE started_at END,
               finished_at = CASE WHEN $2 IN ('SUCCESS', 'FAILURE', 'REVOKED') THEN now() ELSE finished_at END,
               updated_at = now()
           WHERE task_id = $1""",
        task_id,
        status,
        None if progress is None else max(0, min(100, int(progress))),
        None if details is None else json.dumps(details),
        log_line,
    )


async def touch(db: asyncpg.Pool | asyncpg.Connection, task_id: str) -> None:
    """The heartbeat of a running task: its worker is alive."""
    await db.execute("UPDATE tasks SET updated_at = now() WHERE task_id = $1", task_id)


async def statuses(db: asyncpg.Pool | asyncpg.Connection, task_ids: list[str]) -> dict[str, str]:
    if not task_ids:
        return {}
    rows = await db.fetch("SELECT task_id, status FROM tasks WHERE task_id = ANY($1::text[])", task_ids)
    return {r["task_id"]: r["status"] for r in rows}


async def children_outcome(db: asyncpg.Pool | asyncpg.Connection, task_id: str) -> dict[str, int]:
    """Tracks analysed and failed so far, summed over the children's reported counts
    (``details.analyzed`` / ``details.failed``): a run's progress without a per-track query."""
    row = await db.fetchrow(
        """SELECT coalesce(sum((details->>'analyzed')::int), 0) AS analyzed,
                  coalesce(sum((details->>'failed')::int), 0) AS failed
           FROM tasks WHERE parent_task_id = $1""",
        task_id,
    )
    return {"analyzed": int(row["analyzed"]), "failed": int(row["failed"])}


async def get(db: asyncpg.Pool | asyncpg.Connection, task_id: str) -> dict[str, Any] | None:
    return _row(await db.fetchrow(f"SELECT {_COLUMNS} FROM tasks WHERE task_id = $1", task_id))


async def active(
    db: asyncpg.Pool | asyncpg.Connection, task_type: str | None = None, top_level_only: bool = True
) -> list[dict[str, Any]]:
    rows = await db.fetch(
        f"""SELECT {_COLUMNS} FROM tasks WHERE status = ANY($1::text[])
            AND ($2::text IS NULL OR task_type = $2) AND (NOT $3 OR parent_task_id IS NULL)
            ORDER BY created_at DESC""",
        list(ACTIVE),
        task_type,
        top_level_only,
    )
    return [r for r in (_row(x) for x in rows) if r is not None]


async def last(db: asyncpg.Pool | asyncpg.Connection, task_type: str | None = None) -> dict[str, Any] | None:
    return _row(
        await db.fetchrow(
            f"""SELECT {_COLUMNS} FROM tasks WHERE parent_task_id IS NULL AND ($1::text IS NULL OR task_type = $1)
            ORDER BY created_at DESC LIMIT 1""",
            task_type,
        )
    )


async def is_revoked(db: asyncpg.Pool | asyncpg.Connection, task_id: str) -> bool:
    """True when the task or any of its ancestors has been cancelled."""
    return bool(
        await db.fetchval(
            """WITH RECURSIVE up AS (
               SELECT task_id, parent_task_id, status FROM tasks WHERE task_id = $1
               UNION ALL
               SELECT t.task_id, t.parent_task_id, t.status FROM tasks t JOIN up ON t.task_id = up.parent_task_id)
           SELECT bool_or(status = 'REVOKED') FROM up""",
            task_id,
        )
    )


async def cancel(
    db: asyncpg.Pool | asyncpg.Connection, task_id: str, reason: str = "cancelled by request"
) -> int:
    """Mark the task and its whole tree (children, grandchildren, ...) REVOKED; jobs check for it
    between units of work and stop cooperatively.  Returns how many tasks were still active."""
    return int(
        await db.fetchval(
            """WITH RECURSIVE tree AS (SELECT task_id FROM tasks WHERE task_id = $1
                UNION ALL SELECT t.task_id FROM tasks t JOIN tree ON t.parent_task_id = tree.task_id),
           done AS (UPDATE tasks SET status = 'REVOKED', finished_at = now(), updated_at = now(),
                           log = log || $3::text
                    WHERE task_id IN (SELECT task_id FROM tree) AND status = ANY($2::text[])
                    RETURNING 1)
           SELECT count(*) FROM done""",
            task_id,
            list(ACTIVE),
            reason,
        )
    )


async def fail(db: asyncpg.Pool | asyncpg.Connection, task_id: str, reason: str) -> None:
    """End an active task as FAILURE with ``reason`` (in its log and ``details.error``)."""
    await db.execute(
        """UPDATE tasks SET status = 'FAILURE', finished_at = now(), updated_at = now(),
               log = (log || $2::text)[greatest(1, cardinality(log) - 198):],
               details = details || jsonb_build_object('error', $2::text)
           WHERE task_id = $1 AND status = ANY($3::text[])""",
        task_id,
        reason[:2000],
        list(ACTIVE),
    )


async def stale(db: asyncpg.Pool | asyncpg.Connection, seconds: float) -> list[dict[str, Any]]:
    """Active tasks (any level) not updated for ``seconds``: their worker may be gone."""
    rows = await db.fetch(
        f"""SELECT {_COLUMNS} FROM tasks WHERE status = ANY($1::text[])
            AND updated_at < now() - make_interval(secs => $2) ORDER BY created_at""",
        list(ACTIVE),
        seconds,
    )
    return [r for r in (_row(x) for x in rows) if r is not None]


async def children(db: asyncpg.Pool | asyncpg.Connection, task_id: str, limit: int) -> dict[str, Any]:
    """The task's direct children: counts by status, and the first ``limit`` of them (failed and
    running ones first), each with its last log line."""
    counts = {
        r["status"]: int(r["n"])
        for r in await db.fetch(
            "SELECT status, count(*) AS n FROM tasks WHERE parent_task_id = $1 GROUP BY status", task_id
        )
    }
    rows = await db.fetch(
        """SELECT task_id, task_type, status, progress, details, log[cardinality(log)] AS last_log,
                  started_at, finished_at
           FROM tasks WHERE parent_task_id = $1
           ORDER BY CASE status WHEN 'FAILURE' THEN 0 WHEN 'PROGRESS' THEN 1 WHEN 'STARTED' THEN 1
                                WHEN 'PENDING' THEN 2 ELSE 3 END, created_at
           LIMIT $2""",
        task_id,
        limit,
    )
    items = [r for r in (_row(x) for x in rows) if r is not None]
    return {"total": sum(counts.values()), "by_status": counts, "items": items}
