"""Storing analysis outcomes: every track ends analysed (with its results) or failed (with
its reason), each in one transaction."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import asyncpg

from sidecar.db.space import hold_stats, place_track

if TYPE_CHECKING:  # the web processes read failures without importing the analysis stack
    from sidecar.ml.result import TrackAnalysis

OTHER_FEATURES = ("danceable", "aggressive", "happy", "party", "relaxed", "sad")


#: failure reasons worth another try in a later run (the server or the network may recover);
#: any other failure (corrupt, silent, unsupported, ...) is final for this model version
TRANSIENT_FAILURES = ("download:", "media server:", "internal error:")


async def tracks_to_analyse(
    db: asyncpg.Pool | asyncpg.Connection, item_ids: Sequence[str], model_version: str
) -> list[str]:
    """The ids among ``item_ids`` that ``model_version`` has not dealt with yet, in the order
    given: not analysed by it (with both embeddings), and not failed by it for a lasting reason."""
    done = {
        r["item_id"]
        for r in await db.fetch(
            """SELECT item_id FROM tracks WHERE item_id = ANY($1::text[]) AND model_version = $2
           AND ((analysis_status = 'analyzed'
                 -- analysed before the MTT embedding was stored: analysed again to add it
                 AND EXISTS (SELECT 1 FROM embeddings e
                             WHERE e.item_id = tracks.item_id AND e.mtt_embedding IS NOT NULL))
                OR (analysis_status = 'failed' AND NOT failure_reason LIKE ANY($3::text[])))""",
            list(item_ids),
            model_version,
            [p + "%" for p in TRANSIENT_FAILURES],
        )
    }
    return [i for i in item_ids if i not in done]


async def mark_analyzing(db: asyncpg.Pool | asyncpg.Connection, item_id: str) -> None:
    await db.execute(
        "UPDATE tracks SET analysis_status = 'analyzing', failure_reason = NULL "
        "WHERE item_id = $1 AND analysis_status <> 'analyzed'",
        item_id,
    )


async def store_result(db: asyncpg.Pool, item_id: str, result: TrackAnalysis) -> None:
    """Analysis, embeddings, place in the similarity space and status of one track, in one
    transaction (idempotent upsert)."""
    other = [result.other_features.get(name) for name in OTHER_FEATURES]
    async with db.acquire() as conn, conn.transaction():
        await hold_stats(conn)
        await conn.execute(
            f"""INSERT INTO track_analysis (item_id, tempo, key, scale, energy, energy_normalized, tags, mtt_tags,
                    moods, {", ".join(OTHER_FEATURES)}, features, model_version, analyzed_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb, $9, $10, $11, $12, $13, $14, $15,
                        $16::jsonb, $17, now())
                ON CONFLICT (item_id) DO UPDATE SET tempo = EXCLUDED.tempo, key = EXCLUDED.key,
                    scale = EXCLUDED.scale, energy = EXCLUDED.energy,
                    energy_normalized = EXCLUDED.energy_normalized, tags = EXCLUDED.tags,
                    mtt_tags = EXCLUDED.mtt_tags, moods = EXCLUDED.moods,
                    {", ".join(f"{n} = EXCLUDED.{n}" for n in OTHER_FEATURES)},
                    features = EXCLUDED.features, model_version = EXCLUDED.model_version,
                    analyzed_at = now()""",
            item_id,
            result.tempo,
            result.key,
            result.scale,
            result.energy,
            result.energy_normalized,
            json.dumps(result.tags),
            json.dumps(result.mtt_tags),
            list(result.moods),
            *other,
            json.dumps(result.features),
            result.model_version,
        )
        await conn.execute(
            """INSERT INTO embeddings (item_id, embedding, mtt_embedding, model_version) VALUES ($1, $2, $3, $4)
               ON CONFLICT (item_id) DO UPDATE SET embedding = EXCLUDED.embedding,
                   mtt_embedding = EXCLUDED.mtt_embedding, model_version = EXCLUDED.model_version,
                   created_at = now()""",
            item_id,
            result.embedding,
            result.mtt_embedding,
            result.model_version,
        )
        await place_track(conn, item_id)
        await conn.execute(
            """UPDATE tracks SET analysis_status = 'analyzed', failure_reason = NULL, model_version = $2,
                   analyzed_at = now(), updated_at = now() WHERE item_id = $1""",
            item_id,
            result.model_version,
        )


async def store_failure(db: asyncpg.Pool, item_id: str, reason: str, model_version: str) -> None:
    """Mark a track failed with its reason; results of an older model are removed (they would
    mix two embedding spaces)."""
    async with db.acquire() as conn, conn.transaction():
        await conn.execute(
            "DELETE FROM embeddings WHERE item_id = $1 AND model_version <> $2", item_id, model_version
        )
        await conn.execute(
            "DELETE FROM track_analysis WHERE item_id = $1 AND model_version <> $2", item_id, model_version
        )
        await conn.execute(
            """UPDATE tracks SET analysis_status = 'failed', failure_reason = $2, model_version = $3,
                   analyzed_at = now(), updated_at = now() WHERE item_id = $1""",
            item_id,
            reason[:1000] or "unknown error",
            model_version,
        )


async def album_outcome(
    db: asyncpg.Pool | asyncpg.Connection, item_ids: Sequence[str], model_version: str
) -> dict[str, Any]:
    """How many of ``item_ids`` are analysed by ``model_version``, failed, or neither."""
    row = await db.fetchrow(
        """SELECT count(*) FILTER (WHERE analysis_status = 'analyzed' AND model_version = $2) AS analyzed,
                  count(*) FILTER (WHERE analysis_status = 'failed' AND model_version = $2) AS failed
           FROM tracks WHERE item_id = ANY($1::text[])""",
        list(item_ids),
        model_version,
    )
    analyzed, failed = int(row["analyzed"]), int(row["failed"])
    return {
        "total": len(item_ids),
        "analyzed": analyzed,
        "failed": failed,
        "missing": len(item_ids) - analyzed - failed,
    }


async def failure_reasons(
    db: asyncpg.Pool | asyncpg.Connection,
    item_ids: Sequence[str] | None,
    model_version: str | None = None,
    limit: int = 20,
) -> list[dict[str, Any]]:
    """Failed tracks grouped by the kind of reason (the text before the first colon: ``corrupt``,
    ``download``, ``timeout`` ...), most frequent first, each with one full example.  Over
    ``item_ids`` (all tracks when None) and ``model_version`` (any when None)."""
    rows = await db.fetch(
        """SELECT split_part(failure_reason, ':', 1) AS reason, count(*) AS n, min(failure_reason) AS example
           FROM tracks WHERE analysis_status = 'failed'
             AND ($1::text[] IS NULL OR item_id = ANY($1::text[])) AND ($2::text IS NULL OR model_version = $2)
           GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $3""",
        None if item_ids is None else list(item_ids),
        model_version,
        limit,
    )
    return [{"reason": r["reason"], "count": int(r["n"]), "example": r["example"]} for r in rows]


async def failed_tracks(
    db: asyncpg.Pool | asyncpg.Connection, offset: int, limit: int
) -> tuple[int, list[dict[str, Any]]]:
    """One page of the failed tracks (newest failure first) and how many there are in all."""
    total = int(await db.fetchval("SELECT count(*) FROM tracks WHERE analysis_status = 'failed'"))
    rows = await db.fetch(
        """SELECT item_id, title, artist, album, album_id, file_path, failure_reason, model_version, analyzed_at
           FROM tracks WHERE analysis_status = 'failed'
           ORDER BY analyzed_at DESC NULLS LAST, item_id OFFSET $1 LIMIT $2""",
        offset,
        limit,
    )
    out = []
    for r in rows:
        item = dict(r)
        item["analyzed_at"] = item["analyzed_at"].isoformat() if item["analyzed_at"] else None
        out.append(item)
    return total, out
