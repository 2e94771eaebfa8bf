"""Mix engine: pure functions that turn nearest-neighbour candidates into mixes and paths.

See :mod:`sidecar.mix.engine` for the rules and algorithms and
:mod:`sidecar.mix.normalize` for the title/artist normalisation used to spot duplicates.
"""

from sidecar.mix.engine import (
    ALBUM_SPACING,
    ARTIST_CAP,
    ARTIST_IN_A_ROW,
    DEFAULT_RULES,
    DUPLICATE_DISTANCE,
    RELAXATION_ORDER,
    AsyncPoolQuery,
    Candidate,
    MixResult,
    MixRules,
    PathQuery,
    PoolQuery,
    cosine_distance,
    dedupe,
    multi_seed_mix,
    path_points,
    song_mix,
    song_path,
    song_path_async,
    total_distance,
)
from sidecar.mix.normalize import normalize_album, normalize_artist, normalize_title, track_key

__all__ = [
    "ALBUM_SPACING",
    "ARTIST_CAP",
    "ARTIST_IN_A_ROW",
    "DEFAULT_RULES",
    "DUPLICATE_DISTANCE",
    "RELAXATION_ORDER",
    "AsyncPoolQuery",
    "Candidate",
    "MixResult",
    "MixRules",
    "PathQuery",
    "PoolQuery",
    "cosine_distance",
    "dedupe",
    "multi_seed_mix",
    "normalize_album",
    "normalize_artist",
    "normalize_title",
    "path_points",
    "song_mix",
    "song_path",
    "song_path_async",
    "total_distance",
    "track_key",
]
