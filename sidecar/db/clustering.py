"""Clustering's statements: the analysed tracks as clustering reads them, the automatic playlists
this service created, and the last finished clustering."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import asyncpg

from sidecar.db.tasks import _row

OTHER_FEATURES = ("danceable", "aggressive", "happy", "party", "relaxed", "sad")


async def count_analysed(db: asyncpg.Pool | asyncpg.Connection, embeddings: bool = False) -> int:
    """Analysed tracks clustering can use (with an embedding, when ``embeddings``)."""
    return int(
        await db.fetchval(
            """SELECT count(*) FROM tracks t JOIN track_analysis a USING (item_id)
           WHERE t.analysis_status = 'analyzed'
             AND (NOT $1 OR EXISTS (SELECT 1 FROM embeddings e WHERE e.item_id = t.item_id))""",
            embeddings,
        )
    )


async def analysed_rows(
    db: asyncpg.Pool | asyncpg.Connection, embeddings: bool = False
) -> list[dict[str, Any]]:
    """Every analysed track: ``item_id, title, artist, tempo, energy_normalized, tags`` (dict),
    the six other features and, with ``embeddings``, ``embedding`` (None when missing); by id."""
    rows = await db.fetch(
        f"""SELECT t.item_id, t.title, t.artist, a.tempo, a.energy_normalized, a.tags::text AS tags,
                   {", ".join("a." + f for f in OTHER_FEATURES)},
                   CASE WHEN $1 THEN e.embedding END AS embedding
            FROM tracks t JOIN track_analysis a USING (item_id)
            LEFT JOIN embeddings e ON $1 AND e.item_id = t.item_id
            WHERE t.analysis_status = 'analyzed' ORDER BY t.item_id""",
        embeddings,
        timeout=600,
    )
    out = []
    for r in rows:
        d = dict(r)
        d["tags"] = json.loads(d["tags"]) if d["tags"] else {}
        out.append(d)
    return out


async def titles(
    db: asyncpg.Pool | asyncpg.Connection, item_ids: Sequence[str]
) -> dict[str, tuple[str, str]]:
    """``item_id -> (title, artist)`` of the known ones."""
    rows = await db.fetch(
        "SELECT item_id, title, artist FROM tracks WHERE item_id = ANY($1::text[])", list(item_ids)
    )
    return {r["item_id"]: (r["title"], r["artist"]) for r in rows}


async def automatic_playlists(db: asyncpg.Pool | asyncpg.Connection, provider: str) -> list[dict[str, Any]]:
    """The automatic playlists this service created on ``provider``: name, id, track ids."""
    rows = await db.fetch(
        """SELECT name, provider_playlist_id, track_ids FROM playlists
           WHERE provider = $1 AND kind = 'automatic' ORDER BY name""",
        provider,
    )
    return [dict(r) for r in rows]


async def forget_playlists(db: asyncpg.Pool | asyncpg.Connection, provider: str, names: Sequence[str]) -> int:
    """Drop the records of automatic playlists (deleted from the media server)."""
    done = await db.execute(
        "DELETE FROM playlists WHERE provider = $1 AND kind = 'automatic' AND name = ANY($2)",
        provider,
        list(names),
    )
    return int(done.split()[-1])


async def last_success(db: asyncpg.Pool | asyncpg.Connection, task_type: str) -> dict[str, Any] | None:
    """The newest top-level task of ``task_type`` that ended SUCCESS."""
    return _row(
        await db.fetchrow(
            """SELECT task_id, parent_task_id, task_type, status, progress, details, log, created_at, started_at,
                  updated_at, finished_at
           FROM tasks WHERE parent_task_id IS NULL AND task_type = $1 AND status = 'SUCCESS'
           ORDER BY finished_at DESC NULLS LAST, created_at DESC LIMIT 1""",
            task_type,
        )
    )


async def child_results(db: asyncpg.Pool | asyncpg.Connection, parent_id: str) -> list[dict[str, Any]]:
    """The batch tasks of a clustering: ``task_id, status, details`` (the batch's best run)."""
    rows = await db.fetch("SELECT task_id, status, details FROM tasks WHERE parent_task_id = $1", parent_id)
    return [
        {
            "task_id": r["task_id"],
            "status": r["status"],
            "details": json.loads(r["details"]) if isinstance(r["details"], str) else r["details"],
        }
        for r in rows
    ]


async def slim_batch(db: asyncpg.Pool | asyncpg.Connection, task_id: str) -> None:
    """Drop a finished batch's playlists and job arguments from its details (its score and
    parameters stay): only the best batch's playlists are kept, so a clustering's status stays small."""
    await db.execute(
        "UPDATE tasks SET details = (details #- '{best,playlists}') - 'args' WHERE task_id = $1", task_id
    )
