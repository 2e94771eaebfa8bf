"""The similarity space's statistics and the placing of tracks in it (sidecar/similarity/space.py).

The database builds every vector (``am_space``, migration 0007) from the statistics row in
``similarity_space``; these functions fit that row from the library's moments and (re)build the
vectors.  A refit rebuilds every vector, in one transaction under an advisory lock, while the
statistics row stays locked: a track stored meanwhile (``hold_stats`` takes the row FOR SHARE
first) waits for it and is built with the new statistics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
import numpy as np

from sidecar.similarity.space import REVISION, Moments, SpaceStats, stats_from_moments

_REFIT_LOCK = 0x414D5350  # "AMSP"
#: a refit reads and rewrites every vector: minutes on a large library, past the pool's 60 s
#: command timeout (the worker runs it, never a request)
LONG_S = 6 * 3600.0

_BUILD = """am_space(e.embedding, e.mtt_embedding, a.tempo, a.energy_normalized, a.key, a.scale, s)"""


@dataclass(frozen=True)
class SpaceState:
    tracks: int  # analysed tracks with an embedding now
    mtt_tracks: int  # ... of which with an MTT embedding
    fitted_on: int | None  # how many the statistics in force were fitted on (None: none in force)
    mtt_fitted_on: int | None  # ... of which with an MTT embedding
    unplaced: bool  # some track has no vector yet


async def state(db: asyncpg.Pool | asyncpg.Connection) -> SpaceState:
    row = await db.fetchrow(
        """SELECT n.tracks, n.mtt_tracks, s.tracks AS fitted_on, s.mtt_tracks AS mtt_fitted_on,
                  EXISTS (SELECT 1 FROM embeddings WHERE space IS NULL) AS unplaced
           FROM (SELECT count(*) AS tracks, count(mtt_embedding) AS mtt_tracks FROM embeddings) n
           LEFT JOIN similarity_space s ON s.revision = $1""",
        REVISION,
    )
    return SpaceState(
        int(row["tracks"]),
        int(row["mtt_tracks"]),
        row["fitted_on"],
        row["mtt_fitted_on"],
        bool(row["unplaced"]),
    )


async def moments(conn: asyncpg.Connection) -> Moments | None:
    row = await conn.fetchrow(
        """WITH x AS (
               SELECT e.embedding AS msd, e.mtt_embedding AS mtt,
                      ln(CASE WHEN a.tempo > 0 THEN a.tempo ELSE 120 END) / ln(2) AS tempo,
                      coalesce(a.energy_normalized, 0)::float8 AS energy
               FROM embeddings e JOIN track_analysis a USING (item_id))
           SELECT count(*) AS tracks, avg(msd) AS msd_mean, avg(msd * msd) AS msd_sq,
                  count(mtt) AS mtt_tracks, avg(mtt) AS mtt_mean, avg(mtt * mtt) AS mtt_sq,
                  avg(tempo) AS tempo_mean, avg(tempo * tempo) AS tempo_sq,
                  avg(energy) AS energy_mean, avg(energy * energy) AS energy_sq
           FROM x""",
        timeout=LONG_S,
    )
    if not row["tracks"]:
        return None
    return Moments(**dict(row))


async def save_stats(conn: asyncpg.Connection, s: SpaceStats) -> None:
    f32 = np.float32
    await conn.execute(
        """INSERT INTO similarity_space (id, revision, tracks, msd_mean, msd_scale, mtt_mean, mtt_scale,
                   tempo_mean, tempo_scale, energy_mean, energy_scale, key_scale, mtt_tracks, fitted_at)
           VALUES (true, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, now())
           ON CONFLICT (id) DO UPDATE SET revision = EXCLUDED.revision, tracks = EXCLUDED.tracks,
               mtt_tracks = EXCLUDED.mtt_tracks,
               msd_mean = EXCLUDED.msd_mean, msd_scale = EXCLUDED.msd_scale,
               mtt_mean = EXCLUDED.mtt_mean, mtt_scale = EXCLUDED.mtt_scale,
               tempo_mean = EXCLUDED.tempo_mean, tempo_scale = EXCLUDED.tempo_scale,
               energy_mean = EXCLUDED.energy_mean, energy_scale = EXCLUDED.energy_scale,
               key_scale = EXCLUDED.key_scale, fitted_at = now()""",
        s.revision,
        s.tracks,
        s.msd_mean.astype(f32),
        s.msd_scale.astype(f32),
        s.mtt_mean.astype(f32),
        s.mtt_scale.astype(f32),
        s.tempo_mean,
        s.tempo_scale,
        s.energy_mean,
        s.energy_scale,
        s.key_scale,
        s.mtt_tracks,
    )


async def maintain(db: asyncpg.Pool, needs_refit: Callable[[SpaceState], bool]) -> tuple[str, int] | None:
    """One step of upkeep, in one transaction: fit the statistics again and rebuild every vector
    when ``needs_refit`` says so (``("fitted", tracks)``), else place the tracks without a vector
    (``("placed", tracks)``); None when nothing was to do, nothing is analysed, or another
    process is at it right now (it holds the lock: this one does not queue behind it)."""
    async with db.acquire() as conn, conn.transaction():
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _REFIT_LOCK):
            return None
        await conn.execute("SET LOCAL statement_timeout = 0")
        st = await state(conn)
        if st.tracks == 0:
            return None
        if needs_refit(st):
            found = await moments(conn)
            if found is None:  # embeddings without analysis (synthetic data): nothing to fit
                return None
            await save_stats(conn, stats_from_moments(found))
            return "fitted", await _place(conn, "true")
        if st.unplaced:
            placed = await _place(conn, "e.space IS NULL")
            return ("placed", placed) if placed else None
        return None


async def hold_stats(conn: asyncpg.Connection) -> None:
    """Inside a transaction that will place a track: wait for a refit in progress and keep the
    statistics from changing until it commits.  Take it before writing any embeddings row (a
    refit locks the statistics, then every row: the other order would deadlock)."""
    await conn.execute("SELECT 1 FROM similarity_space FOR SHARE")


async def place_track(conn: asyncpg.Connection, item_id: str) -> None:
    """Build one stored track's vector, inside the caller's transaction, after ``hold_stats``
    (no statistics yet: it stays unplaced until the first fit)."""
    await _place(conn, "e.item_id = $1", item_id)


async def _place(conn: asyncpg.Connection, where: str, *args: object) -> int:
    status = await conn.execute(
        f"""UPDATE embeddings e SET space = {_BUILD}
            FROM track_analysis a, similarity_space s
            WHERE a.item_id = e.item_id AND s.revision = {REVISION:d} AND {where}""",
        *args,
        timeout=LONG_S,
    )
    return int(status.split()[-1])
