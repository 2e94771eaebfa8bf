"""The mix engine's types: candidates, rules, results, and what the rules see of a track."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from sidecar.config import Settings
from sidecar.mix.normalize import normalize_album, normalize_artist, track_key

Vector = npt.NDArray[np.float32]

ALBUM_SPACING = "album_spacing"
ARTIST_IN_A_ROW = "artist_in_a_row"
ARTIST_CAP = "max_songs_per_artist"
DUPLICATE_DISTANCE = "duplicate_distance"
#: Soft rules, in the order they are given up.
RELAXATION_ORDER: tuple[str, ...] = (ALBUM_SPACING, ARTIST_IN_A_ROW, ARTIST_CAP, DUPLICATE_DISTANCE)

# Violation bits; the numeric order of a mask is its severity (a later rule outranks any
# combination of earlier ones), so "least severe" is simply "smallest mask".
SP = 1  # album spacing
ADJ = 2  # same artist twice in a row
CAP = 4  # over the per-artist cap
DUP = 8  # near-identical audio
_BIT_NAMES = ((SP, ALBUM_SPACING), (ADJ, ARTIST_IN_A_ROW), (CAP, ARTIST_CAP), (DUP, DUPLICATE_DISTANCE))


def rule_names(mask: int) -> list[str]:
    """The rule names of a violation mask, in relaxation order."""
    return [name for bit, name in _BIT_NAMES if mask & bit]


@dataclass(frozen=True, slots=True)
class Candidate:
    """One track as the search returns it.

    ``distance`` is the cosine distance to the seed/query vector that produced it;
    ``seed_id`` names that seed in multi-seed searches. ``embedding`` (200-d float32, not
    necessarily unit length) takes no part in equality or hashing.
    """

    item_id: str
    title: str
    artist: str
    album: str
    album_id: str | None
    embedding: Vector = field(compare=False, repr=False)
    distance: float = 0.0
    seed_id: str | None = None


#: the settings' defaults (sidecar/config.py is the only home of defaults; the engine takes
#: its rules as arguments, never the settings object)
_SETTING_DEFAULTS: dict[str, Any] = {
    name: Settings.model_fields[name].default
    for name in ("max_songs_per_artist", "duplicate_distance_threshold_cosine")
}


@dataclass(frozen=True, slots=True)
class MixRules:
    """Constraints for one mix. The defaults are the settings' (AudioMuse-AI's).

    ``max_songs_per_artist``: at most this many tracks per primary artist (AudioMuse-AI's
    ``MAX_SONGS_PER_ARTIST``, default 3; the seed of a song mix counts); 0 disables.
    ``duplicate_distance``: two tracks closer than this cosine distance are the same
    audio (AudioMuse-AI's ``DUPLICATE_DISTANCE_THRESHOLD_COSINE``, default 0.01); 0
    disables. ``album_spacing``: at least this many other tracks between two tracks of the
    same album (album id, else album title + artist); 0 disables. ``no_artist_in_a_row``:
    never the same primary artist on consecutive positions. ``exclude_ids``: ids that must
    not appear (the client's ``previous`` list of recently played tracks); any iterable
    is accepted and stored as a frozenset.

    The first two and ``exclude_ids`` decide *which* tracks a mix holds; album spacing and
    "artist in a row" only decide their *order* (see :mod:`sidecar.mix.sequencing`).
    """

    max_songs_per_artist: int = _SETTING_DEFAULTS["max_songs_per_artist"]
    duplicate_distance: float = _SETTING_DEFAULTS["duplicate_distance_threshold_cosine"]
    album_spacing: int = 3
    no_artist_in_a_row: bool = True
    exclude_ids: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not isinstance(self.exclude_ids, frozenset):
            object.__setattr__(self, "exclude_ids", frozenset(self.exclude_ids))
        if self.max_songs_per_artist < 0:
            raise ValueError("max_songs_per_artist must be >= 0 (0 disables the cap)")
        if not 0.0 <= self.duplicate_distance <= 2.0:
            raise ValueError("duplicate_distance must be within [0, 2]")
        if self.album_spacing < 0:
            raise ValueError("album_spacing must be >= 0 (0 disables it)")

    def excluding(self, ids: Iterable[str]) -> MixRules:
        """A copy that also excludes *ids* (e.g. the request's ``previous`` list)."""
        return MixRules(
            self.max_songs_per_artist,
            self.duplicate_distance,
            self.album_spacing,
            self.no_artist_in_a_row,
            self.exclude_ids | frozenset(ids),
        )


DEFAULT_RULES = MixRules()


@dataclass(frozen=True, slots=True)
class MixResult:
    """The ordered tracks and the soft rules (names from :data:`RELAXATION_ORDER`) they break."""

    tracks: list[Candidate]
    relaxed: list[str]


class PathQuery(NamedTuple):
    """What :func:`sidecar.mix.paths.song_path` asks the pool for: the ``k`` nearest tracks to
    ``vector`` (unit length) whose ids are not in ``excluded``, nearest first, each with
    ``distance`` = cosine distance to ``vector``."""

    vector: Vector
    k: int
    excluded: frozenset[str]


PoolQuery = Callable[[Vector, int, frozenset[str]], Sequence[Candidate]]
AsyncPoolQuery = Callable[[Vector, int, frozenset[str]], Awaitable[Sequence[Candidate]]]


class Meta(NamedTuple):
    """What the rules see of a track: its song (normalised title + artist, None when untitled),
    its artist (None for no artist or a placeholder such as ``[unknown]``: never capped or kept
    apart) and its album (album id, else normalised album title + artist; None when unknown)."""

    key: tuple[str, str] | None
    artist: str | None
    album: Hashable | None


def meta(c: Candidate) -> Meta:
    return _meta_of(c.title, c.artist, c.album, c.album_id)


@lru_cache(maxsize=1 << 16)
def _meta_of(title: str, artist: str, album: str, album_id: str | None) -> Meta:
    norm_artist = normalize_artist(artist) if artist else ""
    album_key: Hashable | None
    if album_id:
        album_key = album_id
    elif album:
        album_key = ("name", normalize_album(album), norm_artist)
    else:
        album_key = None
    return Meta(track_key(title, artist), norm_artist or None, album_key)


def check_n(n: int) -> None:
    if n < 1:
        raise ValueError("n must be >= 1")
