"""Clustering jobs: ``run_clustering`` (parent, control queue) and ``clustering_batch`` (children,
work queue), the analysis's parent/child pattern (see ``jobs/analysis.py``).

* The parent loads the analysed library once to settle the run's shape (cluster range and
  smallest playlist derived from the library when not given, both logged), then keeps at most
  MAX_CONCURRENT_BATCH_JOBS batches of ITERATIONS_PER_BATCH_JOB runs queued or running.  Each
  batch gets the elites known when it is launched (the best parameters of each finished batch,
  TOP_N_ELITES of them) and the exploitation probability of its first run.  Progress:
  ``Progress: X/Y runs, best score S``.
* A batch loads the library (cached per clustering in the worker process), runs its runs one by
  one in a thread, checks for cancellation before each, and stores its best run in its task's
  details.  Its random generator is seeded by (the clustering's seed, its index), so a batch
  run again after a lost worker does the same runs; finished batches are never re-run.
* At the end the parent takes the best run, keeps the TOP_N_PLAYLISTS most diverse playlists,
  names them (AI or deterministic), splits those longer than MAX_SONGS_PER_CLUSTER, and writes
  them to the media server as ``..._automatic``, replacing the automatic playlists of the same
  name this service created before (recorded in the playlists table).  Once all are written, the
  recorded automatic playlists of earlier runs that this run did not write again are deleted;
  a failed write fails the task before anything is deleted.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import uuid
from typing import Any

from sidecar.clustering import engine, models, naming
from sidecar.clustering import params as cparams
from sidecar.clustering import playlists as cplaylists
from sidecar.clustering.data import Library, build_library, profile
from sidecar.db import clustering as clustering_db
from sidecar.db import playlists as playlists_db
from sidecar.db import tasks
from sidecar.jobs.context import JobContext, heartbeat, job_context
from sidecar.jobs.names import CLUSTERING_BATCH, CLUSTERING_BATCH_TASK
from sidecar.jobs.queue import enqueue, job_exists
from sidecar.providers.base import ProviderError, ProviderRefused

log = logging.getLogger(__name__)

POLL_S = 1.0
CANCEL_GRACE_S = 60.0
KIND = "automatic"

#: the library of the clustering this worker process last served (parent id, embeddings) -> library
_LIBRARY_CACHE: dict[tuple[str, bool], Library] = {}


def batch_task_id(parent_id: str, index: int) -> str:
    return str(uuid.uuid5(uuid.UUID(parent_id), f"batch:{index}"))


async def load_library(app: JobContext, p: cparams.ClusteringParams, key: str | None = None) -> Library:
    if key is not None and (key, p.enable_clustering_embeddings) in _LIBRARY_CACHE:
        return _LIBRARY_CACHE[(key, p.enable_clustering_embeddings)]
    rows = await clustering_db.analysed_rows(app.db, p.enable_clustering_embeddings)
    s = app.settings
    lib = await asyncio.to_thread(
        build_library,
        rows,
        top_n_moods=p.top_n_moods,
        stratified=p.stratified_genres,
        tempo_min=s.tempo_min_bpm,
        tempo_max=s.tempo_max_bpm,
        embeddings=p.enable_clustering_embeddings,
    )
    if key is not None:
        _LIBRARY_CACHE.clear()
        _LIBRARY_CACHE[(key, p.enable_clustering_embeddings)] = lib
    return lib


# --------------------------------------------------------------------------- batch job


async def clustering_batch(
    ctx: dict[str, Any],
    task_id: str,
    parent_id: str,
    values: dict[str, Any],
    k_range: list[int],
    min_size: int,
    elites: list[dict[str, Any]],
    index: int,
    start_run: int,
    runs: int,
    seed: int,
) -> dict[str, Any]:
    app = job_context(ctx)
    db = app.db
    task = await tasks.get(db, task_id)
    if task is not None and task["status"] in tasks.FINAL:
        return {"status": task["status"]}
    if await tasks.is_revoked(db, task_id):
        await tasks.update(db, task_id, status="REVOKED")
        return {"status": "REVOKED"}
    p = cparams.validate(values)
    await tasks.update(db, task_id, status="PROGRESS", log_line=f"runs {start_run + 1}-{start_run + runs}")
    async with heartbeat(app, task_id):
        lib = await load_library(app, p, parent_id)
        batch = engine.Batch(lib, p, (k_range[0], k_range[1]), elites, index, start_run, runs, seed, min_size)
        limits = await asyncio.to_thread(models.limit_threads)
        try:
            for i in range(runs):
                parent_failed = (await tasks.statuses(db, [parent_id])).get(parent_id) == "FAILURE"
                if parent_failed or await tasks.is_revoked(db, task_id):
                    why = "its clustering failed" if parent_failed else "cancelled"
                    await tasks.update(
                        db,
                        task_id,
                        status="REVOKED",
                        details={"runs_done": i},
                        log_line=f"{why}: stopped after {i} runs",
                    )
                    return {"status": "REVOKED"}
                await asyncio.to_thread(batch.step)
                best = batch.best["score"] if batch.best else None
                await tasks.update(
                    db,
                    task_id,
                    progress=int(100 * (i + 1) / runs),
                    details={"runs_done": i + 1, "best_score": best},
                )
        finally:
            del limits
    best = batch.best
    await tasks.update(
        db,
        task_id,
        status="SUCCESS",
        progress=100,
        details={"runs_done": runs, "best": best},
        log_line=f"{runs} runs, best score {best['score'] if best else 'none (no playlist)'}",
    )
    return {"status": "SUCCESS", "runs": runs, "best_score": best["score"] if best else None}


# --------------------------------------------------------------------------- parent job


class _State:
    """What the parent knows of its batches."""

    def __init__(self, top_n_elites: int) -> None:
        self.top_n = top_n_elites
        self.finished: set[str] = set()
        self.runs_done = 0
        self.elites: list[tuple[float, dict[str, Any]]] = []
        self.best: dict[str, Any] | None = None
        self.best_task: str | None = None

    def absorb(self, child: dict[str, Any]) -> list[str]:
        """A batch that ended: count its runs, keep its best as an elite.  Returns the batches
        whose playlists are no longer needed (not the best)."""
        self.finished.add(child["task_id"])
        details = child["details"] or {}
        self.runs_done += int(details.get("runs_done") or 0)
        best = details.get("best")
        if child["status"] != "SUCCESS" or not best:
            return [child["task_id"]]
        self.elites.append((float(best["score"]), best["params"]))
        self.elites.sort(key=lambda e: -e[0])
        del self.elites[self.top_n :]
        if self.best is not None and best["score"] <= self.best["score"]:
            return [child["task_id"]]
        previous, self.best, self.best_task = self.best_task, best, child["task_id"]
        return [previous] if previous else []

    def line(self, total: int) -> str:
        score = f"{self.best['score']:.4f}" if self.best else "none yet"
        return f"Progress: {self.runs_done}/{total} runs, best score {score}"


async def run_clustering(
    ctx: dict[str, Any], task_id: str, values: dict[str, Any], ai: dict[str, Any] | None = None
) -> dict[str, Any]:
    app = job_context(ctx)
    db, redis = app.db, ctx["redis"]
    if await tasks.is_revoked(db, task_id):
        return {"status": "REVOKED"}
    p = cparams.validate(values)
    task = await tasks.get(db, task_id) or {}
    seed = int((task.get("details") or {}).get("seed") or secrets.randbelow(2**31))
    await tasks.update(
        db, task_id, status="STARTED", details={"seed": seed}, log_line="loading the analysed tracks"
    )

    async def note(line: str) -> None:
        await tasks.update(db, task_id, log_line=line)

    async with heartbeat(app, task_id):
        lib = await load_library(app, p)
        n = len(lib)
        if n < 4:
            await tasks.fail(
                db,
                task_id,
                f"{n} analysed tracks{' with an embedding' if p.enable_clustering_embeddings else ''}: "
                "too few to cluster; run an analysis first",
            )
            return {"status": "FAILURE"}
        k_range = p.cluster_range(n)
        min_size = p.playlist_floor(n)
        derived = (
            [] if p.cluster_algorithm == "dbscan" or k_range != cparams.auto_range(n) else ["cluster range"]
        )
        if not p.min_playlist_size:
            derived.append("smallest playlist")
        shape = (
            f"eps {p.dbscan_eps_min}-{p.dbscan_eps_max}, min_samples {p.dbscan_min_samples_min}-"
            f"{p.dbscan_min_samples_max}"
            if p.cluster_algorithm == "dbscan"
            else f"{k_range[0]}-{k_range[1]} clusters"
        )
        await note(
            f"{n} analysed tracks: {p.cluster_algorithm}, {shape}, playlists of at least {min_size} songs"
            + (f" ({' and '.join(derived)} derived from the library size)" if derived else "")
        )
        if p.cluster_algorithm == "spectral":
            try:
                models.check_spectral(n, p.spectral_n_neighbors, k_range[1])
            except models.ClusteringRefused as exc:
                await tasks.fail(db, task_id, str(exc))
                return {"status": "FAILURE"}
        total = p.clustering_runs
        per = p.iterations_per_batch_job
        batches = math.ceil(total / per)
        state = _State(p.top_n_elites)
        launched: dict[int, str] = {}
        await tasks.update(
            db,
            task_id,
            status="PROGRESS",
            progress=1,
            details={
                "runs_total": total,
                "batches_total": batches,
                "k_range": list(k_range),
                "min_playlist_size": min_size,
                "tracks": n,
            },
        )
        for child in await clustering_db.child_results(db, task_id):  # a restarted parent: keep what was done
            index = int((child["details"] or {}).get("index", -1))
            if index >= 0:
                launched[index] = child["task_id"]
            if child["status"] in tasks.FINAL:
                state.absorb(child)  # nothing to slim: done before the restart
            elif (child["details"] or {}).get("args"):
                await enqueue(redis, CLUSTERING_BATCH, *child["details"]["args"], job_id=child["task_id"])
        last_line = ""
        while not await tasks.is_revoked(db, task_id):
            children = await clustering_db.child_results(db, task_id)
            for child in children:
                if child["status"] in tasks.FINAL and child["task_id"] not in state.finished:
                    for done in state.absorb(child):
                        await clustering_db.slim_batch(db, done)
            active = sum(1 for c in children if c["status"] in tasks.ACTIVE)
            next_index = len(launched)
            while next_index < batches and active < p.max_concurrent_batch_jobs:
                start = next_index * per
                args = [
                    task_id,
                    values,
                    list(k_range),
                    min_size,
                    [e for _, e in state.elites],
                    next_index,
                    start,
                    min(per, total - start),
                    seed,
                ]
                cid = batch_task_id(task_id, next_index)
                await tasks.create(
                    db,
                    CLUSTERING_BATCH_TASK,
                    task_id=cid,
                    parent_task_id=task_id,
                    details={"index": next_index, "start_run": start, "args": [cid, *args]},
                )
                await enqueue(redis, CLUSTERING_BATCH, cid, *args, job_id=cid)
                launched[next_index] = cid
                next_index += 1
                active += 1
            running = sum(
                int((c["details"] or {}).get("runs_done") or 0)
                for c in children
                if c["status"] in tasks.ACTIVE
            )
            line = state.line(total)
            await tasks.update(
                db,
                task_id,
                progress=1 + int(89 * (state.runs_done + running) / total),
                details={
                    "runs_done": state.runs_done,
                    "best_score": state.best and state.best["score"],
                    "status_message": line,
                },
                log_line=line if line != last_line else None,
            )
            last_line = line
            if len(state.finished) >= batches:
                break
            await asyncio.sleep(POLL_S)

        if await tasks.is_revoked(db, task_id):
            await _wait_for_jobs(redis, list(launched.values()), CANCEL_GRACE_S)
            await tasks.update(db, task_id, log_line=f"cancelled after {state.runs_done} runs")
            return {"status": "REVOKED"}
        if state.best is None:
            await tasks.fail(
                db,
                task_id,
                f"No valid clustering solution found after {state.runs_done} runs: no run "
                f"gave a playlist of at least {min_size} songs (try min_playlist_size, max_distance, "
                "or another cluster range)",
            )
            return {"status": "FAILURE"}
        written = await _finalise(app, task_id, lib, p, state.best, ai or {}, note)
    if written is None:
        return {"status": "FAILURE"}
    best = state.best
    summary = {
        "best_score": best["score"],
        "best_params": best["params"],
        "score_components": best["components"],
        "runs_done": state.runs_done,
        "num_playlists_created": len(written),
        "playlists": written,
    }
    await tasks.update(
        db,
        task_id,
        status="SUCCESS",
        progress=100,
        details=summary,
        log_line=f"done: {len(written)} playlists written, best score {best['score']:.4f}",
    )
    return {"status": "SUCCESS", "best_score": best["score"], "num_playlists_created": len(written)}


async def _finalise(
    app: JobContext,
    task_id: str,
    lib: Library,
    p: cparams.ClusteringParams,
    best: dict[str, Any],
    ai_values: dict[str, Any],
    note: Any,
) -> list[dict[str, Any]] | None:
    """Top-N, names, parts, writing; the playlists written, or None when the task failed."""
    import numpy as np

    from sidecar.ai.client import ai_config

    db, provider = app.db, app.provider
    row_of = {item: i for i, item in enumerate(lib.ids)}
    cands = []
    for k, pl in enumerate(best["playlists"]):
        rows = [row_of[i] for i in pl["ids"] if i in row_of]
        if rows:
            cands.append(cplaylists.Candidate(k, rows, np.asarray(pl["centre"]), np.asarray(pl["profile"])))
    chosen = cplaylists.select_diverse(cands, p.top_n_playlists)
    await tasks.update(db, task_id, progress=91, log_line=f"{len(chosen)} of {len(cands)} playlists kept")
    try:
        config = ai_config(app.settings, ai_values)
    except ValueError as exc:
        await note(f"AI naming not used: {exc}")
        config = None
    taken: set[str] = set()
    out: list[dict[str, Any]] = []
    s = app.settings
    for c in chosen:
        songs = [(lib.titles[r], lib.artists[r]) for r in c.rows]
        result = await naming.name(
            config, naming.playlist_profile(c.profile, s.tempo_min_bpm, s.tempo_max_bpm), songs, taken
        )
        if result.note:
            await note(f"naming: {result.note}")
        parts = cplaylists.split(c.rows, p.max_songs_per_cluster)
        for final, rows in zip(naming.final_names(result.name, len(parts)), parts, strict=True):
            out.append(
                {
                    "name": final,
                    "base_name": result.name,
                    "naming": result.source,
                    "track_ids": [lib.ids[r] for r in rows],
                    "profile": profile(c.profile),
                }
            )
    await tasks.update(db, task_id, progress=95, log_line=f"writing {len(out)} playlists to {provider.name}")
    before = {
        r["name"]: r["provider_playlist_id"]
        for r in await clustering_db.automatic_playlists(db, provider.name)
    }
    written: list[dict[str, Any]] = []
    for pl in out:
        existing = await playlists_db.provider_id(db, provider.name, KIND, pl["name"])
        try:
            pid = await provider.create_playlist(pl["name"], pl["track_ids"], replace_id=existing)
        except ProviderRefused as exc:
            await note(f"playlist {pl['name']!r} not written: {exc}")
            continue
        except ProviderError as exc:
            await tasks.fail(
                db,
                task_id,
                f"media server: writing playlist {pl['name']!r} failed: {exc} "
                f"({len(written)} of {len(out)} written; earlier automatic playlists left in place)",
            )
            return None
        await playlists_db.record(db, provider.name, KIND, pl["name"], pl["track_ids"], pid)
        written.append({**pl, "playlist_id": pid})
    if written:
        await _delete_stale(app, before, {pl["name"] for pl in written}, note)
    elif before:
        await note(f"no playlist written: the {len(before)} automatic playlists of earlier runs are kept")
    return written


async def _delete_stale(app: JobContext, before: dict[str, str], kept: set[str], note: Any) -> None:
    """Delete the automatic playlists of earlier runs that this run did not write again (called once
    the new ones are written).  Only those recorded in the playlists table are touched; one already
    removed counts as deleted; one the server refuses or fails to delete is logged and stays
    recorded (tried again by the next run)."""
    stale = sorted(name for name in before if name not in kept)
    if not stale:
        return
    provider = app.provider
    deleted: list[str] = []
    kept_back: list[str] = []
    for name in stale:
        try:
            await provider.delete_playlist(before[name], name)
        except ProviderError as exc:
            kept_back.append(name)
            await note(f"playlist {name!r} of an earlier run not deleted: {exc}")
            continue
        deleted.append(name)
    await clustering_db.forget_playlists(app.db, provider.name, deleted)
    await note(
        f"{len(deleted)} automatic playlists of earlier runs deleted"
        + (f", {len(kept_back)} left on the media server" if kept_back else "")
    )


async def _wait_for_jobs(redis: Any, job_ids: list[str], timeout_s: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        job_ids = [j for j in job_ids if await job_exists(redis, j)]
        if not job_ids:
            return
        await asyncio.sleep(POLL_S / 4)
