"""pgvector queries that feed the mix engine: seeds and nearest-neighbour candidates.

Every k-NN query goes through the SQL function ``am_nearest`` (migration 0002), which sets
``hnsw.ef_search`` to at least the number of rows asked for (pgvector returns at most
ef_search rows from an HNSW scan) in the same statement; iterative index scans (set on every
pooled connection) keep exclusions from starving the result.  Rows come back as
:class:`sidecar.mix.engine.Candidate`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
import numpy as np

from sidecar.mix.engine import Candidate

_TRACK_COLUMNS = "t.item_id, t.title, t.artist, t.album, t.album_id"


def _candidate(row: asyncpg.Record, distance: float = 0.0, seed_id: str | None = None) -> Candidate:
    # embeddings arrive as float32 arrays: the pool's codec (sidecar/db/pool.py) decodes them
    return Candidate(item_id=row["item_id"], title=row["title"], artist=row["artist"], album=row["album"],
                     album_id=row["album_id"], embedding=row["embedding"],
                     distance=float(row["distance"]) if "distance" in row.keys() else distance, seed_id=seed_id)


async def anything_analysed(db: asyncpg.Pool | asyncpg.Connection) -> bool:
    """Does any track have an embedding?  (Not a count: that scans a million rows.)"""
    return bool(await db.fetchval("SELECT EXISTS (SELECT 1 FROM embeddings)"))


async def seeds_by_ids(db: asyncpg.Pool | asyncpg.Connection, item_ids: Sequence[str]) -> list[Candidate]:
    """Analysed tracks among ``item_ids``, in the order given (unknown or unanalysed left out)."""
    rows = await db.fetch(
        f"""SELECT {_TRACK_COLUMNS}, e.embedding FROM tracks t JOIN embeddings e USING (item_id)
            WHERE t.item_id = ANY($1::text[])""", list(item_ids))
    by_id = {r["item_id"]: _candidate(r) for r in rows}
    return [by_id[i] for i in dict.fromkeys(item_ids) if i in by_id]


async def track_status(db: asyncpg.Pool | asyncpg.Connection, item_id: str) -> tuple[str | None, bool]:
    """The analysis status of a track (None when the id is unknown), and whether any track at all
    has an embedding: one round trip."""
    row = await db.fetchrow("""SELECT (SELECT analysis_status FROM tracks WHERE item_id = $1) AS status,
                                      EXISTS (SELECT 1 FROM embeddings) AS anything""", item_id)
    return (str(row["status"]) if row["status"] is not None else None), bool(row["anything"])


async def seed_by_title_artist(db: asyncpg.Pool | asyncpg.Connection, title: str, artist: str) -> Candidate | None:
    """The analysed track best matching a title and an artist (typo- and accent-tolerant)."""
    row = await db.fetchrow(
        f"""SELECT {_TRACK_COLUMNS}, e.embedding FROM tracks t JOIN embeddings e USING (item_id)
            WHERE t.search_text % am_search_text($1, $2)
            ORDER BY similarity(am_search_text(t.title), am_search_text($1))
                   + similarity(am_search_text(t.artist), am_search_text($2)) DESC
            LIMIT 1""", title, artist)
    return _candidate(row) if row else None


async def nearest(db: asyncpg.Pool | asyncpg.Connection, vector: np.ndarray, k: int, exclude: Sequence[str] = (),
                  seed_id: str | None = None) -> list[Candidate]:
    """The ``k`` analysed tracks nearest to ``vector`` by cosine distance, ``exclude`` left out.

    One statement: ``am_nearest`` (migration 0002) raises ``hnsw.ef_search`` to cover k.
    """
    rows = await db.fetch(
        f"""SELECT {_TRACK_COLUMNS}, n.embedding, n.distance
            FROM am_nearest($1, $2, $3::text[]) n JOIN tracks t USING (item_id)
            ORDER BY n.distance""", vector, k, list(exclude))
    return [_candidate(r, seed_id=seed_id) for r in rows]


async def seed_and_nearest(db: asyncpg.Pool | asyncpg.Connection, item_id: str, k: int,
                           exclude: Sequence[str] = ()) -> tuple[Candidate | None, list[Candidate]]:
    """The analysed track ``item_id`` and its ``k`` nearest (itself and ``exclude`` left out), in one
    statement: a song mix's only round trip.  ``(None, [])`` when the track has no embedding."""
    rows = await db.fetch(
        f"""SELECT {_TRACK_COLUMNS}, n.embedding, n.distance, n.is_seed
            FROM (SELECT s.item_id, s.embedding, 0::float8 AS distance, true AS is_seed
                    FROM embeddings s WHERE s.item_id = $1
                  UNION ALL
                  SELECT n.item_id, n.embedding, n.distance, false
                    FROM embeddings s CROSS JOIN LATERAL am_nearest(s.embedding, $2, $1 || $3::text[]) n
                   WHERE s.item_id = $1) n
            JOIN tracks t USING (item_id)
            ORDER BY n.is_seed DESC, n.distance""", item_id, k, list(exclude))
    if not rows or not rows[0]["is_seed"]:
        return None, []
    return _candidate(rows[0]), [_candidate(r, seed_id=item_id) for r in rows[1:]]


async def nearest_many(db: asyncpg.Pool | asyncpg.Connection, seeds: Sequence[Candidate], k: int,
                       exclude: Sequence[str] = ()) -> dict[str, list[Candidate]]:
    """``k`` nearest candidates for each seed (stored tracks), in one statement (LATERAL k-NN per seed)."""
    if not seeds:
        return {}
    rows = await db.fetch(
        f"""SELECT s.seed_id, {_TRACK_COLUMNS}, n.embedding, n.distance
            FROM unnest($1::text[]) AS s(seed_id)
            JOIN embeddings se ON se.item_id = s.seed_id
            CROSS JOIN LATERAL am_nearest(se.embedding, $3, $2::text[]) n
            JOIN tracks t ON t.item_id = n.item_id
            ORDER BY s.seed_id, n.distance""",
        [s.item_id for s in seeds], list(exclude), k)
    out: dict[str, list[Candidate]] = {s.item_id: [] for s in seeds}
    for r in rows:
        out[r["seed_id"]].append(_candidate(r, seed_id=r["seed_id"]))
    return out


async def album_seeds(db: asyncpg.Pool | asyncpg.Connection, album_id: str) -> list[Candidate]:
    rows = await db.fetch(
        f"""SELECT {_TRACK_COLUMNS}, e.embedding FROM tracks t JOIN embeddings e USING (item_id)
            WHERE t.album_id = $1 ORDER BY t.track_number NULLS LAST, t.title""", album_id)
    return [_candidate(r) for r in rows]


async def artist_seeds(db: asyncpg.Pool | asyncpg.Connection, artist: str, limit: int) -> list[Candidate]:
    """Up to ``limit`` analysed tracks of an artist (by name or by any of their track ids),
    spread evenly over their catalogue."""
    rows = await db.fetch(
        f"""SELECT {_TRACK_COLUMNS}, e.embedding FROM tracks t JOIN embeddings e USING (item_id)
            WHERE lower(t.artist) = lower($1) OR lower(t.album_artist) = lower($1)
            ORDER BY t.year NULLS LAST, t.album, t.track_number NULLS LAST, t.title""", artist)
    return _spread([_candidate(r) for r in rows], limit)


async def genre_seeds(db: asyncpg.Pool | asyncpg.Connection, genre: str, limit: int) -> list[Candidate]:
    """Tracks tagged with the genre by the media server, else those whose analysis gives the
    matching tag a high score."""
    rows = await db.fetch(
        f"""SELECT {_TRACK_COLUMNS}, e.embedding FROM tracks t JOIN embeddings e USING (item_id)
            WHERE EXISTS (SELECT 1 FROM unnest(t.genres) g WHERE lower(g) = lower($1))
            ORDER BY t.item_id""", genre)
    if not rows:
        rows = await db.fetch(
            f"""SELECT {_TRACK_COLUMNS}, e.embedding FROM tracks t JOIN embeddings e USING (item_id)
                JOIN track_analysis a USING (item_id)
                CROSS JOIN LATERAL jsonb_each_text(a.tags) tag(label, score)
                WHERE lower(tag.label) = lower($1) AND tag.score::real >= 0.2
                ORDER BY tag.score::real DESC LIMIT 200""", genre)
    return _spread([_candidate(r) for r in rows], limit)


async def playlist_track_ids(db: asyncpg.Pool | asyncpg.Connection, playlist_id: str) -> list[str] | None:
    """Track ids of a playlist this service created (by our id or the media server's)."""
    row = await db.fetchrow(
        """SELECT track_ids FROM playlists
           WHERE provider_playlist_id = $1 OR playlist_id::text = $1 ORDER BY updated_at DESC LIMIT 1""",
        playlist_id)
    return list(row["track_ids"]) if row else None


def _spread(items: list[Any], limit: int) -> list[Any]:
    if len(items) <= limit:
        return items
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]


async def search_tracks(db: asyncpg.Pool | asyncpg.Connection, query: str, offset: int,
                        limit: int) -> list[asyncpg.Record]:
    """Title/artist/album search on the trigram index: typo-tolerant, accent- and case-insensitive.

    Substring matches rank first, then trigram word similarity.
    """
    folded = await db.fetchval("SELECT am_search_text($1)", query)
    if not folded or not folded.strip():
        return []
    pattern = "%" + folded.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    # Bound parameters (not a CTE) so the planner can use the trigram index for both tests.
    return await db.fetch(
        """SELECT t.item_id, t.title, t.artist, t.album, t.analysis_status
           FROM tracks t
           WHERE t.search_text LIKE $2 OR $1 <% t.search_text
           ORDER BY (t.search_text LIKE $2) DESC, word_similarity($1, t.search_text) DESC, t.artist, t.title
           OFFSET $3 LIMIT $4""", folded, pattern, offset, limit)
