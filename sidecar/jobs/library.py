"""Library sync: read albums and tracks from the media server into the tracks table."""

from __future__ import annotations

import functools
import logging
from typing import Any

from sidecar.db import tasks, tracks
from sidecar.jobs.context import heartbeat, job_context
from sidecar.jobs.outage import OutageWindow
from sidecar.providers.base import ProviderError

log = logging.getLogger(__name__)


async def sync_library(ctx: dict[str, Any], task_id: str, num_recent_albums: int = 0) -> dict[str, Any]:
    """List albums (newest first; 0 = all), upsert their tracks; an album that fails, or a track
    whose metadata the database refuses, is reported in the task log and the sync goes on."""
    app = job_context(ctx)
    db = app.db
    await tasks.update(db, task_id, status="STARTED", log_line="listing albums")

    async def note(line: str) -> None:
        await tasks.update(db, task_id, log_line=line)

    outage = OutageWindow(app.settings.media_outage_wait_seconds, note)
    async with heartbeat(app, task_id):
        try:
            albums = await outage.call(lambda: app.provider.list_albums(num_recent_albums or None))
        except ProviderError as exc:
            await tasks.fail(db, task_id, str(exc))
            return {"status": "FAILURE", "error": str(exc)}
        done = failed = tracks_seen = rejected = 0
        listed: list[str] = []
        for i, album in enumerate(albums, 1):
            if await tasks.is_revoked(db, task_id):
                await note("cancelled")
                return {"status": "REVOKED", "albums": done}
            try:
                found = await outage.call(functools.partial(app.provider.album_tracks, album.id))
            except ProviderError as exc:
                failed += 1
                await note(f"album {album.name!r} ({album.id}): {exc}")
            else:
                listed.extend(t.item_id for t in found)
                stored, refused = await tracks.upsert_tracks(db, app.provider.name, found)
                tracks_seen += len(stored)
                rejected += len(refused)
                for track, reason in refused:
                    await note(f"track {track.item_id} of album {album.name!r} not recorded: {reason}")
                done += 1
            if i % 10 == 0 or i == len(albums):
                await tasks.update(
                    db,
                    task_id,
                    status="PROGRESS",
                    progress=int(100 * i / max(1, len(albums))),
                    details={
                        "albums_total": len(albums),
                        "albums_done": done,
                        "albums_failed": failed,
                        "tracks": tracks_seen,
                        "tracks_rejected": rejected,
                    },
                )
        complete = not num_recent_albums and not failed  # every album listed, none failed
        removed = await tracks.remove_missing(db, app.provider.name, listed) if complete else 0
    summary = {
        "albums_total": len(albums),
        "albums_done": done,
        "albums_failed": failed,
        "tracks": tracks_seen,
        "tracks_rejected": rejected,
        "tracks_removed": removed,
    }
    await tasks.update(
        db,
        task_id,
        status="SUCCESS",
        progress=100,
        details=summary,
        log_line=f"synced {tracks_seen} tracks from {done}/{len(albums)} albums"
        + (f", {rejected} tracks refused" if rejected else "")
        + (f", {removed} tracks no longer in the library removed" if removed else ""),
    )
    return {"status": "SUCCESS", **summary}
