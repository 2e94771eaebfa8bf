"""Library sync: read albums and tracks from the media server into the tracks table."""

from __future__ import annotations

import logging
from typing import Any

from sidecar import library, tasks
from sidecar.jobs.context import job_context
from sidecar.providers.base import ProviderError

log = logging.getLogger(__name__)

TASK_TYPE = "library_sync"


async def sync_library(ctx: dict[str, Any], task_id: str, num_recent_albums: int = 0) -> dict[str, Any]:
    """List albums (newest first; 0 = all), upsert their tracks; an album that fails is reported
    in the task log and the sync goes on."""
    app = job_context(ctx)
    await tasks.update(app.db, task_id, status="STARTED", log_line="listing albums")
    try:
        albums = await app.provider.list_albums(num_recent_albums or None)
    except ProviderError as exc:
        await tasks.update(app.db, task_id, status="FAILURE", log_line=str(exc), details={"error": str(exc)})
        return {"status": "FAILURE", "error": str(exc)}
    done = failed = tracks_seen = 0
    for i, album in enumerate(albums, 1):
        if await tasks.is_revoked(app.db, task_id):
            await tasks.update(app.db, task_id, log_line="cancelled")
            return {"status": "REVOKED", "albums": done}
        try:
            found = await app.provider.album_tracks(album.id)
            tracks_seen += await library.upsert_tracks(app.db, app.provider.name, found)
            done += 1
        except ProviderError as exc:
            failed += 1
            await tasks.update(app.db, task_id, log_line=f"album {album.name!r} ({album.id}): {exc}")
        if i % 10 == 0 or i == len(albums):
            await tasks.update(app.db, task_id, status="PROGRESS", progress=int(100 * i / max(1, len(albums))),
                               details={"albums_total": len(albums), "albums_done": done,
                                        "albums_failed": failed, "tracks": tracks_seen})
    summary = {"albums_total": len(albums), "albums_done": done, "albums_failed": failed, "tracks": tracks_seen}
    await tasks.update(app.db, task_id, status="SUCCESS", progress=100, details=summary,
                       log_line=f"synced {tracks_seen} tracks from {done}/{len(albums)} albums")
    return {"status": "SUCCESS", **summary}
