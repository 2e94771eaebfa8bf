"""Clustering speed, fitness, memory and quality: our evolutionary search against baselines, same run.

    .venv/bin/python bench/clustering.py                         # 10k tracks, kmeans / gmm / dbscan
    .venv/bin/python bench/clustering.py --methods kmeans --runs 1000 --seed-runs 100
    .venv/bin/python bench/clustering.py --rss                   # peak RSS of a run at 100k tracks
    .venv/bin/python bench/clustering.py --quality               # real labelled music (slow: analyses it)

A synthetic library (tests/clustering_data.py: styles with their own moods, tempo, energy,
features and artists).  "Ours" is what the jobs run: batches of ITERATIONS_PER_BATCH_JOB runs
(n_init=1, per-run seeds, one BLAS thread each) in ``--workers`` processes (the worker's work
slots), elites passed between batches as the parent job does.  "Seed" is upstream v0.6.2's loop
in one process: the 13-d score vector (the first five labels of the list), StandardScaler and
PCA per run, KMeans / GaussianMixture with ``n_init=10``, a fresh stratified sample without the
tracks of no stratified genre.  Both are scored by the same fitness (ours), on the same
library, so the best scores compare.  Figures: wall time, time per run, best fitness.

``--rss``: each method in a fresh (spawned) process on ``--tracks`` (100k) synthetic tracks: peak
RSS after the rows are made (what the job reads from the database), after the library is built,
after ``--runs`` runs, and the process after its imports.  ``--quality``: see
:func:`quality` (bench/quality.py's Debian soundtracks, one label per package).
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

from clustering_data import synthetic_rows  # noqa: E402
from sklearn.cluster import DBSCAN, KMeans  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.mixture import GaussianMixture  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from sidecar.clustering import fitness, sampling, search  # noqa: E402
from sidecar.clustering.data import MOOD0, OTHER0, OTHER_GENRE, Library, build_library  # noqa: E402
from sidecar.clustering.engine import Batch  # noqa: E402
from sidecar.clustering.models import Fitted, limit_threads  # noqa: E402
from sidecar.clustering.params import ClusteringParams, auto_range, defaults  # noqa: E402
from sidecar.clustering.playlists import Candidate, candidates, select_diverse, split  # noqa: E402
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


# --------------------------------------------------------------------------- peak RSS (--rss)


def _rss_mb() -> tuple[float, float]:
    """(peak RSS, current RSS) of this process in MB."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    current = 0.0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                current = int(line.split()[1]) / 1024
    return peak, current


def _rss_child(n: int, method: str, runs: int, embeddings: bool) -> dict[str, float]:
    import gc

    out: dict[str, float] = {"imports": _rss_mb()[1]}
    params = ClusteringParams.model_validate(defaults(load_settings({})))
    p = params.model_copy(update={"cluster_algorithm": method, "enable_clustering_embeddings": embeddings})
    t0 = time.perf_counter()
    rows = synthetic_rows(n, styles=8, seed=1, artists_per_style=max(12, n // 80))
    out["rows_peak"] = _rss_mb()[0]
    lib = build_library(rows, top_n_moods=5, stratified=p.stratified_genres, embeddings=embeddings)
    out["library_peak"] = _rss_mb()[0]
    del rows
    gc.collect()
    out["library_only"] = _rss_mb()[1]
    out["load_s"] = time.perf_counter() - t0
    limits = limit_threads()
    batch = Batch(lib, p, p.cluster_range(n), [], 0, 0, runs, 7, p.playlist_floor(n))
    t0 = time.perf_counter()
    for _ in range(runs):
        batch.step()
    out["runs_s"] = time.perf_counter() - t0
    del limits
    out["runs_peak"], out["after_runs"] = _rss_mb()
    out["sample"] = float(batch.best["n_samples"]) if batch.best else float("nan")
    return out


def rss(n: int, methods: list[str], runs: int) -> None:
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    print(f"peak RSS of a clustering run on {n} synthetic tracks, {runs} runs, each in a fresh process (MB)")
    print(
        "| method | clustered | after imports | peak: rows made | peak: library built | library alone "
        "| peak: after runs | runs' own peak | sample | load s | runs s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for method in methods:
        for embeddings in (False, True):
            with ProcessPoolExecutor(1, mp_context=ctx) as pool:
                r = pool.submit(_rss_child, n, method, runs, embeddings).result()
            own = r["runs_peak"] - max(r["library_peak"], r["library_only"])
            print(
                f"| {method} | {'embeddings' if embeddings else 'score vectors'} | {r['imports']:.0f} "
                f"| {r['rows_peak']:.0f} | {r['library_peak']:.0f} | {r['library_only']:.0f} "
                f"| {r['runs_peak']:.0f} | {max(own, 0):.0f} | {r['sample']:.0f} | {r['load_s']:.1f} "
                f"| {r['runs_s']:.1f} |",
                flush=True,
            )


# --------------------------------------------------------------------------- quality on real music (--quality)


def agreement(labels: list[str], groups: list[list[int]], n_total: int) -> dict[str, float]:
    """Purity (share of each playlist's dominant label, over the tracks placed), adjusted Rand index
    and NMI of the playlists against the labels (on the tracks placed), and coverage (tracks placed
    / all tracks)."""
    from collections import Counter

    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    groups = [g for g in groups if g]
    rows = [r for g in groups for r in g]
    if not rows:
        return {"purity": math.nan, "ari": math.nan, "nmi": math.nan, "coverage": 0.0, "groups": 0.0}
    true = [labels[r] for r in rows]
    pred = [i for i, g in enumerate(groups) for _ in g]
    dominant = sum(Counter(labels[r] for r in g).most_common(1)[0][1] for g in groups)
    return {
        "purity": dominant / len(rows),
        "ari": float(adjusted_rand_score(true, pred)),
        "nmi": float(normalized_mutual_info_score(true, pred)),
        "coverage": len(set(rows)) / n_total,
        "groups": float(len(groups)),
    }


def search_best(lib: Library, p: ClusteringParams, runs: int, seed: int) -> dict[str, Any] | None:
    """The jobs' search in one process: batches of ITERATIONS_PER_BATCH_JOB runs in turn, each given
    the elites of the batches before it; the best run."""
    n = len(lib)
    k_range, min_size, per = p.cluster_range(n), p.playlist_floor(n), p.iterations_per_batch_job
    elites: list[tuple[float, dict[str, Any]]] = []
    best: dict[str, Any] | None = None
    for index, start in enumerate(range(0, runs, per)):
        b = Batch(
            lib, p, k_range, [e for _, e in elites], index, start, min(per, runs - start), seed, min_size
        )
        for _ in range(b.runs):
            b.step()
        if b.best:
            elites = sorted([*elites, (b.best["score"], b.best["params"])], key=lambda e: -e[0])
            del elites[p.top_n_elites :]
            if best is None or b.best["score"] > best["score"]:
                best = b.best
    return best


def final_playlists(lib: Library, p: ClusteringParams, best: dict[str, Any]) -> list[list[int]]:
    """The playlists the job writes from the best run: the TOP_N_PLAYLISTS most diverse, in parts of
    at most MAX_SONGS_PER_CLUSTER songs (library rows)."""
    row_of = {item: i for i, item in enumerate(lib.ids)}
    cands = [
        Candidate(k, [row_of[i] for i in pl["ids"]], np.asarray(pl["centre"]), np.asarray(pl["profile"]))
        for k, pl in enumerate(best["playlists"])
    ]
    return [
        part
        for c in select_diverse(cands, p.top_n_playlists)
        for part in split(c.rows, p.max_songs_per_cluster)
    ]


async def read_labelled(dsn: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The analysed rows as the job reads them (with embeddings) and each track's label (its package
    folder)."""
    from sidecar.db import clustering as clustering_db
    from sidecar.db.pool import create_pool

    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        rows = await clustering_db.analysed_rows(pool, embeddings=True)
        paths = await pool.fetch("SELECT item_id, file_path FROM tracks")
    finally:
        await pool.close()
    return rows, {r["item_id"]: Path(str(r["file_path"])).parent.name for r in paths}


_K412: dict[str, Any] = {"num_clusters_min": 4, "num_clusters_max": 12, "min_playlist_size": 4}
_EMB: dict[str, Any] = {"enable_clustering_embeddings": True}
QUALITY_VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("defaults", {}),
    ("defaults, embeddings", _EMB),
    ("k 4-12, playlists >= 4", _K412),
    ("k 4-12, playlists >= 4, embeddings", _K412 | _EMB),
]


def report_quality(rows: list[dict[str, Any]], label_of: dict[str, str], runs: int, repeats: int) -> None:
    from collections import Counter

    base = defaults(load_settings({}))
    sizes = Counter(label_of[r["item_id"]] for r in rows)
    print(
        f"{len(rows)} analysed tracks, {len(sizes)} labels: "
        + ", ".join(f"{k} {v}" for k, v in sorted(sizes.items()))
        + f"; {runs} runs per clustering, {repeats} clusterings (seeds) per line, mean and spread (sd)"
    )
    print(
        "baseline: plain k-means (n_init=10) on the 200-d embedding with the k of the clustering's best "
        "run, on all tracks and on the tracks the playlists hold"
    )
    print(
        "| clustering | k | playlists | coverage | purity | ARI | NMI | baseline purity | ARI | NMI "
        "| baseline on the same tracks: purity | ARI | NMI |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")

    def ms(values: list[float], digits: int = 2) -> str:
        a = np.asarray(values, dtype=np.float64)
        return f"{np.nanmean(a):.{digits}f}±{np.nanstd(a):.{digits}f}" if np.isfinite(a).any() else "–"

    for name, update in QUALITY_VARIANTS:
        p = ClusteringParams.model_validate({**base, **update, "clustering_runs": runs})
        lib = build_library(
            rows,
            top_n_moods=p.top_n_moods,
            stratified=p.stratified_genres,
            embeddings=p.enable_clustering_embeddings,
        )
        labels = [label_of[i] for i in lib.ids]
        emb = build_library(rows, top_n_moods=5, stratified=[], embeddings=True).embeddings
        assert emb is not None and len(emb) == len(lib)
        figures: dict[str, list[float]] = {}
        for rep in range(repeats):
            best = search_best(lib, p, runs, seed=rep + 1)
            groups = final_playlists(lib, p, best) if best else []
            k = int(best["params"].get("n_clusters") or len(best["playlists"])) if best else 2
            km = KMeans(n_clusters=k, n_init=10, random_state=rep).fit_predict(emb)
            base_groups = [[int(r) for r in np.flatnonzero(km == c)] for c in range(k)]
            placed = {r for g in groups for r in g}
            values = {
                "k": float(k),
                **{f"ours_{m}": v for m, v in agreement(labels, groups, len(lib)).items()},
                **{f"base_{m}": v for m, v in agreement(labels, base_groups, len(lib)).items()},
                **{
                    f"same_{m}": v
                    for m, v in agreement(
                        labels, [[r for r in g if r in placed] for g in base_groups], len(lib)
                    ).items()
                },
            }
            for key, v in values.items():
                figures.setdefault(key, []).append(v)
        f = figures
        print(
            f"| {name} | {ms(f['k'], 1)} | {ms(f['ours_groups'], 1)} | {ms(f['ours_coverage'])} "
            f"| {ms(f['ours_purity'])} | {ms(f['ours_ari'])} | {ms(f['ours_nmi'])} "
            f"| {ms(f['base_purity'])} | {ms(f['base_ari'])} | {ms(f['base_nmi'])} "
            f"| {ms(f['same_purity'])} | {ms(f['same_ari'])} | {ms(f['same_nmi'])} |",
            flush=True,
        )


def quality(args: argparse.Namespace) -> None:
    """bench/quality.py's corpus (Debian soundtracks, label = package) analysed by ``python -m sidecar
    analyze`` in a fresh data folder (or ``--work``, reused), then clustered in this process as the
    jobs do (``--runs`` runs, ``--repeats`` seeds), playlists as the job writes them (TOP_N_PLAYLISTS,
    MAX_SONGS_PER_CLUSTER) against the labels, with the k-means baseline in the same run."""
    import asyncio
    import shutil
    import tempfile

    sys.path.insert(0, str(ROOT / "bench"))
    from quality import analyse, child_env, corpus_tracks, make_music_folder

    from sidecar.embedded.postgres import EmbeddedPostgres

    if args.dsn:  # a database analysed already (bench/quality.py --keep's), read as it is
        rows, label_of = asyncio.run(read_labelled(args.dsn))
        report_quality(rows, label_of, args.runs, args.repeats)
        return
    tracks = corpus_tracks(args.corpus, args.cache, args.min_seconds)
    work = args.work or Path(tempfile.mkdtemp(prefix="audiomuse-clustering-quality-"))
    work.mkdir(parents=True, exist_ok=True)
    music, data = work / "music", work / "data"
    try:
        make_music_folder(tracks, music)
        print(f"corpus {args.corpus}: {len(tracks)} tracks of {args.min_seconds:.0f} s or more", flush=True)
        if not args.analysed:
            print(f"analyse: {analyse(child_env(data, music, {}))}", flush=True)
        pg = EmbeddedPostgres(data)
        dsn = pg.start()
        try:
            rows, label_of = asyncio.run(read_labelled(dsn))
        finally:
            pg.stop()
    finally:
        if args.work is None and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        elif args.work is None:
            print(f"kept {work}")
    report_quality(rows, label_of, args.runs, args.repeats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tracks", type=int, default=None, help="synthetic tracks (10k; 100k with --rss)")
    ap.add_argument("--methods", nargs="+", default=["kmeans", "gmm", "dbscan"])
    ap.add_argument("--runs", type=int, default=None, help="our runs per method (1000; 20 with --rss)")
    ap.add_argument("--gmm-runs", type=int, default=60, help="our runs for gmm (about 5 s each at 10k)")
    ap.add_argument("--seed-runs", type=int, default=60, help="seed-faithful runs per method")
    ap.add_argument("--seed-gmm-runs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2, help="processes (the worker's work slots)")
    ap.add_argument("--rss", action="store_true", help="peak RSS of a clustering run instead of speed")
    ap.add_argument("--quality", action="store_true", help="quality on real labelled music instead of speed")
    ap.add_argument("--corpus", choices=("small", "large"), default="large", help="--quality's corpus")
    ap.add_argument("--cache", type=Path, default=None, help="where the Debian packages are kept")
    ap.add_argument("--min-seconds", type=float, default=20.0)
    ap.add_argument("--work", type=Path, default=None, help="--quality's work folder (reused when it exists)")
    ap.add_argument("--keep", action="store_true", help="keep --quality's temporary work folder")
    ap.add_argument("--analysed", action="store_true", help="--quality: --work is analysed already, read it")
    ap.add_argument("--dsn", default=None, help="--quality: read this analysed database instead")
    ap.add_argument("--repeats", type=int, default=5, help="--quality: clusterings (seeds) per line")
    args = ap.parse_args()
    if args.quality:
        if args.cache is None:
            sys.path.insert(0, str(ROOT / "bench"))
            from quality import DEFAULT_CACHE

            args.cache = DEFAULT_CACHE
        args.runs = args.runs or 1000
        quality(args)
        return
    if args.rss:
        rss(args.tracks or 100_000, args.methods, args.runs or 20)
        return
    args.runs = args.runs or 1000
    lib, params = make_library(args.tracks or 10_000)
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
