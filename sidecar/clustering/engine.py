"""One clustering run and one batch of runs: pure computation, no I/O.

A :class:`Batch` is what a batch job executes, one :meth:`Batch.step` (one run) at a time, so
that the job can check for cancellation and report progress between runs.  Its random
generator is seeded by (the clustering's seed, the batch's index): a batch run again after a
lost worker does exactly the same runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sidecar.clustering import fitness, models, sampling, search
from sidecar.clustering.data import Library
from sidecar.clustering.params import ClusteringParams
from sidecar.clustering.playlists import Candidate, candidates

Result = dict[str, Any]


def run_once(
    lib: Library, sample: Sequence[int], run: search.Params, params: ClusteringParams, min_size: int
) -> tuple[float, dict[str, float], list[Candidate]]:
    """Fit ``run`` on the ``sample`` rows and score its playlists; degenerate setups score -1."""
    x = lib.clustered(params.enable_clustering_embeddings)[np.asarray(sample, dtype=np.int64)]
    if run["method"] != "dbscan" and not 2 <= int(run["n_clusters"]) < len(sample):
        return -1.0, {}, []
    fitted = models.fit(
        x, run, gmm_covariance=params.gmm_covariance_type, n_neighbors=params.spectral_n_neighbors
    )
    cands = candidates(
        lib,
        sample,
        fitted,
        max_distance=params.max_distance,
        max_per_artist=params.max_songs_per_artist,
        min_size=min_size,
    )
    score, comp = fitness.score(lib, fitted, cands, params, seed=int(run.get("random_state", 0)))
    return score, comp, cands


def result_json(
    score: float,
    comp: dict[str, float],
    run: search.Params,
    cands: Sequence[Candidate],
    lib: Library,
    n_samples: int,
    run_index: int,
) -> Result:
    """A run as stored: its score, components, parameters and playlists (track ids, centre in the
    clustered space, mean score vector)."""
    return {
        "score": round(score, 6),
        "components": {k: round(v, 6) for k, v in comp.items()},
        "params": run,
        "run_index": run_index,
        "n_samples": n_samples,
        "playlists": [
            {
                "ids": [lib.ids[r] for r in c.rows],
                "centre": [round(float(v), 5) for v in c.centre],
                "profile": [round(float(v), 4) for v in c.profile],
            }
            for c in cands
        ],
    }


@dataclass
class Batch:
    lib: Library
    params: ClusteringParams
    k_range: tuple[int, int]
    elites: list[search.Params]
    index: int
    start_run: int
    runs: int
    seed: int
    min_size: int
    done: int = 0
    best: Result | None = None
    sample: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng([self.seed, self.index])
        self.by_genre = sampling.buckets(self.lib.genres)
        self.target = sampling.target_per_genre(
            [len(v) for v in self.by_genre.values()],
            self.params.min_songs_per_genre_for_stratification,
            self.params.stratified_sampling_target_percentile,
        )
        self.exploit = search.exploitation_probability(self.params, self.start_run)

    def step(self) -> float:
        """One run; returns its score (and keeps the batch's best)."""
        p = self.params
        if not self.sample:
            self.sample = sampling.fresh_sample(self.by_genre, self.target, self.rng)
        else:
            self.sample = sampling.perturb(
                self.sample, self.by_genre, self.target, p.sampling_percentage_change_per_run, self.rng
            )
        n_features = self.lib.clustered(p.enable_clustering_embeddings).shape[1]
        sp = search.space(p, len(self.sample), n_features, self.k_range)
        run, _ = search.choose(
            sp, self.elites, self.exploit, p.mutation_int_abs_delta, p.mutation_float_abs_delta, self.rng
        )
        score, comp, cands = run_once(self.lib, self.sample, run, p, self.min_size)
        if cands and (self.best is None or score > self.best["score"]):
            self.best = result_json(
                score, comp, run, cands, self.lib, len(self.sample), self.start_run + self.done
            )
        self.done += 1
        return score
