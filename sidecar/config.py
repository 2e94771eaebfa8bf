"""The one typed settings object: every parameter, its default, its validation.

Settings come from environment variables (names are the upper-case field names) and are
validated once, at start.  A wrong value stops the service with one message naming the
variable and what is wrong (:class:`SettingsError`).  Nothing else in the project reads the
environment or holds a default for these parameters.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class SettingsError(Exception):
    """A configuration problem, worded for the person who set the variable."""


class MediaServerType(StrEnum):
    JELLYFIN = "jellyfin"
    NAVIDROME = "navidrome"
    LOCAL = "local"


class AiProvider(StrEnum):
    NONE = "NONE"
    OPENAI = "OPENAI"
    OLLAMA = "OLLAMA"
    GEMINI = "GEMINI"


class ClusterAlgorithm(StrEnum):
    KMEANS = "kmeans"
    GMM = "gmm"
    DBSCAN = "dbscan"
    SPECTRAL = "spectral"


def _default_data_dir() -> Path:
    return Path("audiomuse-data")


class Settings(BaseModel):
    """All of AudioMuse sidecar's configuration.

    Field descriptions are the documentation: ``tests/test_docs.py`` checks that README.md
    lists every variable.
    """

    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=True)

    # --- media server -------------------------------------------------------------------
    mediaserver_type: MediaServerType = Field(
        MediaServerType.LOCAL,
        description="jellyfin, navidrome or local. When unset it is inferred: JELLYFIN_URL set "
        "means jellyfin, NAVIDROME_URL set means navidrome, otherwise local.",
    )
    jellyfin_url: str | None = Field(None, description="Base URL of the Jellyfin server.")
    jellyfin_user_id: str | None = Field(None, description="Jellyfin user id (32-hex) whose library is read.")
    jellyfin_token: str | None = Field(None, description="Jellyfin API key or access token.")
    navidrome_url: str | None = Field(None, description="Base URL of the Navidrome / Subsonic server.")
    navidrome_user: str | None = Field(None, description="Subsonic user name.")
    navidrome_password: str | None = Field(
        None,
        description="Subsonic password (sent as a salted token, "
        "or as enc: hex when the server only knows passwords).",
    )
    local_music_dir: Path | None = Field(
        None, description="Folder the local provider reads. Default: <AUDIOMUSE_DATA_DIR>/music (created)."
    )
    local_playlist_dir: Path | None = Field(
        None,
        description="Where the local provider writes .m3u8 playlists. Default: <LOCAL_MUSIC_DIR>/playlists.",
    )
    media_http_timeout_seconds: float = Field(
        30.0, gt=0, description="Timeout of one request to the media server."
    )
    media_http_retries: int = Field(
        3,
        ge=0,
        le=10,
        description="Retries (with exponential backoff) of a media "
        "server request after a network error or a 5xx/429 answer.",
    )
    max_download_mb: int = Field(
        1024, gt=0, description="Largest audio file downloaded for analysis, in MiB."
    )

    # --- storage and queue --------------------------------------------------------------
    database_url: str | None = Field(
        None,
        description="PostgreSQL DSN (postgresql://user:pass@host:port/db). "
        "Overrides POSTGRES_*. Unset with POSTGRES_HOST unset: embedded PostgreSQL.",
    )
    postgres_host: str | None = Field(None, description="PostgreSQL host, used when DATABASE_URL is unset.")
    postgres_port: int = Field(5432, gt=0, lt=65536, description="PostgreSQL port.")
    postgres_user: str = Field("audiomuse", description="PostgreSQL user.")
    postgres_password: str = Field("audiomusepassword", description="PostgreSQL password.")
    postgres_db: str = Field("audiomusedb", description="PostgreSQL database name.")
    redis_url: str | None = Field(
        None, description="Redis DSN (redis://host:port/db). Unset: embedded Valkey."
    )
    audiomuse_data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="Data folder of the embedded default (PostgreSQL cluster, Valkey, default music folder).",
    )
    temp_dir: Path | None = Field(
        None, description="Where audio is downloaded for analysis. Default: <AUDIOMUSE_DATA_DIR>/temp."
    )
    db_pool_min_size: int = Field(1, ge=0, description="Smallest asyncpg pool size per process.")
    db_pool_max_size: int = Field(10, ge=1, description="Largest asyncpg pool size per process.")
    ai_chat_db_user_name: str = Field(
        "ai_user",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="Read-only database role used by the LLM chat.",
    )
    ai_chat_db_user_password: str = Field(
        "ChangeThisSecurePassword123!", min_length=8, description="Password of the read-only chat role."
    )

    # --- web ----------------------------------------------------------------------------
    web_host: str = Field("127.0.0.1", description="Address the web app listens on (0.0.0.0 in containers).")
    web_port: int = Field(
        8000, ge=0, lt=65536, description="Port of the web app and API (0 = pick a free one)."
    )
    web_processes: int = Field(
        1,
        ge=1,
        le=64,
        description="Web processes sharing the web and bridge ports "
        "(SO_REUSEPORT): more use more cores for mixes.",
    )
    api_token: str | None = Field(
        None, description="When set, /api/* requires Authorization: Bearer <token>."
    )
    log_level: str = Field("INFO", pattern=r"^(?i:debug|info|warning|error)$", description="Log level.")
    log_format: str = Field(
        "text",
        pattern=r"^(?i:text|json)$",
        description="text (readable lines) or json (one JSON object per line: time, level, logger, "
        "message, and task_id / track_id / route when known).",
    )
    metrics_require_token: bool = Field(
        False, description="When true (and API_TOKEN is set), GET /metrics requires the API token too."
    )

    # --- protocol bridges (plugin-bridge) -----------------------------------------------
    bridge_host: str = Field("127.0.0.1", description="Address the Jellyfin and Subsonic bridges listen on.")
    jellyfin_bridge_port: int | None = Field(
        None,
        ge=0,
        lt=65536,
        description="When set, a Jellyfin reverse "
        "proxy on this port answers Instant Mix / Similar with sonic mixes "
        "and passes everything else to JELLYFIN_URL.",
    )
    subsonic_bridge_port: int | None = Field(
        None,
        ge=0,
        lt=65536,
        description="When set, a Subsonic proxy on "
        "this port answers getSimilarSongs(2) and the sonicSimilarity "
        "extension and passes everything else to NAVIDROME_URL.",
    )
    bridge_auth_cache_seconds: int = Field(
        60,
        ge=0,
        le=3600,
        description="How long a bridge trusts the media server's verdict on a client's credentials.",
    )

    # --- analysis -----------------------------------------------------------------------
    num_recent_albums: int = Field(0, ge=0, description="Albums analysed per run, newest first; 0 = all.")
    analysis_schedule: str = Field(
        "0 3 * * *",
        description="When the worker starts an analysis run on its own: a 5-field cron expression "
        "(minute hour day-of-month month day-of-week, local time); empty or off = never. Skipped "
        "while an analysis runs.",
    )
    clustering_schedule: str | None = Field(
        None,
        description="When the worker starts a clustering with these settings on its own: a 5-field "
        "cron expression (e.g. 0 4 * * 0, Sundays at 04:00); empty or off = never.",
    )
    top_n_moods: int = Field(5, ge=1, le=50, description="Top tags kept per track as its moods.")
    max_queued_analysis_jobs: int = Field(
        25, ge=1, description="Album jobs queued at once by one analysis run."
    )
    worker_max_jobs: int = Field(2, ge=1, description="Jobs one arq worker runs concurrently.")
    task_orphan_seconds: float = Field(
        45.0,
        ge=1,
        description="A running task whose worker has not "
        "reported for this long is taken as lost (worker killed) and queued "
        "again, or ended as FAILURE when its job is gone from the queue; "
        "workers report every third of it.",
    )
    media_outage_wait_seconds: float = Field(
        600.0,
        ge=0,
        description="How long an analysis waits for an "
        "unreachable media server (network error, 5xx) to come back "
        "before failing the tracks it could not fetch.",
    )
    analysis_track_timeout_seconds: float = Field(
        900.0,
        gt=0,
        description="Longest time one track's "
        "decoding and analysis may take; past it the track fails "
        "with 'timeout' and the album goes on.",
    )
    local_scan_timeout_seconds: float = Field(
        3600.0,
        gt=0,
        description="Longest time a listing of "
        "LOCAL_MUSIC_DIR may take; past it the listing fails with "
        "a clear error instead of hanging.",
    )
    energy_min: float = Field(0.01, ge=0, description="Energy mapped to 0 when normalising.")
    energy_max: float = Field(0.15, gt=0, description="Energy mapped to 1 when normalising.")
    tempo_min_bpm: float = Field(40.0, gt=0, description="Lowest tempo reported.")
    tempo_max_bpm: float = Field(200.0, gt=0, description="Highest tempo reported.")
    analysis_max_patches: int = Field(
        12,
        ge=0,
        le=10_000,
        description="At most this many evenly spaced "
        "3-second patches of a track go through MusiCNN (0 = all). The embedding "
        "stays within cosine 0.99 of the all-patches result: see Benchmarks.",
    )
    model_dir: Path | None = Field(
        None,
        description="Folder with the ONNX models. Default: the ones shipped "
        "with the package (the repository's models/).",
    )

    # --- similarity and mixes -----------------------------------------------------------
    max_songs_per_artist: int = Field(3, ge=1, description="Most tracks of one artist in a mix.")
    similarity_eliminate_duplicates_default: bool = Field(
        True, description="Default of eliminate_duplicates in /api/similar_tracks."
    )
    duplicate_distance_threshold_cosine: float = Field(
        0.02,
        ge=0,
        le=2,
        description="Tracks closer than this cosine distance (in the similarity space) are treated as the same song.",
    )
    path_default_length: int = Field(25, ge=2, description="Default number of songs in a song path.")

    # --- clustering (automatic playlists) -----------------------------------------------
    # Defaults follow AudioMuse-AI (v0.6.2, HEAD where noted); a clustering request may override
    # each of them (sidecar/clustering/params.py).  Ranges given as 0/0 are derived from the
    # number of analysed tracks.
    cluster_algorithm: ClusterAlgorithm = Field(
        ClusterAlgorithm.KMEANS, description="kmeans, gmm, dbscan or spectral."
    )
    num_clusters_min: int = Field(
        0,
        ge=0,
        description="Fewest k-means clusters tried; 0 (with NUM_CLUSTERS_MAX "
        "0) = derived from the number of analysed tracks.",
    )
    num_clusters_max: int = Field(
        0, ge=0, description="Most k-means clusters tried; 0 = derived from the library."
    )
    dbscan_eps_min: float = Field(0.1, gt=0, description="Smallest DBSCAN eps tried (standardised space).")
    dbscan_eps_max: float = Field(0.5, gt=0, description="Largest DBSCAN eps tried.")
    dbscan_min_samples_min: int = Field(5, ge=1, description="Smallest DBSCAN min_samples tried.")
    dbscan_min_samples_max: int = Field(20, ge=1, description="Largest DBSCAN min_samples tried.")
    gmm_n_components_min: int = Field(
        0, ge=0, description="Fewest GMM components tried; 0 = derived from the library."
    )
    gmm_n_components_max: int = Field(
        0, ge=0, description="Most GMM components tried; 0 = derived from the library."
    )
    gmm_covariance_type: str = Field(
        "full",
        pattern=r"^(full|tied|diag|spherical)$",
        description="GMM covariance type: full, tied, diag or spherical.",
    )
    spectral_n_clusters_min: int = Field(
        0, ge=0, description="Fewest spectral clusters tried; 0 = derived from the library."
    )
    spectral_n_clusters_max: int = Field(
        0, ge=0, description="Most spectral clusters tried; 0 = derived from the library."
    )
    spectral_n_neighbors: int = Field(
        30, ge=2, description="Neighbours of spectral clustering's affinity graph."
    )
    clustering_runs: int = Field(1000, ge=1, le=1_000_000, description="Evolutionary clustering runs.")
    max_songs_per_cluster: int = Field(
        0,
        ge=0,
        description="Largest automatic playlist; longer ones are split into numbered parts; 0 = no limit.",
    )
    max_distance: float = Field(
        0.5,
        gt=0,
        le=1,
        description="A track joins its cluster's playlist only within "
        "this share of the largest track-to-centre distance of the run.",
    )
    top_n_playlists: int = Field(8, ge=0, description="Automatic playlists kept (the most diverse); 0 = all.")
    min_playlist_size: int = Field(
        0,
        ge=0,
        description="Smallest automatic playlist; 0 = derived from the "
        "library (number of analysed tracks / 300, between 5 and 20).",
    )
    pca_components_min: int = Field(0, ge=0, description="Fewest PCA components tried (0 disables PCA).")
    pca_components_max: int = Field(199, ge=0, description="Most PCA components tried.")
    enable_clustering_embeddings: bool = Field(
        False,
        description="Cluster the 200-d MusiCNN embeddings instead "
        "of the score vectors (which still name and score playlists).",
    )
    clustering_top_n_elites: int = Field(10, ge=1, description="Best parameter sets kept for exploitation.")
    clustering_exploitation_start_fraction: float = Field(
        0.2, ge=0, le=1, description="Share of the runs done before elites are mutated instead of exploring."
    )
    clustering_exploitation_probability: float = Field(
        0.7, ge=0, le=1, description="Chance that a run mutates an elite once exploitation has started."
    )
    clustering_mutation_int_abs_delta: int = Field(
        3, ge=1, description="Largest change of an integer parameter when an elite is mutated."
    )
    clustering_mutation_float_abs_delta: float = Field(
        0.05, gt=0, description="Largest change of a float parameter (eps) when an elite is mutated."
    )
    sampling_percentage_change_per_run: float = Field(
        0.2, ge=0, le=1, description="Share of the sampled tracks replaced between the runs of a batch."
    )
    min_songs_per_genre_for_stratification: int = Field(
        100, ge=1, description="Fewest tracks sampled per genre (all of a smaller genre)."
    )
    stratified_sampling_target_percentile: int = Field(
        50,
        ge=0,
        le=100,
        description="Tracks sampled per "
        "genre: this percentile of the genres' sizes (at least "
        "MIN_SONGS_PER_GENRE_FOR_STRATIFICATION).",
    )
    stratified_genres: str = Field(
        "rock,pop,alternative,indie,electronic,jazz,metal,classic rock,soul,indie rock,electronica,folk,punk,"
        "blues,hard rock,ambient,acoustic,experimental,Hip-Hop,country,funk,electro,heavy metal,Progressive rock,"
        "rnb,indie pop,House",
        min_length=1,
        description="Comma-separated tags sampled evenly; a track's genre is the best of these among its moods.",
    )
    iterations_per_batch_job: int = Field(20, ge=1, description="Clustering runs per batch job.")
    max_concurrent_batch_jobs: int = Field(
        10, ge=1, description="Batch jobs of one clustering queued or running at once."
    )
    score_weight_diversity: float = Field(2.0, ge=0, description="Fitness weight of mood diversity.")
    score_weight_purity: float = Field(1.0, ge=0, description="Fitness weight of mood purity.")
    score_weight_other_feature_diversity: float = Field(
        0.0, ge=0, description="Fitness weight of other-feature diversity."
    )
    score_weight_other_feature_purity: float = Field(
        0.0, ge=0, description="Fitness weight of other-feature purity."
    )
    score_weight_silhouette: float = Field(0.0, ge=0, description="Fitness weight of the silhouette score.")
    score_weight_davies_bouldin: float = Field(
        0.0, ge=0, description="Fitness weight of 1 / (1 + Davies-Bouldin)."
    )
    score_weight_calinski_harabasz: float = Field(
        0.0, ge=0, description="Fitness weight of 1 - exp(-CH / 500)."
    )
    top_k_moods_for_purity_calculation: int = Field(
        3, ge=1, description="A playlist's moods that count for its purity."
    )
    other_feature_predominance_threshold_for_purity: float = Field(
        0.3, ge=0, le=1, description="Smallest value of a playlist's predominant other feature that counts."
    )
    ln_mood_diversity_mean: float = Field(0.9995, description="Mean of log1p(mood diversity) (z-score).")
    ln_mood_diversity_sd: float = Field(0.3541, ge=0, description="SD of log1p(mood diversity).")
    ln_mood_diversity_embedding_mean: float = Field(
        -0.101, description="Mean of log1p(mood diversity), embeddings."
    )
    ln_mood_diversity_embedding_sd: float = Field(
        0.245, ge=0, description="SD of log1p(mood diversity), embeddings."
    )
    ln_mood_purity_mean: float = Field(5.8679, description="Mean of log1p(mood purity).")
    ln_mood_purity_sd: float = Field(1.1557, ge=0, description="SD of log1p(mood purity).")
    ln_mood_purity_embedding_mean: float = Field(0.673, description="Mean of log1p(mood purity), embeddings.")
    ln_mood_purity_embedding_sd: float = Field(
        1.063, ge=0, description="SD of log1p(mood purity), embeddings."
    )
    ln_other_feat_div_mean: float = Field(1.5, description="Mean of log1p(other-feature diversity).")
    ln_other_feat_div_sd: float = Field(0.46, ge=0, description="SD of log1p(other-feature diversity).")
    ln_other_feat_pur_mean: float = Field(8.84, description="Mean of log1p(other-feature purity).")
    ln_other_feat_pur_sd: float = Field(0.07, ge=0, description="SD of log1p(other-feature purity).")

    @model_validator(mode="after")
    def _clustering_checks(self) -> Settings:
        for low, high in (
            ("num_clusters_min", "num_clusters_max"),
            ("gmm_n_components_min", "gmm_n_components_max"),
            ("spectral_n_clusters_min", "spectral_n_clusters_max"),
        ):
            lo, hi = getattr(self, low), getattr(self, high)
            if (lo == 0) != (hi == 0):
                raise ValueError(
                    f"{low.upper()}: set both {low.upper()} and {high.upper()}, or neither (0 = "
                    "derived from the library)"
                )
            if lo == 1:
                raise ValueError(f"{low.upper()}: must be at least 2 (or 0)")
        for low, high in (
            ("dbscan_eps_min", "dbscan_eps_max"),
            ("dbscan_min_samples_min", "dbscan_min_samples_max"),
        ):
            if getattr(self, low) > getattr(self, high):
                raise ValueError(f"{low.upper()}: must not exceed {high.upper()}")
        return self

    # --- AI (playlist naming and chat) --------------------------------------------------
    ai_model_provider: AiProvider = Field(
        AiProvider.NONE,
        description="NONE, OPENAI, OLLAMA or GEMINI: who "
        "names the automatic playlists (NONE: deterministic names).",
    )
    openai_server_url: str | None = Field(
        None, description="OpenAI-compatible base URL (OpenAI, OpenRouter, Ollama's /v1)."
    )
    openai_model_name: str = Field(
        "gpt-4o-mini", description="Model name sent to the OpenAI-compatible server."
    )
    openai_api_key: str | None = Field(None, description="API key of the OpenAI-compatible server.")
    ollama_server_url: str = Field(
        "http://127.0.0.1:11434", description="Ollama base URL (its OpenAI-compatible /v1 is used)."
    )
    ollama_model_name: str = Field("llama3.1:8b", description="Ollama model.")
    gemini_server_url: str = Field(
        "https://generativelanguage.googleapis.com/v1beta/openai",
        pattern=r"^https?://[^/?#\s]+\S*$",
        description="Gemini's OpenAI-compatible base URL.",
    )
    gemini_model_name: str = Field("gemini-2.5-flash", description="Gemini model.")
    gemini_api_key: str | None = Field(
        None, description="Gemini API key (required when AI_MODEL_PROVIDER=GEMINI)."
    )
    ai_request_timeout_seconds: int = Field(
        300, ge=1, description="Timeout of one LLM request, its one retry included."
    )
    max_songs_in_ai_prompt: int = Field(25, ge=1, description="Songs listed in an LLM naming prompt.")

    # --- instant playlist (chat) ------------------------------------------------------------
    chat_max_songs: int = Field(
        25,
        ge=1,
        le=500,
        description="Most songs of an instant playlist: the LIMIT forced on every chat query.",
    )
    chat_query_timeout_seconds: float = Field(
        5.0,
        gt=0,
        le=300,
        description="statement_timeout of one chat "
        "query (run as the read-only chat role, in a read-only "
        "transaction).",
    )

    # --- validators ---------------------------------------------------------------------
    @field_validator("mediaserver_type", mode="before")
    @classmethod
    def _accept_seed_aliases(cls, v: Any) -> Any:
        if isinstance(v, str) and v.strip().lower() in {"localfiles", "local_files"}:
            return "local"
        return v.strip().lower() if isinstance(v, str) else v

    @field_validator("ai_model_provider", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.strip().upper() if isinstance(v, str) else v

    @field_validator("jellyfin_url", "navidrome_url", "openai_server_url", "ollama_server_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        parts = urlsplit(v)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError("must be an http(s):// URL")
        return v.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _pg_dsn(cls, v: str | None) -> str | None:
        if not v:
            return None
        parts = urlsplit(v)
        if parts.scheme not in {"postgres", "postgresql"}:
            raise ValueError("must start with postgresql:// (or postgres://)")
        if not parts.hostname and "host=" not in parts.query:
            raise ValueError("has no host")
        return v

    @field_validator("analysis_schedule", "clustering_schedule")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        from sidecar.jobs.schedule import CronError, schedule_of

        try:
            schedule_of(v)
        except CronError as exc:
            raise ValueError(f"not a valid cron expression: {exc}") from None
        return v.strip() if v is not None else None

    @field_validator("redis_url")
    @classmethod
    def _redis_dsn(cls, v: str | None) -> str | None:
        if not v:
            return None
        parts = urlsplit(v)
        if parts.scheme not in {"redis", "rediss", "unix"}:
            raise ValueError("must start with redis://, rediss:// or unix://")
        return v

    @model_validator(mode="after")
    def _cross_checks(self) -> Settings:
        required = {
            MediaServerType.JELLYFIN: ("jellyfin_url", "jellyfin_user_id", "jellyfin_token"),
            MediaServerType.NAVIDROME: ("navidrome_url", "navidrome_user", "navidrome_password"),
        }.get(self.mediaserver_type, ())
        for name in required:
            if not getattr(self, name):
                raise ValueError(
                    f"{name.upper()}: is required when MEDIASERVER_TYPE={self.mediaserver_type.value}"
                )
        if self.local_music_dir is not None and not self.local_music_dir.is_dir():
            raise ValueError(f"LOCAL_MUSIC_DIR: {self.local_music_dir} is not an existing folder")
        if self.energy_min >= self.energy_max:
            raise ValueError("ENERGY_MIN: must be below ENERGY_MAX")
        if self.tempo_min_bpm >= self.tempo_max_bpm:
            raise ValueError("TEMPO_MIN_BPM: must be below TEMPO_MAX_BPM")
        if self.num_clusters_min > self.num_clusters_max:
            raise ValueError("NUM_CLUSTERS_MIN: must not exceed NUM_CLUSTERS_MAX")
        if self.pca_components_min > self.pca_components_max:
            raise ValueError("PCA_COMPONENTS_MIN: must not exceed PCA_COMPONENTS_MAX")
        if self.db_pool_min_size > self.db_pool_max_size:
            raise ValueError("DB_POOL_MIN_SIZE: must not exceed DB_POOL_MAX_SIZE")
        if self.web_processes > 1 and (
            self.web_port == 0 or 0 in (self.jellyfin_bridge_port, self.subsonic_bridge_port)
        ):
            raise ValueError(
                "WEB_PROCESSES: more than one process needs fixed ports (WEB_PORT and bridge "
                "ports other than 0)"
            )
        if self.jellyfin_bridge_port is not None and not self.jellyfin_url:
            raise ValueError("JELLYFIN_BRIDGE_PORT: needs JELLYFIN_URL (the Jellyfin server to proxy)")
        if self.subsonic_bridge_port is not None and not self.navidrome_url:
            raise ValueError("SUBSONIC_BRIDGE_PORT: needs NAVIDROME_URL (the Subsonic server to proxy)")
        if self.ai_model_provider is AiProvider.OPENAI and not self.openai_server_url:
            raise ValueError("OPENAI_SERVER_URL: is required when AI_MODEL_PROVIDER=OPENAI")
        return self

    # --- derived values -----------------------------------------------------------------
    @property
    def embedded_postgres(self) -> bool:
        """True when no external PostgreSQL is configured."""
        return self.database_url is None and self.postgres_host is None

    @property
    def embedded_redis(self) -> bool:
        return self.redis_url is None

    def postgres_dsn(self) -> str | None:
        """The external PostgreSQL DSN, or None for the embedded server."""
        if self.database_url:
            return self.database_url
        if self.postgres_host:
            user = quote(self.postgres_user, safe="")
            password = quote(self.postgres_password, safe="")
            return (
                f"postgresql://{user}:{password}@{self.postgres_host}:{self.postgres_port}/"
                f"{quote(self.postgres_db, safe='')}"
            )
        return None

    @property
    def music_dir(self) -> Path:
        return self.local_music_dir or self.audiomuse_data_dir / "music"

    @property
    def playlist_dir(self) -> Path:
        return self.local_playlist_dir or self.music_dir / "playlists"

    @property
    def download_dir(self) -> Path:
        return self.temp_dir or self.audiomuse_data_dir / "temp"

    @property
    def max_download_bytes(self) -> int:
        return self.max_download_mb * 1024 * 1024

    @property
    def media_server_url(self) -> str | None:
        return {
            MediaServerType.JELLYFIN: self.jellyfin_url,
            MediaServerType.NAVIDROME: self.navidrome_url,
        }.get(self.mediaserver_type)

    def redacted(self) -> dict[str, Any]:
        """All values, with secrets replaced, for `audiomuse check` and /api/config: every
        password, token or key setting, and the credentials inside every URL setting."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if any(s in name for s in ("password", "token", "api_key")) and value:
                value = "***"
            elif isinstance(value, str) and "://" in value:
                value = redact_url(value)
            elif isinstance(value, Enum):
                value = value.value
            elif isinstance(value, Path):
                value = str(value)
            out[name.upper()] = value
        return out


#: query parameters that carry credentials (Jellyfin api_key, Subsonic p/t/s, generic key/token)
_SECRET_QUERY_KEYS = frozenset(
    {
        "key",
        "api_key",
        "apikey",
        "token",
        "access_token",
        "password",
        "pass",
        "secret",
        "p",
        "t",
        "s",
        "auth",
        "sig",
        "signature",
    }
)


def redact_url(url: str) -> str:
    """``url`` with its userinfo (user and password) and credential query values replaced by
    ``***``: ``redis://:pw@host/0`` -> ``redis://***@host/0``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [
                (
                    k,
                    "***"
                    if k.lower() in _SECRET_QUERY_KEYS
                    or "password" in k.lower()
                    or "token" in k.lower()
                    or "key" in k.lower()
                    else v,
                )
                for k, v in pairs
            ],
            safe="*",
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _infer_mediaserver_type(env: Mapping[str, str]) -> dict[str, str]:
    if env.get("MEDIASERVER_TYPE"):
        return {}
    if env.get("JELLYFIN_URL"):
        return {"mediaserver_type": "jellyfin"}
    if env.get("NAVIDROME_URL"):
        return {"mediaserver_type": "navidrome"}
    return {}


@dataclass(frozen=True)
class SettingDoc:
    env: str
    default: Any
    description: str


def setting_docs() -> list[SettingDoc]:
    """Every variable with its default and description (for README and meta-tests)."""
    docs = []
    for name, field in Settings.model_fields.items():
        default = field.default if field.default_factory is None else field.default_factory()  # type: ignore[call-arg]
        docs.append(SettingDoc(name.upper(), default, field.description or ""))
    return docs


#: settings whose empty value is a value (off), not "unset"
_EMPTY_MEANS_OFF = frozenset({"analysis_schedule", "clustering_schedule"})


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Read and validate the settings; raise SettingsError with one clear line on failure."""
    source = dict(os.environ if env is None else env)
    # Empty strings mean "unset" (docker compose writes VAR= for blanks), except for the
    # schedules, where empty means off.
    values: dict[str, Any] = {
        k.lower(): v
        for k, v in source.items()
        if k.lower() in Settings.model_fields and (v != "" or k.lower() in _EMPTY_MEANS_OFF)
    }
    values.update(_infer_mediaserver_type(source))
    values.update(overrides)
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        raise SettingsError(_format_error(exc)) from None


def _format_error(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        msg = err.get("msg", "invalid")
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if loc:
            given = err.get("input")
            secret = any(s in loc[0] for s in ("password", "token", "api_key", "database_url", "redis_url"))
            shown = "" if secret or isinstance(given, dict) or given is None else f" (got {given!r})"
            lines.append(f"{loc[0].upper()}: {msg}{shown}")
        else:
            lines.append(msg)  # model-level checks already name their variable
    return "invalid configuration: " + "; ".join(lines)
