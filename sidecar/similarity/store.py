"""pgvector queries that feed the mix engine: seeds and nearest-neighbour candidates.

Every k-NN query goes through the SQL function ``am_nearest`` (migration 0002), which sets
``hnsw.ef_search`` to at least the number of rows asked for (pgvector returns at most
ef_search rows from an HNSW scan) in the same statement; iterative index scans (set on every
pooled connection) keep exclusions from starving the result.  Rows come back as
:class:`sidecar.mix.engine.Candidate`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import numpy as np

from sidecar.mix.engine import Candidate

_TRACK_COLUMNS = "t.item_id, t.title, t.artist, t.album, t.album_id"


def _candidate(row: asyncpg.Record, distance: float = 0.0, seed_id: str | None = None) -> Candidate:
    # embeddings arrive as float32 arrays: the pool's codec (sidecar/db/pool.py) decodes them
    return Candidate(
        item_id=row["item_id"],
        title=row["title"],
        artist=row["artist"],
        album=row["album"],
        album_id=row["album_id"],
        embedding=row["embedding"],
        distance=float(row["distance"]) if "distance" in row.keys() else distance,
        seed_id=seed_id,
    )


async def anything_analysed(db: asyncpg.Pool | asyncpg.Connection) -> bool:
    """Is any track in the similarity space?  (Not a count: that scans a million rows.)"""
    return bool(await db.fetchval("SELECT EXISTS (SELECT 1 FROM similarity_vectors)"))


async def seeds_by_ids(db: asyncpg.Pool | asyncpg.Connection, item_ids: Sequence[str]) -> list[Candidate]:
    """Analysed tracks among ``item_ids``, in the order given (unknown or unanalysed left out)."""
    rows = await db.fetch(
        f"""SELECT {_TRACK_COLUMNS}, e.vector AS embedding FROM tracks t JOIN similarity_vectors e USING (item_id)
            WHERE t.item_id = ANY($1::text[])""",
        list(item_ids),
    )
    by_id = {r["item_id"]: _candidate(r) for r in rows}
    return [by_id[i] for i in dict.fromkeys(item_ids) if i in by_id]


async def track_status(db: asyncpg.Pool | asyncpg.Connection, item_id: str) -> tuple[str | None, bool]:
    """The analysis status of a track (None when the id is unknown), and whether any track at all
    has an embedding: one round trip."""
    row = await db.fetchrow(
        """SELECT (SELECT analysis_status FROM tracks WHERE item_id = $1) AS status,
                                      EXISTS (SELECT 1 FROM similarity_vectors) AS anything""",
        item_id,
    )
    return (str(row["status"]) if row["status"] is not None else None), bool(row["anything"])


async def seed_by_title_artist(
    db: asyncpg.Pool | asyncpg.Connection, title: str, artist: str
) -> Candidate | None:
    """The analysed track best matching a title and an artist (typo- and accent-tolerant)."""
    row = await db.fetchrow(
        f"""SELECT {_TRACK_COLUMNS}, e.vector AS embedding FROM tracks t JOIN similarity_vectors e USING (item_id)
            WHERE t.search_text % am_search_text($1, $2)
            ORDER BY similarity(am_search_text(t.title), am_search_text($1))
                   + similarity(am_search_text(t.artist), am_search_text($2)) DESC
            LIMIT 1""",
        title,
        artist,
    )
    return _candidate(row) if row else None


async def nearest(
    db: asyncpg.Pool | asyncpg.Connection,
    vector: np.ndarray,
    k: int,
    exclude: Sequence[str] = (),
    seed_id: str | None = None,
) -> list[Candidate]:
    """The ``k`` analysed tracks nearest to ``vector`` by cosine distance, ``exclude`` left out.

    One statement: ``am_nearest`` (migration 0002) raises ``hnsw.ef_search`` to cover k.
    """
    rows = await db.fetch(
        f"""SELECT {_TRACK_COLUMNS}, n.vector AS embedding, n.distance
            FROM am_nearest($1, $2, $3::text[]) n JOIN tracks t USING (item_id)
            ORDER BY n.distance""",
        vector,
        k,
        list(exclude),
    )
    return [_candidate(r, seed_id=seed_id) for r in rows]


async def seed_and_nearest(
    db: asyncpg.Pool | asyncpg.Connection, item_id: str, k: int, exclude: Sequence[str] = ()
) -> tuple[Candidate | None, list[Candidate]]:
    """The analysed track ``item_id`` and its ``k`` nearest (itself and ``exclude`` left out), in one
    statement: a song mix's only round trip.  ``(None, [])`` when the track has no embedding."""
    rows = await db.fetch(
        f"""SELECT {_TRACK_COLUMNS}, n.vector AS embedding, n.distance, n.is_seed
            FROM (SELECT s.item_id, s.vector, 0::float8 AS distance, true AS is_seed
                    FROM similarity_vectors s WHERE s.item_id = $1
                  UNION ALL
                  SELECT n.item_id, n.vector, n.distance, false
                    FROM similarity_vectors s CROSS JOIN LATERAL am_nearest(s.vector, $2, $1 || $3::text[]) n
                   WHERE s.item_id = $1) n
            JOIN tracks t USING (item_id)
            ORDER BY n.is_seed DESC, n.distance""",
        item_id,
        k,
        list(exclude),
    )
    if not rows or not rows[0]["is_seed"]:
        return None, []
    return _candidate(rows[0]), [_candidate(r, seed_id=item_id) for r in rows[1:]]


async def nearest_many(
    db: asyncpg.Pool | asyncpg.Connection, seeds: Sequence[Candidate], k: int, exclude: Sequence[str] = ()
) -> dict[str, list[Candidate]]:
    """``k`` nearest candidates for each seed (stored tracks), in one statement (LATERAL k-NN per seed)."""
    if not seeds:
        return {}
    rows = await db.fetch(
        f"""SELECT s.seed_id, {_TRACK_COLUMNS}, n.vector AS embedding, n.distance
            FROM unnest($1::text[]) AS s(seed_id)
            JOIN similarity_vectors se ON se.item_id = s.seed_id
            CROSS JOIN LATERAL am_nearest(se.vector, $3, $2::text[]) n
            JOIN tracks t ON t.item_id = n.item_id
            ORDER BY s.seed_id, n.distance""",
        [s.item_id for s in seeds],
        list(exclude),
        k,
    )
    out: dict[str, list[Candidate]] = {s.item_id: [] for s in seeds}
    for r in rows:
        out[r["seed_id"]].append(_candidate(r, seed_id=r["seed_id"]))
    return out


async def album_seeds(db: asyncpg.Pool | asyncpg.Connection, album_id: str) -> list[Candidate]:
    rows = await db.fetch(
        f"""SELECT {_TRACK_COLUMNS}, e.vector AS embedding FROM tracks t JOIN similarity_vectors e USING (item_id)
            WHERE t.album_id = $1 ORDER BY t.track_number NULLS LAST, t.title""",
        album_id,
    )
    return [_candidate(r) for r in rows]


async def artist_seeds(db: asyncpg.Pool | asyncpg.Connection, artist: str, limit: int) -> list[Candidate]:
    """Up to ``limit`` analysed tracks of an artist (by name or by any of their track ids),
    spread evenly over their catalogue."""
    rows = await db.fetch(
        f"""SELECT {_TRACK_COLUMNS}, e.vector AS embedding FROM tracks t JOIN similarity_vectors e USING (item_id)
            WHERE lower(t.artist) = lower($1) OR lower(t.album_artist) = lower($1)
            ORDER BY t.year NULLS LAST, t.album, t.track_number NULLS LAST, t.title""",
        artist,
    )
    return spread_evenly([_candidate(r) for r in rows], limit)


async def genre_seeds(db: asyncpg.Pool | asyncpg.Connection, genre: str, limit: int) -> list[Candidate]:
    """Tracks tagged with the genre by the media server, else those whose analysis gives the
    matching tag a high score."""
    rows = await db.fetch(
        f"""SELECT {_TRACK_COLUMNS}, e.vector AS embedding FROM tracks t JOIN similarity_vectors e USING (item_id)
            WHERE EXISTS (SELECT 1 FROM unnest(t.genres) g WHERE lower(g) = lower($1))
            ORDER BY t.item_id""",
        genre,
    )
    if not rows:
        rows = await db.fetch(
            f"""SELECT {_TRACK_COLUMNS}, e.vector AS embedding FROM tracks t JOIN similarity_vectors e USING (item_id)
                JOIN track_analysis a USING (item_id)
                CROSS JOIN LATERAL jsonb_each_text(a.tags) tag(label, score)
                WHERE lower(tag.label) = lower($1) AND tag.score::real >= 0.2
                ORDER BY tag.score::real DESC LIMIT 200""",
            genre,
        )
    return spread_evenly([_candidate(r) for r in rows], limit)


async def playlist_track_ids(db: asyncpg.Pool | asyncpg.Connection, playlist_id: str) -> list[str] | None:
    """Track ids of a playlist this service created (by our id or the media server's)."""
    row = await db.fetchrow(
        """SELECT track_ids FROM playlists
           WHERE provider_playlist_id = $1 OR playlist_id::text = $1 ORDER BY updated_at DESC LIMIT 1""",
        playlist_id,
    )
    return list(row["track_ids"]) if row else None


def spread_evenly(items: list[Any], limit: int) -> list[Any]:
    """At most ``limit`` items taken evenly over the list, first to last (a long album or
    playlist is represented from start to end, not by its first tracks)."""
    if len(items) <= limit:
        return items
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]


async def search_tracks(
    db: asyncpg.Pool | asyncpg.Connection, query: str, offset: int, limit: int
) -> list[asyncpg.Record]:
    """Title/artist/album search on the trigram index: typo-tolerant, accent- and case-insensitive.

    Substring matches rank first, then trigram word similarity.
    """
    folded = await _folded(db, query)
    if folded is None:
        return []
    # Bound parameters (not a CTE) so the planner can use the trigram index for both tests.
    rows: list[Any] = await db.fetch(
        """SELECT t.item_id, t.title, t.artist, t.album, t.album_id, t.analysis_status
           FROM tracks t
           WHERE t.search_text LIKE $2 OR $1 <% t.search_text
           ORDER BY (t.search_text LIKE $2) DESC, word_similarity($1, t.search_text) DESC, t.artist, t.title
           OFFSET $3 LIMIT $4""",
        *folded,
        offset,
        limit,
    )
    return rows


# -- albums and artists by name ---------------------------------------------------------------------

#: pg_trgm word similarity (0-1) a name needs to be listed by search_albums / search_artists.
#: Lower than pg_trgm's default (0.6) that search_tracks uses: names are short, and one typo in
#: a seven-letter word ("Beatels") already leaves 4 of its 7 trigrams.
NAME_THRESHOLD = 0.5


@dataclass(frozen=True)
class AlbumHit:
    album_id: str
    album: str
    #: the album artist, else the one track artist, else "Various Artists"
    artist: str
    tracks: int
    analyzed: int


@dataclass(frozen=True)
class ArtistHit:
    #: the track artist, as most of their tracks spell it
    artist: str
    albums: int
    tracks: int
    analyzed: int


@asynccontextmanager
async def _word_similarity_threshold(
    db: asyncpg.Pool | asyncpg.Connection, threshold: float
) -> AsyncIterator[asyncpg.Connection]:
    """A connection in a read-only transaction whose ``<%`` operator uses ``threshold``
    (transaction-local: nothing is left on the pooled connection)."""
    async with AsyncExitStack() as stack:
        conn = await stack.enter_async_context(db.acquire()) if isinstance(db, asyncpg.Pool) else db
        await stack.enter_async_context(conn.transaction(readonly=True))
        await conn.execute("SELECT set_config('pg_trgm.word_similarity_threshold', $1, true)", str(threshold))
        yield conn


async def _folded(db: asyncpg.Pool | asyncpg.Connection, query: str) -> tuple[str, str] | None:
    """The query as the search column spells it (lower case, no accents) and its LIKE pattern."""
    folded = await db.fetchval("SELECT am_search_text($1)", query)
    if not folded or not folded.strip():
        return None
    folded = " ".join(folded.split())
    return folded, "%" + folded.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


# Both searches find their candidates through the trigram index on tracks.search_text (title,
# artist, album): a name that matches has a track whose search_text matches at least as well.
# Only then are the names themselves tested, track by track, so that a query matching many
# titles does not count the tracks of every album or artist it touched.  Ranked: the exact name,
# then names containing the query (equally relevant: the bigger first), then fuzzy matches by
# word similarity; then size.
_ALBUMS_SQL = """
WITH hit AS (
    SELECT DISTINCT t.album_id FROM tracks t
    CROSS JOIN LATERAL (VALUES (am_search_text(t.artist, t.album)),
                               (CASE WHEN t.album_artist NOT IN ('', t.artist)
                                     THEN am_search_text(t.album_artist, t.album) END)) name(text)
    WHERE t.album_id IS NOT NULL AND (t.search_text LIKE $2 OR $1 <% t.search_text)
      AND (name.text LIKE $2 OR $1 <% name.text)
), album AS (
    SELECT t.album_id, mode() WITHIN GROUP (ORDER BY t.album) AS album,
           coalesce(nullif(max(t.album_artist), ''),
                    CASE WHEN count(DISTINCT t.artist) = 1 THEN min(t.artist) ELSE 'Various Artists' END) AS artist,
           count(*)::int AS tracks, (count(*) FILTER (WHERE t.analysis_status = 'analyzed'))::int AS analyzed
    FROM tracks t JOIN hit USING (album_id)
    GROUP BY t.album_id
), scored AS (
    SELECT a.*, am_search_text(a.album) = $1 AS exact, am_search_text(a.artist, a.album) AS text FROM album a
)
SELECT album_id, album, artist, tracks, analyzed FROM scored
WHERE exact OR text LIKE $2 OR $1 <% text
ORDER BY exact DESC, text LIKE $2 DESC,
         CASE WHEN text LIKE $2 THEN 1 ELSE word_similarity($1, text) END DESC, tracks DESC, album, album_id
OFFSET $3 LIMIT $4"""

_ARTISTS_SQL = """
WITH hit AS (
    SELECT DISTINCT lower(t.artist) AS key FROM tracks t
    WHERE t.artist <> '' AND (t.search_text LIKE $2 OR $1 <% t.search_text)
      AND (am_search_text(t.artist) LIKE $2 OR $1 <% am_search_text(t.artist))
), named AS (
    SELECT key, am_search_text(key) AS text FROM hit
), artist AS (
    SELECT n.key, n.text, mode() WITHIN GROUP (ORDER BY t.artist) AS artist,
           count(DISTINCT t.album_id)::int AS albums, count(*)::int AS tracks,
           (count(*) FILTER (WHERE t.analysis_status = 'analyzed'))::int AS analyzed
    FROM tracks t JOIN named n ON lower(t.artist) = n.key
    GROUP BY n.key, n.text
)
SELECT artist, albums, tracks, analyzed FROM artist
ORDER BY text = $1 DESC, text LIKE $2 DESC,
         CASE WHEN text LIKE $2 THEN 1 ELSE word_similarity($1, text) END DESC, tracks DESC, artist
OFFSET $3 LIMIT $4"""


async def search_albums(
    db: asyncpg.Pool | asyncpg.Connection,
    query: str,
    offset: int,
    limit: int,
    threshold: float = NAME_THRESHOLD,
) -> list[AlbumHit]:
    """Albums whose name, or artist and name, match ``query``: typo-tolerant, accent- and
    case-insensitive; with their track counts."""
    async with _word_similarity_threshold(db, threshold) as conn:
        folded = await _folded(conn, query)
        rows = await conn.fetch(_ALBUMS_SQL, *folded, offset, limit) if folded else []
    return [AlbumHit(**dict(r)) for r in rows]


async def search_artists(
    db: asyncpg.Pool | asyncpg.Connection,
    query: str,
    offset: int,
    limit: int,
    threshold: float = NAME_THRESHOLD,
) -> list[ArtistHit]:
    """Track artists whose name matches ``query``: typo-tolerant, accent- and case-insensitive;
    with their album and track counts."""
    async with _word_similarity_threshold(db, threshold) as conn:
        folded = await _folded(conn, query)
        rows = await conn.fetch(_ARTISTS_SQL, *folded, offset, limit) if folded else []
    return [ArtistHit(**dict(r)) for r in rows]


async def album_known(db: asyncpg.Pool | asyncpg.Connection, album_id: str) -> tuple[bool, bool]:
    """Whether any track has this album id, and whether any track at all has an embedding."""
    row = await db.fetchrow(
        """SELECT EXISTS (SELECT 1 FROM tracks WHERE album_id = $1) AS known,
                                      EXISTS (SELECT 1 FROM similarity_vectors) AS anything""",
        album_id,
    )
    return bool(row["known"]), bool(row["anything"])
