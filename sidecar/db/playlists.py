"""The playlists table: what this service created on the media server, by kind and name."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg


async def provider_id(
    db: asyncpg.Pool | asyncpg.Connection, provider: str, kind: str, name: str
) -> str | None:
    """The media server's id of the playlist this service made under ``name``, if any."""
    found: str | None = await db.fetchval(
        "SELECT provider_playlist_id FROM playlists WHERE provider = $1 AND kind = $2 AND name = $3",
        provider,
        kind,
        name,
    )
    return found


async def record(
    db: asyncpg.Pool | asyncpg.Connection,
    provider: str,
    kind: str,
    name: str,
    track_ids: Sequence[str],
    playlist_id: str,
) -> None:
    await db.execute(
        """INSERT INTO playlists (name, kind, track_ids, provider, provider_playlist_id)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (provider, kind, name) DO UPDATE SET track_ids = EXCLUDED.track_ids,
               provider_playlist_id = EXCLUDED.provider_playlist_id, updated_at = now()""",
        name,
        kind,
        list(track_ids),
        provider,
        playlist_id,
    )


_PLAYLIST_COLUMNS = (
    "playlist_id, name, kind, provider, provider_playlist_id, track_ids, created_at, updated_at"
)


async def all_made(db: asyncpg.Pool | asyncpg.Connection) -> list[asyncpg.Record]:
    """Every playlist this service made, by kind then name."""
    return list(await db.fetch(f"SELECT {_PLAYLIST_COLUMNS} FROM playlists ORDER BY kind, name, playlist_id"))


async def made(db: asyncpg.Pool | asyncpg.Connection, playlist_id: int) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await db.fetchrow(
        f"SELECT {_PLAYLIST_COLUMNS} FROM playlists WHERE playlist_id = $1", playlist_id
    )
    return row


async def track_entries(
    db: asyncpg.Pool | asyncpg.Connection, item_ids: Sequence[str]
) -> list[asyncpg.Record]:
    """Title, artist, duration, path and provider of the tracks ``item_ids`` still in the library."""
    return list(
        await db.fetch(
            "SELECT item_id, title, artist, duration_s, file_path, provider FROM tracks "
            "WHERE item_id = ANY($1::text[])",
            list(item_ids),
        )
    )


async def matching(db: asyncpg.Pool | asyncpg.Connection, raw_id: str, provider: str) -> list[asyncpg.Record]:
    """The playlists ``raw_id`` names: ours with that ``playlist_id`` (when it is a number) and
    the one of ``provider`` with that media server id; two rows when the two readings differ."""
    ours = int(raw_id) if raw_id.isascii() and raw_id.isdigit() and len(raw_id) <= 18 else None
    return list(
        await db.fetch(
            f"SELECT {_PLAYLIST_COLUMNS} FROM playlists "
            "WHERE playlist_id = $1 OR (provider = $2 AND provider_playlist_id = $3) "
            "ORDER BY playlist_id",
            ours,
            provider,
            raw_id,
        )
    )


async def forget(db: asyncpg.Pool | asyncpg.Connection, playlist_id: int) -> bool:
    """Remove the row ``playlist_id``; False when it was already gone."""
    done: str = await db.execute("DELETE FROM playlists WHERE playlist_id = $1", playlist_id)
    return done != "DELETE 0"
