"""The tracks table as seen from the media server: metadata upserts and lookups."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from sidecar.providers.base import Track


async def upsert_tracks(db: asyncpg.Pool | asyncpg.Connection, provider: str, tracks: Sequence[Track]) -> int:
    """Insert new tracks as 'pending' and refresh the metadata of known ones.

    Analysis status, failure reason and results are kept: metadata refresh never loses work.
    """
    if not tracks:
        return 0
    await db.executemany(
        """INSERT INTO tracks (item_id, provider, title, artist, album, album_artist, album_id, track_number,
                               duration_s, year, genres, file_path, date_added)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
           ON CONFLICT (item_id) DO UPDATE SET
               provider = EXCLUDED.provider, title = EXCLUDED.title, artist = EXCLUDED.artist,
               album = EXCLUDED.album, album_artist = EXCLUDED.album_artist, album_id = EXCLUDED.album_id,
               track_number = EXCLUDED.track_number, duration_s = EXCLUDED.duration_s, year = EXCLUDED.year,
               genres = EXCLUDED.genres, file_path = EXCLUDED.file_path, date_added = EXCLUDED.date_added,
               updated_at = now()""",
        [(t.item_id, provider, t.title, t.artist, t.album, t.album_artist, t.album_id, t.track_number,
          t.duration_s, t.year, list(t.genres), t.file_path, t.date_added) for t in tracks])
    return len(tracks)


async def status_counts(db: asyncpg.Pool | asyncpg.Connection) -> dict[str, int]:
    rows = await db.fetch("SELECT analysis_status, count(*) AS n FROM tracks GROUP BY analysis_status")
    counts = {"pending": 0, "analyzing": 0, "analyzed": 0, "failed": 0}
    counts.update({r["analysis_status"]: int(r["n"]) for r in rows})
    return counts
