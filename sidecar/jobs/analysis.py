"""Analysis jobs: ``run_analysis`` (parent) and ``analyze_album`` (one per album).

* The parent lists albums newest first, records their tracks, skips albums already analysed
  by the current model version, and keeps at most MAX_QUEUED_ANALYSIS_JOBS album jobs queued
  or running; it updates its progress (albums and tracks done / failed / total) every second
  and ends with a summary that adds up: every listed track is analysed or failed-with-reason.
* An album job downloads each track to TEMP_DIR, analyses it in a thread, stores the outcome
  in one transaction, deletes the file; a track that cannot be analysed is recorded as failed
  with its reason and the album goes on.
* Cancellation is cooperative: the parent and its children check for REVOKED between tracks.
* Crashes: tasks heartbeat (``tasks.updated_at``) while they run.  A worker killed mid-album
  (even by SIGKILL) leaves its arq job in the queue with an in-progress lease that would only
  expire after the longest job timeout; ``recover_orphans`` (at worker start and every
  30 s) clears the lease of tasks whose heartbeat is stale, so arq runs them again at once.
  Work is idempotent (tracks already analysed by this model version are skipped; results are
  upserts), so a retried job neither loses nor duplicates anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from sidecar import analysis_db, library, tasks
from sidecar.jobs.context import JobContext, job_context
from sidecar.ml.pipeline import AnalysisFailed, AnalysisParams, analyze_path, model_version
from sidecar.providers.base import ProviderError, Track

log = logging.getLogger(__name__)

MAIN_TASK = "main_analysis"
ALBUM_TASK = "album_analysis"
POLL_S = 1.0


def analysis_params(app: JobContext, top_n_moods: int | None = None) -> AnalysisParams:
    s = app.settings
    return AnalysisParams(model_dir=s.model_dir, top_n_moods=top_n_moods or s.top_n_moods,
                          energy_min=s.energy_min, energy_max=s.energy_max, tempo_min=s.tempo_min_bpm,
                          tempo_max=s.tempo_max_bpm, max_patches=s.analysis_max_patches)


def child_task_id(parent_id: str, album_id: str) -> str:
    """Deterministic, so a restarted parent finds the children it already made."""
    return str(uuid.uuid5(uuid.UUID(parent_id), f"album:{album_id}"))


@contextlib.asynccontextmanager
async def heartbeat(app: JobContext, task_id: str) -> AsyncIterator[None]:
    """Touch the task row every TASK_ORPHAN_SECONDS / 3 while the body runs (the event loop
    stays free: analysis runs in a thread)."""
    db = app.db
    interval = app.settings.task_orphan_seconds / 3

    async def beat() -> None:
        while True:
            await asyncio.sleep(interval)
            await db.execute("UPDATE tasks SET updated_at = now() WHERE task_id = $1", task_id)

    pulse = asyncio.create_task(beat())
    try:
        yield
    finally:
        pulse.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pulse


async def recover_orphans(ctx: dict[str, Any]) -> int:
    """Let arq rerun at once the jobs of tasks whose worker died (stale heartbeat)."""
    app = job_context(ctx)
    rows = await app.db.fetch(
        """SELECT task_id FROM tasks WHERE status IN ('STARTED', 'PROGRESS')
           AND task_type = ANY($1::text[]) AND updated_at < now() - make_interval(secs => $2)""",
        [MAIN_TASK, ALBUM_TASK], app.settings.task_orphan_seconds)
    redis = ctx.get("redis")
    recovered = 0
    for r in rows:
        if redis is not None and await redis.delete(f"arq:in-progress:{r['task_id']}"):
            recovered += 1
        await tasks.update(app.db, r["task_id"], status="PENDING",
                           log_line="worker lost (no heartbeat): queued again")
    if rows:
        log.warning("recovered %d orphaned analysis task(s)", len(rows))
    return recovered


# --------------------------------------------------------------------------- album job

async def analyze_album(ctx: dict[str, Any], task_id: str, album_id: str, album_name: str = "",
                        top_n_moods: int | None = None) -> dict[str, Any]:
    app = job_context(ctx)
    db = app.db
    if await tasks.is_revoked(db, task_id):
        await tasks.update(db, task_id, status="REVOKED")
        return {"status": "REVOKED"}
    params = analysis_params(app, top_n_moods)
    version = await asyncio.to_thread(model_version, params)
    await tasks.update(db, task_id, status="STARTED", log_line=f"album {album_name or album_id}")
    async with heartbeat(app, task_id):
        try:
            tracks = await app.provider.album_tracks(album_id)
        except ProviderError as exc:
            await tasks.update(db, task_id, status="FAILURE", log_line=str(exc), details={"error": str(exc)})
            return {"status": "FAILURE", "error": str(exc)}
        await library.upsert_tracks(db, app.provider.name, tracks)
        todo = await analysis_db.tracks_to_analyse(db, [t.item_id for t in tracks], version)
        by_id = {t.item_id: t for t in tracks}
        for i, item_id in enumerate(todo, 1):
            if await tasks.is_revoked(db, task_id):
                await tasks.update(db, task_id, status="REVOKED", log_line="cancelled between tracks")
                return {"status": "REVOKED"}
            await _analyze_one(app, by_id[item_id], params, version)
            outcome = await analysis_db.album_outcome(db, [t.item_id for t in tracks], version)
            await tasks.update(db, task_id, status="PROGRESS", progress=int(100 * i / len(todo)), details=outcome)
    outcome = await analysis_db.album_outcome(db, [t.item_id for t in tracks], version)
    await tasks.update(db, task_id, status="SUCCESS", progress=100, details=outcome,
                       log_line=f"{outcome['analyzed']} analysed, {outcome['failed']} failed of {outcome['total']}")
    return {"status": "SUCCESS", **outcome}


async def _analyze_one(app: JobContext, track: Track, params: AnalysisParams, version: str) -> None:
    """Download, analyse, store, delete: the track ends analysed or failed with its reason."""
    db = app.db
    await db.execute("UPDATE tracks SET analysis_status = 'analyzing', failure_reason = NULL "
                     "WHERE item_id = $1 AND analysis_status <> 'analyzed'", track.item_id)
    try:
        async with app.provider.audio_file(track, app.settings.download_dir) as path:
            result = await asyncio.to_thread(analyze_path, path, params)
    except AnalysisFailed as exc:
        await analysis_db.store_failure(db, track.item_id, exc.reason, version)
        return
    except ProviderError as exc:
        await analysis_db.store_failure(db, track.item_id, f"download: {exc}", version)
        return
    except Exception as exc:  # a bug or an unexpected library error: recorded, the album goes on
        log.exception("analysis of %s (%s) failed", track.item_id, track.title)
        await analysis_db.store_failure(db, track.item_id, f"internal error: {type(exc).__name__}: {exc}", version)
        return
    await analysis_db.store_result(db, track.item_id, result)


# --------------------------------------------------------------------------- parent job

async def run_analysis(ctx: dict[str, Any], task_id: str, num_recent_albums: int | None = None,
                       top_n_moods: int | None = None) -> dict[str, Any]:
    app = job_context(ctx)
    db = app.db
    redis = ctx["redis"]
    if await tasks.is_revoked(db, task_id):
        return {"status": "REVOKED"}
    recent = app.settings.num_recent_albums if num_recent_albums is None else num_recent_albums
    params = analysis_params(app, top_n_moods)
    version = await asyncio.to_thread(model_version, params)
    await tasks.update(db, task_id, status="STARTED", log_line=f"listing albums (model {version})")
    async with heartbeat(app, task_id):
        try:
            albums = await app.provider.list_albums(recent or None)
        except ProviderError as exc:
            await tasks.update(db, task_id, status="FAILURE", log_line=str(exc), details={"error": str(exc)})
            return {"status": "FAILURE", "error": str(exc)}

        # Record every listed track first: the final summary accounts for all of them.
        album_tracks: dict[str, list[str]] = {}
        to_run: list[str] = []  # album ids with work left, newest first
        skipped = 0
        list_failures: list[str] = []
        for album in albums:
            try:
                found = await app.provider.album_tracks(album.id)
            except ProviderError as exc:
                list_failures.append(f"{album.name!r}: {exc}")
                continue
            await library.upsert_tracks(db, app.provider.name, found)
            ids = [t.item_id for t in found]
            album_tracks[album.id] = ids
            if await analysis_db.tracks_to_analyse(db, ids, version):
                to_run.append(album.id)
            else:
                skipped += 1
        names = {a.id: a.name for a in albums}
        all_ids = [i for ids in album_tracks.values() for i in ids]
        await tasks.update(db, task_id, status="PROGRESS", details={
            "model_version": version, "albums_total": len(albums), "albums_skipped": skipped,
            "albums_to_analyse": len(to_run), "tracks_total": len(all_ids)},
            log_line=f"{len(albums)} albums, {len(to_run)} to analyse, {skipped} already analysed"
                     + (f", {len(list_failures)} could not be listed" if list_failures else ""))
        for line in list_failures:
            await tasks.update(db, task_id, log_line=f"album listing failed: {line}")

        pending = list(to_run)
        children: dict[str, str] = {}  # album id -> child task id
        while True:
            if await tasks.is_revoked(db, task_id):
                break
            states = await _child_states(db, list(children.values()))
            running = sum(1 for s in states.values() if s in tasks.ACTIVE)
            while pending and running < app.settings.max_queued_analysis_jobs:
                album_id = pending.pop(0)
                cid = child_task_id(task_id, album_id)
                if await tasks.get(db, cid) is None:
                    await tasks.create(db, ALBUM_TASK, task_id=cid, parent_task_id=task_id,
                                       details={"album_id": album_id, "album": names.get(album_id, "")})
                if states.get(cid) not in tasks.FINAL:
                    await redis.enqueue_job("analyze_album", cid, album_id, names.get(album_id, ""), top_n_moods,
                                            _job_id=cid)
                    running += 1
                children[album_id] = cid
            outcome = await analysis_db.album_outcome(db, all_ids, version)
            done_albums = sum(1 for s in states.values() if s in tasks.FINAL)
            progress = int(100 * (outcome["analyzed"] + outcome["failed"]) / max(1, len(all_ids)))
            await tasks.update(db, task_id, status="PROGRESS", progress=min(99, progress), details={
                "albums_done": skipped + done_albums, "tracks_analyzed": outcome["analyzed"],
                "tracks_failed": outcome["failed"], "tracks_remaining": outcome["missing"]})
            if not pending and running == 0:
                break
            await asyncio.sleep(POLL_S)

    outcome = await analysis_db.album_outcome(db, all_ids, version)
    revoked = await tasks.is_revoked(db, task_id)
    summary = {"albums_total": len(albums), "albums_skipped": skipped, "albums_not_listed": len(list_failures),
               "tracks_total": outcome["total"], "tracks_analyzed": outcome["analyzed"],
               "tracks_failed": outcome["failed"], "tracks_remaining": outcome["missing"],
               "adds_up": outcome["analyzed"] + outcome["failed"] == outcome["total"]}
    if revoked:
        await tasks.update(db, task_id, details=summary, log_line="cancelled")
        return {"status": "REVOKED", **summary}
    line = (f"done: {summary['tracks_analyzed']} analysed + {summary['tracks_failed']} failed = "
            f"{summary['tracks_total']} tracks" + ("" if summary["adds_up"] else
                                                  f" ({summary['tracks_remaining']} unaccounted for!)"))
    await tasks.update(db, task_id, status="SUCCESS" if summary["adds_up"] else "FAILURE", progress=100,
                       details=summary, log_line=line)
    return {"status": "SUCCESS" if summary["adds_up"] else "FAILURE", **summary}


async def _child_states(db: asyncpg.Pool, ids: list[str]) -> dict[str, str]:
    if not ids:
        return {}
    rows = await db.fetch("SELECT task_id, status FROM tasks WHERE task_id = ANY($1::text[])", ids)
    return {r["task_id"]: r["status"] for r in rows}
