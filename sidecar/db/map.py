"""The music map's storage: the library's signature, the analysed tracks' embeddings and
labels read in chunks, and the one stored map (table ``music_map``, migration 0010)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import numpy as np

#: the six mood features of track_analysis: a track's mood is the highest of them
MOOD_COLUMNS = ("danceable", "aggressive", "happy", "party", "relaxed", "sad")


@dataclass(frozen=True)
class StoredMap:
    signature: str
    method: str
    computed_at: datetime
    seconds: float
    item_ids: list[str]
    xy: bytes
    mood_names: list[str]
    mood_idx: bytes
    genre_names: list[str]
    genre_idx: bytes


async def library_signature(db: asyncpg.Pool | asyncpg.Connection) -> str:
    """Changes when an analysed track is added, removed or analysed again (one scan of
    ``tracks``: an analysed track has its embedding, stored in the same transaction)."""
    row = await db.fetchrow(
        """SELECT count(*) AS n, max(analyzed_at) AS last,
                  coalesce(bit_xor(hashtextextended(item_id, 0)), 0) AS ids,
                  (SELECT fitted_at FROM similarity_space) AS fitted
           FROM tracks WHERE analysis_status = 'analyzed'"""
    )
    last = row["last"].isoformat() if row["last"] else "-"
    # a refit of the similarity space moves every point: the map is computed again
    fitted = row["fitted"].isoformat() if row["fitted"] else "-"
    return f"{row['n']}:{last}:{row['ids']}:{fitted}"


async def count_analysed(db: asyncpg.Pool | asyncpg.Connection) -> int:
    return int(
        await db.fetchval(
            "SELECT count(*) FROM similarity_vectors e JOIN tracks t USING (item_id)"
            " WHERE t.analysis_status = 'analyzed'"
        )
    )


async def analysed_chunks(
    conn: asyncpg.Connection, chunk: int = 10_000
) -> AsyncIterator[tuple[list[str], np.ndarray, list[str | None], list[list[str]]]]:
    """(ids, vectors in the similarity space (n x 404 float32), top mood, top tags) of the analysed
    tracks that have one, ``chunk``
    rows at a time (inside a transaction of the caller), in no particular order (a sort of
    100k rows of 800-byte vectors would spill to disk)."""
    # a cursor is planned for its first rows (nested index lookups): this one is read whole
    await conn.execute("SET LOCAL cursor_tuple_fraction = 1.0")
    moods = ", ".join(f"coalesce(a.{c}, -1)" for c in MOOD_COLUMNS)
    names = "ARRAY[" + ", ".join(f"'{c}'" for c in MOOD_COLUMNS) + "]"
    cursor = await conn.cursor(
        f"""SELECT e.item_id, e.vector AS embedding, a.moods,
                   CASE WHEN greatest({moods}) < 0 THEN NULL
                        ELSE ({names})[array_position(ARRAY[{moods}], greatest({moods}))] END AS mood
            FROM similarity_vectors e
            JOIN tracks t USING (item_id)
            LEFT JOIN track_analysis a USING (item_id)
            WHERE t.analysis_status = 'analyzed'"""
    )
    while True:
        rows = await cursor.fetch(chunk)
        if not rows:
            return
        yield (
            [r["item_id"] for r in rows],
            np.stack([r["embedding"] for r in rows]).astype(np.float32, copy=False),
            [r["mood"] for r in rows],
            [list(r["moods"] or []) for r in rows],
        )


async def store(db: asyncpg.Pool | asyncpg.Connection, m: StoredMap) -> None:
    await db.execute(
        """INSERT INTO music_map (id, signature, method, computed_at, seconds, item_ids, xy,
                                  mood_names, mood_idx, genre_names, genre_idx)
           VALUES (1, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
           ON CONFLICT (id) DO UPDATE SET
               signature = excluded.signature, method = excluded.method,
               computed_at = excluded.computed_at, seconds = excluded.seconds,
               item_ids = excluded.item_ids, xy = excluded.xy,
               mood_names = excluded.mood_names, mood_idx = excluded.mood_idx,
               genre_names = excluded.genre_names, genre_idx = excluded.genre_idx""",
        m.signature,
        m.method,
        m.computed_at,
        m.seconds,
        m.item_ids,
        m.xy,
        m.mood_names,
        m.mood_idx,
        m.genre_names,
        m.genre_idx,
    )


async def stored_signature(db: asyncpg.Pool | asyncpg.Connection) -> str | None:
    value: str | None = await db.fetchval("SELECT signature FROM music_map WHERE id = 1")
    return value


async def load(db: asyncpg.Pool | asyncpg.Connection) -> StoredMap | None:
    row = await db.fetchrow(
        """SELECT signature, method, computed_at, seconds, item_ids, xy, mood_names, mood_idx,
                  genre_names, genre_idx
           FROM music_map WHERE id = 1"""
    )
    return None if row is None else StoredMap(**dict(row))


async def track_details(db: asyncpg.Pool | asyncpg.Connection, ids: Sequence[str]) -> list[dict[str, Any]]:
    """Title, artist and album of ``ids``, in the order given (unknown ids left out)."""
    rows = await db.fetch(
        """SELECT t.item_id, t.title, t.artist, t.album
           FROM unnest($1::text[]) WITH ORDINALITY AS q (item_id, pos)
           JOIN tracks t USING (item_id)
           ORDER BY q.pos""",
        list(ids),
    )
    return [dict(r) for r in rows]
