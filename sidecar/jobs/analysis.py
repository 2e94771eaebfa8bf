"""Analysis jobs: ``run_analysis`` (parent, control queue) and ``analyze_album`` (one per album,
work queue; see ``jobs/names.py`` for why two queues).

* The parent lists albums newest first, records their tracks, skips albums already analysed
  by the current model version, and keeps at most MAX_QUEUED_ANALYSIS_JOBS album jobs queued
  or running; it updates its progress (albums and tracks done / failed / total) every second
  and ends with a summary that adds up: every listed track is analysed or failed-with-reason,
  with the failure reasons grouped and counted.
* Each album job analyses exactly the tracks the parent listed, passed to it (the media
  server is listed once per run; a track added to the album since is left for the next run,
  one removed since fails with the server's "not found").  It downloads each
  track to TEMP_DIR, analyses it in a thread (at most ANALYSIS_TRACK_TIMEOUT_SECONDS), stores
  the outcome in one transaction, deletes the file; a track that cannot be analysed is
  recorded as failed with its reason and the album goes on.  A media server that cannot be
  reached is waited for (MEDIA_OUTAGE_WAIT_SECONDS) before tracks fail for it.
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
import dataclasses
import functools
import logging
import os
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from sidecar.db import analysis as analysis_db
from sidecar.db import tasks
from sidecar.db import tracks as tracks_db
from sidecar.jobs.context import JobContext, heartbeat, job_context
from sidecar.jobs.names import ALBUM_ANALYSIS_TASK, ANALYZE_ALBUM
from sidecar.jobs.outage import OutageWindow
from sidecar.jobs.queue import enqueue, job_exists
from sidecar.logs import TRACK_ID
from sidecar.ml.pipeline import AnalysisFailed, AnalysisParams, analyze_path, model_version
from sidecar.providers.base import ProviderError, Track
from sidecar.similarity import refit

log = logging.getLogger(__name__)

POLL_S = 1.0
#: how long a cancelled run waits for its album jobs to finish the track at hand
CANCEL_GRACE_S = 120.0


def analysis_params(app: JobContext, top_n_moods: int | None = None) -> AnalysisParams:
    """The service's analysis parameters (a run's ``top_n_moods`` replaces TOP_N_MOODS).

    A worker analyses up to WORKER_MAX_JOBS tracks at once, so each track's model runs on its
    share of the cores: on 2 cores with 2 jobs one thread each measured 1.20 s per 4 minutes of
    music end to end against 1.45 s with the default threads, which oversubscribed the cores
    (bench/analysis_e2e.py)."""
    share = max(1, (os.cpu_count() or 1) // app.settings.worker_max_jobs)
    return dataclasses.replace(AnalysisParams.from_settings(app.settings, top_n_moods), threads=share)


def child_task_id(parent_id: str, album_id: str) -> str:
    """Deterministic, so a restarted parent finds the children it already made."""
    return str(uuid.uuid5(uuid.UUID(parent_id), f"album:{album_id}"))


# --------------------------------------------------------------------------- album job


async def analyze_album(
    ctx: dict[str, Any],
    task_id: str,
    album_id: str,
    album_name: str = "",
    top_n_moods: int | None = None,
    tracks: Sequence[Track] | None = None,
) -> dict[str, Any]:
    """Analyse the album's ``tracks`` exactly as the parent listed them (the media server is not
    asked again; a track deleted since fails with the server's "not found"), or, when None,
    the album's tracks as listed now."""
    app = job_context(ctx)
    db = app.db
    if await tasks.is_revoked(db, task_id):
        await tasks.update(db, task_id, status="REVOKED")
        return {"status": "REVOKED"}
    params = analysis_params(app, top_n_moods)
    version = await asyncio.to_thread(model_version, params)
    await tasks.update(db, task_id, status="STARTED", log_line=f"album {album_name or album_id}")

    async def note(line: str) -> None:
        await tasks.update(db, task_id, log_line=line)

    outage = OutageWindow(app.settings.media_outage_wait_seconds, note)
    async with heartbeat(app, task_id):
        if tracks is None:
            try:
                tracks = await outage.call(functools.partial(app.provider.album_tracks, album_id))
            except ProviderError as exc:
                await tasks.fail(db, task_id, f"media server: {exc}")
                return {"status": "FAILURE", "error": str(exc)}
            await tracks_db.upsert_tracks(db, app.provider.name, tracks)
        all_ids = [t.item_id for t in tracks]
        todo = await analysis_db.tracks_to_analyse(db, all_ids, version)
        by_id = {t.item_id: t for t in tracks}
        for i, item_id in enumerate(todo, 1):
            if await tasks.is_revoked(db, task_id):
                await tasks.update(db, task_id, status="REVOKED", log_line="cancelled between tracks")
                return {"status": "REVOKED"}
            await _analyze_one(app, outage, by_id[item_id], params, version)
            outcome = await analysis_db.album_outcome(db, all_ids, version)
            await tasks.update(
                db, task_id, status="PROGRESS", progress=int(100 * i / len(todo)), details=outcome
            )
    TRACK_ID.set(None)
    outcome = await analysis_db.album_outcome(db, all_ids, version)
    placed = await refit.keep_fitted(db, refit.DURING_RUN)
    if placed:
        await note(placed)
    await tasks.update(
        db,
        task_id,
        status="SUCCESS",
        progress=100,
        details=outcome,
        log_line=f"{outcome['analyzed']} analysed, {outcome['failed']} failed of {outcome['total']}",
    )
    return {"status": "SUCCESS", **outcome}


async def _analyze_one(
    app: JobContext, outage: OutageWindow, track: Track, params: AnalysisParams, version: str
) -> None:
    """Download, analyse, store, delete: the track ends analysed or failed with its reason."""
    db = app.db
    timeout = app.settings.analysis_track_timeout_seconds
    TRACK_ID.set(track.item_id)  # on every log record of this track's analysis (LOG_FORMAT=json)
    await analysis_db.mark_analyzing(db, track.item_id)

    async def fetch_and_analyse() -> Any:
        async with app.provider.audio_file(track, app.settings.download_dir) as path:
            # the thread cannot be stopped: past the timeout it finishes in the background, unused
            return await asyncio.wait_for(asyncio.to_thread(analyze_path, path, params), timeout)

    try:
        result = await outage.call(fetch_and_analyse)
    except AnalysisFailed as exc:
        await analysis_db.store_failure(db, track.item_id, exc.reason, version)
        return
    except TimeoutError:
        await analysis_db.store_failure(
            db,
            track.item_id,
            f"timeout: analysis took longer than {timeout:.0f} s (ANALYSIS_TRACK_TIMEOUT_SECONDS)",
            version,
        )
        return
    except ProviderError as exc:
        await analysis_db.store_failure(db, track.item_id, f"download: {exc}", version)
        return
    except Exception as exc:  # a bug or an unexpected library error: recorded, the album goes on
        log.exception("analysis of %s (%s) failed", track.item_id, track.title)
        await analysis_db.store_failure(
            db, track.item_id, f"internal error: {type(exc).__name__}: {exc}", version
        )
        return
    await analysis_db.store_result(db, track.item_id, result)


# --------------------------------------------------------------------------- parent job


async def run_analysis(
    ctx: dict[str, Any], task_id: str, num_recent_albums: int | None = None, top_n_moods: int | None = None
) -> dict[str, Any]:
    app = job_context(ctx)
    db = app.db
    redis = ctx["redis"]
    if await tasks.is_revoked(db, task_id):
        return {"status": "REVOKED"}
    recent = app.settings.num_recent_albums if num_recent_albums is None else num_recent_albums
    params = analysis_params(app, top_n_moods)
    version = await asyncio.to_thread(model_version, params)
    await tasks.update(db, task_id, status="STARTED", log_line=f"listing albums (model {version})")

    async def note(line: str) -> None:
        await tasks.update(db, task_id, log_line=line)

    outage = OutageWindow(app.settings.media_outage_wait_seconds, note)
    async with heartbeat(app, task_id):
        try:
            albums = await outage.call(lambda: app.provider.list_albums(recent or None))
        except ProviderError as exc:
            await tasks.fail(db, task_id, f"media server: {exc}")
            return {"status": "FAILURE", "error": str(exc)}

        # Record every listed track first: the final summary accounts for all of them.
        album_tracks: dict[str, list[Track]] = {}  # as listed (and stored): what each album job gets
        to_run: list[str] = []  # album ids with work left, newest first
        skipped_ids: list[str] = []
        skipped = rejected = 0
        list_failures: list[str] = []
        listed: list[str] = []
        for album in albums:
            try:
                found = await outage.call(functools.partial(app.provider.album_tracks, album.id))
            except ProviderError as exc:
                list_failures.append(f"{album.name!r}: {exc}")
                continue
            listed.extend(t.item_id for t in found)
            stored, refused = await tracks_db.upsert_tracks(db, app.provider.name, found)
            for track, reason in refused:
                rejected += 1
                await note(f"track {track.item_id} of album {album.name!r} not recorded: {reason}")
            ids = [t.item_id for t in stored]
            album_tracks[album.id] = stored
            if await analysis_db.tracks_to_analyse(db, ids, version):
                to_run.append(album.id)
            else:
                skipped += 1
                skipped_ids.extend(ids)
        complete = not recent and not list_failures  # every album listed, none failed
        removed = await tracks_db.remove_missing(db, app.provider.name, listed) if complete else 0
        names = {a.id: a.name for a in albums}
        all_ids = [t.item_id for found in album_tracks.values() for t in found]
        done_before = await analysis_db.album_outcome(db, skipped_ids, version)  # albums needing no job
        await tasks.update(
            db,
            task_id,
            status="PROGRESS",
            details={
                "model_version": version,
                "albums_total": len(albums),
                "albums_skipped": skipped,
                "albums_to_analyse": len(to_run),
                "tracks_total": len(all_ids),
                "tracks_rejected": rejected,
                "tracks_removed": removed,
            },
            log_line=f"{len(albums)} albums, {len(to_run)} to analyse, {skipped} already analysed"
            + (f", {len(list_failures)} could not be listed" if list_failures else "")
            + (f", {removed} tracks no longer in the library removed" if removed else ""),
        )
        for line in list_failures:
            await note(f"album listing failed: {line}")

        pending = list(to_run)
        children: dict[str, str] = {}  # album id -> child task id
        while True:
            if await tasks.is_revoked(db, task_id):
                break
            states = await tasks.statuses(db, list(children.values()))
            running = sum(1 for s in states.values() if s in tasks.ACTIVE)
            while pending and running < app.settings.max_queued_analysis_jobs:
                album_id = pending.pop(0)
                cid = child_task_id(task_id, album_id)
                if await tasks.get(db, cid) is None:
                    await tasks.create(
                        db,
                        ALBUM_ANALYSIS_TASK,
                        task_id=cid,
                        parent_task_id=task_id,
                        details={"album_id": album_id, "album": names.get(album_id, "")},
                    )
                if states.get(cid) not in tasks.FINAL:
                    await enqueue(
                        redis,
                        ANALYZE_ALBUM,
                        cid,
                        album_id,
                        names.get(album_id, ""),
                        top_n_moods,
                        album_tracks[album_id],
                        job_id=cid,
                    )
                    running += 1
                children[album_id] = cid
            # progress by run: the album jobs report their albums' counts (no per-track query here)
            jobs = await tasks.children_outcome(db, task_id)
            analyzed = done_before["analyzed"] + jobs["analyzed"]
            failed = done_before["failed"] + jobs["failed"]
            done_albums = sum(1 for s in states.values() if s in tasks.FINAL)
            progress = int(100 * (analyzed + failed) / max(1, len(all_ids)))
            await tasks.update(
                db,
                task_id,
                status="PROGRESS",
                progress=min(99, progress),
                details={
                    "albums_done": skipped + done_albums,
                    "tracks_analyzed": analyzed,
                    "tracks_failed": failed,
                    "tracks_remaining": len(all_ids) - analyzed - failed,
                },
            )
            if not pending and running == 0:
                break
            await asyncio.sleep(POLL_S)

    revoked = await tasks.is_revoked(db, task_id)
    if revoked:  # album jobs stop between tracks: wait (a while) for the tracks at hand to be stored
        await _wait_for_jobs(redis, list(children.values()), CANCEL_GRACE_S)
    placed = await refit.keep_fitted(db, refit.AT_REST)
    if placed:
        await note(placed)
    outcome = await analysis_db.album_outcome(db, all_ids, version)
    reasons = await analysis_db.failure_reasons(db, all_ids, version)
    failed_albums = await _failed_children(db, task_id)
    summary = {
        "albums_total": len(albums),
        "albums_skipped": skipped,
        "albums_not_listed": len(list_failures),
        "tracks_total": outcome["total"],
        "tracks_analyzed": outcome["analyzed"],
        "tracks_failed": outcome["failed"],
        "tracks_remaining": outcome["missing"],
        "tracks_rejected": rejected,
        "tracks_removed": removed,
        "failure_reasons": reasons,
        "albums_failed": failed_albums,
        "adds_up": outcome["analyzed"] + outcome["failed"] == outcome["total"],
    }
    if revoked:
        await tasks.update(db, task_id, details=summary, log_line="cancelled")
        return {"status": "REVOKED", **summary}
    causes = "; ".join(f"{r['count']} {r['reason']}" for r in reasons[:5])
    line = (
        f"done: {summary['tracks_analyzed']} analysed + {summary['tracks_failed']} failed = "
        f"{summary['tracks_total']} tracks"
        + (f" (failed: {causes})" if causes else "")
        + (
            ""
            if summary["adds_up"]
            else f"; {summary['tracks_remaining']} not analysed because their album "
            f"job failed: " + "; ".join(f"{a['album']}: {a['error']}" for a in failed_albums[:3])
        )
    )
    await tasks.update(
        db,
        task_id,
        status="SUCCESS" if summary["adds_up"] else "FAILURE",
        progress=100,
        details=summary,
        log_line=line,
    )
    return {"status": "SUCCESS" if summary["adds_up"] else "FAILURE", **summary}


async def _wait_for_jobs(redis: Any, job_ids: list[str], timeout_s: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        alive = [j for j in job_ids if await job_exists(redis, j)]
        if not alive:
            return
        job_ids = alive
        await asyncio.sleep(POLL_S / 4)


async def _failed_children(db: asyncpg.Pool, task_id: str) -> list[dict[str, Any]]:
    """Album jobs of this run that ended FAILURE, with their error (at most 20)."""
    found = await tasks.children(db, task_id, 20)
    return [
        {
            "album": (c["details"] or {}).get("album") or (c["details"] or {}).get("album_id"),
            "task_id": c["task_id"],
            "error": (c["details"] or {}).get("error") or c.get("last_log"),
        }
        for c in found["items"]
        if c["status"] == "FAILURE"
    ]
