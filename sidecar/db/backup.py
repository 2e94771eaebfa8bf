"""SQL of the analysis backup (sidecar/backup/): the export's snapshot of every analysed track,
the import's candidate lookups and its writes."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import asyncpg

OTHER_FEATURES = ("danceable", "aggressive", "happy", "party", "relaxed", "sad")
#: pg_try_advisory_xact_lock key: one import at a time
IMPORT_LOCK_KEY = 0x616D_6270  # "ambp"

_EXPORT = f"""
SELECT t.item_id, t.provider, t.file_path, e.embedding, e.mtt_embedding, a.features ->> 'content_fingerprint' AS fingerprint,
       json_build_object(
           'item_id', t.item_id, 'provider', t.provider, 'path', t.file_path,
           'title', t.title, 'artist', t.artist, 'album', t.album, 'album_artist', t.album_artist,
           'track_number', t.track_number, 'duration_s', t.duration_s, 'year', t.year,
           'model_version', a.model_version, 'analyzed_at', coalesce(t.analyzed_at, a.analyzed_at),
           'analysis', json_build_object(
               'tempo', a.tempo, 'key', a.key, 'scale', a.scale, 'energy', a.energy,
               'energy_normalized', a.energy_normalized, 'tags', a.tags, 'mtt_tags', a.mtt_tags,
               'moods', a.moods, {", ".join(f"'{n}', a.{n}" for n in OTHER_FEATURES)},
               'features', a.features - 'content_fingerprint'))::text AS doc
FROM tracks t
JOIN track_analysis a USING (item_id)
JOIN embeddings e ON e.item_id = t.item_id AND e.model_version = a.model_version
WHERE t.analysis_status = 'analyzed'
ORDER BY t.item_id
"""


async def analysed_rows(conn: asyncpg.Connection, batch: int = 500) -> AsyncGenerator[list[asyncpg.Record]]:
    """Every analysed track with its analysis and embedding, ``batch`` rows at a time, from one
    consistent snapshot (a read-only repeatable-read transaction on ``conn``): the export never
    holds more than one batch.  ``doc`` is the record's JSON but for the fingerprint and the
    embedding, which the caller adds."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        cursor = await conn.cursor(_EXPORT)
        while True:
            rows = await cursor.fetch(batch)
            if not rows:
                return
            yield rows


async def try_import_lock(conn: asyncpg.Connection) -> bool:
    """Inside the import's transaction: True when no other import runs (held until it ends)."""
    return bool(await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", IMPORT_LOCK_KEY))


async def track_count(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM tracks"))


async def local_files(conn: asyncpg.Connection) -> list[tuple[str, str]]:
    """(item_id, file path) of the local provider's tracks."""
    rows = await conn.fetch(
        "SELECT item_id, file_path FROM tracks WHERE provider = 'local' AND file_path IS NOT NULL"
    )
    return [(r["item_id"], r["file_path"]) for r in rows]


_CANDIDATES = """
WITH r AS (
    SELECT * FROM unnest($1::int[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                         $8::real[])
        AS r(i, item_id, fp, path, title, artist, album, duration)
), k AS (
    SELECT r.*, am_search_text(r.title, r.artist, r.album) AS search, am_path_tail(r.path) AS tail FROM r
), found AS (
    SELECT k.i, 'fingerprint' AS how, a.item_id FROM k
    JOIN track_analysis a ON a.features ->> 'content_fingerprint' = k.fp
    UNION ALL
    SELECT k.i, 'item_id', t.item_id FROM k JOIN tracks t ON t.item_id = k.item_id
    WHERE t.search_text = k.search OR am_path_tail(t.file_path) = k.tail
    UNION ALL
    SELECT k.i, 'path', t.item_id FROM k JOIN tracks t ON am_path_tail(t.file_path) = k.tail
    UNION ALL
    SELECT k.i, 'tags', t.item_id FROM k JOIN tracks t ON t.search_text = k.search
    WHERE k.title <> '' AND (k.artist <> '' OR k.album <> '')
      AND (t.duration_s IS NULL OR k.duration IS NULL OR abs(t.duration_s - k.duration) <= 3)
)
SELECT f.i, f.how, f.item_id, t.analysis_status, t.model_version FROM found f JOIN tracks t USING (item_id)
"""


async def candidates(conn: asyncpg.Connection, records: Sequence[Any]) -> list[asyncpg.Record]:
    """For each record (by its index in ``records``): the tracks of this library it could be, and
    how each was found (fingerprint, item_id confirmed by tags or path, path, tags), with their
    analysis status and model version."""
    return list(
        await conn.fetch(
            _CANDIDATES,
            list(range(len(records))),
            [r.item_id for r in records],
            [r.fingerprint for r in records],
            [r.path for r in records],
            [r.title for r in records],
            [r.artist for r in records],
            [r.album for r in records],
            [r.duration_s for r in records],
        )
    )


async def states(conn: asyncpg.Connection, item_ids: Sequence[str]) -> dict[str, tuple[str, str | None]]:
    """(analysis status, model version) of the tracks ``item_ids``."""
    rows = await conn.fetch(
        "SELECT item_id, analysis_status, model_version FROM tracks WHERE item_id = ANY($1::text[])",
        list(item_ids),
    )
    return {r["item_id"]: (r["analysis_status"], r["model_version"]) for r in rows}


async def store_imported(conn: asyncpg.Connection, rows: Sequence[tuple[str, Any, str | None]]) -> None:
    """Write ``(target item_id, record, fingerprint to keep or None)`` as each target's analysis,
    embedding and status (analysed, by the record's model version, at its time)."""
    if not rows:
        return
    await conn.executemany(
        f"""INSERT INTO track_analysis (item_id, tempo, key, scale, energy, energy_normalized, tags, mtt_tags,
                moods, {", ".join(OTHER_FEATURES)}, features, model_version, analyzed_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb, $9, $10, $11, $12, $13, $14, $15,
                    $16::jsonb, $17, coalesce($18::timestamptz, now()))
            ON CONFLICT (item_id) DO UPDATE SET tempo = EXCLUDED.tempo, key = EXCLUDED.key,
                scale = EXCLUDED.scale, energy = EXCLUDED.energy,
                energy_normalized = EXCLUDED.energy_normalized, tags = EXCLUDED.tags,
                mtt_tags = EXCLUDED.mtt_tags, moods = EXCLUDED.moods,
                {", ".join(f"{n} = EXCLUDED.{n}" for n in OTHER_FEATURES)},
                features = EXCLUDED.features, model_version = EXCLUDED.model_version,
                analyzed_at = EXCLUDED.analyzed_at""",
        [
            (
                target,
                r.analysis["tempo"],
                r.analysis["key"],
                r.analysis["scale"],
                r.analysis["energy"],
                r.analysis["energy_normalized"],
                json.dumps(r.analysis["tags"]),
                json.dumps(r.analysis["mtt_tags"]),
                r.analysis["moods"],
                *(r.analysis[n] for n in OTHER_FEATURES),
                json.dumps({**r.analysis["features"], **({"content_fingerprint": fp} if fp else {})}),
                r.model_version,
                r.analyzed_at,
            )
            for target, r, fp in rows
        ],
    )
    await conn.executemany(
        """INSERT INTO embeddings (item_id, embedding, mtt_embedding, model_version) VALUES ($1, $2, $3, $4)
           ON CONFLICT (item_id) DO UPDATE SET embedding = EXCLUDED.embedding,
               mtt_embedding = EXCLUDED.mtt_embedding, model_version = EXCLUDED.model_version,
               space = NULL, created_at = now()""",
        [(target, r.embedding, r.mtt_embedding, r.model_version) for target, r, _ in rows],
    )
    await conn.executemany(
        """UPDATE tracks SET analysis_status = 'analyzed', failure_reason = NULL, model_version = $2,
               analyzed_at = coalesce($3::timestamptz, now()), updated_at = now() WHERE item_id = $1""",
        [(target, r.model_version, r.analyzed_at) for target, r, _ in rows],
    )
