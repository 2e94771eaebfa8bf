"""Clustering speed and fitness: our evolutionary search against a seed-faithful loop, same run.

    .venv/bin/python bench/clustering.py                         # 10k tracks, kmeans / gmm / dbscan
    .venv/bin/python bench/clustering.py --methods kmeans --runs 1000 --seed-runs 100

A synthetic library (tests/test_clustering_data.py: styles with their own moods, tempo, energy,
features and artists).  "Ours" is what the jobs run: batches of ITERATIONS_PER_BATCH_JOB runs
(n_init=1, per-run seeds, one BLAS thread each) in ``--workers`` processes (the worker's work
slots), elites passed between batches as the parent job does.  "Seed" is upstream v0.6.2's loop
in one process: the 13-d score vector (the first five labels of the list), StandardScaler and
PCA per run, KMeans / GaussianMixture with ``n_init=10``, a fresh stratified sample without the
tracks of no stratified genre.  Both are scored by the same fitness (ours), on the same
library, so the best scores compare.  Figures: wall time, time per run, best fitness.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from sklearn.cluster import DBSCAN, KMeans  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.mixture import GaussianMixture  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from test_clustering_data import synthetic_rows  # noqa: E402

from sidecar.clustering import fitness, sampling, search  # noqa: E402
from sidecar.clustering.data import MOOD0, OTHER0, OTHER_GENRE, Library, build_library  # noqa: E402
from sidecar.clustering.engine import Batch  # noqa: E402
from sidecar.clustering.models import Fitted, limit_threads  # noqa: E402
from sidecar.clustering.params import ClusteringParams, auto_range, defaults  # noqa: E402
from sidecar.clustering.playlists import candidates  # noqa: E402
from sidecar.config import load_settings  # noqa: E402

_LIB: Library | None = None


def make_library(n: int) -> tuple[Library, ClusteringParams]:
    params = ClusteringParams.model_validate(defaults(load_settings({})))
    rows = synthetic_rows(n, styles=8, seed=1, artists_per_style=max(12, n // 80))
    return build_library(rows, top_n_moods=5, stratified=params.stratified_genres), params


def _init(n: int) -> None:
    global _LIB
    _LIB, _ = make_library(n)
    limit_threads()


def _batch(
    n: int,
    values: dict[str, Any],
    k_range: tuple[int, int],
    elites: list[dict[str, Any]],
    index: int,
    start: int,
    runs: int,
    min_size: int,
) -> tuple[int, float | None, dict[str, Any] | None]:
    assert _LIB is not None
    b = Batch(_LIB, ClusteringParams.model_validate(values), k_range, elites, index, start, runs, 7, min_size)
    for _ in range(runs):
        b.step()
    return runs, (b.best["score"] if b.best else None), (b.best["params"] if b.best else None)


def ours(n: int, params: ClusteringParams, runs: int, workers: int) -> tuple[float, float]:
    """Wall seconds and best score of ``runs`` runs, orchestrated as run_clustering does."""
    k_range = params.cluster_range(n)
    min_size = params.playlist_floor(n)
    values = params.model_dump(mode="json") | {"clustering_runs": runs}
    per = params.iterations_per_batch_job
    batches = math.ceil(runs / per)
    elites: list[tuple[float, dict[str, Any]]] = []
    best = -math.inf
    t0 = time.perf_counter()
    with ProcessPoolExecutor(workers, initializer=_init, initargs=(n,)) as pool:
        pending: set[Future[Any]] = set()
        launched = 0
        while launched < batches or pending:
            while (
                launched < batches
                and len(pending) < params.max_concurrent_batch_jobs
                and len(pending) < workers
            ):
                start = launched * per
                pending.add(
                    pool.submit(
                        _batch,
                        n,
                        values,
                        k_range,
                        [e for _, e in elites],
                        launched,
                        start,
                        min(per, runs - start),
                        min_size,
                    )
                )
                launched += 1
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                _, score, run = f.result()
                if score is not None and run is not None:
                    best = max(best, score)
                    elites = sorted([*elites, (score, run)], key=lambda e: -e[0])[: params.top_n_elites]
    return time.perf_counter() - t0, best


def seed_vector(lib: Library) -> np.ndarray:
    """Upstream's 13-d vector: tempo, energy, the first five mood labels, six features."""
    return np.hstack(
        [lib.vectors[:, :2], lib.vectors[:, MOOD0 : MOOD0 + 5], lib.vectors[:, OTHER0 : OTHER0 + 6]]
    )


def seed_faithful(lib: Library, params: ClusteringParams, runs: int) -> tuple[float, float]:
    rng = np.random.default_rng(11)
    x13 = seed_vector(lib)
    by = {g: v for g, v in sampling.buckets(lib.genres).items() if g != OTHER_GENRE}  # upstream's bug kept
    target = sampling.target_per_genre([len(v) for v in by.values()], 100, 50)
    n = len(lib)
    sp = search.space(params.model_copy(update={"pca_components_max": 8}), n, 13, params.cluster_range(n))
    best = -math.inf
    t0 = time.perf_counter()
    for _ in range(runs):
        sample = sampling.fresh_sample(by, target, rng)
        run = search.explore(sp, rng)
        data = StandardScaler().fit_transform(x13[sample])
        if run["pca_components"] > 0:
            data = PCA(n_components=run["pca_components"]).fit_transform(data)
        if run["method"] == "kmeans":
            km = KMeans(n_clusters=run["n_clusters"], init="k-means++", n_init=10).fit(data)
            labels, centres = km.labels_, dict(enumerate(km.cluster_centers_))
        elif run["method"] == "gmm":
            gm = GaussianMixture(
                n_components=run["n_clusters"],
                covariance_type="full",
                init_params="k-means++",
                n_init=10,
                reg_covar=1e-4,
            ).fit(data)
            labels, centres = gm.predict(data), dict(enumerate(gm.means_))
        else:
            labels = DBSCAN(eps=run["eps"], min_samples=run["min_samples"]).fit_predict(data)
            centres = {int(c): data[labels == c].mean(axis=0) for c in np.unique(labels) if c >= 0}
        fitted = Fitted(
            data, labels.astype(np.int64), {c: v for c, v in centres.items() if np.any(labels == c)}
        )
        cands = candidates(
            lib,
            sample,
            fitted,
            max_distance=params.max_distance,
            max_per_artist=params.max_songs_per_artist,
            min_size=params.playlist_floor(n),
        )
        score, _ = fitness.score(lib, fitted, cands, params)
        if cands:
            best = max(best, score)
    return time.perf_counter() - t0, best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tracks", type=int, default=10_000)
    ap.add_argument("--methods", nargs="+", default=["kmeans", "gmm", "dbscan"])
    ap.add_argument("--runs", type=int, default=1000, help="our runs per method")
    ap.add_argument("--gmm-runs", type=int, default=60, help="our runs for gmm (about 5 s each at 10k)")
    ap.add_argument("--seed-runs", type=int, default=60, help="seed-faithful runs per method")
    ap.add_argument("--seed-gmm-runs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2, help="processes (the worker's work slots)")
    args = ap.parse_args()
    lib, params = make_library(args.tracks)
    print(
        f"{len(lib)} tracks, cluster range {auto_range(len(lib))}, smallest playlist "
        f"{params.playlist_floor(len(lib))}, {args.workers} processes"
    )
    print(
        "| method | ours: runs | wall s | s/run | best | seed: runs | wall s | s/run | best | speed per run |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for method in args.methods:
        p = params.model_copy(update={"cluster_algorithm": method})
        runs = args.gmm_runs if method == "gmm" else args.runs
        seed_runs = args.seed_gmm_runs if method == "gmm" else args.seed_runs
        wall, best = ours(len(lib), p, runs, args.workers)
        s_wall, s_best = seed_faithful(lib, p, seed_runs)
        print(
            f"| {method} | {runs} | {wall:.1f} | {wall / runs:.3f} | {best:.3f} | {seed_runs} | {s_wall:.1f} | "
            f"{s_wall / seed_runs:.3f} | {s_best:.3f} | {(s_wall / seed_runs) / (wall / runs):.1f}x |",
            flush=True,
        )


if __name__ == "__main__":
    main()
