"""Automatic playlists (AudioMuse-AI's names and shapes): POST /api/clustering/start,
GET /api/playlists, GET /api/clustering/result."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from sidecar.clustering import params as cparams
from sidecar.db import clustering as clustering_db
from sidecar.jobs.names import MAIN_CLUSTERING_TASK, RUN_CLUSTERING
from sidecar.jobs.queue import AlreadyRunning, start_run
from sidecar.web.errors import ApiError, read_json_object
from sidecar.web.keys import DB, QUEUE, SETTINGS

routes = web.RouteTableDef()


def _bad(field: str, message: str) -> ApiError:
    return ApiError(400, f"{field}: {message}", {"field": field})


@routes.post("/api/clustering/start")
async def clustering_start(request: web.Request) -> web.Response:
    """Start a clustering with the settings, overridden by the body's keys; 400 names the bad key,
    409 while one runs."""
    body = await read_json_object(request)
    settings = request.app[SETTINGS]
    try:
        params, ai = cparams.from_request(settings, body)
    except cparams.ParamsError as exc:
        raise _bad(exc.field, exc.message) from None
    if ai:
        from sidecar.ai.client import ai_config  # only when a request overrides the AI settings

        try:
            ai_config(settings, ai)
        except ValueError as exc:
            field, _, message = str(exc).partition(": ")
            raise _bad(field, message or str(exc)) from None
    db = request.app[DB]
    if params.cluster_algorithm == "spectral":
        n = await clustering_db.count_analysed(db, params.enable_clustering_embeddings)
        k_hi = params.cluster_range(n)[1]
        need, have = (
            cparams.spectral_memory_bytes(n, params.spectral_n_neighbors, k_hi),
            cparams.available_memory_bytes() // 2,
        )
        if need > have:
            raise _bad(
                "clustering_method",
                f"spectral clustering of {n} tracks with up to {k_hi} clusters needs "
                f"about {need >> 20} MiB, more than half of this machine's available memory "
                f"({have >> 20} MiB usable): use kmeans or gmm",
            )
    values = params.model_dump(mode="json")
    shown = {k: v for k, v in values.items() if k not in ("ln_stats", "stratified_genres")}
    try:
        task_id = await start_run(
            db,
            request.app[QUEUE],
            MAIN_CLUSTERING_TASK,
            RUN_CLUSTERING,
            values,
            ai,
            details={"parameters": shown},
        )
    except AlreadyRunning as exc:
        raise ApiError(
            409,
            "a clustering is already running",
            {"task_id": exc.task["task_id"], "status": exc.task.get("status")},
        ) from None
    return web.json_response(
        {"task_id": task_id, "task_type": MAIN_CLUSTERING_TASK, "status": "PENDING"}, status=202
    )


async def _last(request: web.Request) -> tuple[dict[str, Any] | None, dict[str, tuple[str, str]]]:
    db = request.app[DB]
    task = await clustering_db.last_success(db, MAIN_CLUSTERING_TASK)
    if task is None:
        return None, {}
    ids = {i for pl in (task["details"] or {}).get("playlists", []) for i in pl["track_ids"]}
    return task, await clustering_db.titles(db, sorted(ids))


def _songs(ids: list[str], meta: dict[str, tuple[str, str]]) -> list[dict[str, str]]:
    return [
        {"item_id": i, "title": meta.get(i, ("", ""))[0], "author": meta.get(i, ("", ""))[1]} for i in ids
    ]


@routes.get("/api/playlists")
async def playlists(request: web.Request) -> web.Response:
    """The automatic playlists of the last finished clustering: ``{name: [{item_id, title, author}]}``."""
    task, meta = await _last(request)
    found = (task or {}).get("details", {}).get("playlists", []) if task else []
    return web.json_response({pl["name"]: _songs(pl["track_ids"], meta) for pl in found})


@routes.get("/api/clustering/result")
async def result(request: web.Request) -> web.Response:
    """The last finished clustering: best parameters, score components, each playlist's profile
    and songs; 404 when no clustering has finished."""
    task, meta = await _last(request)
    if task is None:
        raise ApiError(404, "no clustering has finished yet", "POST /api/clustering/start")
    d = task["details"] or {}
    return web.json_response(
        {
            "task_id": task["task_id"],
            "finished_at": task["finished_at"],
            "best_score": d.get("best_score"),
            "best_params": d.get("best_params"),
            "score_components": d.get("score_components"),
            "runs_done": d.get("runs_done"),
            "tracks": d.get("tracks"),
            "k_range": d.get("k_range"),
            "min_playlist_size": d.get("min_playlist_size"),
            "parameters": d.get("parameters"),
            "playlists": [
                {
                    "name": pl["name"],
                    "playlist_id": pl.get("playlist_id"),
                    "naming": pl.get("naming"),
                    "size": len(pl["track_ids"]),
                    "profile": pl.get("profile"),
                    "songs": _songs(pl["track_ids"], meta),
                }
                for pl in d.get("playlists", [])
            ],
        }
    )
