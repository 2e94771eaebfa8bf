"""The analysed library as arrays: score vectors, genres, optional embeddings.

The score vector of a track is ``[tempo, energy, 50 mood slots, 6 other features]``, each in
[0, 1]: tempo normalised over TEMPO_MIN_BPM..TEMPO_MAX_BPM, energy as stored (normalised by the
analysis), a mood slot holds the track's score for that tag when the tag is among the track's
own ``top_n_moods`` best tags, else 0 (upstream used the first five labels of the list for
every track: research A, correction 5), and the six other features.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sidecar.mix.normalize import normalize_artist, track_key

#: the MSD tag list (the analysis's moods), in model order
MOOD_LABELS: tuple[str, ...] = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
    "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock",
    "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s", "chill", "instrumental",
    "punk", "oldies", "blues", "hard rock", "ambient", "acoustic", "experimental", "female vocalist",
    "guitar", "Hip-Hop", "70s", "party", "country", "easy listening", "sexy", "catchy", "funk",
    "electro", "heavy metal", "Progressive rock", "60s", "rnb", "indie pop", "sad", "House", "happy",
)  # fmt: skip
OTHER_FEATURE_LABELS: tuple[str, ...] = ("danceable", "aggressive", "happy", "party", "relaxed", "sad")
#: slots of the score vector
TEMPO, ENERGY = 0, 1
MOOD0 = 2
OTHER0 = MOOD0 + len(MOOD_LABELS)
DIM = OTHER0 + len(OTHER_FEATURE_LABELS)
#: the genre bucket of tracks without any stratified genre among their moods
OTHER_GENRE = "__other__"

Floats = NDArray[np.float64]


@dataclass(frozen=True)
class Library:
    """Analysed tracks, row-aligned."""

    ids: list[str]
    titles: list[str]
    artists: list[str]
    vectors: Floats  # [n, DIM] score vectors
    genres: list[str]  # primary stratified genre, or OTHER_GENRE
    embeddings: NDArray[np.float32] | None = None  # [n, 200] when clustering embeddings
    #: per row: the normalised artist ("" = unknown, never capped) and the song's identity (the mix
    #: engine's: normalised title + artist, else the id); computed once, not in every run
    artist_keys: list[str] = field(default_factory=list)
    song_keys: list[tuple[str, str] | str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.artist_keys:
            object.__setattr__(self, "artist_keys", [normalize_artist(a) if a else "" for a in self.artists])
        if not self.song_keys:
            object.__setattr__(
                self,
                "song_keys",
                [track_key(t, a) or i for i, t, a in zip(self.ids, self.titles, self.artists, strict=True)],
            )

    def __len__(self) -> int:
        return len(self.ids)

    def clustered(self, use_embeddings: bool) -> NDArray[Any]:
        if use_embeddings:
            if self.embeddings is None:
                raise ValueError("the library was loaded without embeddings")
            return self.embeddings
        return self.vectors


def track_moods(tags: Mapping[str, float], top_n: int) -> list[tuple[str, float]]:
    """The track's ``top_n`` best tags with their scores, best first (ties: list order)."""
    order = sorted((lbl for lbl in MOOD_LABELS if lbl in tags), key=lambda lbl: -float(tags[lbl]))
    return [(lbl, float(tags[lbl])) for lbl in order[:top_n]]


def score_vector(
    tempo: float | None,
    energy_normalized: float | None,
    tags: Mapping[str, float],
    other: Sequence[float | None],
    top_n_moods: int,
    tempo_min: float = 40.0,
    tempo_max: float = 200.0,
) -> Floats:
    vec = np.zeros(DIM, dtype=np.float64)
    if tempo is not None:
        vec[TEMPO] = min(1.0, max(0.0, (tempo - tempo_min) / (tempo_max - tempo_min)))
    vec[ENERGY] = min(1.0, max(0.0, energy_normalized or 0.0))
    index = {lbl: i for i, lbl in enumerate(MOOD_LABELS)}
    for lbl, score in track_moods(tags, top_n_moods):
        vec[MOOD0 + index[lbl]] = score
    for i, value in enumerate(other):
        vec[OTHER0 + i] = value or 0.0
    return vec


def primary_genre(vector: Floats, stratified: Sequence[str]) -> str:
    """The stratified tag with the best score among the track's moods (its non-zero mood slots)."""
    best, best_score = OTHER_GENRE, 0.0
    index = {lbl: i for i, lbl in enumerate(MOOD_LABELS)}
    for genre in stratified:
        i = index.get(genre)
        if i is not None and vector[MOOD0 + i] > best_score:
            best, best_score = genre, float(vector[MOOD0 + i])
    return best


def build_library(
    rows: Sequence[Mapping[str, Any]],
    *,
    top_n_moods: int,
    stratified: Sequence[str],
    tempo_min: float = 40.0,
    tempo_max: float = 200.0,
    embeddings: bool = False,
) -> Library:
    """Rows with ``item_id, title, artist, tempo, energy_normalized, tags`` (label -> score), the six
    other features and, with ``embeddings``, ``embedding`` (rows without one are dropped)."""
    if embeddings:
        rows = [r for r in rows if r.get("embedding") is not None]
    vectors = np.array(
        [
            score_vector(
                r.get("tempo"),
                r.get("energy_normalized"),
                r.get("tags") or {},
                [r.get(f) for f in OTHER_FEATURE_LABELS],
                top_n_moods,
                tempo_min,
                tempo_max,
            )
            for r in rows
        ],
        dtype=np.float64,
    ).reshape(len(rows), DIM)
    emb = (
        np.asarray([np.asarray(r["embedding"], dtype=np.float32) for r in rows], dtype=np.float32).reshape(
            len(rows), -1
        )
        if embeddings
        else None
    )
    return Library(
        ids=[str(r["item_id"]) for r in rows],
        titles=[str(r.get("title") or "") for r in rows],
        artists=[str(r.get("artist") or "") for r in rows],
        vectors=vectors,
        genres=[primary_genre(v, stratified) for v in vectors],
        embeddings=emb,
    )


def profile(vector: Floats) -> dict[str, Any]:
    """A readable profile of a mean score vector: top moods, tempo, energy, other features."""
    moods = sorted(
        ((lbl, float(vector[MOOD0 + i])) for i, lbl in enumerate(MOOD_LABELS) if vector[MOOD0 + i] > 0.01),
        key=lambda x: -x[1],
    )
    return {
        "moods": {lbl: round(v, 3) for lbl, v in moods[:5]},
        "tempo_normalized": round(float(vector[TEMPO]), 3),
        "energy_normalized": round(float(vector[ENERGY]), 3),
        "other_features": {
            lbl: round(float(vector[OTHER0 + i]), 3) for i, lbl in enumerate(OTHER_FEATURE_LABELS)
        },
    }
