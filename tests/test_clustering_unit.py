"""The clustering's pure functions: algorithms on small synthetic libraries, fitness components
against hand-computed values, stratified sampling invariants, playlists (distance gate, artist
cap, no duplicate songs, Top-N, split), names and parameters."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from clustering_data import synthetic_rows
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score

from sidecar.clustering import fitness, sampling, search
from sidecar.clustering.data import DIM, MOOD0, MOOD_LABELS, OTHER0, OTHER_GENRE, Library, build_library
from sidecar.clustering.engine import Batch
from sidecar.clustering.models import ClusteringRefused, Fitted, check_spectral
from sidecar.clustering.naming import final_names, unique
from sidecar.clustering.params import ClusteringParams, ParamsError, auto_range, from_request
from sidecar.clustering.playlists import Candidate, candidates, select_diverse, split
from sidecar.config import load_settings

GENRES = ("rock", "pop", "electronic", "jazz", "metal", "folk")


def small_library(n: int = 360, styles: int = 6, embeddings: bool = False) -> tuple[Library, list[int]]:
    rows = synthetic_rows(n, styles=styles, seed=3)
    lib = build_library(rows, top_n_moods=5, stratified=GENRES, embeddings=embeddings)
    return lib, [int(r["style"]) for r in rows]


def purity(lib: Library, styles: list[int], best: dict) -> float:
    """Share of the dominant style in each playlist, over all playlist songs."""
    row = {i: k for k, i in enumerate(lib.ids)}
    dominant = total = 0
    for pl in best["playlists"]:
        counts = Counter(styles[row[i]] for i in pl["ids"])
        dominant += counts.most_common(1)[0][1]
        total += len(pl["ids"])
    return dominant / total


@pytest.mark.parametrize(
    "method,extra",
    [
        ("kmeans", {}),
        ("gmm", {"gmm_covariance_type": "diag"}),
        ("spectral", {}),
        (
            "dbscan",
            {
                "dbscan_eps_min": 0.8,
                "dbscan_eps_max": 1.5,
                "dbscan_min_samples_min": 3,
                "dbscan_min_samples_max": 6,
                "pca_components_min": 2,
                "pca_components_max": 4,
            },
        ),
    ],
)
def test_each_algorithm_finds_the_styles(method: str, extra: dict) -> None:
    lib, styles = small_library()
    p = ClusteringParams(cluster_algorithm=method, stratified_genres=GENRES, **extra)
    batch = Batch(lib, p, (5, 8), [], index=0, start_run=0, runs=6, seed=1, min_size=5)
    for _ in range(6):
        batch.step()
    assert batch.best is not None, method
    assert len(batch.best["playlists"]) >= 3
    assert purity(lib, styles, batch.best) > 0.9, (method, batch.best["params"])


def test_embeddings_are_clustered_when_asked() -> None:
    lib, styles = small_library(embeddings=True)
    p = ClusteringParams(enable_clustering_embeddings=True, stratified_genres=GENRES, pca_components_max=10)
    batch = Batch(lib, p, (6, 6), [], index=0, start_run=0, runs=3, seed=2, min_size=5)
    for _ in range(3):
        batch.step()
    assert batch.best is not None and purity(lib, styles, batch.best) > 0.9


def test_a_batch_is_repeatable() -> None:
    lib, _ = small_library()
    p = ClusteringParams(stratified_genres=GENRES)
    scores = []
    for _ in range(2):
        batch = Batch(lib, p, (4, 10), [], index=3, start_run=0, runs=4, seed=9, min_size=5)
        scores.append([batch.step() for _ in range(4)])
    assert scores[0] == scores[1]


def test_score_vector_uses_each_tracks_own_top_moods() -> None:
    lib, _ = small_library(60)
    jazz = lib.vectors[2]  # style 2: jazz, instrumental, chill
    named = {MOOD_LABELS[i] for i in range(len(MOOD_LABELS)) if jazz[MOOD0 + i] > 0}
    assert {"jazz", "instrumental", "chill"} <= named and len(named) == 5
    assert "rock" not in named and lib.genres[2] == "jazz"


# --------------------------------------------------------------------------- fitness


def _vec(moods: dict[str, float], other: dict[int, float] | None = None) -> np.ndarray:
    v = np.zeros(DIM)
    for lbl, s in moods.items():
        v[MOOD0 + MOOD_LABELS.index(lbl)] = s
    for i, s in (other or {}).items():
        v[OTHER0 + i] = s
    return v


def test_content_metrics_match_hand_computed_values() -> None:
    songs = [
        _vec({"rock": 0.8, "pop": 0.1}, {0: 0.9}),
        _vec({"rock": 0.6, "indie": 0.5}, {0: 0.7}),
        _vec({"jazz": 0.7}, {4: 0.2}),
        _vec({"jazz": 0.5, "pop": 0.2}, {4: 0.3}),
    ]
    lib = Library([f"t{i}" for i in range(4)], ["a"] * 4, ["x"] * 4, np.stack(songs), ["rock"] * 4)
    a = Candidate(0, [0, 1], np.zeros(2), np.mean(songs[:2], axis=0))
    b = Candidate(1, [2, 3], np.ones(2), np.mean(songs[2:], axis=0))
    # diversity: predominant moods rock (0.7) and jazz (0.6)
    assert fitness.mood_diversity_raw([a, b]) == pytest.approx(0.7 + 0.6)
    # purity, top 2 moods: a -> rock 0.7, indie 0.25: songs max 0.8, 0.6; b -> jazz 0.6, pop 0.1: 0.7, 0.5
    assert fitness.mood_purity_raw(lib, [a, b], 2) == pytest.approx(0.8 + 0.6 + 0.7 + 0.5)
    # other features: a's predominant is danceable 0.8 (> 0.3); b's relaxed 0.25 does not count
    assert fitness.other_diversity_raw([a, b], 0.3) == pytest.approx(0.8)
    assert fitness.other_purity_raw(lib, [a, b], 0.3) == pytest.approx(0.9 + 0.7)
    assert fitness.zscore(1.3, (0.9995, 0.3541)) == pytest.approx((math.log1p(1.3) - 0.9995) / 0.3541)
    assert fitness.zscore(5.0, (1.0, 0.0)) == 0.0
    p = ClusteringParams(
        score_weight_diversity=2.0, score_weight_purity=1.0, top_k_moods_for_purity_calculation=2
    )
    fitted = Fitted(np.zeros((4, 2)), np.array([0, 0, 1, 1]), {})
    total, comp = fitness.score(lib, fitted, [a, b], p)
    assert comp["mood_diversity"] == pytest.approx((math.log1p(1.3) - 0.9995) / 0.3541)
    assert comp["mood_purity"] == pytest.approx((math.log1p(2.6) - 5.8679) / 1.1557)
    assert comp["silhouette"] == 0.0  # weight 0: not computed
    assert total == pytest.approx(2 * comp["mood_diversity"] + comp["mood_purity"])


def test_geometric_metrics_only_when_weighted() -> None:
    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(0, 1, (30, 3)), rng.normal(5, 1, (30, 3))])
    labels = np.array([0] * 30 + [1] * 30)
    fitted = Fitted(x, labels, {})
    none = fitness.geometric(fitted, 2, {"silhouette": 0, "davies_bouldin": 0, "calinski_harabasz": 0})
    assert none == {"silhouette": 0.0, "davies_bouldin": 0.0, "calinski_harabasz": 0.0}
    got = fitness.geometric(fitted, 2, {"silhouette": 1, "davies_bouldin": 1, "calinski_harabasz": 1})
    assert got["silhouette"] == pytest.approx((silhouette_score(x, labels) + 1) / 2)
    assert got["davies_bouldin"] == pytest.approx(1 / (1 + davies_bouldin_score(x, labels)))
    assert got["calinski_harabasz"] == pytest.approx(1 - math.exp(-calinski_harabasz_score(x, labels) / 500))
    # fewer than 2 playlists: nothing
    assert fitness.geometric(fitted, 1, {"silhouette": 1})["silhouette"] == 0.0


# --------------------------------------------------------------------------- sampling

genre_lists = st.lists(st.sampled_from(["rock", "pop", "jazz", OTHER_GENRE]), min_size=1, max_size=300)


@settings(max_examples=60, deadline=None)
@given(
    genres=genre_lists,
    minimum=st.integers(1, 50),
    pct=st.integers(0, 100),
    seed=st.integers(0, 1000),
    change=st.floats(0, 1),
)
def test_stratified_sampling_invariants(
    genres: list[str], minimum: int, pct: int, seed: int, change: float
) -> None:
    rng = np.random.default_rng(seed)
    by = sampling.buckets(genres)
    target = sampling.target_per_genre([len(v) for v in by.values()], minimum, pct)
    assert target >= minimum
    first = sampling.fresh_sample(by, target, rng)
    again = sampling.perturb(first, by, target, change, rng)
    for sample in (first, again):
        assert len(sample) == len(set(sample))
        counts = Counter(genres[i] for i in sample)
        for g, members in by.items():  # every genre, __other__ included, gets min(target, size)
            assert counts[g] == min(target, len(members)), (g, counts)
    kept = len(set(first) & set(again))
    assert kept >= int(len(first) * (1 - change)) - 0  # at least the kept share survives


def test_target_is_the_percentile_with_a_floor() -> None:
    assert sampling.target_per_genre([10, 200, 400], 100, 50) == 200
    assert sampling.target_per_genre([10, 20], 100, 50) == 100
    assert sampling.target_per_genre([], 7, 50) == 7


# --------------------------------------------------------------------------- playlists


def _lib(titles: list[str], artists: list[str]) -> Library:
    n = len(titles)
    return Library([f"id{i}" for i in range(n)], titles, artists, np.zeros((n, DIM)), ["rock"] * n)


def test_artist_cap_distance_gate_and_no_duplicate_songs() -> None:
    titles = ["A", "B", "C", "D", "A (Remastered)", "F", "G", "H"]
    artists = ["X", "X", "X", "X", "X", "Y", "[unknown]", "[unknown]"]
    lib = _lib(titles, artists)
    data = np.array([[0.0], [0.1], [0.2], [0.3], [0.05], [0.4], [0.45], [10.0]])
    fitted = Fitted(data, np.zeros(8, dtype=np.int64), {0: np.array([0.0])})
    out = candidates(lib, list(range(8)), fitted, max_distance=0.5, max_per_artist=2, min_size=1)
    rows = out[0].rows
    # nearest first; X capped at 2 (A, B; "A (Remastered)" is the same song as A); Y; unknown never capped;
    # row 7 is beyond the gate (distance 1.0)
    assert rows == [0, 1, 5, 6]
    assert candidates(lib, list(range(8)), fitted, max_distance=0.5, max_per_artist=2, min_size=5) == []


def test_a_song_is_in_one_playlist_only() -> None:
    lib = _lib(["Same", "Same", "Other"], ["X", "X", "Z"])
    fitted = Fitted(
        np.array([[0.0], [5.0], [5.1]]), np.array([0, 1, 1]), {0: np.array([0.0]), 1: np.array([5.0])}
    )
    out = candidates(lib, [0, 1, 2], fitted, max_distance=1.0, max_per_artist=3, min_size=1)
    ids = [r for c in out for r in c.rows]
    assert sorted(ids) == [0, 2]


def test_top_n_keeps_the_largest_then_the_most_distant() -> None:
    def cand(k: int, size: int, x: float) -> Candidate:
        return Candidate(k, list(range(size)), np.array([x, 0.0]), np.zeros(DIM))

    cands = [cand(0, 50, 0.0), cand(1, 40, 0.1), cand(2, 40, 10.0), cand(3, 5, 5.0)]
    assert [c.cluster for c in select_diverse(cands, 2)] == [0, 2]
    assert [c.cluster for c in select_diverse(cands, 3)] == [0, 2, 3]
    assert len(select_diverse(cands, 0)) == 4 and len(select_diverse(cands, 9)) == 4


def test_split_really_splits() -> None:
    assert split(list(range(10)), 0) == [list(range(10))]
    parts = split(list(range(25)), 10)
    assert [len(p) for p in parts] == [9, 9, 7] and sum(parts, []) == list(range(25))
    assert final_names("Rock_Fast", 1) == ["Rock_Fast_automatic"]
    assert final_names("Rock_Fast", 2) == ["Rock_Fast (1)_automatic", "Rock_Fast (2)_automatic"]


def test_names_are_unique() -> None:
    taken: set[str] = set()
    assert [unique(n, taken) for n in ["Rock_Fast", "rock_fast", "Rock_Fast", "Jazz_Slow"]] == [
        "Rock_Fast",
        "rock_fast_2",
        "Rock_Fast_3",
        "Jazz_Slow",
    ]


# --------------------------------------------------------------------------- parameters


def test_library_size_aware_ranges() -> None:
    assert auto_range(20) == (2, 2)
    assert auto_range(77) == (2, 6)  # small libraries still get several playlists
    assert auto_range(100) == (2, 8)
    assert auto_range(1400) == (7, 23)
    assert auto_range(6000) == (30, 100)
    assert auto_range(200_000) == (40, 100)
    p = ClusteringParams(num_clusters_min=40, num_clusters_max=60)
    assert p.cluster_range(1000) == (40, 60)
    assert ClusteringParams().playlist_floor(1400) == 5 and ClusteringParams().playlist_floor(9000) == 20


def test_request_parameters_are_validated_naming_the_key() -> None:
    s = load_settings({})
    bad = [
        ({"clustering_method": "hdbscan"}, "clustering_method"),
        ({"num_clusters_min": 9}, "num_clusters_min"),
        ({"num_clusters_min": 9, "num_clusters_max": 3}, "num_clusters_min"),
        ({"clustering_runs": "x"}, "clustering_runs"),
        ({"dbscan_eps_min": -1}, "dbscan_eps_min"),
        ({"bogus": 1}, "bogus"),
        ({"enable_clustering_embeddings": "yes"}, "enable_clustering_embeddings"),
        ({"top_n_moods": 2.5}, "top_n_moods"),
        ({"gemini_api_key": 5}, "gemini_api_key"),
    ]
    for body, field in bad:
        with pytest.raises(ParamsError) as err:
            from_request(s, body)
        assert err.value.field == field, body
    p, ai = from_request(
        s,
        {
            "clustering_method": "gmm",
            "gmm_n_components_min": 5,
            "gmm_n_components_max": 9,
            "clustering_runs": 10.0,
            "ollama_model_name": "m",
        },
    )
    assert p.cluster_algorithm == "gmm" and p.cluster_range(10_000) == (5, 9) and p.clustering_runs == 10
    assert ai == {"ollama_model_name": "m"}


def test_spectral_refuses_beyond_the_machines_memory() -> None:
    check_spectral(1000, 30, 50, budget=1 << 30)
    with pytest.raises(ClusteringRefused, match="spectral clustering of 2000000 tracks"):
        check_spectral(2_000_000, 30, 100, budget=1 << 30)


def test_mutation_stays_in_range() -> None:
    rng = np.random.default_rng(0)
    sp = search.Space("kmeans", (5, 9), (0, 4), (0.1, 0.5), (5, 20))
    for _ in range(200):
        m = search.mutate(
            {"method": "kmeans", "n_clusters": 50, "pca_components": 3, "random_state": 1}, sp, 3, 0.05, rng
        )
        assert 5 <= m["n_clusters"] <= 9 and 0 <= m["pca_components"] <= 4
    d = search.Space("dbscan", (2, 2), (0, 0), (0.1, 0.5), (5, 20))
    for _ in range(200):
        m = search.mutate({"method": "dbscan", "eps": 0.49, "min_samples": 19}, d, 3, 0.05, rng)
        assert 0.1 <= m["eps"] <= 0.5 and 5 <= m["min_samples"] <= 20
    assert search.exploitation_probability(ClusteringParams(clustering_runs=100), 19) == 0.0
    assert search.exploitation_probability(ClusteringParams(clustering_runs=100), 20) == 0.7
