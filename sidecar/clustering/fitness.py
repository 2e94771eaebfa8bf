"""The fitness of one run (research A.7): a weighted sum of content metrics (mood and
other-feature purity and diversity: log1p of the raw value, z-scored with upstream's LN_*
statistics) and geometric metrics (silhouette, Davies-Bouldin, Calinski-Harabasz), each
computed only when its weight is above 0."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score

from sidecar.clustering.data import MOOD0, MOOD_LABELS, OTHER0, OTHER_FEATURE_LABELS, Library
from sidecar.clustering.models import Fitted
from sidecar.clustering.params import ClusteringParams
from sidecar.clustering.playlists import Candidate

#: silhouette is O(n^2): computed on a sample of at most this many rows (seeded)
SILHOUETTE_SAMPLE = 4000


def zscore(raw: float, stats: tuple[float, float]) -> float:
    mean, sd = stats
    if sd <= 1e-9:
        return 0.0
    return (math.log1p(max(raw, 0.0)) - mean) / sd


def mood_diversity_raw(cands: Sequence[Candidate]) -> float:
    """Sum over moods of the best value a playlist has for its predominant mood."""
    best: dict[int, float] = {}
    for c in cands:
        moods = c.profile[MOOD0 : MOOD0 + len(MOOD_LABELS)]
        i = int(np.argmax(moods))
        if moods[i] > 0:
            best[i] = max(best.get(i, 0.0), float(moods[i]))
    return sum(best.values())


def mood_purity_raw(lib: Library, cands: Sequence[Candidate], top_k: int) -> float:
    """Sum over playlists and their songs of the song's best score on the playlist's top-k moods
    (moods above 0.01); songs scoring 0 on all of them do not count."""
    total = 0.0
    for c in cands:
        moods = c.profile[MOOD0 : MOOD0 + len(MOOD_LABELS)]
        order = [int(i) for i in np.argsort(-moods, kind="stable")[:top_k] if moods[i] > 0.01]
        if not order:
            continue
        songs = lib.vectors[np.asarray(c.rows)][:, [MOOD0 + i for i in order]].max(axis=1)
        total += float(songs[songs > 0].sum())
    return total


def other_diversity_raw(cands: Sequence[Candidate], threshold: float) -> float:
    best: dict[int, float] = {}
    for c in cands:
        other = c.profile[OTHER0 : OTHER0 + len(OTHER_FEATURE_LABELS)]
        i = int(np.argmax(other))
        if other[i] > threshold:
            best[i] = max(best.get(i, 0.0), float(other[i]))
    return sum(best.values())


def other_purity_raw(lib: Library, cands: Sequence[Candidate], threshold: float) -> float:
    total = 0.0
    for c in cands:
        other = c.profile[OTHER0 : OTHER0 + len(OTHER_FEATURE_LABELS)]
        i = int(np.argmax(other))
        if other[i] >= threshold:
            total += float(lib.vectors[np.asarray(c.rows), OTHER0 + i].sum())
    return total


def geometric(fitted: Fitted, n_playlists: int, weights: dict[str, float], seed: int = 0) -> dict[str, float]:
    """Silhouette -> (s + 1) / 2, Davies-Bouldin -> 1 / (1 + DB), Calinski-Harabasz ->
    1 - exp(-CH / 500), on the clustered data with the model's labels (noise included), for the
    metrics whose weight is above 0, when 2 <= playlists < rows."""
    out = {"silhouette": 0.0, "davies_bouldin": 0.0, "calinski_harabasz": 0.0}
    x, labels = fitted.data, fitted.labels
    n = x.shape[0]
    distinct = len(np.unique(labels))
    if not 2 <= n_playlists < n or not 2 <= distinct < n:
        return out
    if weights.get("silhouette", 0) > 0:
        size = min(n, SILHOUETTE_SAMPLE)
        s = silhouette_score(x, labels, sample_size=size if size < n else None, random_state=seed)
        out["silhouette"] = (float(s) + 1.0) / 2.0
    if weights.get("davies_bouldin", 0) > 0:
        out["davies_bouldin"] = 1.0 / (1.0 + float(davies_bouldin_score(x, labels)))
    if weights.get("calinski_harabasz", 0) > 0:
        out["calinski_harabasz"] = 1.0 - math.exp(-float(calinski_harabasz_score(x, labels)) / 500.0)
    return out


def score(
    lib: Library, fitted: Fitted, cands: Sequence[Candidate], params: ClusteringParams, seed: int = 0
) -> tuple[float, dict[str, float]]:
    """``(fitness, components)``: every metric (0 when its weight is 0) and the weighted sum."""
    w = params.weights()
    emb = "_embedding" if params.enable_clustering_embeddings else ""
    stats = params.ln_stats
    comp = dict.fromkeys(w, 0.0)
    if not cands:
        return -1.0, comp
    if w["mood_diversity"] > 0:
        comp["mood_diversity"] = zscore(mood_diversity_raw(cands), stats["mood_diversity" + emb])
    if w["mood_purity"] > 0:
        raw = mood_purity_raw(lib, cands, params.top_k_moods_for_purity_calculation)
        comp["mood_purity"] = zscore(raw, stats["mood_purity" + emb])
    threshold = params.other_feature_predominance_threshold_for_purity
    if w["other_feature_diversity"] > 0:
        comp["other_feature_diversity"] = zscore(
            other_diversity_raw(cands, threshold), stats["other_feature_diversity"]
        )
    if w["other_feature_purity"] > 0:
        comp["other_feature_purity"] = zscore(
            other_purity_raw(lib, cands, threshold), stats["other_feature_purity"]
        )
    comp.update(geometric(fitted, len(cands), w, seed))
    return sum(w[k] * comp[k] for k in w), comp
