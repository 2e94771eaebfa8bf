"""The parameters of one clustering run: the settings, overridden by a request's JSON keys
(AudioMuse-AI's names, research A.2), validated with a message naming the key."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sidecar.config import Settings

Method = Literal["kmeans", "gmm", "dbscan", "spectral"]

#: request keys accepted for the AI naming (used by the naming step; never stored)
AI_KEYS = (
    "ai_model_provider",
    "ollama_server_url",
    "ollama_model_name",
    "gemini_api_key",
    "gemini_model_name",
)
#: request keys that are renamed settings
RENAMED = {"clustering_method": "cluster_algorithm"}


def _d(name: str) -> Any:
    """The setting's default (config.py is the only home of defaults)."""
    default = Settings.model_fields[name].default
    return getattr(default, "value", default)


#: where each content metric's (mean, sd) of log1p comes from (upstream's LN_* statistics)
LN_SETTINGS = {
    "mood_diversity": "ln_mood_diversity",
    "mood_diversity_embedding": "ln_mood_diversity_embedding",
    "mood_purity": "ln_mood_purity",
    "mood_purity_embedding": "ln_mood_purity_embedding",
    "other_feature_diversity": "ln_other_feat_div",
    "other_feature_purity": "ln_other_feat_pur",
}
UPSTREAM_LN_STATS: dict[str, tuple[float, float]] = {
    k: (float(_d(v + "_mean")), float(_d(v + "_sd"))) for k, v in LN_SETTINGS.items()
}


class ParamsError(ValueError):
    """A bad parameter: ``field`` is the request key, ``message`` what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


class ClusteringParams(BaseModel):
    """Everything a clustering run reads.  Ranges of 0/0 are derived from the library (see
    :func:`auto_range`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cluster_algorithm: Method = _d("cluster_algorithm")
    num_clusters_min: int = Field(_d("num_clusters_min"), ge=0, le=10_000)
    num_clusters_max: int = Field(_d("num_clusters_max"), ge=0, le=10_000)
    dbscan_eps_min: float = Field(_d("dbscan_eps_min"), gt=0, le=100)
    dbscan_eps_max: float = Field(_d("dbscan_eps_max"), gt=0, le=100)
    dbscan_min_samples_min: int = Field(_d("dbscan_min_samples_min"), ge=1, le=10_000)
    dbscan_min_samples_max: int = Field(_d("dbscan_min_samples_max"), ge=1, le=10_000)
    gmm_n_components_min: int = Field(_d("gmm_n_components_min"), ge=0, le=10_000)
    gmm_n_components_max: int = Field(_d("gmm_n_components_max"), ge=0, le=10_000)
    gmm_covariance_type: Literal["full", "tied", "diag", "spherical"] = _d("gmm_covariance_type")
    spectral_n_clusters_min: int = Field(_d("spectral_n_clusters_min"), ge=0, le=10_000)
    spectral_n_clusters_max: int = Field(_d("spectral_n_clusters_max"), ge=0, le=10_000)
    spectral_n_neighbors: int = Field(_d("spectral_n_neighbors"), ge=2, le=1000)
    pca_components_min: int = Field(_d("pca_components_min"), ge=0, le=1000)
    pca_components_max: int = Field(_d("pca_components_max"), ge=0, le=1000)
    clustering_runs: int = Field(_d("clustering_runs"), ge=1, le=1_000_000)
    max_songs_per_cluster: int = Field(_d("max_songs_per_cluster"), ge=0)
    max_songs_per_artist: int = Field(_d("max_songs_per_artist"), ge=1)
    max_distance: float = Field(_d("max_distance"), gt=0, le=1)
    top_n_playlists: int = Field(_d("top_n_playlists"), ge=0, le=10_000)
    min_playlist_size: int = Field(_d("min_playlist_size"), ge=0)
    top_n_moods: int = Field(_d("top_n_moods"), ge=1, le=50)
    enable_clustering_embeddings: bool = _d("enable_clustering_embeddings")
    top_n_elites: int = Field(_d("clustering_top_n_elites"), ge=1)
    exploitation_start_fraction: float = Field(_d("clustering_exploitation_start_fraction"), ge=0, le=1)
    exploitation_probability: float = Field(_d("clustering_exploitation_probability"), ge=0, le=1)
    mutation_int_abs_delta: int = Field(_d("clustering_mutation_int_abs_delta"), ge=1)
    mutation_float_abs_delta: float = Field(_d("clustering_mutation_float_abs_delta"), gt=0)
    sampling_percentage_change_per_run: float = Field(_d("sampling_percentage_change_per_run"), ge=0, le=1)
    min_songs_per_genre_for_stratification: int = Field(_d("min_songs_per_genre_for_stratification"), ge=1)
    stratified_sampling_target_percentile: float = Field(
        _d("stratified_sampling_target_percentile"), ge=0, le=100
    )
    stratified_genres: tuple[str, ...] = tuple(g.strip() for g in _d("stratified_genres").split(","))
    iterations_per_batch_job: int = Field(_d("iterations_per_batch_job"), ge=1)
    max_concurrent_batch_jobs: int = Field(_d("max_concurrent_batch_jobs"), ge=1)
    score_weight_diversity: float = Field(_d("score_weight_diversity"), ge=0, le=1000)
    score_weight_purity: float = Field(_d("score_weight_purity"), ge=0, le=1000)
    score_weight_other_feature_diversity: float = Field(
        _d("score_weight_other_feature_diversity"), ge=0, le=1000
    )
    score_weight_other_feature_purity: float = Field(_d("score_weight_other_feature_purity"), ge=0, le=1000)
    score_weight_silhouette: float = Field(_d("score_weight_silhouette"), ge=0, le=1000)
    score_weight_davies_bouldin: float = Field(_d("score_weight_davies_bouldin"), ge=0, le=1000)
    score_weight_calinski_harabasz: float = Field(_d("score_weight_calinski_harabasz"), ge=0, le=1000)
    top_k_moods_for_purity_calculation: int = Field(_d("top_k_moods_for_purity_calculation"), ge=1, le=50)
    other_feature_predominance_threshold_for_purity: float = Field(
        _d("other_feature_predominance_threshold_for_purity"), ge=0, le=1
    )
    #: (mean, sd) of log1p of each content metric (upstream's LN_* statistics)
    ln_stats: dict[str, tuple[float, float]] = Field(default_factory=lambda: dict(UPSTREAM_LN_STATS))

    @model_validator(mode="after")
    def _ranges(self) -> ClusteringParams:
        for low, high in (
            ("num_clusters_min", "num_clusters_max"),
            ("gmm_n_components_min", "gmm_n_components_max"),
            ("spectral_n_clusters_min", "spectral_n_clusters_max"),
        ):
            lo, hi = getattr(self, low), getattr(self, high)
            if (lo == 0) != (hi == 0):
                raise ParamsError(
                    low, f"give both {low} and {high}, or neither (0 = derived from the library)"
                )
            if lo == 1:
                raise ParamsError(low, "must be at least 2")
            if lo > hi:
                raise ParamsError(low, f"must not exceed {high}")
        for low, high in (
            ("dbscan_eps_min", "dbscan_eps_max"),
            ("dbscan_min_samples_min", "dbscan_min_samples_max"),
            ("pca_components_min", "pca_components_max"),
        ):
            if getattr(self, low) > getattr(self, high):
                raise ParamsError(low, f"must not exceed {high}")
        if sum(self.weights().values()) <= 0:
            raise ParamsError("score_weight_purity", "at least one score weight must be above 0")
        return self

    def weights(self) -> dict[str, float]:
        return {
            "mood_diversity": self.score_weight_diversity,
            "mood_purity": self.score_weight_purity,
            "other_feature_diversity": self.score_weight_other_feature_diversity,
            "other_feature_purity": self.score_weight_other_feature_purity,
            "silhouette": self.score_weight_silhouette,
            "davies_bouldin": self.score_weight_davies_bouldin,
            "calinski_harabasz": self.score_weight_calinski_harabasz,
        }

    def cluster_range(self, n_tracks: int) -> tuple[int, int]:
        """The cluster-count range of the chosen algorithm (derived when 0/0)."""
        lo, hi = {
            "kmeans": (self.num_clusters_min, self.num_clusters_max),
            "gmm": (self.gmm_n_components_min, self.gmm_n_components_max),
            "spectral": (self.spectral_n_clusters_min, self.spectral_n_clusters_max),
        }.get(self.cluster_algorithm, (2, 2))
        return (lo, hi) if lo else auto_range(n_tracks)

    def playlist_floor(self, n_tracks: int) -> int:
        """MIN_PLAYLIST_SIZE, or the library-size-aware default."""
        return self.min_playlist_size or auto_min_playlist_size(n_tracks)


def auto_range(n_tracks: int) -> tuple[int, int]:
    """A cluster-count range for a library of ``n_tracks`` analysed tracks: clusters of roughly
    60-200 tracks, never fewer than 2 nor more than upstream's 40-100; a small library may still
    have up to 12 clusters of 12 or more tracks (77 labelled soundtracks got 2 clusters for 7
    labels before: bench/clustering.py --quality).  Upstream's fixed 40-100 suits 50k+ libraries
    and left 1-6k ones with tiny or no playlists (issues #285, #648)."""
    lo = max(2, min(40, n_tracks // 200))
    hi = max(lo, min(100, n_tracks // 60), min(12, n_tracks // 12))
    return lo, hi


def auto_min_playlist_size(n_tracks: int) -> int:
    return max(5, min(20, n_tracks // 300))


def available_memory_bytes() -> int:
    """MemAvailable of this machine (Linux), else a conservative 1 GiB."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 30


def spectral_memory_bytes(n: int, n_neighbors: int, n_clusters: int) -> int:
    """Rough peak memory of spectral clustering on ``n`` rows: the symmetrised k-NN graph and
    its Laplacian (sparse, ~3 copies of 2 * n * n_neighbors entries of 12 bytes), the Lanczos
    basis of the eigen-solver (max(2k + 1, 20) vectors of n float64, twice), and a dense
    n x n matrix when sklearn falls back to the dense solver (n < 5 k + 1)."""
    graph = 3 * 2 * n * n_neighbors * 12
    lanczos = 2 * max(2 * n_clusters + 1, 20) * n * 8
    dense = n * n * 8 if n < 5 * n_clusters + 1 else 0
    return graph + lanczos + dense


def defaults(settings: Settings) -> dict[str, Any]:
    """The run parameters the settings give."""
    s = settings
    out: dict[str, Any] = {
        name: getattr(s, name) for name in ClusteringParams.model_fields if name in type(s).model_fields
    }
    out["cluster_algorithm"] = s.cluster_algorithm.value
    for name in (
        "top_n_elites",
        "exploitation_start_fraction",
        "exploitation_probability",
        "mutation_int_abs_delta",
        "mutation_float_abs_delta",
    ):
        out[name] = getattr(s, "clustering_" + name)
    out["stratified_genres"] = tuple(g.strip() for g in s.stratified_genres.split(",") if g.strip())
    out["ln_stats"] = {k: (getattr(s, v + "_mean"), getattr(s, v + "_sd")) for k, v in LN_SETTINGS.items()}
    return out


#: request keys a client may send (upstream's, plus our own parameters)
REQUEST_KEYS = frozenset(
    {
        *RENAMED,
        *AI_KEYS,
        *(k for k in ClusteringParams.model_fields if k not in {"cluster_algorithm", "ln_stats"}),
    }
)


def from_request(settings: Settings, body: dict[str, Any]) -> tuple[ClusteringParams, dict[str, str]]:
    """The run's parameters and the AI overrides from a start request's JSON object; raises
    :class:`ParamsError` naming the first bad key."""
    values = defaults(settings)
    ai: dict[str, str] = {}
    for key, value in body.items():
        if key not in REQUEST_KEYS:
            raise ParamsError(key, "unknown parameter")
        if value is None:
            continue  # null = the default
        if key in AI_KEYS:
            if not isinstance(value, str) or len(value) > 2000:
                raise ParamsError(key, "must be a string")
            ai[key] = value
            continue
        if key == "stratified_genres":
            if not isinstance(value, list) or not value or not all(isinstance(g, str) and g for g in value):
                raise ParamsError(key, "must be a non-empty list of tags")
            value = tuple(value)
        field = ClusteringParams.model_fields[RENAMED.get(key, key)]
        if field.annotation in (int, float) and (
            isinstance(value, bool) or not isinstance(value, (int, float))
        ):
            raise ParamsError(key, "must be a number")
        if field.annotation is int and isinstance(value, float):
            if not value.is_integer():
                raise ParamsError(key, "must be an integer")
            value = int(value)
        if field.annotation is bool and not isinstance(value, bool):
            raise ParamsError(key, "must be true or false")
        values[RENAMED.get(key, key)] = value
    return validate(values), ai


def validate(values: dict[str, Any]) -> ClusteringParams:
    """:class:`ClusteringParams` from plain values; :class:`ParamsError` names the bad key."""
    inverse = {v: k for k, v in RENAMED.items()}
    try:
        return ClusteringParams.model_validate(values)
    except ParamsError:
        raise
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(p) for p in err.get("loc", ())]
        msg = str(err.get("msg", "invalid"))
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if not loc:
            cause = (err.get("ctx") or {}).get("error")
            if isinstance(cause, ParamsError):
                raise cause from None
            raise ParamsError("body", msg) from None
        raise ParamsError(inverse.get(loc[0], loc[0]), msg) from None
