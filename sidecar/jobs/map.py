"""The music map: a 2-D projection of every analysed track, computed by the ``compute_map``
job (work queue) and stored in the database (``music_map``) with the library signature it was
computed from; ``GET /api/map`` queues it when the map is missing or outdated.

Projection: PCA of the L2-normalised vectors of the similarity space (sidecar/similarity/space.py:
the cosine geometry similar songs and mixes use), from their covariance (one float32 matrix
product) and its two leading eigenvectors.  For
100k tracks on 2 cores it takes well under a second of CPU after the read
(``bench/map.py``), is deterministic (a recomputation moves no point that did not change, signs
are fixed), and linear in the library's size.  t-SNE / UMAP separate clusters better but cost
minutes and hundreds of MiB at 100k, and their layout changes at every recomputation.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import asyncpg
import numpy as np

from sidecar.config import Settings
from sidecar.db import map as map_db
from sidecar.db import tasks
from sidecar.jobs.context import job_context
from sidecar.jobs.names import COMPUTE_MAP
from sidecar.jobs.queue import enqueue

log = logging.getLogger(__name__)

METHOD = "pca-cosine"
#: one computation queued or running at a time
MAP_JOB_ID = "music-map"
#: colours in the legend: the most frequent genres, the rest are "other"
MAX_GENRES = 11
OTHER = "other"


def project(vectors: np.ndarray) -> np.ndarray:
    """(n x 2) float32: the first two principal components of the L2-normalised rows.
    ``vectors`` is normalised in place.  One BLAS thread: the worker's other jobs have the other
    cores (a multi-threaded product on a busy machine is many times slower: bench/map.py)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return _project(vectors)


def _project(vectors: np.ndarray) -> np.ndarray:
    n = len(vectors)
    out = np.zeros((n, 2), dtype=np.float32)
    if n < 2:
        return out
    norms = np.sqrt(np.einsum("ij,ij->i", vectors, vectors))[:, None]  # no n x d temporary
    np.divide(vectors, np.maximum(norms, 1e-12), out=vectors)
    mean = vectors.mean(axis=0, dtype=np.float64)
    # covariance = X'X / n - mean mean' (one float32 matrix product, no centred copy of X)
    gram = (vectors.T @ vectors).astype(np.float64)
    cov = gram / n - np.outer(mean, mean)
    _, eigvecs = np.linalg.eigh(cov)
    basis = eigvecs[:, [-1, -2]]
    # fixed signs: each component's largest loading is positive (no flips between runs)
    basis *= np.sign(basis[np.abs(basis).argmax(axis=0), [0, 1]])
    out[:] = vectors @ basis.astype(np.float32) - (mean @ basis).astype(np.float32)
    return out


def quantise(coords: np.ndarray) -> np.ndarray:
    """uint16 x,y pairs over each axis' 0.1-99.9 percentile range (outliers at the edge)."""
    if len(coords) == 0:
        return np.zeros((0, 2), dtype=np.uint16)
    lo = np.percentile(coords, 0.1, axis=0)
    hi = np.percentile(coords, 99.9, axis=0)
    span = np.where(hi - lo > 1e-12, hi - lo, 1.0)
    scaled = np.clip((coords - lo) / span, 0.0, 1.0) * 65535.0
    out: np.ndarray = np.rint(scaled).astype("<u2")
    return out


def index_labels(labels: list[str | None], keep: int | None = None) -> tuple[list[str], bytes]:
    """Names ordered by frequency (at most ``keep``, the rest and missing ones "other") and
    one uint8 index per track."""
    counts = Counter(label for label in labels if label)
    names = [name for name, _ in counts.most_common(keep)]
    if any(label not in names for label in labels):
        names.append(OTHER)
    pos = {name: i for i, name in enumerate(names)}
    other = pos.get(OTHER, 0)
    return names, np.fromiter((pos.get(x or "", other) for x in labels), np.uint8, len(labels)).tobytes()


def top_genre(tags: list[str], genres: dict[str, str]) -> str | None:
    """The first of a track's top tags that is one of the stratified genres."""
    for tag in tags:
        hit = genres.get(tag.lower())
        if hit:
            return hit
    return None


async def refresh_map(db: asyncpg.Pool, settings: Settings, force: bool = False) -> dict[str, Any]:
    """Compute and store the map unless the stored one is of the current library."""
    if not force and await map_db.stored_signature(db) == await map_db.library_signature(db):
        return {"status": "fresh"}
    started = time.perf_counter()
    genres = {g.strip().lower(): g.strip() for g in settings.stratified_genres.split(",") if g.strip()}
    ids: list[str] = []
    moods: list[str | None] = []
    tops: list[str | None] = []
    vectors: np.ndarray | None = None
    async with db.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        signature = await map_db.library_signature(conn)  # the state these rows are read from
        n = await map_db.count_analysed(conn)
        async for chunk_ids, chunk_vectors, chunk_moods, chunk_tags in map_db.analysed_chunks(conn):
            if vectors is None:
                vectors = np.empty((n, chunk_vectors.shape[1]), dtype=np.float32)
            vectors[len(ids) : len(ids) + len(chunk_ids)] = chunk_vectors
            ids.extend(chunk_ids)
            moods.extend(chunk_moods)
            tops.extend(top_genre(t, genres) for t in chunk_tags)
    coords = await asyncio.to_thread(project, vectors) if vectors is not None else np.zeros((0, 2))
    mood_names, mood_idx = index_labels(moods)
    genre_names, genre_idx = index_labels(tops, MAX_GENRES)
    seconds = time.perf_counter() - started
    await map_db.store(
        db,
        map_db.StoredMap(
            signature=signature,
            method=METHOD,
            computed_at=datetime.now(UTC),
            seconds=seconds,
            item_ids=ids,
            xy=quantise(coords).tobytes(),
            mood_names=mood_names,
            mood_idx=mood_idx,
            genre_names=genre_names,
            genre_idx=genre_idx,
        ),
    )
    log.info("music map of %d tracks computed in %.2f s", len(ids), seconds)
    return {"status": "computed", "tracks": len(ids), "seconds": round(seconds, 3)}


async def compute_map(ctx: dict[str, Any]) -> dict[str, Any]:
    """arq job: the map of the current library (nothing to do when the stored one is)."""
    app = job_context(ctx)
    return await refresh_map(app.db, app.settings)


async def keep_map_current(ctx: dict[str, Any]) -> str:
    """Periodic: when no run is active (an analysis, a sync, a clustering) and the library
    changed since the stored map, queue ``compute_map``, so the map is ready before the page
    is opened (one signature check: ~0.2 s at 100k tracks)."""
    app = job_context(ctx)
    if await tasks.active(app.db):
        return "busy"
    if await map_db.stored_signature(app.db) == await map_db.library_signature(app.db):
        return "current"
    return "queued" if await enqueue(ctx["redis"], COMPUTE_MAP, job_id=MAP_JOB_ID) else "already queued"


def packed(m: map_db.StoredMap, status: str) -> dict[str, Any]:
    """The map as GET /api/map answers it: base64 of little-endian uint16 x,y pairs and of
    uint8 label indices, and the track ids in the same order."""
    return {
        "status": status,
        "method": m.method,
        "computed_at": m.computed_at.isoformat(),
        "seconds": round(m.seconds, 3),
        "count": len(m.item_ids),
        "ids": m.item_ids,
        "xy": base64.b64encode(m.xy).decode(),
        "labels": {
            "mood": {"names": m.mood_names, "index": base64.b64encode(m.mood_idx).decode()},
            "genre": {"names": m.genre_names, "index": base64.b64encode(m.genre_idx).decode()},
        },
    }
